//! LoRA adapters on the decoder ([`crate::lora`]): attaching fresh ones or a PEFT adapter
//! directory's (burn's reparameterization, every other weight frozen), merging, and writing
//! the adapters as PEFT does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use burn::module::{LoraAdapter, Module, Param, Reparameterizer};
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Tensor};

use crate::error::{ModelError, Result};
use crate::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, KNOWN_MODULES, LINEAR_MODULES, LoraConfig};
use crate::model::{DecoderForCausalLM, DecoderLayer};
use crate::tensor_file::{HostInput, HostTensor, SaveDtype, write_atomic, write_tensors};
use crate::weights::{SafetensorsCheckpoint, WeightSource};

/// Where new adapters' factors come from.
enum AdapterInit<'a> {
    /// PEFT's initialisation: `A` kaiming-uniform, `B` zero.
    Fresh,
    /// The `lora_A` / `lora_B` tensors of a PEFT adapter file.
    File(&'a mut SafetensorsCheckpoint),
}

/// The [`Reparameterizer`] that freezes every float parameter and attaches a [`LoraAdapter`] to
/// the targeted projection weights.
struct PeftLora<'a> {
    config: &'a LoraConfig,
    init: AdapterInit<'a>,
    adapted: BTreeSet<&'static str>,
    error: Option<ModelError>,
    /// Output widths of the parts of the fused projections (Phi-3), when the model has them:
    /// `[q, k, v]` and `[gate, up]`.
    fused: Option<([usize; 3], [usize; 2])>,
    /// The shared `A` and the whole `B` `[r, Σ out]` of each fused projection
    /// `(layer, qkv_proj | gate_up_proj)`, made when its first part is met.
    fused_factors: HashMap<(usize, &'static str), (Tensor<2>, Tensor<2>)>,
}

/// The fused projection a split part belongs to (`q_proj` → `qkv_proj`, part 0, ...).
fn fused_part(module: &str) -> Option<(&'static str, usize)> {
    match module {
        "q_proj" => Some(("qkv_proj", 0)),
        "k_proj" => Some(("qkv_proj", 1)),
        "v_proj" => Some(("qkv_proj", 2)),
        "gate_proj" => Some(("gate_up_proj", 0)),
        "up_proj" => Some(("gate_up_proj", 1)),
        _ => None,
    }
}

/// `layers.{i}.{self_attn|mlp}.{module}.weight` → `(i, group, module)`.
fn projection(path: &str) -> Option<(usize, &str, &'static str)> {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["layers", i, group @ ("self_attn" | "mlp"), module, "weight"] => {
            let module = LINEAR_MODULES.iter().find(|m| *m == module)?;
            Some((i.parse().ok()?, group, module))
        }
        _ => None,
    }
}

/// PEFT's key prefix of a projection: `base_model.model.model.layers.{i}.{group}.{module}`.
fn peft_prefix(layer: usize, group: &str, module: &str) -> String {
    format!("base_model.model.model.layers.{layer}.{group}.{module}")
}

