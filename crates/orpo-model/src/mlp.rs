//! The SwiGLU feed-forward block of the Llama family.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::fused::swiglu;
use crate::lora;

/// `down(silu(gate(x)) · up(x))`, applied to all positions as one `[B·T, H]` matrix (see
/// [`crate::positions`]).
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[H, I]`.
    pub gate_proj: Linear,
    /// `[H, I]`.
    pub up_proj: Linear,
    /// `[I, H]`.
    pub down_proj: Linear,
    /// Dropout on the input of LoRA adapters while training (0 without adapters).
    #[module(skip)]
    pub lora_dropout: f64,
}

impl Mlp {
    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq, width] = x.dims();
        let rows = x.reshape([batch * seq, width]);
        let p = self.lora_dropout;
        let gate = lora::forward(&self.gate_proj, rows.clone(), p);
        let up = lora::forward(&self.up_proj, rows, p);
        let out = lora::forward(&self.down_proj, swiglu(gate, up), p);
        out.reshape([batch, seq, width])
    }
}
