//! orpo-rs patch: the backward pass of `softmax(q kᵀ · scale + bias) v`, optionally with a
//! logit soft-cap (`softmax(cap · tanh(q kᵀ · scale / cap) + bias) v`, Gemma 2), fused per head.
//!
//! The patched burn-autodiff's attention op keeps only q, k and v from its forward and
//! recomputes the attention weights in backward. Built from tensor ops, that recomputation and
//! the gradient formulas make about ten passes over `[B, heads, T, S]` tensors, each freshly
//! allocated and page-faulted. Here one rayon task per `(batch, head)` keeps its `[T, S]`
//! weights and their gradient in two reused scratch buffers (2 MB at T = S = 512) and runs five
//! single-threaded gemm calls:
//!
//! ```text
//! P  = softmax(q kᵀ · scale + bias)      (recomputed, row by row)
//! ∂v = Pᵀ g
//! ∂P = g vᵀ
//! ∂S = P ⊙ (∂P − Σ_s P ⊙ ∂P) · scale
//! ∂q = ∂S k          ∂k = ∂Sᵀ q
//! ```
//!
//! With a soft-cap, the row step recomputes `t = tanh(q kᵀ · scale / cap)`, takes the softmax of
//! `cap · t + bias` and multiplies the row's score gradient by `1 − t²` (the derivative of
//! `cap · tanh(x / cap)`), keeping `1 − t²` for one row at a time in a third scratch row.
//!
//! Under a causal mask the row-wise steps (P, ∂P, ∂q) run over query blocks that stop at their
//! last visible key and the column-wise ones (∂v, ∂k) over key blocks that start at their first
//! query, skipping the masked upper triangle as the forward does.
//!
//! Grouped-query attention (fewer key/value heads than query heads) runs one task per key/value
//! head that accumulates ∂k and ∂v over its query heads, so callers need not repeat k and v.
//!
//! f32 only; [`attention_backward`] returns `None` otherwise and the caller takes the tensor-op
//! path.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};
use num_traits::Float;

