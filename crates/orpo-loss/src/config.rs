//! [`OrpoLossConfig`]: the knobs of the loss (objective, λ/β, τ, NLL span, chunk size).

use serde::{Deserialize, Serialize};

use crate::objective::{Orpo, PreferenceObjective, SimPo};

/// Which preference objective the loss optimises (TRL: the trainer, or CPO's `loss_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// ORPO's odds ratio ([`Orpo`]): `beta` is λ, `orpo_beta` τ.
    #[default]
    Orpo,
    /// SimPO ([`SimPo`], TRL's `CPOTrainer` with `loss_type="simpo"`): `beta` is β,
    /// `simpo_gamma` γ, `cpo_alpha` the NLL weight.
    Simpo,
}

/// λ, τ, the NLL span and the log-prob chunk size.
///
/// `Default` reproduces TRL's `ORPOTrainer` (v0.25): `beta = 0.1`, `orpo_beta = 1.0`, NLL over
/// prompt and completion tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrpoLossConfig {
    /// The objective (default ORPO).
    pub loss_type: LossType,
    /// λ, the weight of the odds-ratio term (TRL's `beta`, axolotl's `orpo_alpha`; default 0.1).
    /// `0.0` turns the loss into plain SFT on the chosen responses.
    pub beta: f64,
    /// τ, an inverse temperature inside the log-sigmoid: `ratio = log σ(τ · log_odds)`.
    /// ORPO itself has none; the default 1.0 reproduces the paper and TRL.
    pub orpo_beta: f64,
    /// `false` (TRL, the paper's code): the NLL covers prompt and completion tokens of the chosen
    /// rows, masked only by the attention mask. `true`: the NLL covers the completion tokens only
    /// (what LLaMA-Factory-style trainers do).
    pub nll_on_completion_only: bool,
    /// Token positions per log-prob chunk: the largest temporary is a `[chunk_size, vocab]` f32
    /// block (one to three of them live at once), so peak memory grows linearly with this value.
    /// Default 512 (≈ 100 MB per `[512, 49 152]` block).
    pub chunk_size: usize,
    /// SimPO's target margin γ (TRL's `simpo_gamma`, default 0.5); SimPO only.
    pub simpo_gamma: f64,
    /// SimPO's NLL weight (TRL's `cpo_alpha`, default 1.0; 0 = SimPO without NLL); SimPO only.
    pub cpo_alpha: f64,
    /// The model's final logit soft-cap `c` (Gemma 2's `final_logit_softcapping`): the head's
    /// logits are `c · tanh((h W + b) / c)` before the softmax and in the logit metrics. A
    /// property of the model, not a training setting: the trainer copies it from the model
    /// description, and no config file sets it. `None` (default): raw logits.
    #[serde(skip)]
    pub logit_softcap: Option<f64>,
}

impl Default for OrpoLossConfig {
    fn default() -> Self {
        Self {
            loss_type: LossType::Orpo,
            beta: 0.1,
            orpo_beta: 1.0,
            nll_on_completion_only: false,
            chunk_size: 512,
            simpo_gamma: 0.5,
            cpo_alpha: 1.0,
            logit_softcap: None,
        }
    }
}

impl OrpoLossConfig {
    /// The default configuration with λ = `beta`.
    pub fn new(beta: f64) -> Self {
        Self {
            beta,
            ..Self::default()
        }
    }

    /// Sets τ (`orpo_beta`).
    pub fn with_orpo_beta(mut self, orpo_beta: f64) -> Self {
        self.orpo_beta = orpo_beta;
        self
    }

    /// Sets the NLL span (see [`OrpoLossConfig::nll_on_completion_only`]).
    pub fn with_nll_on_completion_only(mut self, on: bool) -> Self {
        self.nll_on_completion_only = on;
        self
    }

    /// Sets the final logit soft-cap (see [`OrpoLossConfig::logit_softcap`]).
    pub fn with_logit_softcap(mut self, softcap: Option<f64>) -> Self {
        self.logit_softcap = softcap;
        self
    }

    /// Sets the number of token positions per log-prob chunk.
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// SimPO with β = `beta`, γ = `simpo_gamma` and NLL weight `cpo_alpha` (TRL's CPO
    /// semantics: the NLL covers the chosen completion tokens only).
    pub fn simpo(beta: f64, simpo_gamma: f64, cpo_alpha: f64) -> Self {
        Self {
            loss_type: LossType::Simpo,
            beta,
            simpo_gamma,
            cpo_alpha,
            nll_on_completion_only: true,
            ..Self::default()
        }
    }

    /// The objective these settings describe.
    pub fn objective(&self) -> Box<dyn PreferenceObjective> {
        match self.loss_type {
            LossType::Orpo => Box::new(Orpo {
                lambda: self.beta,
                tau: self.orpo_beta,
            }),
            LossType::Simpo => Box::new(SimPo {
                beta: self.beta,
                gamma: self.simpo_gamma,
                cpo_alpha: self.cpo_alpha,
            }),
        }
    }

    /// Checks the values: finite non-negative λ/β, finite τ, `chunk_size > 0`, and for SimPO a
    /// finite γ and a finite non-negative `cpo_alpha`. The error message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.loss_type == LossType::Simpo {
            if !self.simpo_gamma.is_finite() {
                return Err(format!(
                    "simpo_gamma must be finite, got {}",
                    self.simpo_gamma
                ));
            }
            if !self.cpo_alpha.is_finite() || self.cpo_alpha < 0.0 {
                return Err(format!(
                    "cpo_alpha must be finite and >= 0, got {}",
                    self.cpo_alpha
                ));
            }
        }
        if !self.beta.is_finite() || self.beta < 0.0 {
            return Err(format!("beta must be finite and >= 0, got {}", self.beta));
        }
        if !self.orpo_beta.is_finite() {
            return Err(format!("orpo_beta must be finite, got {}", self.orpo_beta));
        }
        if self.chunk_size == 0 {
            return Err("chunk_size must be > 0".to_string());
        }
        if let Some(cap) = self.logit_softcap
            && !(cap.is_finite() && cap > 0.0)
        {
            return Err(format!("logit_softcap must be finite and > 0, got {cap}"));
        }
        Ok(())
    }
}
