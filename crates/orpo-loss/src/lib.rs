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
//! ## On the CPU backend (feature `flex`, on by default)
//!
//! When the tensors live on burn's `flex` backend, the per-chunk element-wise work
//! (logsumexp, target pick, `coef ⊙ (onehot − softmax)`) runs as host-memory kernels over the
//! logits buffer, in place and on all threads, instead of as six to eight allocating tensor ops.
//! And when every pair has at most `2 · chunk_size` scored tokens, the loss makes one pass per
//! pair instead of the two passes above: the odds-ratio gradient of a pair depends only on that
//! pair's `lc` and `lr`, so its logits, once computed, yield the log-probs and then, in place,
//! the gradient — three head-sized matmuls per pair instead of four per chunk, holding one
//! pair's `[M_i, V]` logits at a time. Other backends take the tensor path.
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
#[cfg(feature = "flex")]
mod host;
#[cfg(feature = "flex")]
mod inject;
mod logps;
mod metrics;
mod naive;
mod odds_ratio;
#[cfg(feature = "flex")]
mod pairwise;

pub use config::OrpoLossConfig;
pub use logps::{
    GradRequest, HeadGrads, RowLogps, TokenSelection, attach_gradient, completion_logps,
    token_logps, token_logps_backward,
};
pub use metrics::{METRIC_NAMES, OrpoMetricTensors, OrpoMetrics};
pub use naive::naive_orpo_loss;
pub use odds_ratio::{OddsRatio, expm1, log1mexp, odds_ratio_loss, odds_ratio_loss_grads};

use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};

/// The token inputs of one ORPO batch of `2B` rows: rows `0..B` are prompt+chosen, rows
/// `B..2B` prompt+rejected (same order of pairs), all padded to the same length `T`.
#[derive(Debug, Clone)]
pub struct OrpoInputs {
    /// `[2B, T]` token ids (pad positions may hold any valid id).
    pub input_ids: Tensor<2, Int>,
    /// `[2B, T]` 1 on real tokens, 0 on padding.
    pub attention_mask: Tensor<2, Int>,
    /// `[2B, T]` 1 on completion tokens (TRL: `labels != -100`), 0 on prompt and padding.
    pub completion_mask: Tensor<2, Int>,
}

/// What [`orpo_loss`] returns.
#[derive(Debug, Clone)]
pub struct OrpoOutput {
    /// `[1]` the loss `nll_loss − λ·mean(ratio)`; differentiable wrt `hidden`, `head_weight`
    /// and `head_bias` when those are tracked, f32.
    pub loss: Tensor<1>,
    /// Detached `[1]` metric tensors (TRL's names via [`OrpoMetricTensors::to_metrics`]):
    /// always this batch's own means, whatever [`LossDenominators`] the loss was divided by.
    pub metrics: OrpoMetricTensors,
    /// Tokens of this batch in the NLL term (the denominator of `metrics.nll_loss`).
    pub nll_tokens: usize,
    /// Pairs `B` of this batch (the denominator of the odds-ratio mean and the pair metrics).
    pub pairs: usize,
}

/// The denominators of the loss's two means, for splitting one batch into micro-batches
/// (gradient accumulation) without changing the update.
///
/// The loss of a batch is `Σ_tokens nll / N − λ · Σ_pairs ratio / P`, with `N` the batch's NLL
/// tokens and `P` its pairs. When a batch is cut into micro-batches, giving each micro-batch the
/// `N` and `P` of the whole batch makes the micro-batch losses (and their gradients) sum to the
/// whole batch's: accumulation is then one big batch, even when the micro-batches hold different
/// numbers of tokens (where the mean of the micro-batch means is not the token mean).
/// [`nll_token_count`] gives each micro-batch's `N` on the host, before any forward pass.
///
/// `None` (the default) uses this batch's own count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossDenominators {
    /// `N`: tokens the NLL sum is divided by (at least this batch's NLL tokens).
    pub nll_tokens: Option<usize>,
    /// `P`: pairs the odds-ratio sum is divided by (at least this batch's pairs).
    pub pairs: Option<usize>,
}

