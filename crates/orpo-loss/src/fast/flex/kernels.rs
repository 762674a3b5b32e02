//! Host-memory kernels for the per-chunk passes over `[c, V]` logits, on burn's CPU backend
//! (`flex`).
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

use burn::tensor::Tensor;
use rayon::prelude::*;

/// `[c, V]` f32 tensor → its row-major values.
pub(super) fn into_host(z: Tensor<2>) -> Vec<f32> {
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

/// `log softmax(z)[target]` per row of host logits `[c, V]` (row-major, `V = v`), which it
/// leaves as they are.
pub(super) fn rows_target_logps(z: &[f32], v: usize, targets: &[usize]) -> Vec<f32> {
    assert_eq!(z.len(), targets.len() * v, "one target per logits row");
    z.par_chunks(v)
        .zip(targets.par_iter())
        .map(|(row, &t)| row[t] - row_logsumexp(row))
        .collect()
}

/// `G = coef ⊙ (onehot(target) − softmax(z))` per row, in place: logits `[c, V]` → `g`.
pub(super) fn softmax_gradient_in_place(g: &mut [f32], coef: &[f32], targets: &[usize]) {
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
}

/// `∂W += hcᵀ g` into `sum` (`[H, V]` row-major) by one gemm that reads and updates it: no
/// `[H, V]` product per chunk (113 MB at SmolLM2's head, held next to the running sum at the loss
/// phase's peak). An empty `sum` is the first chunk: gemm writes it without reading.
pub(super) fn add_weight_gradient(sum: &mut Vec<f32>, h: usize, v: usize, hc: &[f32], g: &[f32]) {
    assert!(h > 0 && v > 0, "a [H, V] head");
    let c = hc.len() / h;
    assert!(
        hc.len() == c * h && g.len() == c * v,
        "hc is [c, H] and g is [c, V]"
    );
    let first = sum.is_empty();
    if first {
        sum.reserve_exact(h * v);
    } else {
        assert_eq!(sum.len(), h * v, "the running ∂W is [H, V]");
    }
    let parallelism = gemm::Parallelism::Rayon(rayon::current_num_threads());
    // SAFETY: dst is `h · v` f32 (row stride v, column stride 1), lhs `hcᵀ` reads `hc` as
    // `[H, c]` (row stride 1, column stride H), rhs `g` as `[c, V]`; all within their slices.
    // On the first chunk dst is uninitialised capacity and `read_dst = false`: gemm then writes
    // every element without reading any (k = 0 included).
    unsafe {
        gemm::gemm(
            h,
            v,
            c,
            sum.as_mut_ptr(),
            1,
            v as isize,
            !first,
            hc.as_ptr(),
            h as isize,
            1,
            g.as_ptr(),
            1,
            v as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        if first {
            sum.set_len(h * v);
        }
    }
}