impl PeftLora<'_> {
    /// The factors `a` `[in, r]` and `b` `[r, out]` of the LoRA on `module` (PEFT's name) of
    /// layer `layer`: fresh (PEFT's initialisation) when the config targets it, else read from
    /// the adapter file. `None` when the module gets no adapter, or on an error, which is kept in
    /// `self.error`.
    fn factors(
        &mut self,
        layer: usize,
        group: &str,
        module: &str,
        d_in: usize,
        d_out: usize,
        device: &Device,
    ) -> Option<(Tensor<2>, Tensor<2>)> {
        let r = self.config.r;
        match &mut self.init {
            AdapterInit::Fresh => {
                if !self.config.targets(module) {
                    return None;
                }
                // PEFT: kaiming_uniform_(lora_A.weight, a=√5) on `[r, in]` is U(±1/√in).
                let bound = 1.0 / (d_in as f64).sqrt();
                Some((
                    Tensor::<2>::random([d_in, r], Distribution::Uniform(-bound, bound), device),
                    Tensor::<2>::zeros([r, d_out], device),
                ))
            }
            AdapterInit::File(file) => {
                let prefix = peft_prefix(layer, group, module);
                let a_name = format!("{prefix}.lora_A.weight");
                if !file.contains(&a_name) {
                    return None;
                }
                // lora_A is `[r, in]`, lora_B `[out, r]`: read transposed, as linear weights.
                let ab = file.linear_weight(&a_name, r, d_in).and_then(|a| {
                    file.linear_weight(&format!("{prefix}.lora_B.weight"), d_out, r)
                        .map(|b| (a, b))
                });
                match ab {
                    Ok(ab) => Some(ab),
                    Err(e) => {
                        self.error = Some(e);
                        None
                    }
                }
            }
        }
    }

    /// The adapter of part `part` of the fused projection `fused` (widths `widths`): PEFT's one
    /// LoRA on the fused weight: each part's `a` a copy of `A` (only the first part's is used
    /// and trains, [`crate::lora::forward_fused`]) and `b` `B`'s columns `[Σ widths before, + widths[part])`.
    #[allow(clippy::too_many_arguments)]
    fn fused_adapter<const D: usize>(
        &mut self,
        param: Param<Tensor<D>>,
        layer: usize,
        group: &str,
        fused: &'static str,
        widths: &[usize],
        part: usize,
        d_in: usize,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        let total: usize = widths.iter().sum();
        if !self.fused_factors.contains_key(&(layer, fused)) {
            let Some((a, b)) = self.factors(layer, group, fused, d_in, total, &param.lazy_device())
            else {
                return (param, None);
            };
            self.fused_factors.insert((layer, fused), (a, b));
        }
        let (a, b) = &self.fused_factors[&(layer, fused)];
        let start: usize = widths[..part].iter().sum();
        self.adapted.insert(fused);
        let adapter = LoraAdapter {
            // Detached: each part's factors are their own leaves (a clone would share the
            // autodiff node, and with it the first part's gradient).
            a: Param::from_tensor(a.clone().detach()),
            b: Param::from_tensor(b.clone().narrow(1, start, widths[part]).detach()),
            scale: self.config.scaling(),
        };
        (param, Some(adapter))
    }
}

// `apply_reparameterization` takes the reparameterizer by value; a `&mut` lets `attach` read
// back what it adapted and the first error.
impl Reparameterizer for &mut PeftLora<'_> {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        // Everything is frozen; only the adapter factors created here train.
        let param = param.set_require_grad(false);
        if D != 2 || self.error.is_some() {
            return (param, None);
        }
        let Some((layer, group, module)) = projection(path) else {
            return (param, None);
        };
        let dims = param.lazy_shape().dims::<2>();
        let (d_in, d_out) = (dims[0], dims[1]);
        if let Some((qkv, gate_up)) = self.fused
            && let Some((fused, part)) = fused_part(module)
        {
            let widths: &[usize] = if fused == "qkv_proj" { &qkv } else { &gate_up };
            return self.fused_adapter(param, layer, group, fused, widths, part, d_in);
        }
        let Some((a, b)) = self.factors(layer, group, module, d_in, d_out, &param.lazy_device())
        else {
            return (param, None);
        };
        self.adapted.insert(module);
        let adapter = LoraAdapter {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            scale: self.config.scaling(),
        };
        (param, Some(adapter))
    }
}

impl DecoderLayer {
    /// The seven projections with their names relative to the layer (`self_attn.q_proj`, ...).
    pub fn projections(&self) -> [(&'static str, &'static str, &Linear); 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            ("self_attn", "q_proj", &a.q_proj),
            ("self_attn", "k_proj", &a.k_proj),
            ("self_attn", "v_proj", &a.v_proj),
            ("self_attn", "o_proj", &a.o_proj),
            ("mlp", "gate_proj", &m.gate_proj),
            ("mlp", "up_proj", &m.up_proj),
            ("mlp", "down_proj", &m.down_proj),
        ]
    }

    fn projections_mut(&mut self) -> [&mut Linear; 7] {
        let (a, m) = (&mut self.self_attn, &mut self.mlp);
        [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ]
    }

    fn set_lora_dropout(&mut self, dropout: f64) {
        self.self_attn.lora_dropout = dropout;
        self.mlp.lora_dropout = dropout;
    }

    /// Marks which projections carry one fused adapter (see [`PeftLora::fused_adapter`]).
    fn set_fused_lora(&mut self, qkv: bool, gate_up: bool) {
        self.self_attn.fused_lora = qkv;
        self.mlp.fused_lora = gate_up;
    }
}