impl LossDenominators {
    /// Divide by `nll_tokens` and `pairs`: the totals of all micro-batches of one step.
    pub fn new(nll_tokens: usize, pairs: usize) -> Self {
        Self {
            nll_tokens: Some(nll_tokens),
            pairs: Some(pairs),
        }
    }
}

/// Whether position `j` (≥ 1) of row `r` of a `[2B, T]` batch is a completion token and whether
/// it is an NLL token (chosen rows only; masked by the attention mask, and by the completion
/// mask when `nll_on_completion_only`). The one definition [`orpo_loss`] and
/// [`nll_token_count`] share.
fn token_role(
    r: usize,
    b: usize,
    att: i64,
    comp: i64,
    nll_on_completion_only: bool,
) -> (bool, bool) {
    let is_att = att != 0;
    let is_comp = is_att && comp != 0;
    let is_nll = r < b
        && if nll_on_completion_only {
            is_comp
        } else {
            is_att
        };
    (is_comp, is_nll)
}

/// The number of tokens the NLL term of a batch averages over, from its host-side masks
/// (`[2B, T]` row-major, rows `0..B` chosen): labels are shifted by one, so position 0 of a row
/// is never scored. Equals [`OrpoOutput::nll_tokens`] of the same batch; use it to build
/// [`LossDenominators`] before the forward passes.
///
/// # Panics
/// If the masks do not hold `2B · T` values or the row count is odd.
pub fn nll_token_count(
    attention_mask: &[i64],
    completion_mask: &[i64],
    shape: [usize; 2],
    nll_on_completion_only: bool,
) -> usize {
    let [rows, t] = shape;
    assert!(rows % 2 == 0, "orpo-loss: need 2B rows, got {rows}");
    assert!(
        attention_mask.len() == rows * t && completion_mask.len() == rows * t,
        "orpo-loss: masks must hold {rows} × {t} values"
    );
    let b = rows / 2;
    let mut n = 0;
    for r in 0..b {
        for j in (r * t + 1)..(r * t + t) {
            n += token_role(
                r,
                b,
                attention_mask[j],
                completion_mask[j],
                nll_on_completion_only,
            )
            .1 as usize;
        }
    }
    n
}

impl OrpoInputs {
    /// [`nll_token_count`] of these inputs (reads the two masks to the host).
    pub fn nll_token_count(&self, nll_on_completion_only: bool) -> usize {
        let shape: [usize; 2] = self.attention_mask.dims();
        nll_token_count(
            &logps::read_i64(&self.attention_mask, "attention_mask"),
            &logps::read_i64(&self.completion_mask, "completion_mask"),
            shape,
            nll_on_completion_only,
        )
    }
}

/// How the loss, per token, sees the batch: which positions are scored and with which weight.
struct Plan {
    sel: TokenSelection,
    /// `[2B, M]` row-major: `1/count_r` where token `k` is a completion token of row `r`.
    seg: Vec<f32>,
    /// `[2B]` NaN for a row without completion tokens (TRL's 0/0), else 0.
    empty_rows: Vec<f32>,
    /// `[M]` `1/nll_denominator` on the NLL tokens.
    nll_w: Vec<f32>,
    /// `[M]` the row of each scored token (read by the CPU single-pass path).
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    tok_row: Vec<usize>,
    n_nll: usize,
    /// What the NLL sum is divided by: `n_nll` unless the caller gave a denominator.
    nll_denominator: usize,
}

