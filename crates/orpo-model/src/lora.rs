//! LoRA (Hu et al. 2021) on the decoder's linear projections, as Hugging Face PEFT does it.
//!
//! Built on burn's reparameterization API (`burn::module::{Reparameterizer, LoraAdapter}`, what
//! `Module::apply_lora` uses): each adapted weight `Param` carries a burn [`LoraAdapter`] —
//! `a` `[in, r]`, `b` `[r, out]`, `scale` — and every other float parameter of the model is
//! frozen (no gradient, so no optimizer state). Two things differ from burn's stock [`Lora`]
//! reparameterizer, both to be PEFT's LoRA:
//! - **initialisation**: `A` is PEFT's `kaiming_uniform_(a=√5)`, i.e. U(−1/√in, 1/√in), `B` is
//!   zero; only the projections named in [`LoraConfig::target_modules`] get adapters, or they
//!   are loaded from a PEFT adapter directory ([`LlamaForCausalLM::load_adapter`]);
//! - **forward** ([`forward`]): `x·W + b + scale · (dropout(x)·A)·B`, PEFT's order, with
//!   `lora_dropout` on the adapter input while training. burn's `Linear::forward` would
//!   materialise `W + scale·A·B` (`Param::val`) in every step, keep that dense matrix for the
//!   backward pass and compute a dense `[in, out]` weight gradient before reducing it to `A`
//!   and `B` — as much work and almost as much memory as full fine-tuning.
//!
//! Merging ([`LlamaForCausalLM::merge_lora`]) is burn's `Module::materialize`:
//! `W ← W + scale·A·B`. [`LlamaForCausalLM::save_pretrained`] of a model with adapters writes
//! the merged weights (`Param::val`); [`LlamaForCausalLM::save_adapter`] writes a PEFT adapter
//! directory (`adapter_config.json` + `adapter_model.safetensors`, PEFT's key names and
//! `[out, in]` layout) that `peft.PeftModel.from_pretrained(base, dir)` loads.
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use orpo_model::{LlamaConfig, LlamaForCausalLM, LoraConfig};
//!
//! let json = r#"{"model_type":"llama","vocab_size":32,"hidden_size":16,"intermediate_size":32,
//!   "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2}"#;
//! let config = LlamaConfig::from_json_str(json, "config.json".as_ref()).unwrap();
//! let device = Device::default();
//! let lora = LoraConfig::new(4, 8.0).with_target_modules(&["all-linear"]).unwrap();
//! let model = LlamaForCausalLM::init(&config, &device).with_lora(&lora).unwrap();
//! assert_eq!(model.lora_config().unwrap().target_modules.len(), 7);
//! let ids = Tensor::<2, Int>::from_ints([[1, 2, 3]], &device);
//! let hidden = model.forward_hidden(ids, Tensor::ones([1, 3], &device));
//! assert_eq!(hidden.dims(), [1, 3, 16]);
//! ```
//!
//! [`Lora`]: burn::module::Lora

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use burn::module::{LoraAdapter, Module, Param, Reparameterizer};
use burn::nn::Linear;
use burn::tensor::module::linear;
use burn::tensor::{Distribution, Tensor};
use serde_json::{Value, json};

use crate::error::{ModelError, Result};
use crate::model::{DecoderLayer, LlamaForCausalLM};
use crate::save::{HostInput, HostTensor, SaveDtype, write_atomic, write_tensors};
use crate::weights::{SafetensorsCheckpoint, WeightSource};

/// PEFT's adapter configuration file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// PEFT's adapter weights file.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// The linear projections of a decoder layer that can carry an adapter, in layer order.
pub const LINEAR_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];
/// PEFT's default targets for Llama, Mistral and Qwen2 when `target_modules` is unset
/// (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`), which TRL's `ModelConfig` keeps.
pub const DEFAULT_TARGET_MODULES: [&str; 2] = ["q_proj", "v_proj"];
/// PEFT's shorthand for every linear layer but the output head.
pub const ALL_LINEAR: &str = "all-linear";