impl DecoderForCausalLM {
    /// Attaches fresh LoRA adapters (PEFT's initialisation, drawn from the device's RNG) to the
    /// projections `config` targets and freezes every other parameter: only the adapters train.
    /// Adapters already attached are replaced. The targets are the family's
    /// ([`crate::family::lora_targets`]: `all-linear` is its linear layers, a name it does not
    /// have is an error listing those it has).
    pub fn with_lora(self, config: &LoraConfig) -> Result<Self> {
        let error = |message| ModelError::Lora {
            path: "LoRA config".into(),
            message,
        };
        config.validate().map_err(error)?;
        let target_modules =
            crate::family::lora_targets(&self.config.model_type, &config.target_modules)
                .map_err(error)?;
        let config = LoraConfig {
            target_modules,
            ..config.clone()
        };
        self.attach(config, AdapterInit::Fresh)
    }

    /// Attaches the adapters of a PEFT adapter directory (`adapter_config.json`,
    /// `adapter_model.safetensors`) to this base model, replacing any attached ones; every
    /// other parameter is frozen. A tensor of the wrong shape, or one the model has no place
    /// for, is an error naming it.
    pub fn load_adapter(self, dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut config = LoraConfig::from_adapter_dir(dir)?;
        if !config.target_modules.is_empty() {
            crate::family::lora_targets(&self.config.model_type, &config.target_modules).map_err(
                |message| ModelError::Lora {
                    path: dir.join(ADAPTER_CONFIG),
                    message,
                },
            )?;
        }
        let device = self.embed_tokens.weight.device();
        let mut file = SafetensorsCheckpoint::open_file(dir.join(ADAPTER_WEIGHTS), &device)?;
        // Projections with adapters are found from the tensors, not from `target_modules`
        // (which PEFT may write as a regular expression).
        config.target_modules = KNOWN_MODULES.map(String::from).to_vec();
        let model = self.attach(config, AdapterInit::File(&mut file))?;
        file.finish()?;
        if model
            .lora
            .as_ref()
            .is_none_or(|l| l.target_modules.is_empty())
        {
            return Err(ModelError::Lora {
                path: dir.join(ADAPTER_WEIGHTS),
                message: "no lora_A / lora_B tensor of a decoder projection".into(),
            });
        }
        Ok(model)
    }

    fn attach(self, mut config: LoraConfig, init: AdapterInit<'_>) -> Result<Self> {
        let mut reparameterizer = PeftLora {
            config: &config,
            init,
            adapted: BTreeSet::new(),
            error: None,
            fused: self.config.quirks.fused_projections.then(|| {
                let c = &self.config;
                let kv = c.num_key_value_heads * c.head_dim;
                (
                    [c.num_attention_heads * c.head_dim, kv, kv],
                    [c.intermediate_size, c.intermediate_size],
                )
            }),
            fused_factors: HashMap::new(),
        };
        let mut model = self
            .without_lora()
            .apply_reparameterization(&mut reparameterizer);
        if let Some(error) = reparameterizer.error {
            return Err(error);
        }
        let adapted = std::mem::take(&mut reparameterizer.adapted);
        config.target_modules = KNOWN_MODULES
            .iter()
            .filter(|m| adapted.contains(*m))
            .map(|m| m.to_string())
            .collect();
        model.set_dropout(config.dropout);
        // On a model with fused projections (Phi-3) an adapter on q (gate) is always the fused
        // one ([`PeftLora::fused_adapter`]).
        let fused = model.config.quirks.fused_projections;
        for layer in &mut model.layers {
            let qkv = fused && layer.self_attn.q_proj.weight.adapter().is_some();
            let gate_up = fused && layer.mlp.gate_proj.weight.adapter().is_some();
            layer.set_fused_lora(qkv, gate_up);
        }
        model.lora = Some(config);
        Ok(model)
    }

