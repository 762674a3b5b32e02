//! # orpo-loss
//!
//! The ORPO loss (Hong et al., 2024, arXiv 2403.07691) and TRL's metrics on any burn backend,
//! numerically equal to TRL's `ORPOTrainer` (v0.25), with memory-lean log-probabilities.
//!
//! For `B` preference pairs the model runs once on `2B` rows (rows `0..B` prompt+chosen, rows
//! `B..2B` prompt+rejected) and hands its final hidden states and LM head to [`orpo_loss`]:
//!
//! - `lc`, `lr`: per-row **mean** log-prob of the completion tokens (labels shifted by one);
//! - `nll_loss`: token-mean cross-entropy over the chosen rows, over prompt **and** completion
//!   (TRL, the paper's code), or the completion only with
//!   [`OrpoLossConfig::nll_on_completion_only`];
//! - `log_odds = (lc − lr) − (log1mexp(lc) − log1mexp(lr))` in f32 with a stable [`log1mexp`];
//! - `ratio = log σ(τ·log_odds)`, `loss = nll_loss − λ·mean(ratio)`.
//!
//! λ = 0 is plain SFT on the chosen responses.
//!
//! ## Gradient accumulation
//!
//! The NLL is a mean over tokens and the odds-ratio term a mean over pairs, so the mean of
//! micro-batch losses is not the loss of the whole batch when micro-batches hold different
//! numbers of tokens. [`orpo_loss_with_denominators`] divides the two sums by the totals of the
//! whole batch ([`LossDenominators`], with [`nll_token_count`] to count each micro-batch's NLL
//! tokens up front): the micro-batch losses and gradients then add up to the big batch's exactly.
//!
//! ## Memory
//!
//! The `[2B, T, V]` logits are never materialised. [`orpo_loss`] makes two passes over the
//! scored token positions, `chunk_size` at a time, on the inner (non-autodiff) backend:
//!
//! 1. a no-grad pass: per-token `logsumexp` and target logit → `lc`, `lr`, NLL, loss value;
//! 2. with `∂loss/∂lc`, `∂loss/∂lr` known in closed form
//!    ([`odds_ratio_loss_grads`]), a gradient pass recomputes each chunk's logits and
//!    accumulates `∂hidden = G Wᵀ`, `∂W += hᵀ G`, `∂b += ΣG` with `G = coef·(onehot − softmax)`;
//! 3. [`attach_gradient`] splices those gradients into the caller's autodiff graph
//!    (`loss = value + ⟨x, g⟩ − stopgrad⟨x, g⟩`), so `loss.backward()` continues into the model.
//!
//! Peak memory of the loss, for `M` scored tokens (`M ≤ 2B·(T−1)`), chunk size `c`, hidden
//! size `H`, vocabulary `V`, 4-byte floats: `≈ 4·(k·c·V + 2·H·V + 2·M·H)` bytes, with `k`
//! between 1 and 3 `[c, V]` chunk temporaries alive at once (logits, softmax, gradient; depends
//! on how many ops the backend runs in place), the `[H, V]` weight-gradient accumulator plus one
//! `[H, V]` matmul result, and the hidden-state gradient. It does not grow with `T` beyond the
//! `M·H` terms. A naive `log_softmax` under autodiff keeps several `[2B·T, V]` tensors instead.
//! Measured on the flex CPU backend at 8 × 512 tokens, `H = 576`, `V = 49 152` (forward +
//! backward, peak RSS above the inputs): 276 / 324 / 502 MiB for `c` = 256 / 512 / 1024
//! against 2 302 MiB for the naive loss (`docs/benchmarks.md`, "Loss memory"). Cost: four
//! `[c, H] × [H, V]`-sized matmuls per chunk instead of three.
//!
//! ## Objectives
//!
//! The head machinery above is shared; what a pair's `lc`, `lr` cost is a
//! [`PreferenceObjective`]: [`Orpo`] (this crate's default, TRL's `ORPOTrainer`) or [`SimPo`]
//! (TRL's `CPOTrainer` with `loss_type="simpo"`), chosen by [`OrpoLossConfig::loss_type`] and
//! run by [`preference_loss`]. [`orpo_loss`] is the ORPO entry point with ORPO's metric struct.
//!
//! ## The fast path (feature `flex`, chosen by the application)
//!
//! When the tensors live on burn's `flex` backend and this crate's `flex` feature is on (the
//! `orpo` binary's `cpu` feature turns it on), the per-chunk element-wise work
//! (logsumexp, target pick, `coef ⊙ (onehot − softmax)`) runs as host-memory kernels over the
//! logits buffer, in place and on all threads, instead of as six to eight allocating tensor ops.
//! And when every pair has at most `2 · chunk_size` scored tokens, the loss makes one pass per
//! pair instead of the two passes above: the odds-ratio gradient of a pair depends only on that
//! pair's `lc` and `lr`, so its logits, once computed, yield the log-probs and then, in place,
//! the gradient — three head-sized matmuls per pair instead of four per chunk, holding one
//! pair's `[M_i, V]` logits at a time. Other backends take the tensor path. All of it sits
//! behind one seam, `src/fast/` ("try the backend's kernels, else the tensor path"), where a
//! GPU fast path would plug in too.
//!
//! ## Example
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use orpo_loss::{orpo_loss, OrpoInputs, OrpoLossConfig};
//!
//! let device = Device::flex().autodiff();
//! // 1 pair → 2 rows of 4 tokens, hidden size 8, vocabulary 16.
//! let hidden = Tensor::<3>::random([2, 4, 8], burn::tensor::Distribution::Default, &device).require_grad();
//! let head = Tensor::<2>::random([8, 16], burn::tensor::Distribution::Default, &device).require_grad();
//! let inputs = OrpoInputs {
//!     input_ids: Tensor::<2, Int>::from_data([[1, 2, 3, 4], [1, 2, 5, 0]], &device),
//!     attention_mask: Tensor::<2, Int>::from_data([[1, 1, 1, 1], [1, 1, 1, 0]], &device),
//!     completion_mask: Tensor::<2, Int>::from_data([[0, 0, 1, 1], [0, 0, 1, 0]], &device),
//! };
//! let out = orpo_loss(hidden.clone(), head.clone(), None, &inputs, &OrpoLossConfig::default());
//! let grads = out.loss.backward();
//! assert!(hidden.grad(&grads).is_some() && head.grad(&grads).is_some());
//! for (name, value) in out.metrics.to_metrics().to_named() {
//!     println!("{name}: {value}");
//! }
//! ```

#![warn(missing_docs)]

mod config;
mod fast;
mod inputs;
mod logps;
mod loss;
mod metrics;
mod naive;
mod objective;
mod odds_ratio;
mod pairwise;
mod plan;

pub use config::{LossType, OrpoLossConfig};
pub use inputs::{HostInputs, HostInputsBuf, LossDenominators, OrpoInputs, nll_token_count};
pub use logps::{
    GradRequest, HeadGrads, RowLogps, TokenSelection, attach_gradient, completion_logps,
    token_logps, token_logps_backward, token_logps_backward_softcapped, token_logps_softcapped,
};
pub use loss::{
    OrpoOutput, PreferenceOutput, orpo_loss, orpo_loss_with_denominators, preference_loss,
};
pub use metrics::{METRIC_NAMES, MetricTensors, OrpoMetricTensors, OrpoMetrics};
pub use naive::naive_orpo_loss;
pub use objective::{ObjectiveTerms, Orpo, PreferenceObjective, SimPo};
pub use odds_ratio::{OddsRatio, expm1, log1mexp, odds_ratio_loss, odds_ratio_loss_grads};
