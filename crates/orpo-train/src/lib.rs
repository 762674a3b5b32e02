//! The ORPO trainer: TRL's `ORPOTrainer` semantics on burn.
//!
//! - [`OrpoConfig`]: the YAML keys of TRL's `ORPOConfig` / transformers' `TrainingArguments`,
//!   with their defaults; unknown keys and wrong types are errors naming the key.
//! - [`setup`]: a config resolved into training devices, model, tokenizer and train / eval
//!   splits as the `orpo` binary resolves it ([`OrpoTrainer::from_config`]).
//! - [`OrpoTrainer`]: tokenizes a [`PreferenceDataset`](orpo_data::PreferenceDataset), then
//!   trains any [`CausalLm`] with the chunked ORPO loss of `orpo-loss`: gradient accumulation,
//!   global-norm clipping, PyTorch-exact AdamW (no decay on biases and norms), linear / cosine /
//!   constant schedules with warm-up, step-level logging, evaluation, atomic checkpoints and
//!   exact resume.
//! - Outputs in `output_dir`: `metrics.jsonl`, `metrics.csv`, `config.yaml`,
//!   `checkpoint-<step>/`, `plots/` (PNG and SVG), `final/` (Hugging Face layout).
//! - LoRA (`use_peft: true`, [`lora`]): adapters on frozen weights, checkpoints holding the
//!   PEFT adapter, `final/` as an adapter directory and/or the merged model.

pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod device;
pub mod io;
#[cfg(feature = "burn-train")]
pub mod learner;
pub mod lora;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plot;
pub mod precision;
pub mod progress;
pub mod samples;
pub mod schedule;
pub mod setup;
pub mod tensorboard;
pub mod trainer;

pub use config::{
    BatchOrder, ConfigError, LearnerKind, LoraExport, LoraTargetModules, OrpoConfig, SchedulerType,
    TruncationMode,
};
pub use device::training_device;
pub use metrics::{LogEntry, read_metrics};
pub use model::CausalLm;
pub use setup::{Setup, SetupError};
pub use trainer::{
    OrpoStep, OrpoTrainer, TrainSummary, check_tokenizer_fits, evaluate_pairs, loss_config,
    tokenize_config,
};
