//! Fused forms of the decoder's element-wise blocks: SwiGLU `silu(gate) ⊙ up`, RMSNorm and the
//! rotary position embedding.
//!
//! Built from tensor ops, autodiff keeps every intermediate of these blocks for backward and
//! backward makes one pass per op: SwiGLU keeps four `[rows, I]` tensors per layer (gate, its
//! sigmoid, its silu, up) and backward makes about eight passes; RMSNorm keeps its input and
//! the normalised input and makes about six. As single tracked ops they keep their inputs only
//! and run forward and backward in one pass each (two for RMSNorm's backward, which reduces the
//! weight's gradient over rows):
//!
//! ```text
//! swiglu:   s = σ(gate)                ∂up = g ⊙ gate ⊙ s     ∂gate = g ⊙ up ⊙ s ⊙ (1 + gate ⊙ (1 − s))
//! rms_norm: r = (mean(x²) + ε)^-½      y = γ ⊙ x·r            ∂x = r·(g ⊙ γ) − x·r³·mean(g ⊙ γ ⊙ x)
//!                                                             ∂γ = Σ_rows g ⊙ x·r
//! rope:     y = a·(x ⊙ cos + rotate_half(x) ⊙ sin)              ∂x = a·(g ⊙ cos + rotate_halfᵀ(g ⊙ sin))
//! ```
//!
//! RoPE as tensor ops makes about seven passes forward (two slices, a negation, a concatenation,
//! two products, a sum, the scale) and as many backward; fused it is one pass each way, keeps
//! nothing but the `[T, d]` tables (it is linear in `x`), and writes q and k straight into the
//! `[B, heads, T, d]` layout attention reads, from the projections' `[B, T, heads, d]` view.
//!
//! They are a burn backend extension implemented for the `flex` CPU backend, with and without
//! autodiff (this crate's `flex` feature, on by default). The functions here take them for f32
//! tensors on a flex device and compose tensor ops everywhere else, so the other backends and
//! dtypes compute exactly what they did before.

#[cfg(feature = "flex")]
mod flex;

use burn::nn::RmsNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
#[cfg(feature = "flex")]
use burn::tensor::{DType, Device};

/// `silu(gate) ⊙ up` for `gate`, `up` of the same shape.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if fusable(&[&gate, &up]) && gate.dims() == up.dims() {
        return flex::swiglu(gate, up);
    }
    silu(gate) * up
}

/// `norm.forward(x)`: `x / √(mean(x²) + ε) ⊙ γ` over the last axis of `x` `[.., H]`.
pub fn rms_norm<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    {
        let gamma = norm.gamma.val();
        let width_matches = x.dims()[D - 1] == gamma.dims()[0];
        if fusable(&[&x]) && gamma.dtype() == DType::F32 && width_matches {
            return flex::rms_norm(x, gamma, norm.epsilon);
        }
    }
    norm.forward(x)
}

/// [`rms_norm`] with the weight `γ + offset` (Gemma's `x̂ · (1 + w)`: `offset` 1); `offset` 0 is
/// [`rms_norm`]. The sum is a tracked op, so `γ` gets the gradient.
pub fn rms_norm_offset<const D: usize>(norm: &RmsNorm, x: Tensor<D>, offset: f64) -> Tensor<D> {
    if offset == 0.0 {
        return rms_norm(norm, x);
    }
    let gamma = norm.gamma.val().add_scalar(offset);
    #[cfg(feature = "flex")]
    {
        let width_matches = x.dims()[D - 1] == gamma.dims()[0];
        if fusable(&[&x]) && gamma.dtype() == DType::F32 && width_matches {
            return flex::rms_norm(x, gamma, norm.epsilon);
        }
    }
    // transformers' Gemma norm: x / √(mean(x²) + ε) · (1 + w), in the input's dtype here.
    let rms = x
        .clone()
        .square()
        .mean_dim(D - 1)
        .add_scalar(norm.epsilon)
        .sqrt();
    (x / rms) * gamma.unsqueeze::<D>()
}

/// `gelu_tanh(gate) ⊙ up` (GeGLU with transformers' `gelu_pytorch_tanh`:
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`), as tensor ops.
pub fn geglu_tanh<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    let inner = (gate.clone() + gate.clone().powi_scalar(3).mul_scalar(0.044715))
        .mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    gate.mul_scalar(0.5) * (inner.tanh().add_scalar(1.0)) * up
}

/// `(x ⊙ cos + rotate_half(x) ⊙ sin) · scale` for `x` `[B, heads, T, d]` and the tables
/// `[T, d]`, `rotate_half([x1, x2]) = [−x2, x1]` (see [`crate::rope`]).
pub fn rope(x: Tensor<4>, cos: Tensor<2>, sin: Tensor<2>, scale: f64) -> Tensor<4> {
    #[cfg(feature = "flex")]
    {
        let [_, _, seq, dim] = x.dims();
        let tables_match = cos.dims() == [seq, dim] && sin.dims() == [seq, dim];
        if fusable(&[&x]) && fusable(&[&cos, &sin]) && tables_match && dim % 2 == 0 {
            return flex::rope(x, cos, sin, scale);
        }
    }
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let rotated = x * cos.unsqueeze::<4>() + rotated * sin.unsqueeze::<4>();
    if scale == 1.0 {
        rotated
    } else {
        rotated.mul_scalar(scale)
    }
}

/// Whether `t` takes the CPU backend's fused paths: f32 on flex (with or without autodiff).
pub(crate) fn runs_fused<const D: usize>(t: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    {
        fusable(&[t])
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = t;
        false
    }
}

/// Whether every tensor is f32 on the flex backend (with or without autodiff).
#[cfg(feature = "flex")]
fn fusable<const D: usize>(tensors: &[&Tensor<D>]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().inner() == Device::flex())
}
