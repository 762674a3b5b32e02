//! The SwiGLU feed-forward block of the Llama family.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::config::Activation;
use crate::fused::{geglu_tanh, swiglu};
use crate::lora;

/// `down(silu(gate(x)) · up(x))`, applied to all positions as one `[B·T, H]` matrix.
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
    /// Whether gate and up carry one fused adapter (Phi-3's `gate_up_proj`): `gate_proj`'s `A`
    /// serves both ([`lora::forward_fused`]).
    #[module(skip)]
    pub fused_lora: bool,
    /// The gate's activation (SwiGLU or Gemma's tanh GeGLU).
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// `[N, H]` → `[N, H]` for `N` positions (all of a batch's positions as one matrix).
    ///
    /// Position-wise projections run as one `[N, H] × [H, I]` product each: burn's `Linear` on
    /// a 3-d input is a batched matmul against the broadcast weight, whose backward runs one
    /// small product per sequence and sums the weight gradient; one large GEMM each way is what
    /// the CPU backends tile well (about 2× faster on the demo model).
    pub fn forward(&self, rows: Tensor<2>) -> Tensor<2> {
        let p = self.lora_dropout;
        // A fused LoRA (Phi-3's `gate_up_proj`) shares its `A` between gate and up.
        let [gate, up] =
            lora::forward_fused([&self.gate_proj, &self.up_proj], rows, p, self.fused_lora);
        let hidden = match self.activation {
            Activation::Silu => swiglu(gate, up),
            Activation::GeluTanh => geglu_tanh(gate, up),
        };
        lora::forward(&self.down_proj, hidden, p)
    }
}
