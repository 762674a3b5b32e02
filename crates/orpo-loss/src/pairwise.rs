//! One pass over the LM head per preference pair instead of two per chunk, where the backend
//! has host kernels for the logits (`crate::fast`).
//!
//! The objective's gradient of pair `i` depends only on that pair's `lc_i` and `lr_i`, and the
//! NLL weight `1/N` is known before any logit is computed. So once a pair's logits are computed
//! (chosen and rejected rows together, `M_i` scored tokens), its log-probs give `∂loss/∂logp`
//! for every one of its tokens, and the same logits turn into `G = coef ⊙ (onehot − softmax)` in
//! place: three `[M_i, H] × [H, V]`-sized matmuls per pair instead of four per chunk (no second
//! logits pass), and one `∂W` accumulation per pair instead of one per chunk.
//!
//! It holds one pair's `[M_i, V]` f32 logits at a time, so it runs only when every pair has at
//! most `2 · chunk_size` scored tokens (about the two-pass path's own peak of two to three chunk
//! temporaries); otherwise [`crate::preference_loss`] keeps the two-pass path. The head weight's
//! gradient is summed in host memory in place (f32 heads), one gemm per pair.

use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::logps::{GradRequest, HeadGradSums, HeadGrads, chunk_logits};
use crate::objective::PreferenceObjective;
use crate::plan::Plan;

/// Per-token log-probs `[M]` (in `plan.sel` order) and the head-input gradients.
pub(crate) struct PairwiseOutput {
    pub logp: Tensor<1>,
    pub grads: HeadGrads,
}

/// Runs the single-pass loss when it applies (see the module docs), else `None`.
///
/// `hidden_flat [N, H]`, `w [H, V]`, `bias [V]` on the inner device; `pair_weight` = 1/P, the
/// weight of each pair's objective term in the loss.
#[allow(clippy::too_many_arguments)]
pub(crate) fn logps_and_grads(
    hidden_flat: &Tensor<2>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    plan: &Plan,
    objective: &dyn PreferenceObjective,
    pair_weight: f64,
    chunk_size: usize,
    request: GradRequest,
) -> Option<PairwiseOutput> {
    let device = hidden_flat.device();
    let kernels = crate::fast::kernels(&device)?;
    let pairs = plan.empty_rows.len() / 2;
    let nll_weight = objective.nll_weight() as f32;
    let m = plan.sel.len();
    // Token indices of each pair: rows i (chosen) and B + i (rejected).
    let mut members = vec![Vec::new(); pairs];
    for (k, &row) in plan.tok_row.iter().enumerate() {
        members[row % pairs].push(k);
    }
    if members.iter().any(|ks| ks.len() > 2 * chunk_size.max(1)) {
        return None;
    }
    let [n, hd] = hidden_flat.dims();
    let [_, v] = w.dims();
    let dtype = hidden_flat.dtype();
    let f32_opts = (&device, DType::F32);

    let mut logp_all = vec![0f32; m];
    let mut sums = HeadGradSums::new(request, bias.is_some(), dtype);
    // ∂W summed on the host (f32 heads): one in-place gemm per pair, no [H, V] product per pair.
    let weight_on_host = request.weight && dtype == DType::F32;
    let mut host_weight: Vec<f32> = Vec::new();
    let mut grad_h_positions: Vec<i64> = Vec::with_capacity(m);
    for (pair, ks) in members.iter().enumerate() {
        if ks.is_empty() {
            continue;
        }
        let c = ks.len();
        let positions: Vec<i64> = ks.iter().map(|&k| plan.sel.positions[k] as i64).collect();
        let targets: Vec<usize> = ks.iter().map(|&k| plan.sel.targets[k]).collect();
        let pos = Tensor::<1, Int>::from_data(TensorData::new(positions.clone(), [c]), &device);
        let hc = hidden_flat.clone().select(0, pos);
        let z = kernels.logits_to_host(chunk_logits(hc.clone(), w, bias));
        let logp = kernels.target_logps(&z, v, &targets);

        // lc, lr of this pair (NaN for a row without completion tokens, as TRL's 0/0).
        let row_mean = |row: usize| -> f32 {
            let mut sum = 0f32;
            let mut any = false;
            for (j, &k) in ks.iter().enumerate() {
                let weight = plan.seg[row * m + k];
                if plan.tok_row[k] == row && weight != 0.0 {
                    sum += weight * logp[j];
                    any = true;
                }
            }
            if any { sum } else { f32::NAN }
        };
        let (chosen, rejected) = (pair, pairs + pair);
        let lc = Tensor::<1>::from_data(TensorData::new(vec![row_mean(chosen)], [1]), f32_opts);
        let lr = Tensor::<1>::from_data(TensorData::new(vec![row_mean(rejected)], [1]), f32_opts);
        // The loss holds each pair's term times 1/P.
        let terms = objective.terms(lc, lr);
        let d_row = |t: Tensor<1>| {
            t.mul_scalar(pair_weight)
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32")[0]
        };
        let (d_lc, d_lr) = (d_row(terms.d_chosen), d_row(terms.d_rejected));

        // ∂loss/∂logp_k = ∂loss/∂l_row · seg[row, k] − w · nll_w[k]
        let coef: Vec<f32> = ks
            .iter()
            .map(|&k| {
                let row = plan.tok_row[k];
                let d = if row == chosen { d_lc } else { d_lr };
                d * plan.seg[row * m + k] - nll_weight * plan.nll_w[k]
            })
            .collect();
        for (j, &k) in ks.iter().enumerate() {
            logp_all[k] = logp[j];
        }
        let mut g = z;
        kernels.softmax_gradient_in_place(&mut g, &coef, &targets);
        if weight_on_host {
            let hc_values = hc
                .clone()
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32 hidden rows");
            kernels.add_weight_gradient(&mut host_weight, hd, v, &hc_values, &g);
        }
        let g = Tensor::from_data(TensorData::new(g, [c, v]), f32_opts);
        sums.add_parts(hc, g, w, !weight_on_host);
        grad_h_positions.extend(positions);
    }
    let count = grad_h_positions.len();
    let pos = Tensor::<1, Int>::from_data(TensorData::new(grad_h_positions, [count]), &device);
    let mut grads = sums.finish([n, hd], pos);
    if weight_on_host && !host_weight.is_empty() {
        grads.weight = Some(Tensor::from_data(
            TensorData::new(host_weight, [hd, v]),
            f32_opts,
        ));
    }
    Some(PairwiseOutput {
        logp: Tensor::from_data(TensorData::new(logp_all, [m]), f32_opts),
        grads,
    })
}
