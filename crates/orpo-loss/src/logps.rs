//! Chunked token log-probabilities through the LM head, without ever materialising the
//! `[rows, seq, vocab]` logits, and their gradients computed chunk by chunk.
//!
//! The pieces are backend-generic and public so that other objectives (DPO, SimPO, plain SFT)
//! can reuse them:
//! - [`TokenSelection`]: which hidden-state rows to score, against which target token;
//! - [`token_logps`]: `log softmax(h W + b)[target]` per selected row, no gradient;
//! - [`token_logps_backward`]: the gradient of `Σ_k coef_k · logp_k` wrt hidden, `W` and `b`;
//! - [`attach_gradient`]: splices a precomputed gradient into an autodiff graph;
//! - [`completion_logps`]: per-row sum and count of completion-token log-probs.
//!
//! Everything runs on the inner (non-autodiff) backend, so no chunk leaves saved intermediates
//! behind; each chunk's `[chunk, V]` temporaries are freed before the next one starts.

use burn::tensor::{DType, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData};

/// Hidden-state rows to score and their target token ids (host side, built once per batch).
///
/// `positions[k]` indexes the flattened `[rows · seq, H]` hidden states; `targets[k]` is the
/// token that row predicts (for a causal LM: the input id one position later).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSelection {
    /// Row indices into the flattened hidden states, `k = 0..M`.
    pub positions: Vec<usize>,
    /// Target vocabulary ids, same length as `positions`.
    pub targets: Vec<usize>,
}

impl TokenSelection {
    /// Number of selected tokens `M`.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// `true` when nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Adds one token.
    pub fn push(&mut self, position: usize, target: usize) {
        self.positions.push(position);
        self.targets.push(target);
    }

    fn tensors(&self, device: &burn::tensor::Device) -> (Tensor<1, Int>, Tensor<1, Int>) {
        let m = self.len();
        let pos: Vec<i64> = self.positions.iter().map(|&p| p as i64).collect();
        let tgt: Vec<i64> = self.targets.iter().map(|&t| t as i64).collect();
        (
            Tensor::from_data(TensorData::new(pos, [m]), device),
            Tensor::from_data(TensorData::new(tgt, [m]), device),
        )
    }
}

/// Which gradients [`token_logps_backward`] should compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradRequest {
    /// Gradient wrt the hidden states.
    pub hidden: bool,
    /// Gradient wrt the head weight `[H, V]` (skip it for a frozen head: saves one matmul per chunk).
    pub weight: bool,
    /// Gradient wrt the head bias `[V]` (ignored without a bias).
    pub bias: bool,
}

impl GradRequest {
    /// All gradients.
    pub const ALL: Self = Self {
        hidden: true,
        weight: true,
        bias: true,
    };
}

/// Gradients of `Σ_k coef_k · logp_k` wrt the LM-head inputs (on the inner, non-autodiff backend).
#[derive(Debug, Clone)]
pub struct HeadGrads {
    /// `[N, H]`, flattened hidden states (zero on rows that were not selected).
    pub hidden: Option<Tensor<2>>,
    /// `[H, V]`.
    pub weight: Option<Tensor<2>>,
    /// `[V]`.
    pub bias: Option<Tensor<1>>,
}

/// `[c, H] -> [c, V]` f32 logits of one chunk.
pub(crate) fn chunk_logits(h: Tensor<2>, w: &Tensor<2>, b: Option<&Tensor<1>>) -> Tensor<2> {
    let mut z = h.matmul(w.clone());
    if let Some(b) = b {
        z = z + b.clone().unsqueeze_dim::<2>(0);
    }
    z.cast(FloatDType::F32)
}

/// `z` `[c, V]` f32 soft-capped: `cap · tanh(z / cap)` (transformers' final logit soft-cap, in
/// f32 as the loss computes), or `z` unchanged without a cap.
pub(crate) fn softcap(z: Tensor<2>, cap: Option<f64>) -> Tensor<2> {
    match cap {
        Some(cap) => z.div_scalar(cap).tanh().mul_scalar(cap),
        None => z,
    }
}

