//! Rotary position embeddings in transformers' half-split ("rotate_half") layout.
//!
//! Hugging Face Llama, Mistral and Qwen2 rotate the pair `(x[i], x[i + d/2])`, unlike
//! `burn::nn::RotaryEncoding`, which rotates interleaved pairs `(x[2i], x[2i+1])`. Using the
//! half-split layout lets checkpoints load without permuting the q/k projection weights.

use burn::tensor::{Device, Tensor, TensorData};

/// The cos/sin tables for a run of positions, each `[T, head_dim]`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    /// `cos(pos · inv_freq)`, the frequencies repeated twice along the last axis.
    pub cos: Tensor<2>,
    /// `sin(pos · inv_freq)`, same layout.
    pub sin: Tensor<2>,
}

/// Builds the cos/sin tables for positions `start..start + len`, in f32 as transformers does.
pub fn rope_tables(inv_freq: &[f32], start: usize, len: usize, device: &Device) -> RopeTables {
    rope_tables_scaled(inv_freq, start, len, 1.0, device)
}

/// [`rope_tables`] with cos and sin multiplied by `attention_factor` (LongRoPE's, f32 as
/// transformers' `emb.cos() * attention_scaling`).
pub fn rope_tables_scaled(
    inv_freq: &[f32],
    start: usize,
    len: usize,
    attention_factor: f32,
    device: &Device,
) -> RopeTables {
    let half = inv_freq.len();
    let dim = half * 2;
    let mut cos = Vec::with_capacity(len * dim);
    let mut sin = Vec::with_capacity(len * dim);
    for pos in start..start + len {
        let angles: Vec<f32> = inv_freq.iter().map(|f| f * pos as f32).collect();
        for _ in 0..2 {
            cos.extend(angles.iter().map(|a| a.cos() * attention_factor));
            sin.extend(angles.iter().map(|a| a.sin() * attention_factor));
        }
    }
    RopeTables {
        cos: Tensor::from_data(TensorData::new(cos, [len, dim]), device),
        sin: Tensor::from_data(TensorData::new(sin, [len, dim]), device),
    }
}

/// Rotates `x` `[B, heads, T, head_dim]` by the tables `[T, head_dim]` and multiplies by `scale`:
/// `(x · cos + rotate_half(x) · sin) · scale` with `rotate_half([x1, x2]) = [−x2, x1]`.
///
/// `scale` lets attention fold its `1/√d` into the rotation of q (a fused pass on the CPU
/// backend, [`crate::fused::rope`]).
pub fn apply_rope(x: Tensor<4>, tables: &RopeTables, scale: f64) -> Tensor<4> {
    crate::fused::rope(x, tables.cos.clone(), tables.sin.clone(), scale)
}

/// [`apply_rope`] on the first `tables`-width dimensions of each head of `x`
/// `[B, heads, T, head_dim]` (partial rotary, Phi-4-mini), the rest passed through; all of it
/// multiplied by `scale`.
pub fn apply_partial_rope(x: Tensor<4>, tables: &RopeTables, scale: f64) -> Tensor<4> {
    let [.., dim] = x.dims();
    let rotary = tables.cos.dims()[1];
    if rotary == dim {
        return apply_rope(x, tables, scale);
    }
    let rotated = apply_rope(x.clone().narrow(3, 0, rotary), tables, scale);
    let pass = x.narrow(3, rotary, dim - rotary);
    let pass = if scale == 1.0 {
        pass
    } else {
        pass.mul_scalar(scale)
    };
    Tensor::cat(vec![rotated, pass], 3)
}
