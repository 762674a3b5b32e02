//! The one seam for a backend's fast path: "try the backend's kernels, else the tensor path".
//!
//! The loss's generic code (chunked log-probs, the per-pair single pass, gradient splicing) asks
//! [`kernels`] once per call. `Some` means the logits can be worked on in host memory by
//! [`LogitKernels`] (today: burn's CPU backend, `flex`, with this crate's `flex` feature), and
//! [`inject_gradient`] hands a precomputed gradient to the graph without a pass over it. `None`
//! (WGPU, CUDA, or a build without `flex`) keeps the portable tensor-op path. A GPU fast path
//! (fused logsumexp/softmax-gradient kernels) would implement the same trait for its device.
//!
//! This file is the only place that names a backend feature.

use burn::tensor::{Device, Tensor};

#[cfg(feature = "flex")]
mod flex;

/// Element-wise work on one chunk of `[c, V]` f32 logits held as row-major host values, plus
/// the head weight's gradient summed in place. Same maths as the tensor path (see
/// `crate::logps`), in fewer passes.
pub(crate) trait LogitKernels: Sync {
    /// The values of a `[c, V]` f32 logits tensor, row-major (free when the backend's buffer is
    /// already host memory and unique).
    fn logits_to_host(&self, z: Tensor<2>) -> Vec<f32>;

    /// `log softmax(z_i)[targets_i]` per row of host logits `z` `[c, V]` (`V = v`).
    fn target_logps(&self, z: &[f32], v: usize, targets: &[usize]) -> Vec<f32>;

    /// `G = coef ⊙ (onehot(target) − softmax(z))` per row, written over the logits
    /// (`[c, V]`, `c = coef.len()`).
    fn softmax_gradient_in_place(&self, g: &mut [f32], coef: &[f32], targets: &[usize]);

    /// `∂W += hcᵀ g` into `sum` (`[H, V]` row-major; empty before the first chunk, then filled):
    /// `hc` `[c, H]`, `g` `[c, V]`, both row-major f32.
    fn add_weight_gradient(&self, sum: &mut Vec<f32>, h: usize, v: usize, hc: &[f32], g: &[f32]);
}

/// The host kernels for tensors on `device`, or `None` where the tensor path applies.
pub(crate) fn kernels(device: &Device) -> Option<&'static dyn LogitKernels> {
    #[cfg(test)]
    if portable::only() {
        return None;
    }
    #[cfg(feature = "flex")]
    if flex::applies(device) {
        return Some(&flex::FlexKernels);
    }
    let _ = device;
    None
}

/// A `[1]` zero whose backward gives `x` the gradient `grad`, with no pass over either, when
/// the backend has such an op for these tensors; else `None` (the caller composes tensor ops).
pub(crate) fn inject_gradient<const D: usize>(
    x: &Tensor<D>,
    grad: &Tensor<D>,
) -> Option<Tensor<1>> {
    #[cfg(test)]
    if portable::only() {
        return None;
    }
    #[cfg(feature = "flex")]
    return flex::inject_gradient(x, grad);
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, grad);
        None
    }
}

/// Unit tests run the portable path on the CPU backend too: [`portable::run`] turns the fast
/// path off on the calling thread.
#[cfg(test)]
pub(crate) mod portable {
    use std::cell::Cell;

    thread_local! {
        static ONLY: Cell<bool> = const { Cell::new(false) };
    }

    pub(crate) fn only() -> bool {
        ONLY.with(Cell::get)
    }

    /// `f()` with [`super::kernels`] and [`super::inject_gradient`] answering `None`.
    pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
        ONLY.with(|c| c.set(true));
        let out = f();
        ONLY.with(|c| c.set(false));
        out
    }
}
