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

/// The linear layers `parts` of one projection that Hugging Face stores fused (Phi-3's
/// `qkv_proj` = `[q; k; v]` rows, `gate_up_proj` = `[gate; up]`), applied to the same `x`.
///
/// PEFT puts one LoRA on the fused weight: `A` `[r, in]`, `B` `[Σ out, r]`. Split, that is one
/// `A` shared by the parts and `B` sliced by output rows. With `shared` (the layer's
/// `fused_lora`), `dropout(x)·A` is computed once from the first part's `a` (one dropout mask
/// and one gradient for `A`, summed over the parts, as PEFT's; the other parts' copies of `a`
/// are unused, so they get no gradient and never train) and each part adds
/// `scale · down·B_part`. Otherwise each part runs [`forward`].
pub fn forward_fused<const D: usize, const N: usize>(
    parts: [&Linear; N],
    x: Tensor<D>,
    dropout: f64,
    shared: bool,
) -> [Tensor<D>; N] {
    let first = parts[0].weight.adapter();
    let Some(first) =
        first.filter(|_| shared && parts.iter().all(|l| l.weight.adapter().is_some()))
    else {
        return parts.map(|l| forward(l, x.clone(), dropout));
    };
    let down = if dropout > 0.0 && x.device().is_autodiff() {
        let drop = x.random_like(Distribution::Default).lower_elem(dropout);
        linear(x.clone().mask_fill(drop, 0.0), first.a.val(), None)
            .mul_scalar(1.0 / (1.0 - dropout))
    } else {
        linear(x.clone(), first.a.val(), None)
    };
    parts.map(|l| {
        let adapter = l.weight.adapter().expect("checked above");
        let bias = l.bias.as_ref().map(|b| b.val());
        linear(x.clone(), l.weight.base(), bias)
            + linear(down.clone(), adapter.b.val(), None).mul_scalar(adapter.scale)
    })
}
