//! The loss driver: the token plan, the head passes (chunked, or one per pair where the backend
//! has host kernels), the objective, the NLL, the metrics, and the gradients spliced into the
//! caller's graph.

use burn::tensor::{DType, FloatDType, Tensor, TensorData};

use crate::inputs::{HostInputs, HostInputsBuf, LossDenominators, OrpoInputs};
use crate::logps::{
    GradRequest, attach_gradient, softcapped_logit_sum, token_logps_backward_softcapped,
    token_logps_softcapped,
};
use crate::metrics::{MetricTensors, OrpoMetricTensors};
use crate::plan::Plan;
use crate::{OrpoLossConfig, pairwise};

/// What [`preference_loss`] returns.
#[derive(Debug, Clone)]
pub struct PreferenceOutput {
    /// `[1]` the loss `w · nll_loss + Σ ℓ_i / P`; differentiable wrt `hidden`, `head_weight` and
    /// `head_bias` when those are tracked, f32.
    pub loss: Tensor<1>,
    /// Detached `[1]` metric tensors under TRL's names: always this batch's own means, whatever
    /// [`LossDenominators`] the loss was divided by.
    pub metrics: MetricTensors,
    /// Tokens of this batch in the NLL term (the denominator of the `nll_loss` metric).
    pub nll_tokens: usize,
    /// Pairs `B` of this batch (the denominator of the pair metrics).
    pub pairs: usize,
}

/// What [`orpo_loss`] returns.
#[derive(Debug, Clone)]
pub struct OrpoOutput {
    /// `[1]` the loss `nll_loss − λ·mean(ratio)`; differentiable wrt `hidden`, `head_weight`
    /// and `head_bias` when those are tracked, f32.
    pub loss: Tensor<1>,
    /// Detached `[1]` metric tensors (TRL's names via [`OrpoMetricTensors::to_metrics`]):
    /// always this batch's own means, whatever [`LossDenominators`] the loss was divided by.
    pub metrics: OrpoMetricTensors,
    /// Tokens of this batch in the NLL term (the denominator of `metrics.nll_loss`).
    pub nll_tokens: usize,
    /// Pairs `B` of this batch (the denominator of the odds-ratio mean and the pair metrics).
    pub pairs: usize,
}

/// The ORPO loss and TRL's metrics from the final hidden states and the LM head.
///
/// Shapes: `hidden [2B, T, H]` (post final norm: the input of the LM head), `head_weight
/// [H, V]` (`logits = hidden · head_weight + head_bias`), `head_bias [V]`, `inputs` `[2B, T]`.
/// Labels are shifted by one (the hidden state at `t` predicts token `t + 1`). Never holds the
/// `[2B, T, V]` logits: see the crate docs for the algorithm and its peak memory. Gradients are
/// produced for whichever of `hidden`, `head_weight`, `head_bias` are tracked by autodiff; with
/// none tracked (evaluation), the gradient pass is skipped.
///
/// Reads the three `[2B, T]` input tensors to the host once (to list the scored positions);
/// [`preference_loss`] takes them from the host directly. A row without completion tokens gives
/// NaN (as TRL's 0/0); `orpo-data` drops such rows.
///
/// # Panics
/// On inconsistent shapes, an odd number of rows, `T < 2`, an invalid config, a config whose
/// `loss_type` is not ORPO, or a batch with no scored token at all.
pub fn orpo_loss(
    hidden: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
    inputs: &OrpoInputs,
    config: &OrpoLossConfig,
) -> OrpoOutput {
    orpo_loss_with_denominators(
        hidden,
        head_weight,
        head_bias,
        inputs,
        config,
        LossDenominators::default(),
    )
}

/// [`orpo_loss`] with the NLL sum divided by `denominators.nll_tokens` and the odds-ratio sum by
/// `denominators.pairs` instead of this batch's own counts: the loss of one micro-batch of a
/// larger batch, such that the micro-batch losses and gradients add up to the larger batch's
/// (see [`LossDenominators`]). The metrics stay this batch's own means; `nll_tokens` and `pairs`
/// of the output give the weights to combine them.
///
/// # Panics
/// As [`orpo_loss`], and when a denominator is below this batch's own count.
pub fn orpo_loss_with_denominators(
    hidden: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
    inputs: &OrpoInputs,
    config: &OrpoLossConfig,
    denominators: LossDenominators,
) -> OrpoOutput {
    assert_eq!(
        config.loss_type,
        crate::LossType::Orpo,
        "orpo-loss: orpo_loss needs loss_type orpo; use preference_loss for other objectives"
    );
    let host = HostInputsBuf::read(inputs);
    let out = preference_loss(
        hidden,
        head_weight,
        head_bias,
        host.view(),
        config,
        denominators,
    );
    OrpoOutput {
        loss: out.loss,
        metrics: OrpoMetricTensors::from_named(&out.metrics),
        nll_tokens: out.nll_tokens,
        pairs: out.pairs,
    }
}