/// LoRA settings, with PEFT's names and TRL's defaults (`r` 16, `lora_alpha` 32,
/// `lora_dropout` 0.05, `q_proj` and `v_proj`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of the update `B·A`.
    pub r: usize,
    /// `lora_alpha`: the update is scaled by `alpha / r` (`alpha / √r` with rsLoRA).
    pub alpha: f64,
    /// `lora_dropout`: dropout on the adapter's input while training.
    pub dropout: f64,
    /// Projections that get adapters, names from [`LINEAR_MODULES`], in layer order.
    pub target_modules: Vec<String>,
    /// Rank-stabilised LoRA: scale by `alpha / √r` (PEFT's `use_rslora`).
    pub use_rslora: bool,
    /// Written to `adapter_config.json` as `base_model_name_or_path`.
    pub base_model_name_or_path: Option<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: DEFAULT_TARGET_MODULES.map(String::from).to_vec(),
            use_rslora: false,
            base_model_name_or_path: None,
        }
    }
}

/// Expands `all-linear` and checks the names of `target_modules`; returns them in layer order.
pub fn resolve_target_modules<S: AsRef<str>>(
    names: &[S],
) -> std::result::Result<Vec<String>, String> {
    let mut wanted = BTreeSet::new();
    for name in names {
        let name = name.as_ref();
        if name == ALL_LINEAR {
            wanted.extend(LINEAR_MODULES);
        } else if let Some(known) = LINEAR_MODULES.iter().find(|m| **m == name) {
            wanted.insert(*known);
        } else {
            return Err(format!(
                "unknown LoRA target module `{name}`; expected `{ALL_LINEAR}` or names among {}",
                LINEAR_MODULES.join(", ")
            ));
        }
    }
    if wanted.is_empty() {
        return Err("no LoRA target module given".into());
    }
    Ok(LINEAR_MODULES
        .iter()
        .filter(|m| wanted.contains(*m))
        .map(|m| m.to_string())
        .collect())
}

impl LoraConfig {
    /// Rank `r` and `alpha`, other settings at their defaults.
    pub fn new(r: usize, alpha: f64) -> Self {
        Self {
            r,
            alpha,
            ..Self::default()
        }
    }

    /// The projections to adapt: names from [`LINEAR_MODULES`], or `all-linear`.
    pub fn with_target_modules<S: AsRef<str>>(
        mut self,
        names: &[S],
    ) -> std::result::Result<Self, String> {
        self.target_modules = resolve_target_modules(names)?;
        Ok(self)
    }

    /// The dropout probability on the adapter input.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// PEFT's `scaling`: `alpha / r`, or `alpha / √r` with rsLoRA.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// Whether the projection `module` (`q_proj`, ...) gets an adapter.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|m| m == module)
    }

    /// Checks the values; the message names the PEFT key at fault.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.r == 0 {
            return Err("`r` must be positive".into());
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(format!("`lora_alpha` ({}) must be positive", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "`lora_dropout` ({}) must be in [0, 1)",
                self.dropout
            ));
        }
        resolve_target_modules(&self.target_modules).map(|_| ())
    }

    /// The `adapter_config.json` PEFT writes for these settings (LoRA on a causal LM, no bias,
    /// `fan_in_fan_out` false).
    pub fn to_peft_json(&self) -> Value {
        let alpha = if self.alpha.fract() == 0.0 && self.alpha.abs() < 1e15 {
            json!(self.alpha as i64)
        } else {
            json!(self.alpha)
        };
        json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": self.base_model_name_or_path,
            "r": self.r,
            "lora_alpha": alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": self.use_rslora,
            "use_dora": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        })
    }

    /// Reads the settings of a PEFT `adapter_config.json`. Options this crate does not
    /// implement (DoRA, bias training, `fan_in_fan_out`, per-module ranks, `modules_to_save`)
    /// are errors naming the key. `target_modules` is taken as written when it is a list of
    /// projection names or `all-linear`; [`LlamaForCausalLM::load_adapter`] then uses the
    /// projections the weights file actually holds.
    pub fn from_peft_json(value: &Value) -> std::result::Result<Self, String> {
        let get = |key: &str| value.get(key).filter(|v| !v.is_null());
        match get("peft_type").and_then(Value::as_str) {
            Some("LORA") | None => {}
            Some(other) => return Err(format!("`peft_type` is `{other}`; only LORA is supported")),
        }
        let r = get("r")
            .and_then(Value::as_u64)
            .ok_or("`r` is missing or not a positive integer")? as usize;
        let alpha = match get("lora_alpha") {
            None => 8.0, // PEFT's default
            Some(v) => v.as_f64().ok_or("`lora_alpha` is not a number")?,
        };
        let dropout = match get("lora_dropout") {
            None => 0.0,
            Some(v) => v.as_f64().ok_or("`lora_dropout` is not a number")?,
        };
        let flag = |key: &str| get(key).and_then(Value::as_bool).unwrap_or(false);
        for key in ["use_dora", "fan_in_fan_out"] {
            if flag(key) {
                return Err(format!("`{key}: true` is not supported"));
            }
        }
        if let Some(bias) = get("bias").and_then(Value::as_str)
            && bias != "none"
        {
            return Err(format!("`bias` is `{bias}`; only `none` is supported"));
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if get(key)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(format!(
                    "`{key}` (per-module ranks or alphas) is not supported"
                ));
            }
        }
        if get("modules_to_save")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty())
        {
            return Err("`modules_to_save` is not supported".into());
        }
        let target_modules = match get("target_modules") {
            Some(Value::String(s)) if s == ALL_LINEAR => LINEAR_MODULES.map(String::from).to_vec(),
            Some(Value::Array(list)) => {
                let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                resolve_target_modules(&names).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let config = Self {
            r,
            alpha,
            dropout,
            target_modules,
            use_rslora: flag("use_rslora"),
            base_model_name_or_path: get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(String::from),
        };
        if config.r == 0 || !config.alpha.is_finite() || !(0.0..1.0).contains(&config.dropout) {
            return Err(format!(
                "invalid values: r {}, lora_alpha {}, lora_dropout {}",
                config.r, config.alpha, config.dropout
            ));
        }
        Ok(config)
    }

    /// Reads `dir/adapter_config.json`.
    pub fn from_adapter_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::Lora {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::from_peft_json(&value).map_err(|message| ModelError::Lora { path, message })
    }
}

