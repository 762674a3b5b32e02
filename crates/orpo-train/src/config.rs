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
        if self.max_prompt_length >= self.max_length {
            return Err(bad(format!(
                "key `max_prompt_length` ({}) must be smaller than `max_length` ({})",
                self.max_prompt_length, self.max_length
            )));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(bad("key `learning_rate` must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(bad("key `warmup_ratio` must be in [0, 1)".into()));
        }
        Ok(())
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