/// `[c, V] -> [c, 1]` `logsumexp` along the vocabulary, max-shifted.
fn logsumexp(z: &Tensor<2>) -> Tensor<2> {
    let max = z.clone().max_dim(1);
    (z.clone() - max.clone()).exp().sum_dim(1).log() + max
}

fn chunk_ranges(m: usize, chunk_size: usize) -> impl Iterator<Item = (usize, usize)> {
    let chunk_size = chunk_size.max(1);
    (0..m.div_ceil(chunk_size)).map(move |i| (i * chunk_size, ((i + 1) * chunk_size).min(m)))
}

/// `log softmax(h_k W + b)[target_k]` for every selected token, `chunk_size` tokens at a time.
///
/// Shapes: `hidden_flat [N, H]`, `head_weight [H, V]`, `head_bias [V]` → `[M]` f32 on the
/// inner (non-autodiff) device: the result carries no gradient. Peak extra memory:
/// about `3 · chunk_size · V · 4` bytes plus `M · H` for the gathered rows of one chunk.
///
/// # Panics
/// If the selection is empty.
pub fn token_logps(
    hidden_flat: &Tensor<2>,
    head_weight: &Tensor<2>,
    head_bias: Option<&Tensor<1>>,
    selection: &TokenSelection,
    chunk_size: usize,
) -> Tensor<1> {
    token_logps_softcapped(
        hidden_flat,
        head_weight,
        head_bias,
        selection,
        chunk_size,
        None,
    )
}

/// [`token_logps`] of soft-capped logits `cap · tanh((h W + b) / cap)` (Gemma 2's
/// `final_logit_softcapping`), or of the raw logits when `softcap` is `None`.
///
/// # Panics
/// If the selection is empty.
pub fn token_logps_softcapped(
    hidden_flat: &Tensor<2>,
    head_weight: &Tensor<2>,
    head_bias: Option<&Tensor<1>>,
    selection: &TokenSelection,
    chunk_size: usize,
    softcap: Option<f64>,
) -> Tensor<1> {
    assert!(!selection.is_empty(), "token_logps: empty token selection");
    let h = hidden_flat.clone().inner();
    let w = head_weight.clone().inner();
    let b = head_bias.map(|b| b.clone().inner());
    let device = h.device();
    let (pos, tgt) = selection.tensors(&device);
    if let Some(kernels) = crate::fast::kernels(&device) {
        let mut logps = Vec::with_capacity(selection.len());
        for (s, e) in chunk_ranges(selection.len(), chunk_size) {
            let hc = h.clone().select(0, pos.clone().slice_dim(0, s..e));
            let z = self::softcap(chunk_logits(hc, &w, b.as_ref()), softcap);
            let [_, v] = z.dims();
            let z = kernels.logits_to_host(z);
            logps.extend(kernels.target_logps(&z, v, &selection.targets[s..e]));
        }
        let m = logps.len();
        return Tensor::from_data(TensorData::new(logps, [m]), (&device, DType::F32));
    }
    let mut parts = Vec::new();
    for (s, e) in chunk_ranges(selection.len(), chunk_size) {
        let c = e - s;
        let hc = h.clone().select(0, pos.clone().slice_dim(0, s..e));
        let z = self::softcap(chunk_logits(hc, &w, b.as_ref()), softcap);
        let lse = logsumexp(&z);
        let picked = z.gather(1, tgt.clone().slice_dim(0, s..e).reshape([c, 1]));
        parts.push((picked - lse).reshape([c]));
    }
    Tensor::cat(parts, 0)
}