/// `x·W + b` of `linear`, plus `scale · (dropout(x)·A)·B` when its weight carries an adapter
/// (PEFT's LoRA forward); without an adapter, `linear.forward(x)`. `dropout` applies only on an
/// autodiff device (training); the base weight `W` is used as stored, never merged. Every
/// projection of the decoder goes through here.
pub fn forward<const D: usize>(linear_layer: &Linear, x: Tensor<D>, dropout: f64) -> Tensor<D> {
    let Some(adapter) = linear_layer.weight.adapter() else {
        return linear_layer.forward(x);
    };
    let bias = linear_layer.bias.as_ref().map(|b| b.val());
    let base = linear(x.clone(), linear_layer.weight.base(), bias);
    let down = if dropout > 0.0 && x.device().is_autodiff() {
        // Inverted dropout with a boolean mask (what autodiff keeps for the backward pass is
        // 1 byte per element, not a float mask), the 1/(1 − p) applied to the `[rows, r]`
        // product rather than to `x`.
        let drop = x.random_like(Distribution::Default).lower_elem(dropout);
        linear(x.mask_fill(drop, 0.0), adapter.a.val(), None).mul_scalar(1.0 / (1.0 - dropout))
    } else {
        linear(x, adapter.a.val(), None)
    };
    base + linear(down, adapter.b.val(), None).mul_scalar(adapter.scale)
}

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
        let (d_in, d_out, r) = (dims[0], dims[1], self.config.r);
        let device = param.lazy_device();
        let (a, b) = match &mut self.init {
            AdapterInit::Fresh => {
                if !self.config.targets(module) {
                    return (param, None);
                }
                // PEFT: kaiming_uniform_(lora_A.weight, a=√5) on `[r, in]` is U(±1/√in).
                let bound = 1.0 / (d_in as f64).sqrt();
                (
                    Tensor::<2>::random([d_in, r], Distribution::Uniform(-bound, bound), &device),
                    Tensor::<2>::zeros([r, d_out], &device),
                )
            }
            AdapterInit::File(file) => {
                let prefix = peft_prefix(layer, group, module);
                let a_name = format!("{prefix}.lora_A.weight");
                if !file.contains(&a_name) {
                    return (param, None);
                }
                // lora_A is `[r, in]`, lora_B `[out, r]`: read transposed, as linear weights.
                let a = file.linear_weight(&a_name, r, d_in);
                let b = a.and_then(|a| {
                    file.linear_weight(&format!("{prefix}.lora_B.weight"), d_out, r)
                        .map(|b| (a, b))
                });
                match b {
                    Ok(ab) => ab,
                    Err(e) => {
                        self.error = Some(e);
                        return (param, None);
                    }
                }
            }
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
}

