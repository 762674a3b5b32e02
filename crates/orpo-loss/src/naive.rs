//! An unchunked reference implementation of the ORPO loss, for tests and benchmarks.

use burn::tensor::activation::log_softmax;
use burn::tensor::{FloatDType, Tensor};

use crate::{OrpoInputs, OrpoLossConfig, odds_ratio_loss};

/// The ORPO loss computed the straightforward way: full `[2B, T, V]` logits, `log_softmax`,
/// gather, masked means, all under autodiff. Same semantics and shapes as
/// [`crate::orpo_loss`] (returns only the `[1]` loss). It holds several `[2B, T, V]` tensors:
/// use it to check [`crate::orpo_loss`] or to measure what chunking saves, not to train.
pub fn naive_orpo_loss(
    hidden: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
    inputs: &OrpoInputs,
    config: &OrpoLossConfig,
) -> Tensor<1> {
    let [rows, t, _] = hidden.dims();
    let b = rows / 2;
    let mut logits = hidden.matmul(head_weight.unsqueeze_dim::<3>(0));
    if let Some(bias) = head_bias {
        logits = logits + bias.unsqueeze_dims::<3>(&[0, 1]);
    }
    let mut logits = logits.cast(FloatDType::F32);
    if let Some(cap) = config.logit_softcap {
        logits = logits.div_scalar(cap).tanh().mul_scalar(cap);
    }
    let logp = log_softmax(logits.slice([0..rows, 0..t - 1]), 2);
    let targets = inputs
        .input_ids
        .clone()
        .slice([0..rows, 1..t])
        .unsqueeze_dim::<3>(2);
    let lp = logp.gather(2, targets).squeeze_dim::<2>(2); // [2B, T−1]
    let att = inputs
        .attention_mask
        .clone()
        .slice([0..rows, 1..t])
        .not_equal_elem(0)
        .float();
    let comp = inputs
        .completion_mask
        .clone()
        .slice([0..rows, 1..t])
        .not_equal_elem(0)
        .float()
        * att.clone();
    let row_mean = (lp.clone() * comp.clone()).sum_dim(1) / comp.clone().sum_dim(1);
    let row_mean = row_mean.reshape([rows]);
    let lc = row_mean.clone().slice_dim(0, 0..b);
    let lr = row_mean.slice_dim(0, b..rows);
    let nll_mask = if config.nll_on_completion_only {
        comp
    } else {
        att
    }
    .slice([0..b, 0..t - 1]);
    let nll = (lp.slice([0..b, 0..t - 1]) * nll_mask.clone()).sum().neg() / nll_mask.sum();
    nll + odds_ratio_loss(lc, lr, config.beta, config.orpo_beta).loss
}
