//! ORPO metrics under TRL's names (`rewards/chosen`, `nll_loss`, …).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// TRL's metric names, in the order of [`OrpoMetrics::to_named`]. Eval metrics get the `eval_`
/// prefix in the caller.
pub const METRIC_NAMES: [&str; 11] = [
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
];

/// The metrics of one batch under TRL's names, as detached `[1]` tensors still on the device:
/// what [`crate::preference_loss`] returns for any objective. Reading them forces a device sync,
/// so the caller decides when ([`MetricTensors::to_named`]).
#[derive(Debug, Clone, Default)]
pub struct MetricTensors(pub Vec<(&'static str, Tensor<1>)>);

impl MetricTensors {
    /// The tensor of a metric by name.
    pub fn get(&self, name: &str) -> Option<&Tensor<1>> {
        self.0.iter().find_map(|(n, t)| (*n == name).then_some(t))
    }

    /// `(name, value)` pairs, read in one transfer (cast to f32 first: under bf16 some metrics
    /// are bf16 and some f32, and `cat` needs one dtype).
    ///
    /// # Panics
    /// If the device cannot be read.
    pub fn to_named(&self) -> Vec<(&'static str, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let parts = self
            .0
            .iter()
            .map(|(_, t)| t.clone().cast(burn::tensor::FloatDType::F32))
            .collect();
        let values = Tensor::cat(parts, 0)
            .try_into_vec_as::<f64>()
            .unwrap_or_else(|e| panic!("orpo-loss: cannot read metrics: {e:?}"));
        self.0.iter().map(|(n, _)| *n).zip(values).collect()
    }
}

/// ORPO's metrics of one batch as detached `[1]` f32 tensors, still on the device: reading them
/// forces a device sync, so the trainer decides when ([`OrpoMetricTensors::to_metrics`]).
#[derive(Debug, Clone)]
pub struct OrpoMetricTensors {
    /// `mean(λ·lc)`.
    pub rewards_chosen: Tensor<1>,
    /// `mean(λ·lr)`.
    pub rewards_rejected: Tensor<1>,
    /// `mean(λ·lc > λ·lr)` (0 for every pair when λ = 0, as TRL).
    pub rewards_accuracies: Tensor<1>,
    /// `mean(λ·lc − λ·lr)`.
    pub rewards_margins: Tensor<1>,
    /// `mean(lc)`.
    pub logps_chosen: Tensor<1>,
    /// `mean(lr)`.
    pub logps_rejected: Tensor<1>,
    /// Mean raw logit of the chosen rows over positions `0..T−1` (pads included) and the vocabulary.
    pub logits_chosen: Tensor<1>,
    /// Same for the rejected rows.
    pub logits_rejected: Tensor<1>,
    /// The NLL term.
    pub nll_loss: Tensor<1>,
    /// `mean(log σ(τ·log_odds))`.
    pub log_odds_ratio: Tensor<1>,
    /// `mean(log_odds)`.
    pub log_odds_chosen: Tensor<1>,
}

impl OrpoMetricTensors {
    /// The ORPO metrics out of a named list ([`MetricTensors`] of the [`crate::Orpo`]
    /// objective).
    ///
    /// # Panics
    /// If a name of [`METRIC_NAMES`] is missing.
    pub fn from_named(metrics: &MetricTensors) -> Self {
        let get = |name: &str| {
            metrics
                .get(name)
                .unwrap_or_else(|| panic!("orpo-loss: no `{name}` metric"))
                .clone()
        };
        Self {
            rewards_chosen: get("rewards/chosen"),
            rewards_rejected: get("rewards/rejected"),
            rewards_accuracies: get("rewards/accuracies"),
            rewards_margins: get("rewards/margins"),
            logps_chosen: get("logps/chosen"),
            logps_rejected: get("logps/rejected"),
            logits_chosen: get("logits/chosen"),
            logits_rejected: get("logits/rejected"),
            nll_loss: get("nll_loss"),
            log_odds_ratio: get("log_odds_ratio"),
            log_odds_chosen: get("log_odds_chosen"),
        }
    }

    /// The tensors in [`METRIC_NAMES`] order.
    pub fn to_vec(&self) -> Vec<Tensor<1>> {
        vec![
            self.rewards_chosen.clone(),
            self.rewards_rejected.clone(),
            self.rewards_accuracies.clone(),
            self.rewards_margins.clone(),
            self.logps_chosen.clone(),
            self.logps_rejected.clone(),
            self.logits_chosen.clone(),
            self.logits_rejected.clone(),
            self.nll_loss.clone(),
            self.log_odds_ratio.clone(),
            self.log_odds_chosen.clone(),
        ]
    }

    /// Reads all metrics to the host in one transfer (cast to f32 first: under bf16 training
    /// some are bf16 and some f32, and `cat` needs one dtype).
    ///
    /// # Panics
    /// If the device cannot be read.
    pub fn to_metrics(&self) -> OrpoMetrics {
        let parts = self
            .to_vec()
            .into_iter()
            .map(|t| t.cast(burn::tensor::FloatDType::F32))
            .collect();
        let values = Tensor::cat(parts, 0)
            .try_into_vec_as::<f64>()
            .unwrap_or_else(|e| panic!("orpo-loss: cannot read metrics: {e:?}"));
        OrpoMetrics::from_slice(&values)
    }
}

/// The metrics of one batch on the host, serialised with TRL's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OrpoMetrics {
    /// `rewards/chosen` = mean(λ·lc).
    #[serde(rename = "rewards/chosen")]
    pub rewards_chosen: f64,
    /// `rewards/rejected` = mean(λ·lr).
    #[serde(rename = "rewards/rejected")]
    pub rewards_rejected: f64,
    /// `rewards/accuracies` = mean(λ·lc > λ·lr).
    #[serde(rename = "rewards/accuracies")]
    pub rewards_accuracies: f64,
    /// `rewards/margins` = mean(λ·(lc − lr)).
    #[serde(rename = "rewards/margins")]
    pub rewards_margins: f64,
    /// `logps/chosen` = mean(lc).
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: f64,
    /// `logps/rejected` = mean(lr).
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: f64,
    /// `logits/chosen`: mean raw logit of the chosen half.
    #[serde(rename = "logits/chosen")]
    pub logits_chosen: f64,
    /// `logits/rejected`: mean raw logit of the rejected half.
    #[serde(rename = "logits/rejected")]
    pub logits_rejected: f64,
    /// `nll_loss`: the NLL term.
    pub nll_loss: f64,
    /// `log_odds_ratio` = mean(log σ(τ·log_odds)).
    pub log_odds_ratio: f64,
    /// `log_odds_chosen` = mean(log_odds).
    pub log_odds_chosen: f64,
}

impl OrpoMetrics {
    /// Builds from 11 values in [`METRIC_NAMES`] order.
    ///
    /// # Panics
    /// If `values.len() != 11`.
    pub fn from_slice(values: &[f64]) -> Self {
        assert_eq!(
            values.len(),
            METRIC_NAMES.len(),
            "expected 11 metric values"
        );
        Self {
            rewards_chosen: values[0],
            rewards_rejected: values[1],
            rewards_accuracies: values[2],
            rewards_margins: values[3],
            logps_chosen: values[4],
            logps_rejected: values[5],
            logits_chosen: values[6],
            logits_rejected: values[7],
            nll_loss: values[8],
            log_odds_ratio: values[9],
            log_odds_chosen: values[10],
        }
    }

    /// `(TRL name, value)` pairs in [`METRIC_NAMES`] order; add `eval_` in the caller.
    pub fn to_named(&self) -> Vec<(&'static str, f64)> {
        let v = [
            self.rewards_chosen,
            self.rewards_rejected,
            self.rewards_accuracies,
            self.rewards_margins,
            self.logps_chosen,
            self.logps_rejected,
            self.logits_chosen,
            self.logits_rejected,
            self.nll_loss,
            self.log_odds_ratio,
            self.log_odds_chosen,
        ];
        METRIC_NAMES.iter().copied().zip(v).collect()
    }

    /// The value of a metric by its TRL name (without prefix).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.to_named()
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }
}