fn plan(
    inputs: &OrpoInputs,
    rows: usize,
    t: usize,
    nll_on_completion_only: bool,
    nll_denominator: Option<usize>,
) -> Plan {
    let ids = logps::read_i64(&inputs.input_ids, "input_ids");
    let att = logps::read_i64(&inputs.attention_mask, "attention_mask");
    let comp = logps::read_i64(&inputs.completion_mask, "completion_mask");
    let b = rows / 2;
    let mut sel = TokenSelection::default();
    let mut tok_row = Vec::new();
    let mut tok_comp = Vec::new();
    let mut tok_nll = Vec::new();
    let mut counts = vec![0usize; rows];
    let mut n_nll = 0usize;
    #[allow(clippy::needless_range_loop)] // r is a row index into three flat arrays
    for r in 0..rows {
        for pos in 0..t - 1 {
            let j = r * t + pos + 1;
            let (is_comp, is_nll) = token_role(r, b, att[j], comp[j], nll_on_completion_only);
            if is_comp || is_nll {
                let id = ids[j];
                assert!(
                    id >= 0,
                    "orpo-loss: negative input id {id} at row {r}, position {}",
                    pos + 1
                );
                sel.push(r * t + pos, id as usize);
                tok_row.push(r);
                tok_comp.push(is_comp);
                tok_nll.push(is_nll);
                counts[r] += is_comp as usize;
                n_nll += is_nll as usize;
            }
        }
    }
    let m = sel.len();
    let nll_denominator = match nll_denominator {
        Some(n) => {
            assert!(
                n >= n_nll,
                "orpo-loss: NLL denominator {n} is below this batch's {n_nll} NLL tokens"
            );
            n
        }
        None => n_nll,
    };
    let mut seg = vec![0f32; rows * m];
    let mut nll_w = vec![0f32; m];
    for k in 0..m {
        if tok_comp[k] {
            seg[tok_row[k] * m + k] = 1.0 / counts[tok_row[k]] as f32;
        }
        if tok_nll[k] {
            nll_w[k] = 1.0 / nll_denominator as f32;
        }
    }
    let empty_rows = counts
        .iter()
        .map(|&c| if c == 0 { f32::NAN } else { 0.0 })
        .collect();
    Plan {
        sel,
        seg,
        empty_rows,
        nll_w,
        tok_row,
        n_nll,
        nll_denominator,
    }
}

/// The ORPO loss and TRL's metrics from the final hidden states and the LM head.
///
/// Shapes: `hidden [2B, T, H]` (post final norm: the input of the LM head), `head_weight
/// [H, V]` (`logits = hidden · head_weight + head_bias`), `head_bias [V]`, `inputs` `[2B, T]`.
/// Labels are shifted by one (the hidden state at `t` predicts token `t + 1`). Never holds the
/// `[2B, T, V]` logits: see the crate docs for the algorithm and its peak memory. Gradients are
/// produced for whichever of `hidden`, `head_weight`, `head_bias` are tracked by autodiff; with
/// none tracked (evaluation), the gradient pass is skipped.
///
/// Reads the three `[2B, T]` input tensors to the host once (to list the scored positions).
/// A row without completion tokens gives NaN (as TRL's 0/0); `orpo-data` drops such rows.
///
/// # Panics
/// On inconsistent shapes, an odd number of rows, `T < 2`, an invalid config, or a batch with
/// no scored token at all.
pub fn orpo_loss(
    hidden: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
    inputs: &OrpoInputs,
    config: &OrpoLossConfig,
) -> OrpoOutput {
    orpo_loss_with_denominators(
        hidden,
        head_weight,
        head_bias,
        inputs,
        config,
        LossDenominators::default(),
    )
}

