//! The training configuration: the keys of TRL's `ORPOConfig`, transformers'
//! `TrainingArguments` and TRL's script arguments, with their defaults.
//!
//! Read from YAML ([`OrpoConfig::from_yaml_file`]); unknown keys and wrong types are errors that
//! name the key; `KEY=VALUE` overrides ([`OrpoConfig::apply_overrides`]) replace any key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A configuration problem, always naming the file and key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key is unknown, has the wrong type, or the YAML is malformed.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file, or `--set` for overrides.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// How the training set is ordered each epoch (transformers' `train_sampling_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SamplingStrategy {
    /// Shuffled with `seed` (and the epoch), as the Hugging Face Trainer does.
    #[default]
    Random,
    /// Dataset order.
    Sequential,
}

/// Learning-rate schedule after warm-up (transformers' `lr_scheduler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    /// Linear decay to 0 at the last step.
    #[default]
    Linear,
    /// Half a cosine from the peak to 0.
    Cosine,
    /// Constant (warm-up still applies when set).
    Constant,
    /// Constant after the warm-up (transformers' name for the same with warm-up).
    ConstantWithWarmup,
}

/// Which end of an over-long prompt is kept (TRL's `truncation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TruncationMode {
    /// Keep the end of the prompt (closest to the completion).
    #[default]
    KeepEnd,
    /// Keep the start of the prompt.
    KeepStart,
}