    /// The LoRA settings when adapters are attached.
    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Merges the adapters into the weights (`W ← W + scale·A·B`, burn's
    /// `Module::materialize`) and forgets the LoRA settings. Parameters stay frozen.
    pub fn merge_lora(mut self) -> Self {
        if self.config.quirks.fused_projections {
            // The parts of a fused adapter share the first part's `A` (the others' copies do
            // not train): merge them with it, not with `Param::val`.
            for layer in &mut self.layers {
                let merged = {
                    let (a, m) = (&layer.self_attn, &layer.mlp);
                    let [q, k, v] = fused_values([&a.q_proj, &a.k_proj, &a.v_proj], a.fused_lora);
                    let [gate, up] = fused_values([&m.gate_proj, &m.up_proj], m.fused_lora);
                    [q, k, v, gate, up]
                };
                let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
                let parts = [
                    &mut a.q_proj,
                    &mut a.k_proj,
                    &mut a.v_proj,
                    &mut m.gate_proj,
                    &mut m.up_proj,
                ];
                for (linear, weight) in parts.into_iter().zip(merged) {
                    let (id, _, mapper) = linear.weight.clone().consume();
                    linear.weight = Param::from_mapped_value(id, weight, mapper);
                }
            }
        }
        let mut model = Module::materialize(self);
        model.lora = None;
        model.set_dropout(0.0);
        model
    }

    /// Drops the adapters (without merging): the base model, still frozen.
    pub fn without_lora(mut self) -> Self {
        for layer in &mut self.layers {
            for linear in layer.projections_mut() {
                let (id, value, mapper) = linear.weight.clone().consume();
                linear.weight = Param::from_mapped_value(id, value, mapper);
            }
        }
        self.lora = None;
        self.set_dropout(0.0);
        self
    }

    fn set_dropout(&mut self, dropout: f64) {
        for layer in &mut self.layers {
            layer.set_lora_dropout(dropout);
            if dropout == 0.0 && self.lora.is_none() {
                // Without adapters (merged or dropped), no fused one either.
                layer.set_fused_lora(false, false);
            }
        }
    }

    /// The adapter factors in PEFT's names and layout: `…{module}.lora_A.weight` `[r, in]` and
    /// `…{module}.lora_B.weight` `[out, r]`. A fused adapter (Phi-3) is written as PEFT's one on
    /// the fused weight: the shared `A`, the parts' `B` joined by rows.
    pub fn adapter_tensors(&self) -> Result<Vec<HostTensor>> {
        let mut out = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            let projections = layer.projections();
            let mut fused_done = BTreeSet::new();
            for (group, module, linear) in projections {
                if let Some((fused, _)) = fused_part(module)
                    && let Some(parts) = shared_parts(layer, &projections, fused)
                {
                    if fused_done.insert(fused) {
                        let prefix = peft_prefix(index, group, fused);
                        let first = parts[0].weight.adapter().expect("shared_parts checked");
                        out.push(
                            HostInput::D2(first.a.val().transpose())
                                .read(format!("{prefix}.lora_A.weight"))?,
                        );
                        let b = Tensor::cat(
                            parts
                                .iter()
                                .map(|l| l.weight.adapter().expect("checked").b.val().transpose())
                                .collect(),
                            0,
                        );
                        out.push(HostInput::D2(b).read(format!("{prefix}.lora_B.weight"))?);
                    }
                    continue;
                }
                if let Some(adapter) = linear.weight.adapter() {
                    let prefix = peft_prefix(index, group, module);
                    out.push(
                        HostInput::D2(adapter.a.val().transpose())
                            .read(format!("{prefix}.lora_A.weight"))?,
                    );
                    out.push(
                        HostInput::D2(adapter.b.val().transpose())
                            .read(format!("{prefix}.lora_B.weight"))?,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Writes the adapters as a PEFT adapter directory: `adapter_config.json` and
    /// `adapter_model.safetensors` (f32), each written atomically. Errors when no adapter is
    /// attached.
    pub fn save_adapter(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let Some(config) = &self.lora else {
            return Err(ModelError::Lora {
                path: dir.to_path_buf(),
                message: "the model has no LoRA adapters to save".into(),
            });
        };
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        write_tensors(
            &dir.join(ADAPTER_WEIGHTS),
            self.adapter_tensors()?,
            SaveDtype::F32,
            metadata,
        )?;
        let text =
            serde_json::to_string_pretty(&config.to_peft_json()).expect("JSON values serialise");
        let path = dir.join(ADAPTER_CONFIG);
        write_atomic(&path, text.as_bytes()).map_err(|e| ModelError::io(&path, e))
    }

    /// Counts of trainable (adapter) and total parameters, as PEFT's
    /// `print_trainable_parameters` reports them.
    pub fn lora_parameter_counts(&self) -> (usize, usize) {
        let mut trainable = 0;
        // A fused adapter's parts share one `A`: counted once.
        for layer in &self.layers {
            let projections = layer.projections();
            for (_, module, linear) in projections {
                if let Some(adapter) = linear.weight.adapter() {
                    let copy = fused_part(module).is_some_and(|(fused, part)| {
                        part > 0 && shared_parts(layer, &projections, fused).is_some()
                    });
                    if !copy {
                        trainable += adapter.a.lazy_shape().num_elements();
                    }
                    trainable += adapter.b.lazy_shape().num_elements();
                }
            }
        }
        (trainable, self.num_params())
    }
}

/// The effective weights `[in, out]` of the parts of a fused projection: with `shared` (the
/// layer's `fused_lora`) `W + scale·A·B_part` with the first part's `A` (the other parts'
/// copies do not train, [`crate::lora::forward_fused`]), else each part's `Param::val`.
pub(crate) fn fused_values<const N: usize>(parts: [&Linear; N], shared: bool) -> [Tensor<2>; N] {
    let first = parts[0].weight.adapter();
    let Some(a) = first
        .filter(|_| shared && parts.iter().all(|l| l.weight.adapter().is_some()))
        .map(|f| f.a.val())
    else {
        return parts.map(|l| l.weight.val());
    };
    parts.map(|l| {
        let adapter = l.weight.adapter().expect("checked above");
        l.weight.base() + a.clone().matmul(adapter.b.val()).mul_scalar(adapter.scale)
    })
}

/// The parts of `fused` (`qkv_proj`, `gate_up_proj`) among a layer's projections when they
/// carry one fused adapter.
fn shared_parts<'a>(
    layer: &DecoderLayer,
    projections: &[(&'static str, &'static str, &'a Linear); 7],
    fused: &str,
) -> Option<Vec<&'a Linear>> {
    let flag = match fused {
        "qkv_proj" => layer.self_attn.fused_lora,
        _ => layer.mlp.fused_lora,
    };
    let parts: Vec<&Linear> = projections
        .iter()
        .filter(|(_, m, _)| fused_part(m).is_some_and(|(f, _)| f == fused))
        .map(|(_, _, l)| *l)
        .collect();
    (flag && parts.iter().all(|l| l.weight.adapter().is_some())).then_some(parts)
}

/// The adapted projections per layer (`{layer: [module, ...]}`), for diagnostics.
pub fn adapted_modules(model: &DecoderForCausalLM) -> BTreeMap<usize, Vec<&'static str>> {
    model
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let names = layer
                .projections()
                .into_iter()
                .filter(|(_, _, l)| l.weight.adapter().is_some())
                .map(|(_, m, _)| m)
                .collect();
            (i, names)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_paths_parse() {
        assert_eq!(
            projection("layers.3.self_attn.q_proj.weight"),
            Some((3, "self_attn", "q_proj"))
        );
        assert_eq!(
            projection("layers.0.mlp.down_proj.weight"),
            Some((0, "mlp", "down_proj"))
        );
        assert_eq!(projection("lm_head.weight"), None);
        assert_eq!(projection("layers.0.mlp.down_proj.bias"), None);
    }
}
