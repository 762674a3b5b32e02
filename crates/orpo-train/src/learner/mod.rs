//! ORPO as a burn-train learner (`burn-train` feature): for burn users who train with
//! burn-train's `SupervisedTraining` and `Learner` (its dashboard, metric loggers, early
//! stopping, checkpointers and multi-device strategies) rather than [`crate::OrpoTrainer`].
//!
//! - [`data`]: orpo-data's tokenized pairs as burn's `InMemDataset<TokenizedPair>`, and
//!   [`OrpoBatcher`], burn's `Batcher` into [`OrpoBatch`] (the micro-batches of one step).
//! - [`step`]: [`OrpoLearnerModel`], a [`CausalLm`](crate::CausalLm) with the ORPO loss as
//!   burn-train's `TrainStep` and `InferenceStep`, with global-norm clipping; its output
//!   [`OrpoOutput`] carries TRL's metrics.
//! - [`optim`]: orpo-train's AdamW as burn's `Optimizer` ([`orpo_adamw`]).
//! - [`schedule`]: the learning-rate schedules as burn's `LrScheduler` ([`OrpoLrScheduler`]).
//! - [`metrics`]: TRL's metric names as burn-train `Metric` + `Numeric` ([`OrpoMetric`]), and
//!   loggers writing them (burn's per-epoch files, the run's `metrics.jsonl`).
//! - [`renderer`]: [`SilentRenderer`], burn-train's renderer off a terminal, where the run's own
//!   lines report progress.
//! - [`run`]: a whole [`OrpoConfig`](crate::OrpoConfig) through burn-train
//!   (`orpo train --learner burn-train`), refusing what burn-train cannot honour.
//!
//! With constant learning rate, no clipping and dataset order, ten steps through burn-train
//! give the losses and weights of ten steps of `OrpoTrainer` (`tests/burn_train_learner.rs`).

pub mod data;
pub mod metrics;
pub mod optim;
pub mod renderer;
pub mod run;
pub mod schedule;
pub mod step;

pub use data::{MicroBatch, OrpoBatch, OrpoBatcher, pair_dataset};
pub use metrics::{
    MetricsJsonlLogger, OrpoMetric, TRAIN_METRICS, TrlNamesFileLogger, VALID_METRICS,
    register_metrics,
};
pub use optim::{OrpoAdamW, orpo_adamw};
pub use renderer::SilentRenderer;
pub use run::{LearnerPlan, LearnerRunOptions, plan, train_with_burn_train};
pub use schedule::OrpoLrScheduler;
pub use step::{OrpoLearnerModel, OrpoOutput};