/// Every key of a training run. `Default` gives TRL's defaults (ORPOConfig v0.25 overrides
/// `learning_rate` to 1e-6 and `logging_steps` to 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrpoConfig {
    // ---- model and data
    /// A local model directory or a Hugging Face Hub id (resolved with `hf-hub` when online).
    pub model_name_or_path: Option<String>,
    /// A `config.json` to initialise a fresh model from, instead of pretrained weights.
    pub model_config: Option<String>,
    /// Tokenizer directory; defaults to `model_name_or_path`.
    pub tokenizer_name_or_path: Option<String>,
    /// A dataset path (Parquet file or folder, Hugging Face layout, JSONL) or Hub id.
    pub dataset: Option<String>,
    /// Training split name.
    pub dataset_train_split: String,
    /// Evaluation split name.
    pub dataset_test_split: String,
    /// Column holding the prompt (absent: implicit prompt).
    pub prompt_column: String,
    /// Column holding the preferred completion.
    pub chosen_column: String,
    /// Column holding the rejected completion.
    pub rejected_column: String,
    /// Skip and count bad rows instead of stopping with an error.
    pub skip_bad_rows: bool,
    /// Where checkpoints, metrics, plots and the final model go.
    pub output_dir: String,
    /// Continue into an `output_dir` that already holds a run without resuming (overwrites).
    pub overwrite_output_dir: bool,
    /// Seed of initialisation, shuffling and sampling.
    pub seed: u64,
    /// `random` (default) or `sequential`.
    pub train_sampling_strategy: SamplingStrategy,

    // ---- optimisation
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Pairs per micro-batch (each pair is two sequences).
    pub per_device_train_batch_size: usize,
    /// Pairs per evaluation batch.
    pub per_device_eval_batch_size: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Epochs (fractional allowed) when `max_steps` is not positive.
    pub num_train_epochs: f64,
    /// Total optimizer steps; overrides `num_train_epochs` when > 0.
    pub max_steps: i64,
    /// Warm-up as a fraction of the total steps.
    pub warmup_ratio: f64,
    /// Warm-up steps; wins over `warmup_ratio` when > 0.
    pub warmup_steps: usize,
    /// `linear`, `cosine`, `constant`, `constant_with_warmup`.
    pub lr_scheduler_type: SchedulerType,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
    /// AdamW β1.
    pub adam_beta1: f64,
    /// AdamW β2.
    pub adam_beta2: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// Clip the global gradient norm to this (0 disables), as `clip_grad_norm_`.
    pub max_grad_norm: f64,
    /// What a non-finite (NaN or infinite) loss or gradient norm does. `false` (default): stop
    /// the run with an error naming the step, before the update (the last checkpoint is left as
    /// it was). `true`: skip that step's update (weights and optimizer moments unchanged, its
    /// micro-batches consumed, the step counted), print a warning naming the step, go on.
    pub skip_nonfinite_steps: bool,

    // ---- precision and memory (see `orpo_train::training_device`)
    /// Recompute memory-bound activations during the backward pass instead of keeping them
    /// (transformers' name). burn's checkpointing is op-level (`Balanced`): outputs of matmuls
    /// are still kept, so it saves less than PyTorch's per-layer recomputation.
    pub gradient_checkpointing: bool,
    /// Train in bfloat16. burn has no automatic mixed precision: weights, gradients and the
    /// AdamW moments are all bf16 (the loss's sums and the metrics are read in f32/f64).
    pub bf16: bool,
    /// Train in float16, with the same caveat as `bf16` (and f16's narrower range).
    pub fp16: bool,

    // ---- ORPO and tokenization
    /// λ, the weight of the odds-ratio term (TRL's `beta`).
    pub beta: f64,
    /// axolotl's name for λ; giving it and a different `beta` is an error.
    pub orpo_alpha: Option<f64>,
    /// τ, an inverse temperature on the log odds (1.0 = the paper and TRL).
    pub orpo_beta: f64,
    /// Mask the prompt out of the NLL term (TRL includes it).
    pub nll_on_completion_only: bool,
    /// Longest prompt + completion in tokens.
    pub max_length: usize,
    /// Longest prompt once a pair has to be truncated.
    pub max_prompt_length: usize,
    /// Longest completion, when set.
    pub max_completion_length: Option<usize>,
    /// `keep_end` (default) or `keep_start`.
    pub truncation_mode: TruncationMode,
    /// Positions per chunk of the output head in the loss (memory vs speed).
    pub logits_chunk_size: usize,

    // ---- cadence
    /// Log metrics every this many optimizer steps.
    pub logging_steps: usize,
    /// Evaluate every this many steps (when a test split exists); unset: at the end only.
    pub eval_steps: Option<usize>,
    /// Write a checkpoint every this many steps (0: never, but at the end).
    pub save_steps: usize,
    /// Keep at most this many checkpoints (oldest deleted first).
    pub save_total_limit: Option<usize>,
    /// Largest number of evaluation pairs used (all when unset).
    pub max_eval_samples: Option<usize>,

    // ---- LoRA (TRL's `ModelConfig` / PEFT's `LoraConfig` names and defaults)
    /// Train LoRA adapters on frozen base weights instead of every weight (TRL's `use_peft`).
    pub use_peft: bool,
    /// LoRA rank `r`.
    pub lora_r: usize,
    /// LoRA `alpha`: the adapters' update is scaled by `lora_alpha / lora_r`.
    pub lora_alpha: f64,
    /// Dropout on the adapters' input while training.
    pub lora_dropout: f64,
    /// Projections that get adapters: a list of names among `q_proj`, `k_proj`, `v_proj`,
    /// `o_proj`, `gate_proj`, `up_proj`, `down_proj`, or `all-linear`. Unset: `q_proj` and
    /// `v_proj` (PEFT's default for Llama, Mistral and Qwen2, which TRL keeps).
    pub lora_target_modules: Option<LoraTargetModules>,
    /// Rank-stabilised LoRA: scale by `lora_alpha / √lora_r` (PEFT's `use_rslora`).
    pub use_rslora: bool,
    /// What a LoRA run writes to `final/`: `adapter` (default: a PEFT adapter directory, what
    /// TRL saves), `merged` (the base with the adapters merged in, a plain Hugging Face model),
    /// or `both` (the adapter in `final/`, the merged model in `final-merged/`).
    pub lora_export: LoraExport,
}

/// `lora_target_modules`: one name (`all-linear`, `q_proj`) or a list of names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LoraTargetModules {
    /// A single name, or `all-linear`.
    One(String),
    /// Several projection names.
    List(Vec<String>),
}

impl LoraTargetModules {
    /// The names as given.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::One(name) => vec![name.clone()],
            Self::List(names) => names.clone(),
        }
    }
}

/// What the final directory of a LoRA run holds (`lora_export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoraExport {
    /// A PEFT adapter directory (`adapter_config.json`, `adapter_model.safetensors`).
    #[default]
    Adapter,
    /// The merged model, as a Hugging Face model directory.
    Merged,
    /// The adapter in `final/` and the merged model in `final-merged/`.
    Both,
}

