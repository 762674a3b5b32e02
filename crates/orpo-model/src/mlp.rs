//! The SwiGLU feed-forward block of the Llama family.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

/// `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[H, I]`.
    pub gate_proj: Linear,
    /// `[H, I]`.
    pub up_proj: Linear,
    /// `[I, H]`.
    pub down_proj: Linear,
}

impl Mlp {
    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
