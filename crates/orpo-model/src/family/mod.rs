//! Model families beyond the Llama decoder, each one module: its `config.json` read into the
//! common decoder description ([`DecoderConfig`] with its [`Quirks`](crate::config::Quirks)) and
//! written back.
//!
//! A family module has `MODEL_TYPE`, `ARCHITECTURE` and `apply(&mut DecoderConfig, &Keys)`, which
//! sets the quirks from the keys after the keys every decoder shares (sizes, heads, norms'
//! epsilon, token ids, tying) have been read the Llama way.

pub mod gemma2;
pub mod gemma3;
pub mod phi3;
pub mod qwen3;
pub mod smollm3;

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{DecoderConfig, Keys};
use crate::error::{ModelError, Result};
use crate::lora::LINEAR_MODULES;

/// One model family: the names `config.json` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// `model_type`.
    pub model_type: &'static str,
    /// `architectures[0]` (the class transformers loads it with).
    pub architecture: &'static str,
    /// PEFT's LoRA target names of one decoder layer, in layer order: what `all-linear`
    /// covers and the names a LoRA config may give for this family ([`lora_targets`]).
    pub lora_targets: &'static [&'static str],
    /// Whether a module of this directory reads its config ([`from_map`]); the others (Llama,
    /// Mistral, Qwen2) are the base decoder `DecoderConfig::from_base_map` reads directly.
    module: bool,
}

/// The architectures this crate implements, as `model_type` spells them ([`FAMILIES`] in
/// order; a unit test keeps the two equal).
pub const SUPPORTED_MODEL_TYPES: &str =
    "llama, mistral, qwen2, qwen3, smollm3, gemma2, gemma3_text, phi3";

/// Every family this crate implements, the registry the config reader, the unsupported-model
/// error and `config.json` on save go through.
pub const FAMILIES: [Family; 8] = [
    Family::base("llama", "LlamaForCausalLM"),
    Family::base("mistral", "MistralForCausalLM"),
    Family::base("qwen2", "Qwen2ForCausalLM"),
    Family::module(qwen3::MODEL_TYPE, qwen3::ARCHITECTURE),
    Family::module(smollm3::MODEL_TYPE, smollm3::ARCHITECTURE),
    Family::module(gemma2::MODEL_TYPE, gemma2::ARCHITECTURE),
    Family::module(gemma3::MODEL_TYPE, gemma3::ARCHITECTURE),
    Family::module(phi3::MODEL_TYPE, phi3::ARCHITECTURE).with_lora_targets(&phi3::LORA_TARGETS),
];

impl Family {
    const fn base(model_type: &'static str, architecture: &'static str) -> Self {
        Self {
            model_type,
            architecture,
            lora_targets: &LINEAR_MODULES,
            module: false,
        }
    }
    const fn module(model_type: &'static str, architecture: &'static str) -> Self {
        Self {
            model_type,
            architecture,
            lora_targets: &LINEAR_MODULES,
            module: true,
        }
    }
    const fn with_lora_targets(mut self, targets: &'static [&'static str]) -> Self {
        self.lora_targets = targets;
        self
    }
}

impl DecoderConfig {
    /// Builds the config from a parsed JSON object: the family its `model_type` names (or, when
    /// it has none, its `architectures[0]`, as transformers picks the model class) reads it; a
    /// type no family implements is an error listing those that are.
    pub fn from_map(mut raw: Map<String, Value>, path: &Path) -> Result<Self> {
        if raw.get("model_type").is_none_or(Value::is_null)
            && let Some(family) = raw
                .get("architectures")
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
                .and_then(by_architecture)
        {
            raw.insert("model_type".into(), family.model_type.into());
        }
        let model_type = Keys { raw: &raw, path }.string("model_type")?;
        match lookup(&model_type) {
            Some(family) if family.module => from_map(raw, path),
            Some(_) => Self::from_base_map(raw, path),
            None => Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                what: "model_type",
                found: model_type,
                supported: SUPPORTED_MODEL_TYPES,
            }),
        }
    }

    /// The JSON to write as `config.json`: the original keys with ours updated.
    pub fn to_json(&self) -> Value {
        let map = self.shared_json();
        if is_family(&self.model_type) {
            to_json(self, map)
        } else {
            self.base_to_json(map)
        }
    }
}