impl Default for OrpoConfig {
    fn default() -> Self {
        Self {
            model_name_or_path: None,
            model_config: None,
            tokenizer_name_or_path: None,
            dataset: None,
            dataset_train_split: "train".into(),
            dataset_test_split: "test".into(),
            prompt_column: "prompt".into(),
            chosen_column: "chosen".into(),
            rejected_column: "rejected".into(),
            skip_bad_rows: false,
            output_dir: "trainer_output".into(),
            overwrite_output_dir: false,
            seed: 42,
            train_sampling_strategy: SamplingStrategy::Random,
            learning_rate: 1e-6,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            gradient_accumulation_steps: 1,
            num_train_epochs: 3.0,
            max_steps: -1,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            lr_scheduler_type: SchedulerType::Linear,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            skip_nonfinite_steps: false,
            gradient_checkpointing: false,
            bf16: false,
            fp16: false,
            beta: 0.1,
            orpo_alpha: None,
            orpo_beta: 1.0,
            nll_on_completion_only: false,
            max_length: 1024,
            max_prompt_length: 512,
            max_completion_length: None,
            truncation_mode: TruncationMode::KeepEnd,
            logits_chunk_size: 512,
            logging_steps: 10,
            eval_steps: None,
            save_steps: 500,
            save_total_limit: None,
            max_eval_samples: None,
            use_peft: false,
            lora_r: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.05,
            lora_target_modules: None,
            use_rslora: false,
            lora_export: LoraExport::Adapter,
        }
    }
}