/// Gradient of `Σ_k coef_k · logp_k` (logp as in [`token_logps`]) wrt hidden, `W` and `b`.
///
/// Recomputes each chunk's logits and uses `∂logp_k/∂z_k = onehot(target_k) − softmax(z_k)`:
/// `G = coef ⊙ (onehot − p)` `[c, V]`, then `∂h = G Wᵀ`, `∂W += hᵀ G`, `∂b += Σ_rows G`.
/// `coef` is `[M]`. Results are on the inner device, in the dtype of the inputs. Peak extra
/// memory: about `3 · chunk_size · V · 4` bytes plus the `[H, V]` and `[N, H]` accumulators.
///
/// # Panics
/// If the selection is empty.
pub fn token_logps_backward(
    hidden_flat: &Tensor<2>,
    head_weight: &Tensor<2>,
    head_bias: Option<&Tensor<1>>,
    selection: &TokenSelection,
    coef: &Tensor<1>,
    chunk_size: usize,
    request: GradRequest,
) -> HeadGrads {
    token_logps_backward_softcapped(
        hidden_flat,
        head_weight,
        head_bias,
        selection,
        coef,
        chunk_size,
        request,
        None,
    )
}

/// [`token_logps_backward`] for the log-probs of [`token_logps_softcapped`]: with
/// `z = cap · tanh(u / cap)` and `u = h W + b`, `∂z/∂u = 1 − (z / cap)²`, so each chunk's
/// `G = coef ⊙ (onehot − softmax(z))` is multiplied by it before the products with `W` and `h`
/// (one more `[chunk, V]` temporary while a cap is set).
///
/// # Panics
/// If the selection is empty.
#[allow(clippy::too_many_arguments)] // token_logps_backward's arguments and the cap
pub fn token_logps_backward_softcapped(
    hidden_flat: &Tensor<2>,
    head_weight: &Tensor<2>,
    head_bias: Option<&Tensor<1>>,
    selection: &TokenSelection,
    coef: &Tensor<1>,
    chunk_size: usize,
    request: GradRequest,
    softcap: Option<f64>,
) -> HeadGrads {
    assert!(
        !selection.is_empty(),
        "token_logps_backward: empty token selection"
    );
    let h = hidden_flat.clone().inner();
    let w = head_weight.clone().inner();
    let b = head_bias.map(|b| b.clone().inner());
    let coef = coef.clone().inner().cast(FloatDType::F32);
    let device = h.device();
    let dtype = h.dtype();
    let [n, hd] = h.dims();
    let (pos, tgt) = selection.tensors(&device);
    let fast = crate::fast::kernels(&device).map(|kernels| {
        let host_coef = coef
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 coefficients");
        (kernels, host_coef)
    });

    let mut sums = HeadGradSums::new(request, b.is_some(), dtype);
    for (s, e) in chunk_ranges(selection.len(), chunk_size) {
        let c = e - s;
        let hc = h.clone().select(0, pos.clone().slice_dim(0, s..e));
        let z = self::softcap(chunk_logits(hc.clone(), &w, b.as_ref()), softcap);
        // ∂z/∂u of the soft-cap, taken before the fast path overwrites z in place.
        let cap_slope = softcap.map(|cap| {
            let r = z.clone().div_scalar(cap);
            (r.clone() * r).neg().add_scalar(1.0)
        });
        // G = coef·onehot − coef·softmax
        let g = if let Some((kernels, host_coef)) = &fast {
            let [_, v] = z.dims();
            let mut g = kernels.logits_to_host(z);
            kernels.softmax_gradient_in_place(&mut g, &host_coef[s..e], &selection.targets[s..e]);
            Tensor::from_data(TensorData::new(g, [c, v]), (&device, DType::F32))
        } else {
            let lse = logsumexp(&z);
            let ck = coef.clone().slice_dim(0, s..e).reshape([c, 1]);
            let g = (z - lse).exp() * ck.clone().neg();
            g.scatter(
                1,
                tgt.clone().slice_dim(0, s..e).reshape([c, 1]),
                ck,
                IndexingUpdateOp::Add,
            )
        };
        let g = match cap_slope {
            Some(slope) => g * slope,
            None => g,
        };
        sums.add(hc, g, &w);
    }
    sums.finish([n, hd], pos)
}