/// The loss of `config`'s objective ([`OrpoLossConfig::objective`]: ORPO or SimPO) and TRL's
/// metrics, from the final hidden states, the LM head and the batch's tokens in host memory.
///
/// Shapes and semantics as [`orpo_loss`]; the loss is `w · Σ nll / N + Σ_i ℓ_i / P` with the
/// objective's NLL weight `w` and per-pair loss `ℓ_i`, `N` and `P` this batch's counts unless
/// `denominators` gives the step's (gradient accumulation).
///
/// # Panics
/// As [`orpo_loss_with_denominators`].
pub fn preference_loss(
    hidden: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Option<Tensor<1>>,
    inputs: HostInputs<'_>,
    config: &OrpoLossConfig,
    denominators: LossDenominators,
) -> PreferenceOutput {
    if let Err(e) = config.validate() {
        panic!("orpo-loss: invalid config: {e}");
    }
    let objective = config.objective();
    let [rows, t, h] = hidden.dims();
    let [hw, v] = head_weight.dims();
    assert_eq!(h, hw, "orpo-loss: hidden size {h} != head_weight rows {hw}");
    if let Some(b) = &head_bias {
        assert_eq!(b.dims(), [v], "orpo-loss: head_bias must be [V] = [{v}]");
    }
    assert!(
        rows >= 2 && rows % 2 == 0,
        "orpo-loss: need 2B rows, got {rows}"
    );
    assert!(t >= 2, "orpo-loss: need at least 2 positions, got T = {t}");
    assert_eq!(
        inputs.shape,
        [rows, t],
        "orpo-loss: the inputs must be [{rows}, {t}]"
    );
    for (name, m) in [
        ("input_ids", inputs.input_ids),
        ("attention_mask", inputs.attention_mask),
        ("completion_mask", inputs.completion_mask),
    ] {
        assert_eq!(
            m.len(),
            rows * t,
            "orpo-loss: {name} must hold {rows} × {t} values"
        );
    }
    let b = rows / 2;
    let p = Plan::new(
        inputs,
        config.nll_on_completion_only,
        denominators.nll_tokens,
    );
    let pairs_denominator = match denominators.pairs {
        Some(pairs) => {
            assert!(
                pairs >= b,
                "orpo-loss: pair denominator {pairs} is below this batch's {b} pairs"
            );
            pairs
        }
        None => b,
    };
    let pair_weight = 1.0 / pairs_denominator as f64;
    let nll_weight = objective.nll_weight();
    assert!(
        !p.sel.is_empty(),
        "orpo-loss: no token to score in this batch"
    );
    let m = p.sel.len();

    let hid = hidden.clone().inner();
    let w = head_weight.clone().inner();
    let bias = head_bias.clone().map(|b| b.inner());
    let device = hid.device();
    let f32_opts = (&device, DType::F32);
    let flat = hid.clone().reshape([rows * t, h]);

    let request = GradRequest {
        hidden: hidden.is_tracked(),
        weight: head_weight.is_tracked(),
        bias: head_bias.as_ref().is_some_and(|b| b.is_tracked()),
    };
    let wants_grads = request.hidden || request.weight || request.bias;
    let softcap = config.logit_softcap;
    // Where the backend has host kernels, one head pass per pair gives log-probs and gradients
    // together (for raw logits: a soft-capped head takes the chunked passes below).
    let mut single_pass = (wants_grads && softcap.is_none())
        .then(|| {
            pairwise::logps_and_grads(
                &flat,
                &w,
                bias.as_ref(),
                &p,
                objective.as_ref(),
                pair_weight,
                config.chunk_size,
                request,
            )
        })
        .flatten();

    // Pass 1 (no grad): per-token log-probs → lc, lr, NLL.
    let logp = match &single_pass {
        Some(out) => out.logp.clone(),
        None => {
            token_logps_softcapped(&flat, &w, bias.as_ref(), &p.sel, config.chunk_size, softcap)
        }
    };
    let seg = Tensor::<2>::from_data(TensorData::new(p.seg, [rows, m]), f32_opts);
    let empty = Tensor::<1>::from_data(TensorData::new(p.empty_rows, [rows]), f32_opts);
    let nll_w = Tensor::<1>::from_data(TensorData::new(p.nll_w, [m]), f32_opts);
    let row_logps = seg
        .clone()
        .matmul(logp.clone().reshape([m, 1]))
        .reshape([rows])
        + empty;
    let lc = row_logps.clone().slice_dim(0, 0..b);
    let lr = row_logps.slice_dim(0, b..rows);
    // Σ nll / N: TRL's token mean when N is this batch's count (0/0 = NaN as TRL without any
    // NLL token); the metric is always this batch's own mean.
    let nan_if_no_nll = if p.nll_denominator == 0 {
        f32::NAN
    } else {
        0.0
    };
    let nll = (nll_w.clone() * logp).sum().neg().add_scalar(nan_if_no_nll);
    let nll_mean = if nll_weight == 0.0 {
        // An objective without an NLL term logs 0, as TRL's CPOTrainer does.
        Tensor::<1>::zeros([1], f32_opts)
    } else if p.nll_denominator == p.n_nll {
        nll.clone()
    } else if p.n_nll == 0 {
        nll.clone().add_scalar(f32::NAN)
    } else {
        nll.clone()
            .mul_scalar(p.nll_denominator as f64 / p.n_nll as f64)
    };

    let terms = objective.terms(lc.clone(), lr.clone());
    let pair_term = terms.loss.clone().sum().mul_scalar(pair_weight);
    let value = match nll_weight {
        0.0 => pair_term,
        1.0 => nll + pair_term,
        w => nll.mul_scalar(w) + pair_term,
    };

    // Metrics (detached, inner device). The logit means use Σ_v (h·W + b)_v = h·(W 1) + Σ b,
    // over positions 0..T−1 of each half (TRL's ORPO: logits[:, :-1, :]; CPO: every position),
    // without any [.., V] tensor. [H, 1] = W · 1 as a matrix-vector product: the head weight is
    // often a transposed view (tied embeddings), which a `sum_dim` would walk element by element.
    let ones = Tensor::<2>::ones([v, 1], f32_opts);
    let w_rowsum = w.clone().cast(FloatDType::F32).matmul(ones);
    let bias_mean = bias
        .as_ref()
        .map(|b| b.clone().cast(FloatDType::F32).mean());
    let positions = if objective.logits_metric_includes_last_position() {
        t
    } else {
        t - 1
    };
    let logits_mean = |range: core::ops::Range<usize>| {
        let n = (range.len() * positions * v) as f64;
        if let Some(cap) = softcap {
            // tanh is not linear: every logit of those positions, one more head pass.
            let rows = hid
                .clone()
                .slice([range.clone(), 0..positions])
                .reshape([range.len() * positions, h]);
            return softcapped_logit_sum(rows, &w, bias.as_ref(), cap, config.chunk_size)
                .div_scalar(n);
        }
        let hs = hid
            .clone()
            .slice([range, 0..positions])
            .cast(FloatDType::F32)
            .sum_dims(&[0, 1])
            .reshape([1, h]);
        let mean = hs.matmul(w_rowsum.clone()).reshape([1]).div_scalar(n);
        match &bias_mean {
            Some(bm) => mean + bm.clone(),
            None => mean,
        }
    };
    let scale = objective.reward_scale();
    let rc = lc.clone().mul_scalar(scale);
    let rr = lr.clone().mul_scalar(scale);
    let mut metrics = vec![
        ("rewards/chosen", rc.clone().mean()),
        ("rewards/rejected", rr.clone().mean()),
        (
            "rewards/accuracies",
            rc.clone().greater(rr.clone()).float().mean(),
        ),
        ("rewards/margins", (rc - rr).mean()),
        ("logps/chosen", lc.clone().mean()),
        ("logps/rejected", lr.clone().mean()),
        ("logits/chosen", logits_mean(0..b)),
        ("logits/rejected", logits_mean(b..rows)),
        ("nll_loss", nll_mean),
    ];
    metrics.extend(terms.metrics);

    // Pass 2: gradients, only for what the caller tracks.
    let mut loss = value.clone();
    if wants_grads {
        let grads = match single_pass.take() {
            Some(out) => out.grads,
            None => {
                let d_rows = Tensor::cat(vec![terms.d_chosen, terms.d_rejected], 0)
                    .mul_scalar(pair_weight)
                    .reshape([1, rows]);
                // ∂loss/∂logp_k = Σ_r ∂loss/∂l_r · seg[r, k] − w · nll_w[k]
                let coef = d_rows.matmul(seg).reshape([m]) - nll_w.mul_scalar(nll_weight);
                token_logps_backward_softcapped(
                    &flat,
                    &w,
                    bias.as_ref(),
                    &p.sel,
                    &coef,
                    config.chunk_size,
                    request,
                    softcap,
                )
            }
        };
        if let Some(g) = grads.hidden {
            loss = attach_gradient(loss, &hidden, g.reshape([rows, t, h]));
        }
        if let Some(g) = grads.weight {
            loss = attach_gradient(loss, &head_weight, g);
        }
        if let (Some(g), Some(bias_t)) = (grads.bias, head_bias.as_ref()) {
            loss = attach_gradient(loss, bias_t, g);
        }
    } else if let Some(strategy) = hidden.gradient_checkpointing_strategy() {
        loss = loss
            .autodiff()
            .with_gradient_checkpointing_strategy(strategy);
    }
    PreferenceOutput {
        loss,
        metrics: MetricTensors(metrics),
        nll_tokens: p.n_nll,
        pairs: b,
    }
}

