//! TRL's metric names as burn-train metrics, and the loggers that write them.
//!
//! - [`OrpoMetric`]: one numeric burn-train metric per TRL name (`loss`, `nll_loss`,
//!   `rewards/chosen`, ...), read from the step's [`OrpoOutput`]; the dashboard and burn's
//!   file logger show them under those names. [`register_metrics`] adds them all.
//! - [`TrlNamesFileLogger`]: burn's `FileMetricLogger`, which writes `<name>.log` per metric and
//!   epoch, with the folders that the `/` of TRL's names (`rewards/chosen.log`) need.
//! - [`MetricsJsonlLogger`]: the run's `metrics.jsonl` in `OrpoTrainer`'s format (means over
//!   `logging_steps` steps; validation as `eval_` names at each epoch's end), and the progress
//!   lines on stderr.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::TensorReadError;
use burn_train::logger::{FileMetricLogger, MetricLogger};
use burn_train::metric::state::{FormatOptions, NumericMetricState};
use burn_train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn_train::metric::{
    Metric, MetricAttributes, MetricDefinition, MetricId, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};
use burn_train::{LearnerModel, SupervisedTraining};

use super::step::OrpoOutput;
use crate::metrics::{LogEntry, MetricsWriter};

/// TRL's training metrics, in the order the dashboard lists them. `grad_norm` and
/// `learning_rate` exist for training steps only.
pub const TRAIN_METRICS: [&str; 14] = [
    "loss",
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
    "grad_norm",
    "learning_rate",
];

/// The metrics of a validation step.
pub const VALID_METRICS: [&str; 12] = [
    "loss",
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
];

/// One of TRL's metrics as a numeric burn-train metric. Its epoch value is the mean over the
/// epoch's steps weighted by their pairs.
#[derive(Clone)]
pub struct OrpoMetric {
    name: MetricName,
    higher_is_better: bool,
    state: NumericMetricState,
}

impl OrpoMetric {
    /// The metric `name`, one of [`TRAIN_METRICS`].
    pub fn new(name: &str) -> Self {
        assert!(
            TRAIN_METRICS.contains(&name),
            "`{name}` is not one of TRL's ORPO metrics ({TRAIN_METRICS:?})"
        );
        let higher_is_better = name.starts_with("rewards/")
            || name.starts_with("logps/chosen")
            || name == "log_odds_ratio"
            || name == "log_odds_chosen";
        Self {
            name: Arc::new(name.to_string()),
            higher_is_better,
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for OrpoMetric {
    type Input = OrpoOutput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: self.higher_is_better,
        }
        .into()
    }

    fn update(
        &mut self,
        item: &OrpoOutput,
        metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let value = match self.name.as_str() {
            // The rate the step was taken with.
            "learning_rate" => metadata.lr.as_ref().map(|lr| lr.base()),
            name => item.value(name),
        };
        let Some(value) = value else {
            return Ok(SerializedEntry::not_available(None));
        };
        self.state.update(value, item.pairs);
        Ok(self
            .state
            .compute_update(FormatOptions::new(self.name()).precision(4)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self
            .state
            .compute_final(FormatOptions::new(self.name()).precision(4)))
    }

    fn clear(&mut self) {
        self.state.reset()
    }
}

impl Numeric for OrpoMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}

/// Registers every metric of [`TRAIN_METRICS`] for training and of [`VALID_METRICS`] for
/// validation, as numeric metrics (shown by the dashboard, logged by the metric loggers).
pub fn register_metrics<L>(mut training: SupervisedTraining<L>) -> SupervisedTraining<L>
where
    L: LearnerModel
        + burn_train::TrainStep<Output = OrpoOutput>
        + burn_train::InferenceStep<Output = OrpoOutput>,
{
    for name in TRAIN_METRICS {
        training = training.metric_train_numeric(OrpoMetric::new(name));
    }
    for name in VALID_METRICS {
        training = training.metric_valid_numeric(OrpoMetric::new(name));
    }
    training
}

/// burn's `FileMetricLogger` (`dir/{train,valid}/epoch-N/<metric>.log`) for metric names with a
/// `/`: it creates `rewards/`, `logps/` and `logits/` in each epoch's folder before burn's
/// logger opens `rewards/chosen.log` there (burn creates only the epoch's folder).
pub struct TrlNamesFileLogger {
    inner: FileMetricLogger,
    directory: PathBuf,
    folders: Vec<String>,
}

impl TrlNamesFileLogger {
    /// Logs into `directory` (the `SupervisedTraining` directory, as burn's default logger).
    pub fn new(directory: impl AsRef<Path>) -> Self {
        let directory = directory.as_ref().to_path_buf();
        Self {
            inner: FileMetricLogger::new(&directory),
            directory,
            folders: Vec::new(),
        }
    }
}

impl MetricLogger for TrlNamesFileLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let epoch_dir = self
            .directory
            .join(split.to_string())
            .join(format!("epoch-{epoch}"));
        for folder in &self.folders {
            let _ = std::fs::create_dir_all(epoch_dir.join(folder));
        }
        self.inner.log(update, epoch, split);
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.inner.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        if let Some((folder, _)) = definition.name.rsplit_once('/') {
            let folder = folder.replace(' ', "_");
            if !self.folders.contains(&folder) {
                self.folders.push(folder);
            }
        }
        self.inner.log_metric_definition(definition);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.inner.log_epoch_summary(summary);
    }
}