impl OrpoConfig {
    /// Reads a YAML file; unknown keys and wrong types are errors naming the key.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses YAML text; `origin` labels errors (a file name).
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let value: serde_yaml::Value = if text.trim().is_empty() {
            serde_yaml::Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid {
                origin: origin.into(),
                message: e.to_string(),
            })?
        };
        Self::from_yaml_value(value, origin)
    }

    fn from_yaml_value(value: serde_yaml::Value, origin: &str) -> Result<Self, ConfigError> {
        if let Some(map) = value.as_mapping() {
            let number = |key: &str| map.get(key).and_then(serde_yaml::Value::as_f64);
            if let (Some(beta), Some(alpha)) = (number("beta"), number("orpo_alpha"))
                && (beta - alpha).abs() > f64::EPSILON
            {
                return Err(ConfigError::Invalid {
                    origin: origin.into(),
                    message: format!(
                        "key `orpo_alpha` ({alpha}) and key `beta` ({beta}) both set λ with \
                         different values; give one"
                    ),
                });
            }
        }
        let mut config: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            ConfigError::Invalid {
                origin: origin.into(),
                message: if key == "." {
                    message
                } else {
                    format!("key `{key}`: {message}")
                },
            }
        })?;
        if let Some(alpha) = config.orpo_alpha {
            config.beta = alpha;
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Applies `KEY=VALUE` overrides (VALUE parsed as YAML, so `0.5`, `true`, `null` work).
    pub fn apply_overrides(&self, overrides: &[String]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut value = serde_yaml::to_value(self).expect("config serialises");
        let map = value.as_mapping_mut().expect("config is a mapping");
        for item in overrides {
            let (key, raw) = item.split_once('=').ok_or_else(|| ConfigError::Invalid {
                origin: "--set".into(),
                message: format!("`{item}` is not KEY=VALUE"),
            })?;
            let parsed: serde_yaml::Value =
                serde_yaml::from_str(raw).unwrap_or_else(|_| serde_yaml::Value::String(raw.into()));
            map.insert(serde_yaml::Value::String(key.trim().into()), parsed);
        }
        Self::from_yaml_value(value, "--set")
    }

    /// λ as resolved from `beta` and `orpo_alpha`.
    pub fn lambda(&self) -> f64 {
        self.orpo_alpha.unwrap_or(self.beta)
    }

    /// Checks values that serde alone cannot.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            origin: origin.into(),
            message,
        };
        for (key, value) in [
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
            ),
            (
                "per_device_eval_batch_size",
                self.per_device_eval_batch_size,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("max_length", self.max_length),
            ("logits_chunk_size", self.logits_chunk_size),
            ("logging_steps", self.logging_steps),
        ] {
            if value == 0 {
                return Err(bad(format!("key `{key}` must be positive")));
            }
        }
        if self.bf16 && self.fp16 {
            return Err(bad(
                "keys `bf16` and `fp16` are both true: choose one".into()
            ));
        }
        if self.max_prompt_length >= self.max_length {
            return Err(bad(format!(
                "key `max_prompt_length` ({}) must be smaller than `max_length` ({})",
                self.max_prompt_length, self.max_length
            )));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(bad("key `learning_rate` must be positive".into()));
        }
        // NaN and infinities parse as YAML floats (`.nan`, `.inf`); none is a usable setting.
        for (key, value) in [
            ("learning_rate", self.learning_rate),
            ("num_train_epochs", self.num_train_epochs),
            ("weight_decay", self.weight_decay),
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
            ("adam_epsilon", self.adam_epsilon),
            ("max_grad_norm", self.max_grad_norm),
            ("orpo_alpha", self.orpo_alpha.unwrap_or(0.0)),
            ("beta", self.beta),
            ("orpo_beta", self.orpo_beta),
        ] {
            if !value.is_finite() {
                return Err(bad(format!(
                    "key `{key}` must be a finite number, not {value}"
                )));
            }
        }
        for (key, value) in [
            ("num_train_epochs", self.num_train_epochs),
            ("weight_decay", self.weight_decay),
            ("adam_epsilon", self.adam_epsilon),
            ("max_grad_norm", self.max_grad_norm),
        ] {
            if value < 0.0 {
                return Err(bad(format!("key `{key}` must not be negative")));
            }
        }
        for (key, value) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(bad(format!("key `{key}` must be in [0, 1)")));
            }
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(bad("key `warmup_ratio` must be in [0, 1)".into()));
        }
        if self.lora_r == 0 {
            return Err(bad("key `lora_r` must be positive".into()));
        }
        if !self.lora_alpha.is_finite() || self.lora_alpha <= 0.0 {
            return Err(bad("key `lora_alpha` must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(bad("key `lora_dropout` must be in [0, 1)".into()));
        }
        if let Some(targets) = &self.lora_target_modules {
            orpo_model::lora::resolve_target_modules(&targets.names())
                .map_err(|e| bad(format!("key `lora_target_modules`: {e}")))?;
        }
        Ok(())
    }

    /// The LoRA settings of a `use_peft: true` run (`None` otherwise).
    pub fn lora_config(&self) -> Option<orpo_model::LoraConfig> {
        if !self.use_peft {
            return None;
        }
        let mut lora = orpo_model::LoraConfig {
            r: self.lora_r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            use_rslora: self.use_rslora,
            base_model_name_or_path: self.model_name_or_path.clone(),
            ..Default::default()
        };
        if let Some(targets) = &self.lora_target_modules {
            lora.target_modules = orpo_model::lora::resolve_target_modules(&targets.names())
                .expect("checked by validate");
        }
        Some(lora)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_trls() {
        let c = OrpoConfig::default();
        assert_eq!(
            (c.beta, c.learning_rate, c.max_length, c.max_prompt_length),
            (0.1, 1e-6, 1024, 512)
        );
        assert_eq!(
            (c.adam_epsilon, c.max_grad_norm, c.orpo_beta),
            (1e-8, 1.0, 1.0)
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = OrpoConfig::from_yaml_str("learning_rat: 1e-5\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yaml") && err.contains("learning_rat"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let err = OrpoConfig::from_yaml_str("beta: 0.2\nlearning_rate: fast\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("learning_rate"), "{err}");
    }

    #[test]
    fn overrides_replace_keys_and_are_checked() {
        let c = OrpoConfig::from_yaml_str("beta: 0.2\n", "c.yaml").unwrap();
        let c = c
            .apply_overrides(&["learning_rate=0.001".into(), "output_dir=/tmp/x".into()])
            .unwrap();
        assert_eq!(
            (c.learning_rate, c.output_dir.as_str(), c.beta),
            (1e-3, "/tmp/x", 0.2)
        );
        let err = c
            .apply_overrides(&["nope=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = c
            .apply_overrides(&["max_steps=many".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_steps"), "{err}");
    }

    #[test]
    fn non_finite_and_out_of_range_numbers_are_named() {
        for (yaml, key) in [
            ("beta: .nan\n", "beta"),
            ("learning_rate: .inf\n", "learning_rate"),
            ("num_train_epochs: .inf\n", "num_train_epochs"),
            ("max_grad_norm: -.inf\n", "max_grad_norm"),
            ("orpo_beta: .NaN\n", "orpo_beta"),
            ("orpo_alpha: .nan\n", "orpo_alpha"),
            ("adam_epsilon: 1e400\n", "adam_epsilon"),
            ("weight_decay: -0.1\n", "weight_decay"),
            ("adam_beta2: 1.0\n", "adam_beta2"),
        ] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{yaml}: {err}");
        }
        let err = OrpoConfig::default()
            .apply_overrides(&["beta=.nan".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`beta`") && err.contains("finite"), "{err}");
    }

    #[test]
    fn orpo_alpha_sets_lambda_and_conflicts_with_beta() {
        let c = OrpoConfig::from_yaml_str("orpo_alpha: 0.5\n", "c.yaml").unwrap();
        assert_eq!(c.lambda(), 0.5);
        // Overriding an unrelated key keeps λ; overriding beta to another value conflicts.
        assert_eq!(c.apply_overrides(&["seed=1".into()]).unwrap().lambda(), 0.5);
        assert!(c.apply_overrides(&["beta=0.3".into()]).is_err());
        let c = OrpoConfig::from_yaml_str("orpo_alpha: 0.5\nbeta: 0.5\n", "c.yaml").unwrap();
        assert_eq!(c.lambda(), 0.5);
        let err = OrpoConfig::from_yaml_str("orpo_alpha: 0.5\nbeta: 0.2\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("orpo_alpha") && err.contains("beta"), "{err}");
    }

    #[test]
    fn lora_keys_parse_and_are_checked() {
        let c = OrpoConfig::from_yaml_str(
            "use_peft: true\nlora_r: 8\nlora_alpha: 16\nlora_target_modules: all-linear\n",
            "c.yaml",
        )
        .unwrap();
        let lora = c.lora_config().unwrap();
        assert_eq!((lora.r, lora.alpha, lora.dropout), (8, 16.0, 0.05));
        assert_eq!(lora.target_modules.len(), 7);
        assert_eq!(c.lora_export, LoraExport::Adapter);
        let c = OrpoConfig::from_yaml_str(
            "use_peft: true\nlora_target_modules: [v_proj, q_proj, down_proj]\nlora_export: both\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(
            c.lora_config().unwrap().target_modules,
            ["q_proj", "v_proj", "down_proj"]
        );
        assert_eq!(c.lora_export, LoraExport::Both);
        // Defaults: TRL's ModelConfig (q_proj, v_proj), and no LoRA without use_peft.
        let c = OrpoConfig::from_yaml_str("use_peft: true\n", "c.yaml").unwrap();
        assert_eq!(
            c.lora_config().unwrap().target_modules,
            ["q_proj", "v_proj"]
        );
        assert_eq!(OrpoConfig::default().lora_config(), None);
        for (yaml, key) in [
            (
                "lora_target_modules: [q_proj, lm_head]\n",
                "lora_target_modules",
            ),
            ("lora_r: 0\n", "lora_r"),
            ("lora_dropout: 1.5\n", "lora_dropout"),
            ("lora_export: zip\n", "lora_export"),
        ] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
        let with_targets = OrpoConfig {
            use_peft: true,
            lora_target_modules: Some(LoraTargetModules::List(vec!["o_proj".into()])),
            ..Default::default()
        };
        let text = serde_yaml::to_string(&with_targets).unwrap();
        assert_eq!(OrpoConfig::from_yaml_str(&text, "x").unwrap(), with_targets);
    }

    #[test]
    fn round_trips_through_yaml() {
        let c = OrpoConfig {
            seed: 7,
            eval_steps: Some(5),
            ..Default::default()
        };
        let text = serde_yaml::to_string(&c).unwrap();
        assert_eq!(OrpoConfig::from_yaml_str(&text, "x").unwrap(), c);
    }
}
