//! The logging window: the updated steps since the last log line, their loss, gradient norm and
//! metrics summed, and the entry written every `logging_steps` (their means, with the learning
//! rate and the fp16 loss scaler's state).

use std::collections::BTreeMap;

use crate::metrics::LogEntry;
use crate::precision::Precision;

/// The sums of the updated steps since the last logged entry.
#[derive(Default)]
pub(super) struct LogWindow {
    sums: BTreeMap<String, f64>,
    steps: usize,
}

impl LogWindow {
    /// Adds an updated step: its loss, gradient norm and metrics. (Skipped steps are not added.)
    pub(super) fn add(&mut self, loss: f64, grad_norm: f64, metrics: BTreeMap<String, f64>) {
        self.steps += 1;
        *self.sums.entry("loss".into()).or_default() += loss;
        *self.sums.entry("grad_norm".into()).or_default() += grad_norm;
        for (k, v) in metrics {
            *self.sums.entry(k).or_default() += v;
        }
    }

    /// Whether no updated step is in the window (a window of skipped steps has nothing to log).
    pub(super) fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// The mean reward accuracy of the window's steps so far (the progress bar's), `None`
    /// for an empty window.
    pub(super) fn accuracy(&self) -> Option<f64> {
        (self.steps > 0)
            .then(|| {
                self.sums
                    .get("rewards/accuracies")
                    .map(|a| a / self.steps as f64)
            })
            .flatten()
    }

    /// The entry of the window at `step` / `epoch` (the means of its steps, `learning_rate`,
    /// and in fp16 `loss_scale` and `loss_scale_skipped_steps`); empties the window.
    pub(super) fn take(
        &mut self,
        step: usize,
        epoch: f64,
        learning_rate: f64,
        precision: &Precision,
    ) -> LogEntry {
        let mut values: BTreeMap<String, f64> = self
            .sums
            .iter()
            .map(|(k, v)| (k.clone(), v / self.steps as f64))
            .collect();
        values.insert("learning_rate".into(), learning_rate);
        if let Some(scaler) = precision.loss_scaler() {
            values.insert("loss_scale".into(), scaler.scale);
            let skipped = scaler.skipped_steps as f64;
            values.insert("loss_scale_skipped_steps".into(), skipped);
        }
        self.sums.clear();
        self.steps = 0;
        LogEntry {
            step,
            epoch,
            values,
        }
    }
}
