//! orpo-rs patch: the backward pass of `softmax(q kᵀ · scale + bias) v`, fused per head.
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
//! f32 only, and q, k and v must have the same number of heads; [`attention_backward`] returns
//! `None` otherwise and the caller takes the tensor-op path.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::ops::attention::broadcast_attn_mask_bias;
use crate::{FlexTensor, Layout};

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` on one thread, any strides (column stride, row stride).
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    (lhs, lhs_cs, lhs_rs): (&[f32], isize, isize),
    (rhs, rhs_cs, rhs_rs): (&[f32], isize, isize),
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: every index the strides reach lies inside the slices (checked by the callers'
    // shapes: each operand slice is one head's contiguous matrix).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Gradients of `sum(g ⊙ attention(q, k, v, bias, scale))` wrt q, k and v.
///
/// Shapes: q `[B, H, T, d]`, k `[B, H, S, d]`, v `[B, H, S, dv]`, g `[B, H, T, dv]`, bias
/// broadcastable to `[B, H, T, S]` along its two leading dims. Returns `(∂q, ∂k, ∂v)`, or `None`
/// when this kernel does not cover the case (not f32, or grouped heads).
pub fn attention_backward(
    query: FlexTensor,
    key: FlexTensor,
    value: FlexTensor,
    attn_bias: Option<FlexTensor>,
    grad: FlexTensor,
    scale: f64,
) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
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
        || [kh, vh, gh] != [heads; 3]
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
    let bias = attn_bias
        .map(|b| broadcast_attn_mask_bias(b, [batch, heads, seq_q, seq_kv], "bias"));
    let q_all: &[f32] = query.storage();
    let k_all: &[f32] = key.storage();
    let v_all: &[f32] = value.storage();
    let g_all: &[f32] = grad.storage();
    let bias_all: Option<&[f32]> = bias.as_ref().map(|b| b.tensor.storage());
    let (bias_batch_step, bias_head_step) =
        bias.as_ref().map_or((0, 0), |b| (b.batch_step, b.head_step));

    let (q_len, k_len, v_len) = (seq_q * head_dim, seq_kv * head_dim, seq_kv * val_dim);
    let g_len = seq_q * val_dim;
    let tile = seq_q * seq_kv;
    let pairs = batch * heads;
    let mut grad_q = vec![0f32; pairs * q_len];
    let mut grad_k = vec![0f32; pairs * k_len];
    let mut grad_v = vec![0f32; pairs * v_len];
    let scale = scale as f32;
    let (t, s_len, d, dv) = (seq_q, seq_kv, head_dim, val_dim);

    let run_pair = |scratch: &mut (Vec<f32>, Vec<f32>),
                    (pair, ((dq, dk), dvv)): (usize, ((&mut [f32], &mut [f32]), &mut [f32]))| {
        let (p, dp) = scratch;
        let q = &q_all[pair * q_len..][..q_len];
        let k = &k_all[pair * k_len..][..k_len];
        let v = &v_all[pair * v_len..][..v_len];
        let g = &g_all[pair * g_len..][..g_len];
        let (b, h) = (pair / heads, pair % heads);
        let bias = bias_all.map(|all| &all[b * bias_batch_step + h * bias_head_step..][..tile]);

        // P = softmax(q kᵀ · scale + bias), row by row. (kᵀ[c, j] = k[j, c].)
        gemm_f32(t, s_len, d, p, (q, 1, d as isize), (k, d as isize, 1));
        for (i, row) in p.chunks_exact_mut(s_len).enumerate() {
            match bias {
                Some(bias) => {
                    for (x, &bv) in row.iter_mut().zip(&bias[i * s_len..][..s_len]) {
                        *x = *x * scale + bv;
                    }
                }
                None => row.iter_mut().for_each(|x| *x *= scale),
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                row.fill(0.0); // a fully masked row attends to nothing
                continue;
            }
            let mut sum = 0f32;
            for x in row.iter_mut() {
                *x = crate::ops::unary::exp_f32(*x - max);
                sum += *x;
            }
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|x| *x *= inv);
        }
        // ∂v = Pᵀ g   (Pᵀ[j, i] = P[i, j])
        gemm_f32(s_len, dv, t, dvv, (p, s_len as isize, 1), (g, 1, dv as isize));
        // ∂P = g vᵀ
        gemm_f32(t, s_len, dv, dp, (g, 1, dv as isize), (v, dv as isize, 1));
        // ∂S = P ⊙ (∂P − Σ_s P ⊙ ∂P) · scale, over ∂P
        for (p_row, dp_row) in p.chunks_exact(s_len).zip(dp.chunks_exact_mut(s_len)) {
            let dot: f32 = p_row.iter().zip(dp_row.iter()).map(|(a, b)| a * b).sum();
            for (x, &pv) in dp_row.iter_mut().zip(p_row) {
                *x = pv * (*x - dot) * scale;
            }
        }
        // ∂q = ∂S k ; ∂k = ∂Sᵀ q
        gemm_f32(t, d, s_len, dq, (dp, 1, s_len as isize), (k, 1, d as isize));
        gemm_f32(s_len, d, t, dk, (dp, s_len as isize, 1), (q, 1, d as isize));
    };

    let new_scratch = || (vec![0f32; tile], vec![0f32; tile]);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let outputs = grad_q
            .par_chunks_mut(q_len)
            .zip(grad_k.par_chunks_mut(k_len))
            .zip(grad_v.par_chunks_mut(v_len));
        outputs
            .enumerate()
            .for_each_init(new_scratch, |scratch, item| run_pair(scratch, item));
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut scratch = new_scratch();
        let outputs = grad_q
            .chunks_mut(q_len)
            .zip(grad_k.chunks_mut(k_len))
            .zip(grad_v.chunks_mut(v_len));
        outputs
            .enumerate()
            .for_each(|item| run_pair(&mut scratch, item));
    }

    let tensor = |data: Vec<f32>, last: [usize; 2]| {
        FlexTensor::new(
            Bytes::from_elems(data),
            Layout::contiguous(Shape::from(vec![batch, heads, last[0], last[1]])),
            DType::F32,
        )
    };
    Some((
        tensor(grad_q, [seq_q, head_dim]),
        tensor(grad_k, [seq_kv, head_dim]),
        tensor(grad_v, [seq_kv, val_dim]),
    ))
}
