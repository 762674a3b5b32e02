//! The token plan of a batch: which positions the loss scores, against which target, and with
//! which weights in the per-row means and the NLL. Built once per batch from host-side masks.

use crate::inputs::{HostInputs, token_role};
use crate::logps::TokenSelection;

/// How the loss, per token, sees the batch.
pub(crate) struct Plan {
    /// The scored positions (`M` of them) and their targets.
    pub sel: TokenSelection,
    /// `[2B, M]` row-major: `1/count_r` where token `k` is a completion token of row `r`.
    pub seg: Vec<f32>,
    /// `[2B]` NaN for a row without completion tokens (TRL's 0/0), else 0.
    pub empty_rows: Vec<f32>,
    /// `[M]` `1/nll_denominator` on the NLL tokens.
    pub nll_w: Vec<f32>,
    /// `[M]` the row of each scored token.
    pub tok_row: Vec<usize>,
    /// This batch's NLL tokens.
    pub n_nll: usize,
    /// What the NLL sum is divided by: `n_nll` unless the caller gave a denominator.
    pub nll_denominator: usize,
}

impl Plan {
    /// The plan of `inputs` (`[2B, T]`), the NLL over the completion only when
    /// `nll_on_completion_only`, its sum divided by `nll_denominator` (default: this batch's
    /// NLL tokens).
    ///
    /// # Panics
    /// On a negative scored id or a denominator below this batch's NLL tokens.
    pub fn new(
        inputs: HostInputs<'_>,
        nll_on_completion_only: bool,
        nll_denominator: Option<usize>,
    ) -> Self {
        let [rows, t] = inputs.shape;
        let (ids, att, comp) = (
            inputs.input_ids,
            inputs.attention_mask,
            inputs.completion_mask,
        );
        let b = rows / 2;
        let mut sel = TokenSelection::default();
        let mut tok_row = Vec::new();
        let mut tok_comp = Vec::new();
        let mut tok_nll = Vec::new();
        let mut counts = vec![0usize; rows];
        let mut n_nll = 0usize;
        #[allow(clippy::needless_range_loop)] // r is a row index into three flat arrays
        for r in 0..rows {
            for pos in 0..t - 1 {
                let j = r * t + pos + 1;
                let (is_comp, is_nll) = token_role(r, b, att[j], comp[j], nll_on_completion_only);
                if is_comp || is_nll {
                    let id = ids[j];
                    assert!(
                        id >= 0,
                        "orpo-loss: negative input id {id} at row {r}, position {}",
                        pos + 1
                    );
                    sel.push(r * t + pos, id as usize);
                    tok_row.push(r);
                    tok_comp.push(is_comp);
                    tok_nll.push(is_nll);
                    counts[r] += is_comp as usize;
                    n_nll += is_nll as usize;
                }
            }
        }
        let m = sel.len();
        let nll_denominator = match nll_denominator {
            Some(n) => {
                assert!(
                    n >= n_nll,
                    "orpo-loss: NLL denominator {n} is below this batch's {n_nll} NLL tokens"
                );
                n
            }
            None => n_nll,
        };
        let mut seg = vec![0f32; rows * m];
        let mut nll_w = vec![0f32; m];
        for k in 0..m {
            if tok_comp[k] {
                seg[tok_row[k] * m + k] = 1.0 / counts[tok_row[k]] as f32;
            }
            if tok_nll[k] {
                nll_w[k] = 1.0 / nll_denominator as f32;
            }
        }
        let empty_rows = counts
            .iter()
            .map(|&c| if c == 0 { f32::NAN } else { 0.0 })
            .collect();
        Self {
            sel,
            seg,
            empty_rows,
            nll_w,
            tok_row,
            n_nll,
            nll_denominator,
        }
    }
}
