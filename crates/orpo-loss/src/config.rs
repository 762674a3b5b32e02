//! [`OrpoLossConfig`]: the knobs of the loss (λ, τ, NLL span, chunk size).

use serde::{Deserialize, Serialize};

/// λ, τ, the NLL span and the log-prob chunk size.
///
/// `Default` reproduces TRL's `ORPOTrainer` (v0.25): `beta = 0.1`, `orpo_beta = 1.0`, NLL over
/// prompt and completion tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrpoLossConfig {
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
}

impl Default for OrpoLossConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            orpo_beta: 1.0,
            nll_on_completion_only: false,
            chunk_size: 512,
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

    /// Sets the number of token positions per log-prob chunk.
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Checks the values: finite non-negative λ, finite τ, `chunk_size > 0`.
    /// The error message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.beta.is_finite() || self.beta < 0.0 {
            return Err(format!("beta must be finite and >= 0, got {}", self.beta));
        }
        if !self.orpo_beta.is_finite() {
            return Err(format!("orpo_beta must be finite, got {}", self.orpo_beta));
        }
        if self.chunk_size == 0 {
            return Err("chunk_size must be > 0".to_string());
        }
        Ok(())
    }
}