/// Writes the run's `metrics.jsonl` / `metrics.csv` as `OrpoTrainer` does: every
/// `logging_steps` training steps (and at the last) one [`LogEntry`] with the means of the
/// window's values; at the end of each epoch's validation one entry with the `eval_` names (the
/// mean over validation batches, as `evaluate_pairs`). With `progress`, also prints
/// `OrpoTrainer`'s progress line for each entry on stderr.
///
/// `learning_rate` is the rate the last step of the window was taken with (`OrpoTrainer` logs
/// the rate of the next step, as transformers does).
pub struct MetricsJsonlLogger {
    writer: MetricsWriter,
    history: Vec<LogEntry>,
    names: HashMap<MetricId, MetricName>,
    logging_steps: usize,
    total_steps: usize,
    steps_per_epoch: usize,
    step: usize,
    window: BTreeMap<String, (f64, usize)>,
    window_steps: usize,
    eval: BTreeMap<String, (f64, usize)>,
    progress: bool,
    started: Instant,
}

impl MetricsJsonlLogger {
    /// Writes into `output_dir` (replacing its `metrics.jsonl`); a run of `total_steps` steps
    /// of which `steps_per_epoch` make an epoch.
    pub fn create(
        output_dir: &Path,
        logging_steps: usize,
        total_steps: usize,
        steps_per_epoch: usize,
        progress: bool,
    ) -> std::io::Result<Self> {
        Ok(Self {
            writer: MetricsWriter::create(output_dir, &[])?,
            history: Vec::new(),
            names: HashMap::new(),
            logging_steps: logging_steps.max(1),
            total_steps,
            steps_per_epoch: steps_per_epoch.max(1),
            step: 0,
            window: BTreeMap::new(),
            window_steps: 0,
            eval: BTreeMap::new(),
            progress,
            started: Instant::now(),
        })
    }

    fn values(&self, update: &MetricsUpdate) -> Vec<(String, f64)> {
        update
            .entries_numeric
            .iter()
            .filter_map(|u| {
                let name = self.names.get(&u.entry.metric_id)?;
                let value = u.numeric_entry.as_ref()?.current();
                Some((name.to_string(), value))
            })
            .collect()
    }

    fn append(&mut self, entry: LogEntry) {
        if let Err(e) = self
            .writer
            .append(&entry)
            .and_then(|()| self.writer.write_csv(&self.history))
        {
            tracing::error!("writing metrics.jsonl: {e}");
        }
        self.history.push(entry);
    }
}

impl MetricLogger for MetricsJsonlLogger {
    fn log(&mut self, update: MetricsUpdate, _epoch: usize, split: &Split) {
        // burn-train also logs each split's epoch values at its end (`NumericEntry::Final`);
        // the steps' own values are the ones to average here.
        let epoch_end = update
            .entries_numeric
            .iter()
            .any(|u| matches!(u.numeric_entry, Some(NumericEntry::Final(_))));
        if epoch_end {
            return;
        }
        let values = self.values(&update);
        match split {
            Split::Train => {
                self.step += 1;
                self.window_steps += 1;
                for (name, value) in values {
                    let slot = self.window.entry(name).or_default();
                    slot.0 += value;
                    slot.1 += 1;
                }
                let step = self.step;
                if step.is_multiple_of(self.logging_steps) || step == self.total_steps {
                    let values: BTreeMap<String, f64> = std::mem::take(&mut self.window)
                        .into_iter()
                        .map(|(k, (sum, n))| (k, sum / n as f64))
                        .collect();
                    self.window_steps = 0;
                    let entry = LogEntry {
                        step,
                        epoch: step as f64 / self.steps_per_epoch as f64,
                        values,
                    };
                    if self.progress {
                        let get = |k: &str| entry.values.get(k).copied().unwrap_or(f64::NAN);
                        let per_step = self.started.elapsed().as_secs_f64() / step as f64;
                        tracing::info!(
                            "step {step}/{} | epoch {:.2} | loss {:.4} | nll {:.4} | acc {:.3} | lr {:.2e} | {per_step:.2} s/step",
                            self.total_steps,
                            entry.epoch,
                            get("loss"),
                            get("nll_loss"),
                            get("rewards/accuracies"),
                            get("learning_rate"),
                        );
                    }
                    self.append(entry);
                }
            }
            Split::Valid => {
                for (name, value) in values {
                    let slot = self.eval.entry(format!("eval_{name}")).or_default();
                    slot.0 += value;
                    slot.1 += 1;
                }
            }
            Split::Test(_) => {}
        }
    }

    fn read_numeric(
        &mut self,
        _name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        // burn-train reads past values from the file logger registered before this one.
        Err("metrics.jsonl is write-only".into())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        if !matches!(summary.split, Split::Valid) || self.eval.is_empty() {
            return;
        }
        let values: BTreeMap<String, f64> = std::mem::take(&mut self.eval)
            .into_iter()
            .map(|(k, (sum, n))| (k, sum / n as f64))
            .collect();
        if self.progress {
            let get = |k: &str| values.get(k).copied().unwrap_or(f64::NAN);
            tracing::info!(
                "eval @ step {} | eval_loss {:.4} | eval_rewards/accuracies {:.3} | eval_logps chosen {:.3} rejected {:.3}",
                self.step,
                get("eval_loss"),
                get("eval_rewards/accuracies"),
                get("eval_logps/chosen"),
                get("eval_logps/rejected"),
            );
        }
        let entry = LogEntry {
            step: self.step,
            epoch: self.step as f64 / self.steps_per_epoch as f64,
            values,
        };
        self.append(entry);
    }
}