impl LlamaForCausalLM {
    /// Attaches fresh LoRA adapters (PEFT's initialisation, drawn from the device's RNG) to the
    /// projections `config` targets and freezes every other parameter: only the adapters train.
    /// Adapters already attached are replaced.
    pub fn with_lora(self, config: &LoraConfig) -> Result<Self> {
        config.validate().map_err(|message| ModelError::Lora {
            path: "LoRA config".into(),
            message,
        })?;
        self.attach(config.clone(), AdapterInit::Fresh)
    }

    /// Attaches the adapters of a PEFT adapter directory (`adapter_config.json`,
    /// `adapter_model.safetensors`) to this base model, replacing any attached ones; every
    /// other parameter is frozen. A tensor of the wrong shape, or one the model has no place
    /// for, is an error naming it.
    pub fn load_adapter(self, dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut config = LoraConfig::from_adapter_dir(dir)?;
        let device = self.embed_tokens.weight.device();
        let mut file = SafetensorsCheckpoint::open_file(dir.join(ADAPTER_WEIGHTS), &device)?;
        // Projections with adapters are found from the tensors, not from `target_modules`
        // (which PEFT may write as a regular expression).
        config.target_modules = LINEAR_MODULES.map(String::from).to_vec();
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
        };
        let mut model = self
            .without_lora()
            .apply_reparameterization(&mut reparameterizer);
        if let Some(error) = reparameterizer.error {
            return Err(error);
        }
        let adapted = std::mem::take(&mut reparameterizer.adapted);
        config.target_modules = LINEAR_MODULES
            .iter()
            .filter(|m| adapted.contains(*m))
            .map(|m| m.to_string())
            .collect();
        model.set_dropout(config.dropout);
        model.lora = Some(config);
        Ok(model)
    }

    /// The LoRA settings when adapters are attached.
    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Merges the adapters into the weights (`W ← W + scale·A·B`, burn's
    /// `Module::materialize`) and forgets the LoRA settings. Parameters stay frozen.
    pub fn merge_lora(self) -> Self {
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
        }
    }

    /// The adapter factors in PEFT's names and layout: `…{module}.lora_A.weight` `[r, in]` and
    /// `…{module}.lora_B.weight` `[out, r]`.
    pub fn adapter_tensors(&self) -> Result<Vec<HostTensor>> {
        let mut out = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            for (group, module, linear) in layer.projections() {
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
        for layer in &self.layers {
            for (_, _, linear) in layer.projections() {
                if let Some(adapter) = linear.weight.adapter() {
                    trainable += adapter.a.lazy_shape().num_elements()
                        + adapter.b.lazy_shape().num_elements();
                }
            }
        }
        (trainable, self.num_params())
    }
}

/// The adapted projections per layer (`{layer: [module, ...]}`), for diagnostics.
pub fn adapted_modules(model: &LlamaForCausalLM) -> BTreeMap<usize, Vec<&'static str>> {
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
    fn target_modules_resolve_in_layer_order() {
        assert_eq!(
            resolve_target_modules(&["v_proj", "q_proj", "q_proj"]).unwrap(),
            ["q_proj", "v_proj"]
        );
        assert_eq!(resolve_target_modules(&["all-linear"]).unwrap().len(), 7);
        let err = resolve_target_modules(&["lm_head"]).unwrap_err();
        assert!(err.contains("lm_head"), "{err}");
        assert!(resolve_target_modules::<&str>(&[]).is_err());
    }

    #[test]
    fn scaling_is_pefts() {
        let c = LoraConfig::new(16, 32.0);
        assert_eq!(c.scaling(), 2.0);
        let c = LoraConfig {
            use_rslora: true,
            ..c
        };
        assert_eq!(c.scaling(), 8.0);
    }

    #[test]
    fn peft_json_round_trips() {
        let c = LoraConfig {
            base_model_name_or_path: Some("m".into()),
            ..LoraConfig::new(4, 8.0)
                .with_target_modules(&["q_proj", "down_proj"])
                .unwrap()
        };
        let json = c.to_peft_json();
        assert_eq!(json["lora_alpha"], json!(8));
        assert_eq!(LoraConfig::from_peft_json(&json).unwrap(), c);
        let mut bad = json.clone();
        bad["use_dora"] = json!(true);
        assert!(
            LoraConfig::from_peft_json(&bad)
                .unwrap_err()
                .contains("use_dora")
        );
        bad = json;
        bad["peft_type"] = json!("IA3");
        assert!(
            LoraConfig::from_peft_json(&bad)
                .unwrap_err()
                .contains("IA3")
        );
    }

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
