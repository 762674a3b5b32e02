//! One pass over the LM head per preference pair instead of two per chunk, on the CPU backend.
//!
//! The odds-ratio gradient of pair `i` depends only on that pair's `lc_i` and `lr_i`, and the
//! NLL weight `1/N` is known before any logit is computed. So once a pair's logits are computed
//! (chosen and rejected rows together, `M_i` scored tokens), its log-probs give `∂loss/∂logp`
//! for every one of its tokens, and the same logits turn into `G = coef ⊙ (onehot − softmax)` in
//! place: three `[M_i, H] × [H, V]`-sized matmuls per pair instead of four per chunk (no second
//! logits pass), and one `∂W` accumulation per pair instead of one per chunk.
//!
//! It holds one pair's `[M_i, V]` f32 logits at a time, so it runs only when every pair has at
//! most `2 · chunk_size` scored tokens (about the two-pass path's own peak of two to three chunk
//! temporaries); otherwise [`crate::orpo_loss`] keeps the two-pass path.

use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::Plan;
use crate::host::{logits_to_host, rows_target_logps, softmax_gradient_in_place};
use crate::logps::{GradRequest, HeadGradSums, HeadGrads, chunk_logits};
use crate::odds_ratio::odds_ratio_loss_grads;

/// Per-token log-probs `[M]` (in `plan.sel` order) and the head-input gradients.
pub(crate) struct PairwiseOutput {
    pub logp: Tensor<1>,
    pub grads: HeadGrads,
}

/// Runs the single-pass loss when it applies (see the module docs), else `None`.
///
/// `hidden_flat [N, H]`, `w [H, V]`, `bias [V]` on the inner device; `pairs` = B;
/// `or_scale = β · pair_scale` as [`odds_ratio_loss_grads`] takes it for the whole batch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn logps_and_grads(
    hidden_flat: &Tensor<2>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    plan: &Plan,
    pairs: usize,
    or_scale: f64,
    tau: f64,
    chunk_size: usize,
    request: GradRequest,
) -> Option<PairwiseOutput> {
    let device = hidden_flat.device();
    if !crate::logps::on_host(&device) {
        return None;
    }
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
        let z = logits_to_host(chunk_logits(hc.clone(), w, bias));
        let logp = rows_target_logps(&z, v, &targets);

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
        // The batch's mean over pairs is a sum of per-pair terms scaled by 1/B.
        let (d_lc, d_lr) = odds_ratio_loss_grads(lc, lr, or_scale / pairs as f64, tau);
        let d_row = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().expect("f32")[0];
        let (d_lc, d_lr) = (d_row(d_lc), d_row(d_lr));

        // ∂loss/∂logp_k = ∂loss/∂l_row · seg[row, k] − nll_w[k]
        let coef: Vec<f32> = ks
            .iter()
            .map(|&k| {
                let row = plan.tok_row[k];
                let d = if row == chosen { d_lc } else { d_lr };
                d * plan.seg[row * m + k] - plan.nll_w[k]
            })
            .collect();
        for (j, &k) in ks.iter().enumerate() {
            logp_all[k] = logp[j];
        }
        let mut g = z;
        softmax_gradient_in_place(&mut g, &coef, &targets);
        sums.add_from_host(hc, g, w);
        grad_h_positions.extend(positions);
    }
    let count = grad_h_positions.len();
    let pos = Tensor::<1, Int>::from_data(TensorData::new(grad_h_positions, [count]), &device);
    Some(PairwiseOutput {
        logp: Tensor::from_data(TensorData::new(logp_all, [m]), f32_opts),
        grads: sums.finish([n, hd], pos),
    })
}
