//! Host-memory kernels for the two per-chunk passes over `[c, V]` logits, used when the tensors
//! live on burn's CPU backend (`flex`).
//!
//! The tensor path spends six to eight full passes over each chunk (max, subtract, exp, sum,
//! log, gather; for the gradient also exp, scale and scatter), most of them writing a fresh
//! `[c, V]` tensor (100 MB at `c = 512`, `V = 49 152`) that the kernel then page-faults in. Here
//! each row is read two or three times in cache-sized pieces, one rayon task per block of rows,
//! and the gradient overwrites the logits in place. Same maths, f32 values; the row sums of
//! `exp` accumulate in f64, so `logsumexp` is at least as accurate as the tensor path's.
//!
//! Moving the logits between the tensor and a `Vec<f32>` costs nothing on `flex`: a unique,
//! contiguous tensor hands over its buffer.

use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Whether `device` keeps tensors in host memory, so that these kernels apply.
pub(crate) fn applies(device: &Device) -> bool {
    *device == Device::flex()
}

/// `[c, V]` f32 tensor → its row-major values.
fn into_host(z: Tensor<2>) -> Vec<f32> {
    z.into_data()
        .try_into_vec::<f32>()
        .unwrap_or_else(|e| panic!("orpo-loss: cannot read f32 logits: {e:?}"))
}

/// `(max, Σ exp(x − max))` of one row; NaN propagates through the sum. (Vectorised, with an
/// `exp` within 1 ulp of the exact value: `orpo_kernels`.)
fn max_and_sum_exp(row: &[f32]) -> (f32, f64) {
    let max = orpo_kernels::row_max(row);
    (max, orpo_kernels::exp_shifted_sum(row, max))
}

/// `log Σ_v exp(z_v)` of one row, max-shifted.
fn row_logsumexp(row: &[f32]) -> f32 {
    let (max, sum) = max_and_sum_exp(row);
    sum.ln() as f32 + max
}

/// `log softmax(z)[target]` per row: `z` `[c, V]` f32 logits, `targets` `c` vocabulary ids →
/// `c` log-probabilities.
pub(crate) fn target_logps(z: Tensor<2>, targets: &[usize]) -> Vec<f32> {
    let [_, v] = z.dims();
    rows_target_logps(&into_host(z), v, targets)
}

/// [`target_logps`] on host logits `[c, V]` (row-major, `V = v`), which it leaves as they are.
pub(crate) fn rows_target_logps(z: &[f32], v: usize, targets: &[usize]) -> Vec<f32> {
    assert_eq!(z.len(), targets.len() * v, "one target per logits row");
    z.par_chunks(v)
        .zip(targets.par_iter())
        .map(|(row, &t)| row[t] - row_logsumexp(row))
        .collect()
}

/// `[c, V]` f32 logits tensor → host values, for [`rows_target_logps`] and
/// [`softmax_gradient_tensor`].
pub(crate) fn logits_to_host(z: Tensor<2>) -> Vec<f32> {
    into_host(z)
}

/// `G = coef ⊙ (onehot(target) − softmax(z))` per row, written over the logits: `z` `[c, V]`
/// f32, `coef` and `targets` of length `c` → `[c, V]` f32 on `z`'s device.
pub(crate) fn softmax_gradient(z: Tensor<2>, coef: &[f32], targets: &[usize]) -> Tensor<2> {
    let device = z.device();
    softmax_gradient_tensor(into_host(z), coef, targets, &device)
}

/// [`softmax_gradient`] from host logits `[c, V]`, `c = coef.len()`.
pub(crate) fn softmax_gradient_tensor(
    mut g: Vec<f32>,
    coef: &[f32],
    targets: &[usize],
    device: &Device,
) -> Tensor<2> {
    let c = coef.len();
    assert_eq!(targets.len(), c, "one target per logits row");
    assert!(c > 0 && g.len().is_multiple_of(c), "logits are [c, V]");
    let v = g.len() / c;
    g.par_chunks_mut(v).enumerate().for_each(|(i, row)| {
        // softmax = exp(z − max) / Σ exp(z − max): one exp per element, the row (≈ 200 KB at
        // V = 49 152) stays in L2 between its passes.
        let max = orpo_kernels::row_max(row);
        let sum = orpo_kernels::exp_shifted_in_place(row, max);
        let scale = -coef[i] / sum as f32;
        for x in row.iter_mut() {
            *x *= scale;
        }
        row[targets[i]] += coef[i];
    });
    Tensor::from_data(TensorData::new(g, [c, v]), (device, DType::F32))
}