/// `[1]` f32 sum of every soft-capped logit `cap · tanh((h W + b) / cap)` of the rows `h`
/// `[n, H]`, `chunk_size` rows at a time (no gradient). The logit metrics need it where a cap
/// makes the sum non-linear in `h`: one more head pass over those rows.
pub(crate) fn softcapped_logit_sum(
    rows: Tensor<2>,
    w: &Tensor<2>,
    b: Option<&Tensor<1>>,
    cap: f64,
    chunk_size: usize,
) -> Tensor<1> {
    let [n, _] = rows.dims();
    let device = rows.device();
    let mut total = Tensor::<1>::zeros([1], (&device, DType::F32));
    for (s, e) in chunk_ranges(n, chunk_size) {
        let z = softcap(
            chunk_logits(rows.clone().slice_dim(0, s..e), w, b),
            Some(cap),
        );
        total = total + z.sum();
    }
    total
}

/// Running sums of the head-input gradients over chunks (or pairs) of scored tokens.
pub(crate) struct HeadGradSums {
    request: GradRequest,
    dtype: DType,
    weight: Option<Tensor<2>>,
    bias: Option<Tensor<1>>,
    hidden_parts: Vec<Tensor<2>>,
}

impl HeadGradSums {
    /// `has_bias`: whether the head has a bias; `dtype`: the hidden states' dtype.
    pub(crate) fn new(request: GradRequest, has_bias: bool, dtype: DType) -> Self {
        Self {
            request: GradRequest {
                bias: request.bias && has_bias,
                ..request
            },
            dtype,
            weight: None,
            bias: None,
            hidden_parts: Vec::new(),
        }
    }

    /// Adds one chunk: `hc` `[c, H]` its hidden rows, `g` `[c, V]` f32
    /// `coef ⊙ (onehot − softmax)`, `w` `[H, V]`: `∂b += Σ_rows g`, `∂W += hcᵀ g`, `∂h = g Wᵀ`.
    pub(crate) fn add(&mut self, hc: Tensor<2>, g: Tensor<2>, w: &Tensor<2>) {
        self.add_parts(hc, g, w, true);
    }

    /// [`Self::add`], with `∂W` left out unless `weight` (the caller sums it elsewhere).
    pub(crate) fn add_parts(&mut self, hc: Tensor<2>, g: Tensor<2>, w: &Tensor<2>, weight: bool) {
        let [_, v] = g.dims();
        if self.request.bias {
            let gb = g.clone().sum_dim(0).reshape([v]);
            self.bias = Some(match self.bias.take() {
                Some(acc) => acc + gb,
                None => gb,
            });
        }
        let g = g.cast(self.dtype);
        if self.request.weight && weight {
            let gw = hc.transpose().matmul(g.clone());
            self.weight = Some(match self.weight.take() {
                Some(acc) => acc + gw,
                None => gw,
            });
        }
        if self.request.hidden {
            self.hidden_parts.push(g.matmul(w.clone().transpose()));
        }
    }

    /// The gradients, `∂h` `[N, H]` (`shape`) with the chunks' rows at `positions`, in the
    /// order the chunks were added.
    pub(crate) fn finish(self, shape: [usize; 2], positions: Tensor<1, Int>) -> HeadGrads {
        let device = positions.device();
        let hidden = (self.request.hidden && !self.hidden_parts.is_empty()).then(|| {
            Tensor::<2>::zeros(shape, (&device, self.dtype)).select_assign(
                0,
                positions,
                Tensor::cat(self.hidden_parts, 0),
                IndexingUpdateOp::Add,
            )
        });
        HeadGrads {
            hidden,
            weight: self.weight,
            bias: self.bias.map(|g| g.cast(self.dtype)),
        }
    }
}