#[cfg(test)]
mod tests {
    //! The portable tensor path (what WGPU and CUDA run) against the TRL fixtures, on the CPU
    //! backend with the fast path turned off; the fast path's own parity is `tests/parity.rs`.

    use burn::tensor::{Device, Tensor, TensorData};
    use serde_json::Value;

    use super::*;

    fn values(v: &Value, out: &mut Vec<f64>, shape: &mut Vec<usize>, depth: usize) {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len());
                }
                items
                    .iter()
                    .for_each(|it| values(it, out, shape, depth + 1));
            }
            other => out.push(other.as_f64().expect("a number")),
        }
    }

    fn array(v: &Value) -> (Vec<f64>, Vec<usize>) {
        let (mut out, mut shape) = (Vec::new(), Vec::new());
        values(v, &mut out, &mut shape, 0);
        (out, shape)
    }

    fn float<const D: usize>(v: &Value, device: &Device) -> Tensor<D> {
        let (data, shape) = array(v);
        let data: Vec<f32> = data.into_iter().map(|x| x as f32).collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    fn max_rel_diff(got: Tensor<2>, want: &Value) -> f64 {
        let got: Vec<f64> = got.into_data().convert::<f64>().try_to_vec().unwrap();
        let (want, _) = array(want);
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1e-12f64, |m, x| m.max(x.abs()));
        got.iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / scale)
            .fold(0.0, f64::max)
    }

    fn portable_case(file: &str, config: OrpoLossConfig) {
        let path = format!(
            "{}/../../tests/fixtures/loss/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let device = Device::flex().autodiff();
        let hidden = float::<3>(&doc["hidden"], &device).require_grad();
        let weight = float::<2>(&doc["head_weight"], &device).require_grad();
        let ints =
            |key: &str| -> Vec<i64> { array(&doc[key]).0.iter().map(|&x| x as i64).collect() };
        let (ids, att, comp) = (
            ints("input_ids"),
            ints("attention_mask"),
            ints("completion_mask"),
        );
        let [rows, t, h] = hidden.dims();
        let inputs = HostInputs {
            input_ids: &ids,
            attention_mask: &att,
            completion_mask: &comp,
            shape: [rows, t],
        };
        let out = crate::fast::portable::run(|| {
            preference_loss(
                hidden.clone(),
                weight.clone(),
                None,
                inputs,
                &config,
                LossDenominators::default(),
            )
        });
        let loss = out.loss.clone().into_scalar::<f32>() as f64;
        let want = doc["loss"].as_f64().unwrap();
        assert!(
            (loss - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{file}: loss {loss} vs {want}"
        );
        for (name, got) in out.metrics.to_named() {
            let want = doc["metrics"][name].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{file}: {name} {got} vs {want}"
            );
        }
        let grads = crate::fast::portable::run(|| out.loss.backward());
        let gh = hidden.grad(&grads).unwrap().reshape([rows * t, h]);
        assert!(
            max_rel_diff(gh, &doc["grad_hidden"]) <= 1e-4,
            "{file}: grad_hidden"
        );
        let gw = weight.grad(&grads).unwrap();
        assert!(
            max_rel_diff(gw, &doc["grad_head_weight"]) <= 1e-4,
            "{file}: grad_head_weight"
        );
    }

    #[test]
    fn portable_path_matches_trl_orpo_and_simpo() {
        portable_case(
            "trl_beta0.1.json",
            OrpoLossConfig::default().with_chunk_size(5),
        );
        portable_case(
            "simpo_beta0.1_cpo_alpha1.json",
            OrpoLossConfig::simpo(0.1, 0.5, 1.0).with_chunk_size(5),
        );
        portable_case(
            "simpo_beta2_gamma1.json",
            OrpoLossConfig::simpo(2.0, 1.0, 0.0).with_chunk_size(4),
        );
    }
}
