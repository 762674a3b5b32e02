//! The preference objective: what a pair's two mean completion log-probs cost, apart from the
//! head machinery that computes them (`crate::logps`, `crate::loss`).
//!
//! An objective is one small function, `(lc, lr) → (per-pair loss, ∂/∂lc, ∂/∂lr, metrics)`,
//! plus the NLL weight and the reward scale it logs with. The chunked loss needs the two
//! derivatives in closed form before it walks the vocabulary (it never keeps the logits), which
//! is why they are part of the contract. [`Orpo`] is the odds-ratio term (TRL's `ORPOTrainer`),
//! [`SimPo`] the length-normalised margin loss (TRL's `CPOTrainer`, `loss_type="simpo"`).

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, sigmoid};

use crate::odds_ratio::{expm1, log1mexp};

/// What an objective gives for `B` pairs; every tensor f32.
#[derive(Debug, Clone)]
pub struct ObjectiveTerms {
    /// `[B]` the per-pair loss `ℓ_i`; a batch contributes `Σ ℓ_i / P` (P = its pairs, or the
    /// accumulated step's).
    pub loss: Tensor<1>,
    /// `[B]` `∂ℓ_i/∂lc_i`.
    pub d_chosen: Tensor<1>,
    /// `[B]` `∂ℓ_i/∂lr_i`.
    pub d_rejected: Tensor<1>,
    /// The objective's own metrics under TRL's names, each a `[1]` mean over the pairs.
    pub metrics: Vec<(&'static str, Tensor<1>)>,
}

/// A reference-free preference objective on per-pair mean log-probs.
///
/// `lc`, `lr` are `[B]` f32: the mean log-prob of each pair's chosen and rejected completion
/// tokens (so `< 0`).
pub trait PreferenceObjective: Sync {
    /// The per-pair terms.
    fn terms(&self, lc: Tensor<1>, lr: Tensor<1>) -> ObjectiveTerms;

    /// The weight `w` of the NLL term in `loss = w · NLL + Σ ℓ_i / P`.
    fn nll_weight(&self) -> f64;

    /// The scale of the logged rewards: `rewards/chosen = mean(scale · lc)`.
    fn reward_scale(&self) -> f64;

    /// Whether `logits/chosen` and `logits/rejected` average every position (TRL's
    /// `CPOTrainer`) rather than all but the last (TRL's `ORPOTrainer`).
    fn logits_metric_includes_last_position(&self) -> bool {
        false
    }
}

/// ORPO's odds-ratio term: `ℓ = −λ · log σ(τ · log_odds)`,
/// `log_odds = (lc − lr) − (log1mexp(lc) − log1mexp(lr))`, with the NLL at weight 1.
/// Metrics `log_odds_ratio = mean(log σ(τ · log_odds))` and `log_odds_chosen = mean(log_odds)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orpo {
    /// λ (TRL's `beta`).
    pub lambda: f64,
    /// τ, the inverse temperature inside the log-sigmoid (1.0 = the paper and TRL).
    pub tau: f64,
}

impl PreferenceObjective for Orpo {
    fn terms(&self, lc: Tensor<1>, lr: Tensor<1>) -> ObjectiveTerms {
        let (lambda, tau) = (self.lambda, self.tau);
        let log_odds = (lc.clone() - lr.clone()) - (log1mexp(lc.clone()) - log1mexp(lr.clone()));
        let ratio = log_sigmoid(log_odds.clone().mul_scalar(tau));
        // ∂ratio/∂log_odds = τ·σ(−τ·log_odds); ∂log_odds/∂lc = −1/expm1(lc).
        let g = sigmoid(log_odds.clone().mul_scalar(-tau)).mul_scalar(lambda * tau);
        ObjectiveTerms {
            loss: ratio.clone().mul_scalar(-lambda),
            d_chosen: g.clone() / expm1(lc),
            d_rejected: -(g / expm1(lr)),
            metrics: vec![
                ("log_odds_ratio", ratio.mean()),
                ("log_odds_chosen", log_odds.mean()),
            ],
        }
    }

    fn nll_weight(&self) -> f64 {
        1.0
    }

    fn reward_scale(&self) -> f64 {
        self.lambda
    }
}

/// SimPO (Meng et al., 2024) as TRL's `CPOTrainer` with `loss_type="simpo"`:
/// `ℓ = −log σ(β · (lc − lr) − γ)` on length-normalised log-probs, no reference model, plus
/// `cpo_alpha` times the NLL of the chosen completion tokens (0 = SimPO itself; TRL's default
/// 1.0 is CPO-SimPO). Rewards are `β · l`; TRL logs `nll_loss` 0 when `cpo_alpha` is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimPo {
    /// β, the reward scale (TRL's `beta`; the SimPO paper uses 2.0–2.5).
    pub beta: f64,
    /// γ, the target margin (TRL's `simpo_gamma`, default 0.5).
    pub gamma: f64,
    /// The NLL weight (TRL's `cpo_alpha`, default 1.0).
    pub cpo_alpha: f64,
}

impl PreferenceObjective for SimPo {
    fn terms(&self, lc: Tensor<1>, lr: Tensor<1>) -> ObjectiveTerms {
        let margin = (lc - lr).mul_scalar(self.beta).sub_scalar(self.gamma);
        // ∂ℓ/∂margin = −σ(−margin); ∂margin/∂lc = β, ∂margin/∂lr = −β.
        let s = sigmoid(margin.clone().neg()).mul_scalar(self.beta);
        ObjectiveTerms {
            loss: log_sigmoid(margin).neg(),
            d_chosen: s.clone().neg(),
            d_rejected: s,
            metrics: Vec::new(),
        }
    }

    fn nll_weight(&self) -> f64 {
        self.cpo_alpha
    }

    fn reward_scale(&self) -> f64 {
        self.beta
    }

    fn logits_metric_includes_last_position(&self) -> bool {
        true
    }
}