/// Returns `value + ⟨x, grad⟩ − stopgrad(⟨x, grad⟩)`: numerically `value` (exactly, for a
/// finite inner product), while backward delivers `grad` to `x`.
///
/// This is how a gradient computed outside the autodiff graph (by [`token_logps_backward`])
/// re-enters it: call it once per input (hidden states, head weight, head bias). `value` is `[1]`
/// (any device kind); `x` is the tracked autodiff tensor; `grad` has the shape of `x` and may
/// live on the inner backend. If `x` is not tracked, `value` is returned unchanged. Where the
/// backend has a fast path (`crate::fast`: the CPU backend) a tracked op does the same without
/// the two passes over `x`; there the result is `value` even when `grad` holds a NaN or an infinity (the inner product would
/// make it NaN), which shows in the gradients and their norm instead.
pub fn attach_gradient<const D: usize>(
    value: Tensor<1>,
    x: &Tensor<D>,
    grad: Tensor<D>,
) -> Tensor<1> {
    if !x.is_tracked() {
        return value;
    }
    let grad = grad.inner().cast(x.dtype());
    if let Some(zero) = crate::fast::inject_gradient(x, &grad) {
        return zero + value;
    }
    let s = (x.clone() * grad).sum();
    let zero = s.clone() - s.detach();
    zero.cast(FloatDType::F32) + value
}

/// Per-row sum and count of selected-token log-probs.
#[derive(Debug, Clone)]
pub struct RowLogps {
    /// `[R]` sum of the log-probs of the row's selected tokens.
    pub sum: Tensor<1>,
    /// `[R]` number of selected tokens of the row (as f32).
    pub count: Tensor<1>,
}

impl RowLogps {
    /// `[R]` mean log-prob per row (`sum / count`; NaN for a row without tokens, like TRL).
    pub fn mean(&self) -> Tensor<1> {
        self.sum.clone() / self.count.clone()
    }
}

/// Per-row sum and count of completion-token log-probs of a causal LM, chunked (no gradient).
///
/// `hidden [R, T, H]` final hidden states, `head_weight [H, V]`, `head_bias [V]`,
/// `input_ids [R, T]`, `completion_mask [R, T]` (non-zero on the tokens to score). Labels are
/// shifted: the hidden state at `t` scores `input_ids[t + 1]`, counted when
/// `completion_mask[t + 1] != 0` (AND your attention mask into it beforehand). The mean is
/// [`RowLogps::mean`], TRL's `get_batch_logps(average_log_prob=True)`. For a differentiable
/// version, use [`token_logps_backward`] + [`attach_gradient`] as [`crate::orpo_loss`] does.
///
/// # Panics
/// On mismatched shapes or if no row has a completion token.
pub fn completion_logps(
    hidden: &Tensor<3>,
    head_weight: &Tensor<2>,
    head_bias: Option<&Tensor<1>>,
    input_ids: &Tensor<2, Int>,
    completion_mask: &Tensor<2, Int>,
    chunk_size: usize,
) -> RowLogps {
    let [r, t, h] = hidden.dims();
    assert_eq!(input_ids.dims(), [r, t], "input_ids must be [R, T]");
    assert_eq!(
        completion_mask.dims(),
        [r, t],
        "completion_mask must be [R, T]"
    );
    let ids = crate::inputs::read_i64(input_ids, "input_ids");
    let mask = crate::inputs::read_i64(completion_mask, "completion_mask");
    let mut sel = TokenSelection::default();
    let mut seg = Vec::new();
    let mut counts = vec![0f32; r];
    #[allow(clippy::needless_range_loop)] // row indexes the flat [R, T] arrays too
    for row in 0..r {
        for pos in 0..t.saturating_sub(1) {
            let j = row * t + pos + 1;
            if mask[j] != 0 {
                sel.push(row * t + pos, ids[j] as usize);
                seg.push(row);
                counts[row] += 1.0;
            }
        }
    }
    let device = hidden.clone().inner().device();
    let flat = hidden.clone().inner().reshape([r * t, h]);
    let logp = token_logps(&flat, head_weight, head_bias, &sel, chunk_size);
    let m = sel.len();
    let mut s = vec![0f32; r * m];
    for (k, &row) in seg.iter().enumerate() {
        s[row * m + k] = 1.0;
    }
    let s = Tensor::<2>::from_data(TensorData::new(s, [r, m]), (&device, DType::F32));
    RowLogps {
        sum: s.matmul(logp.reshape([m, 1])).reshape([r]),
        count: Tensor::from_data(TensorData::new(counts, [r]), (&device, DType::F32)),
    }
}
