//! LoRA settings with PEFT's names: the target modules, the scaling, `adapter_config.json`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::{ModelError, Result};

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
/// Fused projections some families store (Phi-3's `qkv_proj` = `[q; k; v]` rows and
/// `gate_up_proj` = `[gate; up]`): PEFT names them as LoRA targets of those families.
pub const FUSED_MODULES: [&str; 2] = ["qkv_proj", "gate_up_proj"];
/// Every LoRA target name some family has, in layer order (what a config may name before the
/// model's family is known; [`crate::family::lora_targets`] checks them against the family).
pub const KNOWN_MODULES: [&str; 9] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "qkv_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "gate_up_proj",
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
    /// Projections that get adapters, names from [`KNOWN_MODULES`], in layer order (checked
    /// against the model's family when attached, [`crate::family::lora_targets`]).
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

/// Expands `all-linear` (to the Llama layout's [`LINEAR_MODULES`]; the model's family maps it
/// to its own layers when adapters are attached, [`crate::family::lora_targets`]) and checks the
/// names of `target_modules` against every family's ([`KNOWN_MODULES`]); returns them in layer
/// order.
pub fn resolve_target_modules<S: AsRef<str>>(
    names: &[S],
) -> std::result::Result<Vec<String>, String> {
    let mut wanted = BTreeSet::new();
    for name in names {
        let name = name.as_ref();
        if name == ALL_LINEAR {
            wanted.extend(LINEAR_MODULES);
        } else if let Some(known) = KNOWN_MODULES.iter().find(|m| **m == name) {
            wanted.insert(*known);
        } else {
            return Err(format!(
                "unknown LoRA target module `{name}`; expected `{ALL_LINEAR}` or names among {} \
                 (Phi-3: {})",
                LINEAR_MODULES.join(", "),
                crate::family::phi3::LORA_TARGETS.join(", ")
            ));
        }
    }
    if wanted.is_empty() {
        return Err("no LoRA target module given".into());
    }
    Ok(KNOWN_MODULES
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

    /// The projections to adapt: names from [`KNOWN_MODULES`], or `all-linear`.
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
    /// projection names or `all-linear`; [`crate::DecoderForCausalLM::load_adapter`] then uses the
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
}
