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
    softmax_gradient_in_place(&mut g, coef, targets);
    let v = g.len() / coef.len();
    Tensor::from_data(TensorData::new(g, [coef.len(), v]), (device, DType::F32))
}

/// [`softmax_gradient_tensor`]'s values, in place: logits `[c, V]` → `g`.
pub(crate) fn softmax_gradient_in_place(g: &mut [f32], coef: &[f32], targets: &[usize]) {
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

/// `∂W = Σ hcᵀ g` over chunks, `[H, V]` row-major in host memory, each chunk added by one gemm
/// that reads and updates the sum: no `[H, V]` product per chunk (113 MB at SmolLM2's head,
/// held next to the running sum at the loss phase's peak).
pub(crate) struct HostWeightGrad {
    h: usize,
    v: usize,
    /// Empty until the first chunk.
    values: Vec<f32>,
}

impl HostWeightGrad {
    pub(crate) fn new(h: usize, v: usize) -> Self {
        Self {
            h,
            v,
            values: Vec::new(),
        }
    }

    /// `∂W += hcᵀ g` for `hc` `[c, H]` and `g` `[c, V]`, both row-major.
    pub(crate) fn add(&mut self, hc: &[f32], g: &[f32]) {
        let (h, v) = (self.h, self.v);
        assert!(h > 0 && v > 0, "a [H, V] head");
        let c = hc.len() / h;
        assert!(
            hc.len() == c * h && g.len() == c * v,
            "hc is [c, H] and g is [c, V]"
        );
        let first = self.values.is_empty();
        if first {
            self.values.reserve_exact(h * v);
        }
        let parallelism = gemm::Parallelism::Rayon(rayon::current_num_threads());
        // SAFETY: dst is `h · v` f32 (row stride v, column stride 1), lhs `hcᵀ` reads `hc` as
        // `[H, c]` (row stride 1, column stride H), rhs `g` as `[c, V]`; all within their
        // slices. On the first chunk dst is uninitialised capacity and `read_dst = false`:
        // gemm then writes every element without reading any (k = 0 included).
        unsafe {
            gemm::gemm(
                h,
                v,
                c,
                self.values.as_mut_ptr(),
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
                self.values.set_len(h * v);
            }
        }
    }

    /// The sum as a `[H, V]` f32 tensor (`None` before any chunk).
    pub(crate) fn into_tensor(self, device: &Device) -> Option<Tensor<2>> {
        (!self.values.is_empty()).then(|| {
            Tensor::from_data(
                TensorData::new(self.values, [self.h, self.v]),
                (device, DType::F32),
            )
        })
    }
}