/// The family of a `model_type`.
pub fn lookup(model_type: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.model_type == model_type)
}

/// The family whose transformers class is `architecture` (`architectures[0]`).
pub fn by_architecture(architecture: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.architecture == architecture)
}

/// The LoRA targets of a `model_type`'s layers from a config's resolved `target_modules`
/// ([`crate::lora::resolve_target_modules`], which expands `all-linear` to the Llama layout's
/// seven names: a family with other layers gets its own [`Family::lora_targets`] for them).
/// A name the family does not have is an error naming the ones it has. A fused projection
/// (Phi-3's `qkv_proj`, `gate_up_proj`) gets PEFT's one adapter on the fused weight, its `A`
/// shared by the split parts ([`crate::lora::forward_fused`]).
pub fn lora_targets(
    model_type: &str,
    targets: &[String],
) -> std::result::Result<Vec<String>, String> {
    let family = lookup(model_type);
    let valid = family.map_or(&LINEAR_MODULES[..], |f| f.lora_targets);
    let all_linear = targets.len() == LINEAR_MODULES.len()
        && targets.iter().zip(LINEAR_MODULES).all(|(t, m)| t == m);
    let wanted: Vec<String> = if all_linear {
        valid.iter().map(|m| m.to_string()).collect()
    } else {
        targets.to_vec()
    };
    let arch = family.map_or("", |f| f.architecture);
    if let Some(name) = wanted.iter().find(|n| !valid.contains(&n.as_str())) {
        return Err(format!(
            "LoRA target module `{name}` is not a linear layer of {model_type} ({arch}); \
             its targets are {} or all-linear",
            valid.join(", ")
        ));
    }
    Ok(wanted)
}

/// Whether `model_type` is read by one of this directory's modules.
pub(crate) fn is_family(model_type: &str) -> bool {
    lookup(model_type).is_some_and(|f| f.module)
}

/// Reads the config of one of this module's families.
pub(crate) fn from_map(raw: Map<String, Value>, path: &Path) -> Result<DecoderConfig> {
    let keys = Keys { raw: &raw, path };
    let model_type = keys.string("model_type")?;
    // The shared keys, read the Llama way from a copy without what the families spell their
    // own way (activation, RoPE).
    let mut base = raw.clone();
    base.insert("model_type".into(), "llama".into());
    // Qwen3 and SmolLM3 spell activation and RoPE as Llama does: their keys stay.
    let llama_keys = [qwen3::MODEL_TYPE, smollm3::MODEL_TYPE].contains(&model_type.as_str());
    for key in [
        "hidden_act",
        "hidden_activation",
        "rope_scaling",
        "rope_parameters",
        "rope_theta",
    ] {
        if !llama_keys {
            base.remove(key);
        }
    }
    let gemma = model_type.starts_with("gemma");
    if gemma {
        // Gemma's defaults where the Llama ones differ.
        base.entry("head_dim").or_insert(256.into());
        base.entry("tie_word_embeddings").or_insert(true.into());
    } else if model_type == smollm3::MODEL_TYPE {
        base.entry("tie_word_embeddings").or_insert(true.into());
    } else if !llama_keys {
        base.entry("rms_norm_eps").or_insert(1e-5.into());
    }
    let mut config = DecoderConfig::from_base_map(base, path)?;
    config.model_type = model_type.clone();
    match model_type.as_str() {
        gemma2::MODEL_TYPE => gemma2::apply(&mut config, &keys)?,
        gemma3::MODEL_TYPE => gemma3::apply(&mut config, &keys)?,
        phi3::MODEL_TYPE => phi3::apply(&mut config, &keys)?,
        qwen3::MODEL_TYPE => qwen3::apply(&mut config, &keys)?,
        smollm3::MODEL_TYPE => smollm3::apply(&mut config, &keys)?,
        _ => unreachable!("is_family checked the model type"),
    }
    config.raw = raw;
    Ok(config)
}

/// `config.json` of a family model: the keys read from (`map`, the shared ones updated), with
/// `architectures` added when missing. The family keys are written back as read.
pub(crate) fn to_json(config: &DecoderConfig, mut map: Map<String, Value>) -> Value {
    if !map.contains_key("architectures") {
        let arch = lookup(&config.model_type).map_or("LlamaForCausalLM", |f| f.architecture);
        map.insert("architectures".into(), Value::Array(vec![arch.into()]));
    }
    Value::Object(map)
}