use crate::ops::attention::{CAUSAL_ROW_BLOCK, broadcast_attn_mask_bias, causal_row_blocks};
use crate::ops::attention_rows::{score_grad_row_f32, softmax_row_f32};
use crate::{FlexTensor, Layout};

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` (or `+=` when `accumulate`) on one thread, any operand
/// strides (column stride, row stride); `dst` rows are `dst_rs` apart.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    (dst, dst_rs, accumulate): (&mut [f32], usize, bool),
    (lhs, lhs_cs, lhs_rs): (&[f32], isize, isize),
    (rhs, rhs_cs, rhs_rs): (&[f32], isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_rs + n);
    // SAFETY: every index the strides reach lies inside the slices (checked by the callers'
    // shapes: each operand slice is one head's contiguous matrix, offset to its block).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Gradients of `sum(g ⊙ attention(q, k, v, bias, scale, softcap))` wrt q, k and v.
///
/// Shapes: q `[B, H, T, d]`, k `[B, Hkv, S, d]`, v `[B, Hkv, S, dv]`, g `[B, H, T, dv]` with
/// `H` a multiple of `Hkv` (grouped-query attention: query head `h` uses key/value head
/// `h / (H / Hkv)`), bias broadcastable to `[B, H, T, S]` along its two leading dims. `causal`
/// masks key `j` for query `i` when `j > i + S − T` (burn's `is_causal`). `softcap` caps the
/// scaled scores at `cap · tanh(s / cap)` before the mask and the bias (as the forward kernels
/// do); it must be positive. Returns
/// `(∂q, ∂k, ∂v)` (∂k, ∂v summed over each group's query heads), or `None` when this kernel
/// does not cover the case (not f32, or inconsistent shapes).
pub fn attention_backward(
    query: FlexTensor,
    key: FlexTensor,
    value: FlexTensor,
    attn_bias: Option<FlexTensor>,
    grad: FlexTensor,
    scale: f64,
    causal: bool,
    softcap: Option<f64>,
) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
    if let Some(cap) = softcap {
        assert!(cap > 0.0, "softcap must be positive, got {cap}");
    }
    let all_f32 = [&query, &key, &value, &grad]
        .iter()
        .all(|t| t.dtype() == DType::F32)
        && attn_bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !all_f32 {
        return None;
    }
    let dims = |t: &FlexTensor| -> Option<[usize; 4]> {
        let shape = t.layout().shape();
        (shape.num_dims() == 4).then(|| [shape[0], shape[1], shape[2], shape[3]])
    };
    let [batch, heads, seq_q, head_dim] = dims(&query)?;
    let [kb, kh, seq_kv, kd] = dims(&key)?;
    let [vb, vh, vs, val_dim] = dims(&value)?;
    let [gb, gh, gs, gd] = dims(&grad)?;
    if [kb, vb, gb] != [batch; 3]
        || gh != heads
        || vh != kh
        || kh == 0
        || !heads.is_multiple_of(kh)
        || kd != head_dim
        || vs != seq_kv
        || gs != seq_q
        || gd != val_dim
    {
        return None;
    }

    if [batch, heads, seq_q, seq_kv, head_dim, val_dim].contains(&0) {
        return None;
    }
    let query = query.to_contiguous();
    let key = key.to_contiguous();
    let value = value.to_contiguous();
    let grad = grad.to_contiguous();
    let bias =
        attn_bias.map(|b| broadcast_attn_mask_bias(b, [batch, heads, seq_q, seq_kv], "bias"));
    let q_all: &[f32] = query.storage();
    let k_all: &[f32] = key.storage();
    let v_all: &[f32] = value.storage();
    let g_all: &[f32] = grad.storage();
    let bias_all: Option<&[f32]> = bias.as_ref().map(|b| b.tensor.storage());
    let (bias_batch_step, bias_head_step) = bias
        .as_ref()
        .map_or((0, 0), |b| (b.batch_step, b.head_step));

    let (q_len, k_len, v_len) = (seq_q * head_dim, seq_kv * head_dim, seq_kv * val_dim);
    let g_len = seq_q * val_dim;
    let tile = seq_q * seq_kv;
    let (kv_heads, groups) = (kh, heads / kh);
    let mut grad_q = vec![0f32; batch * heads * q_len];
    let mut grad_k = vec![0f32; batch * kv_heads * k_len];
    let mut grad_v = vec![0f32; batch * kv_heads * v_len];
    let scale = scale as f32;
    let softcap = softcap.map(|cap| cap as f32);
    let (t, s_len, d, dv) = (seq_q, seq_kv, head_dim, val_dim);
    let offset = causal.then_some(seq_kv as isize - seq_q as isize);

    // One task per key/value head: its query heads one after the other (their ∂q rows are
    // contiguous), ∂k and ∂v accumulated over them.
    let run_group =
        |scratch: &mut (Vec<f32>, Vec<f32>, Vec<f32>),
         (unit, ((dq_group, dk), dvv)): (usize, ((&mut [f32], &mut [f32]), &mut [f32]))| {
            let (p, dp, cap_grad) = scratch;
            let k = &k_all[unit * k_len..][..k_len];
            let v = &v_all[unit * v_len..][..v_len];
            let (si, di, dvi) = (s_len as isize, d as isize, dv as isize);
            for (j, dq) in dq_group.chunks_exact_mut(q_len).enumerate() {
                let pair = unit * groups + j; // (batch, query head) index
                let accumulate = j > 0;
                let q = &q_all[pair * q_len..][..q_len];
                let g = &g_all[pair * g_len..][..g_len];
                let (b, h) = (pair / heads, pair % heads);
                let bias =
                    bias_all.map(|all| &all[b * bias_batch_step + h * bias_head_step..][..tile]);
                // Row blocks: P = softmax(q kᵀ · scale + bias) (recomputed), ∂P = g vᵀ,
                // ∂S = P ⊙ (∂P − Σ_s P ⊙ ∂P) · scale (over ∂P), ∂q = ∂S k. Rows r0..r1 see keys
                // 0..cols; the columns past `cols` are zeroed so the key blocks below may read them.
                for (r0, r1, cols) in causal_row_blocks(t, s_len, offset) {
                    let rows = r1 - r0;
                    let (p_rows, dp_rows) = (
                        &mut p[r0 * s_len..r1 * s_len],
                        &mut dp[r0 * s_len..r1 * s_len],
                    );
                    // (kᵀ[c, j] = k[j, c], vᵀ likewise.)
                    gemm_f32(
                        rows,
                        cols,
                        d,
                        (p_rows, s_len, false),
                        (&q[r0 * d..], 1, di),
                        (k, di, 1),
                    );
                    gemm_f32(
                        rows,
                        cols,
                        dv,
                        (dp_rows, s_len, false),
                        (&g[r0 * dv..], 1, dvi),
                        (v, dvi, 1),
                    );
                    for (i, (p_row, dp_row)) in p_rows
                        .chunks_exact_mut(s_len)
                        .zip(dp_rows.chunks_exact_mut(s_len))
                        .enumerate()
                    {
                        let qi = r0 + i;
                        // Keys this row may see: all of them, or those up to `qi + offset`.
                        let seen = offset.map_or(cols, |o| {
                            (qi as isize + o + 1).clamp(0, cols as isize) as usize
                        });
                        // P over the whole row (zero past `seen`), then ∂S over the seen keys.
                        let bias_row = bias.map(|b| &b[qi * s_len..(qi + 1) * s_len]);
                        match softcap {
                            None => {
                                softmax_row_f32(p_row, bias_row, scale, seen);
                                dp_row[seen..].fill(0.0);
                                score_grad_row_f32(&p_row[..seen], &mut dp_row[..seen], scale);
                            }
                            Some(cap) => {
                                // c = cap · t with t = tanh(s · scale / cap), as the forward
                                // rounds it; 1 − t² is ∂c/∂(s · scale).
                                for (x, dc) in p_row[..seen].iter_mut().zip(cap_grad.iter_mut()) {
                                    let t = Float::tanh(*x * scale / cap);
                                    *dc = 1.0 - t * t;
                                    *x = cap * t;
                                }
                                softmax_row_f32(p_row, bias_row, 1.0, seen);
                                dp_row[seen..].fill(0.0);
                                score_grad_row_f32(&p_row[..seen], &mut dp_row[..seen], scale);
                                for (x, &dc) in dp_row[..seen].iter_mut().zip(cap_grad.iter()) {
                                    *x *= dc;
                                }
                            }
                        }
                    }
                    if cols > 0 {
                        gemm_f32(
                            rows,
                            d,
                            cols,
                            (&mut dq[r0 * d..], d, false),
                            (&dp[r0 * s_len..], 1, si),
                            (k, 1, di),
                        );
                    }
                }
                // Key blocks: ∂v = Pᵀ g and ∂k = ∂Sᵀ q, over the queries that see the block (Pᵀ[j, i] =
                // P[i, j]); the rows above `first` are masked for every key of the block.
                for (c0, c1, first) in causal_key_blocks(t, s_len, offset) {
                    let (cols, rows) = (c1 - c0, t - first);
                    let at = first * s_len + c0;
                    gemm_f32(
                        cols,
                        dv,
                        rows,
                        (&mut dvv[c0 * dv..], dv, accumulate),
                        (&p[at..], si, 1),
                        (&g[first * dv..], 1, dvi),
                    );
                    gemm_f32(
                        cols,
                        d,
                        rows,
                        (&mut dk[c0 * d..], d, accumulate),
                        (&dp[at..], si, 1),
                        (&q[first * d..], 1, di),
                    );
                }
            }
        };

    let cap_row = if softcap.is_some() { seq_kv } else { 0 };
    let new_scratch = || (vec![0f32; tile], vec![0f32; tile], vec![0f32; cap_row]);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let outputs = grad_q
            .par_chunks_mut(groups * q_len)
            .zip(grad_k.par_chunks_mut(k_len))
            .zip(grad_v.par_chunks_mut(v_len));
        outputs
            .enumerate()
            .for_each_init(new_scratch, |scratch, item| run_group(scratch, item));
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut scratch = new_scratch();
        let outputs = grad_q
            .chunks_mut(groups * q_len)
            .zip(grad_k.chunks_mut(k_len))
            .zip(grad_v.chunks_mut(v_len));
        outputs
            .enumerate()
            .for_each(|item| run_group(&mut scratch, item));
    }

    let tensor = |data: Vec<f32>, shape: [usize; 4]| {
        FlexTensor::new(
            Bytes::from_elems(data),
            Layout::contiguous(Shape::from(shape.to_vec())),
            DType::F32,
        )
    };
    Some((
        tensor(grad_q, [batch, heads, seq_q, head_dim]),
        tensor(grad_k, [batch, kv_heads, seq_kv, head_dim]),
        tensor(grad_v, [batch, kv_heads, seq_kv, val_dim]),
    ))
}

/// The key blocks `(c0, c1, first)` of a `[T, S]` score matrix with the first query row that
/// sees any key of `c0..c1` (row `i` sees key `j` when `j ≤ i + offset`): blocks of
/// [`CAUSAL_ROW_BLOCK`] keys under a causal mask, one block `(0, S, 0)` without. Blocks no
/// query sees are left out (their gradients stay zero).
fn causal_key_blocks(
    seq_q: usize,
    seq_kv: usize,
    causal_offset: Option<isize>,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let block = match causal_offset {
        Some(_) => CAUSAL_ROW_BLOCK,
        None => seq_kv.max(1),
    };
    (0..seq_kv)
        .step_by(block)
        .map(move |c0| {
            let c1 = (c0 + block).min(seq_kv);
            let first = causal_offset.map_or(0, |o| (c0 as isize - o).max(0) as usize);
            (c0, c1, first)
        })
        .filter(move |&(_, _, first)| first < seq_q)
}
