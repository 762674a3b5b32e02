//! PEFT's LoRA forward on a burn `Linear` whose weight carries a [`LoraAdapter`](burn::module::LoraAdapter).

use burn::nn::Linear;
use burn::tensor::module::linear;
use burn::tensor::{Distribution, Tensor};

/// `x·W + b` of `linear`, plus `scale · (dropout(x)·A)·B` when its weight carries an adapter
/// (PEFT's LoRA forward); without an adapter, `linear.forward(x)`. `dropout` applies only on an
/// autodiff device (training); the base weight `W` is used as stored, never merged. Every
/// projection of the decoder goes through here.
pub fn forward<const D: usize>(linear_layer: &Linear, x: Tensor<D>, dropout: f64) -> Tensor<D> {
    let Some(adapter) = linear_layer.weight.adapter() else {
        return linear_layer.forward(x);
    };
    let bias = linear_layer.bias.as_ref().map(|b| b.val());
    let base = linear(x.clone(), linear_layer.weight.base(), bias);
    let down = if dropout > 0.0 && x.device().is_autodiff() {
        // Inverted dropout with a boolean mask (what autodiff keeps for the backward pass is
        // 1 byte per element, not a float mask), the 1/(1 − p) applied to the `[rows, r]`
        // product rather than to `x`.
        let drop = x.random_like(Distribution::Default).lower_elem(dropout);
        linear(x.mask_fill(drop, 0.0), adapter.a.val(), None).mul_scalar(1.0 / (1.0 - dropout))
    } else {
        linear(x, adapter.a.val(), None)
    };
    base + linear(down, adapter.b.val(), None).mul_scalar(adapter.scale)
}