/// [`orpo_loss`] with the NLL sum divided by `denominators.nll_tokens` and the odds-ratio sum by
/// `denominators.pairs` instead of this batch's own counts: the loss of one micro-batch of a
/// larger batch, such that the micro-batch losses and gradients add up to the larger batch's
/// (see [`LossDenominators`]). The metrics stay this batch's own means; `nll_tokens` and `pairs`
/// of the output give the weights to combine them.
///
/// # Panics
/// As [`orpo_loss`], and when a denominator is below this batch's own count.
pub fn orpo_loss_with_denominators(
    hidden: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
    inputs: &OrpoInputs,
    config: &OrpoLossConfig,
    denominators: LossDenominators,
) -> OrpoOutput {
    if let Err(e) = config.validate() {
        panic!("orpo-loss: invalid config: {e}");
    }
    let [rows, t, h] = hidden.dims();
    let [hw, v] = head_weight.dims();
    assert_eq!(h, hw, "orpo-loss: hidden size {h} != head_weight rows {hw}");
    if let Some(b) = &head_bias {
        assert_eq!(b.dims(), [v], "orpo-loss: head_bias must be [V] = [{v}]");
    }
    assert!(
        rows >= 2 && rows % 2 == 0,
        "orpo-loss: need 2B rows, got {rows}"
    );
    assert!(t >= 2, "orpo-loss: need at least 2 positions, got T = {t}");
    for (name, m) in [
        ("input_ids", &inputs.input_ids),
        ("attention_mask", &inputs.attention_mask),
        ("completion_mask", &inputs.completion_mask),
    ] {
        assert_eq!(
            m.dims(),
            [rows, t],
            "orpo-loss: {name} must be [{rows}, {t}]"
        );
    }
    let b = rows / 2;
    let (beta, tau) = (config.beta, config.orpo_beta);

    let p = plan(
        inputs,
        rows,
        t,
        config.nll_on_completion_only,
        denominators.nll_tokens,
    );
    // The odds-ratio term is −λ·Σ ratio / P = −λ·mean(ratio) · B/P.
    let pair_scale = match denominators.pairs {
        Some(pairs) => {
            assert!(
                pairs >= b,
                "orpo-loss: pair denominator {pairs} is below this batch's {b} pairs"
            );
            b as f64 / pairs as f64
        }
        None => 1.0,
    };
    assert!(
        !p.sel.is_empty(),
        "orpo-loss: no token to score in this batch"
    );
    let m = p.sel.len();

    let hid = hidden.clone().inner();
    let w = head_weight.clone().inner();
    let bias = head_bias.clone().map(|b| b.inner());
    let device = hid.device();
    let f32_opts = (&device, DType::F32);
    let flat = hid.clone().reshape([rows * t, h]);

    let request = GradRequest {
        hidden: hidden.is_tracked(),
        weight: head_weight.is_tracked(),
        bias: head_bias.as_ref().is_some_and(|b| b.is_tracked()),
    };
    let wants_grads = request.hidden || request.weight || request.bias;
    // On the CPU backend, one head pass per pair gives log-probs and gradients together.
    #[cfg(feature = "flex")]
    let mut single_pass = wants_grads
        .then(|| {
            pairwise::logps_and_grads(
                &flat,
                &w,
                bias.as_ref(),
                &p,
                b,
                beta * pair_scale,
                tau,
                config.chunk_size,
                request,
            )
        })
        .flatten();
    #[cfg(not(feature = "flex"))]
    let mut single_pass: Option<pairwise_disabled::PairwiseOutput> = None;

    // Pass 1 (no grad): per-token log-probs → lc, lr, NLL.
    let logp = match &single_pass {
        Some(out) => out.logp.clone(),
        None => token_logps(&flat, &w, bias.as_ref(), &p.sel, config.chunk_size),
    };
    let seg = Tensor::<2>::from_data(TensorData::new(p.seg, [rows, m]), f32_opts);
    let empty = Tensor::<1>::from_data(TensorData::new(p.empty_rows, [rows]), f32_opts);
    let nll_w = Tensor::<1>::from_data(TensorData::new(p.nll_w, [m]), f32_opts);
    let row_logps = seg
        .clone()
        .matmul(logp.clone().reshape([m, 1]))
        .reshape([rows])
        + empty;
    let lc = row_logps.clone().slice_dim(0, 0..b);
    let lr = row_logps.slice_dim(0, b..rows);
    // Σ nll / N: TRL's token mean when N is this batch's count (0/0 = NaN as TRL without any
    // NLL token); the metric is always this batch's own mean.
    let nan_if_no_nll = if p.nll_denominator == 0 {
        f32::NAN
    } else {
        0.0
    };
    let nll = (nll_w.clone() * logp).sum().neg().add_scalar(nan_if_no_nll);
    let nll_mean = if p.nll_denominator == p.n_nll {
        nll.clone()
    } else if p.n_nll == 0 {
        nll.clone().add_scalar(f32::NAN)
    } else {
        nll.clone()
            .mul_scalar(p.nll_denominator as f64 / p.n_nll as f64)
    };

    let or = odds_ratio_loss(lc.clone(), lr.clone(), beta, tau);
    let or_term = if pair_scale == 1.0 {
        or.loss.clone()
    } else {
        or.loss.clone().mul_scalar(pair_scale)
    };
    let value = nll + or_term;

    // Metrics (detached, inner device). The logit means use Σ_v (h·W + b)_v = h·(W 1) + Σ b,
    // over positions 0..T−1 of each half (TRL: logits[:, :-1, :]), without any [.., V] tensor.
    // [H, 1] = W · 1 as a matrix-vector product: the head weight is often a transposed view
    // (tied embeddings), which a `sum_dim` would walk element by element on one thread.
    let ones = Tensor::<2>::ones([v, 1], f32_opts);
    let w_rowsum = w.clone().cast(FloatDType::F32).matmul(ones);
    let bias_mean = bias
        .as_ref()
        .map(|b| b.clone().cast(FloatDType::F32).mean());
    let logits_mean = |range: core::ops::Range<usize>| {
        let n = (range.len() * (t - 1) * v) as f64;
        let hs = hid
            .clone()
            .slice([range, 0..t - 1])
            .cast(FloatDType::F32)
            .sum_dims(&[0, 1])
            .reshape([1, h]);
        let mean = hs.matmul(w_rowsum.clone()).reshape([1]).div_scalar(n);
        match &bias_mean {
            Some(bm) => mean + bm.clone(),
            None => mean,
        }
    };
    let rc = lc.clone().mul_scalar(beta);
    let rr = lr.clone().mul_scalar(beta);
    let metrics = OrpoMetricTensors {
        rewards_chosen: rc.clone().mean(),
        rewards_rejected: rr.clone().mean(),
        rewards_accuracies: rc.clone().greater(rr.clone()).float().mean(),
        rewards_margins: (rc - rr).mean(),
        logps_chosen: lc.clone().mean(),
        logps_rejected: lr.clone().mean(),
        logits_chosen: logits_mean(0..b),
        logits_rejected: logits_mean(b..rows),
        nll_loss: nll_mean,
        log_odds_ratio: or.ratio.mean(),
        log_odds_chosen: or.log_odds.mean(),
    };

    // Pass 2: gradients, only for what the caller tracks.
    let mut loss = value.clone();
    if wants_grads {
        let grads = match single_pass.take() {
            Some(out) => out.grads,
            None => {
                let (d_lc, d_lr) = odds_ratio_loss_grads(lc, lr, beta * pair_scale, tau);
                let d_rows = Tensor::cat(vec![d_lc, d_lr], 0).reshape([1, rows]);
                // ∂loss/∂logp_k = Σ_r ∂loss/∂l_r · seg[r, k] − nll_w[k]
                let coef = d_rows.matmul(seg).reshape([m]) - nll_w;
                token_logps_backward(
                    &flat,
                    &w,
                    bias.as_ref(),
                    &p.sel,
                    &coef,
                    config.chunk_size,
                    request,
                )
            }
        };
        if let Some(g) = grads.hidden {
            loss = attach_gradient(loss, &hidden, g.reshape([rows, t, h]));
        }
        if let Some(g) = grads.weight {
            loss = attach_gradient(loss, &head_weight, g);
        }
        if let (Some(g), Some(bias_t)) = (grads.bias, head_bias.as_ref()) {
            loss = attach_gradient(loss, bias_t, g);
        }
    } else if let Some(strategy) = hidden.gradient_checkpointing_strategy() {
        loss = loss
            .autodiff()
            .with_gradient_checkpointing_strategy(strategy);
    }
    OrpoOutput {
        loss,
        metrics,
        nll_tokens: p.n_nll,
        pairs: b,
    }
}

/// Stand-in for the `pairwise` module's output type when the `flex` feature is off (the
/// single-pass path is never taken then).
#[cfg(not(feature = "flex"))]
mod pairwise_disabled {
    pub(crate) struct PairwiseOutput {
        pub logp: burn::tensor::Tensor<1>,
        pub grads: crate::HeadGrads,
    }
}