/// The RoPE base of a config: `rope_theta`, else transformers 5's `rope_parameters.rope_theta`,
/// else `default`.
pub(crate) fn rope_theta(keys: &Keys, default: f64) -> Result<f64> {
    if let Some(theta) = keys.opt_f64("rope_theta")? {
        return Ok(theta);
    }
    Ok(keys
        .raw
        .get("rope_parameters")
        .and_then(|p| p.get("rope_theta"))
        .and_then(Value::as_f64)
        .unwrap_or(default))
}

/// Gemma's activation key (`hidden_activation`, else `hidden_act`): only the tanh GELU.
pub(crate) fn gelu_tanh(keys: &Keys) -> Result<()> {
    let act = match keys.opt_string("hidden_activation")? {
        Some(a) => a,
        None => keys
            .opt_string("hidden_act")?
            .unwrap_or_else(|| "gelu_pytorch_tanh".into()),
    };
    if act != "gelu_pytorch_tanh" {
        return Err(ModelError::Unsupported {
            path: keys.path.to_path_buf(),
            what: "hidden_activation",
            found: act,
            supported: "gelu_pytorch_tanh",
        });
    }
    Ok(())
}

/// A soft-cap key: its value, `default` when absent, `None` when null.
pub(crate) fn softcap(keys: &Keys, key: &str, default: Option<f64>) -> Result<Option<f64>> {
    let cap = match keys.raw.get(key) {
        None => default,
        Some(Value::Null) => None,
        Some(_) => keys.opt_f64(key)?,
    };
    if let Some(c) = cap
        && !(c.is_finite() && c > 0.0)
    {
        return Err(keys.invalid(key, "must be a positive number or null"));
    }
    Ok(cap)
}

/// Per-layer windows from `layer_types` (`sliding_attention` / `full_attention`), or from
/// `sliding(layer)` when the config has none.
pub(crate) fn layer_windows(
    keys: &Keys,
    layers: usize,
    window: usize,
    sliding: impl Fn(usize) -> bool,
) -> Result<Vec<Option<usize>>> {
    match keys.raw.get("layer_types") {
        None | Some(Value::Null) => Ok((0..layers).map(|i| sliding(i).then_some(window)).collect()),
        Some(Value::Array(types)) => {
            if types.len() != layers {
                return Err(keys.invalid(
                    "layer_types",
                    &format!("has {} entries for {layers} layers", types.len()),
                ));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    Some("sliding_attention") => Ok(Some(window)),
                    Some("full_attention") => Ok(None),
                    _ => Err(keys.invalid(
                        "layer_types",
                        &format!("{t}: expected sliding_attention or full_attention"),
                    )),
                })
                .collect()
        }
        Some(_) => Err(keys.invalid("layer_types", "expected a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::{FAMILIES, SUPPORTED_MODEL_TYPES};

    /// A config without `model_type` is read by its `architectures[0]`.
    #[test]
    fn architecture_names_the_family_when_model_type_is_missing() {
        let json = r#"{"architectures":["Qwen3ForCausalLM"],"head_dim":8,"hidden_size":16,
            "intermediate_size":32,"num_attention_heads":2,"num_hidden_layers":1,
            "vocab_size":64}"#;
        let c = crate::DecoderConfig::from_json_str(json, "config.json".as_ref()).unwrap();
        assert_eq!(c.model_type, "qwen3");
        assert!(c.quirks.qk_norm);
        let unknown = json.replace("Qwen3ForCausalLM", "FalconForCausalLM");
        let err =
            crate::DecoderConfig::from_json_str(&unknown, "config.json".as_ref()).unwrap_err();
        assert!(err.to_string().contains("model_type"), "{err}");
    }

    /// The error's list of supported model types is the registry's.
    #[test]
    fn supported_list_is_the_registry() {
        let listed: Vec<&str> = SUPPORTED_MODEL_TYPES.split(", ").collect();
        let registered: Vec<&str> = FAMILIES.iter().map(|f| f.model_type).collect();
        assert_eq!(listed, registered);
    }
}
