//! The token side of a batch (ids and masks, on the device or in host memory) and the
//! denominators that make micro-batches add up to one batch.

use burn::tensor::{Int, Tensor};

/// The token inputs of one ORPO batch of `2B` rows: rows `0..B` are prompt+chosen, rows
/// `B..2B` prompt+rejected (same order of pairs), all padded to the same length `T`.
#[derive(Debug, Clone)]
pub struct OrpoInputs {
    /// `[2B, T]` token ids (pad positions may hold any valid id).
    pub input_ids: Tensor<2, Int>,
    /// `[2B, T]` 1 on real tokens, 0 on padding.
    pub attention_mask: Tensor<2, Int>,
    /// `[2B, T]` 1 on completion tokens (TRL: `labels != -100`), 0 on prompt and padding.
    pub completion_mask: Tensor<2, Int>,
}

/// The same token inputs in host memory, `[2B, T]` row-major: what the loss reads to plan its
/// passes. A trainer that collates on the host hands these over directly, so the masks never go
/// to the device and back ([`crate::preference_loss`]).
#[derive(Debug, Clone, Copy)]
pub struct HostInputs<'a> {
    /// `[2B, T]` token ids.
    pub input_ids: &'a [i64],
    /// `[2B, T]` 1 on real tokens, 0 on padding.
    pub attention_mask: &'a [i64],
    /// `[2B, T]` 1 on completion tokens, 0 on prompt and padding.
    pub completion_mask: &'a [i64],
    /// `[2B, T]`.
    pub shape: [usize; 2],
}

/// [`OrpoInputs`] read back to the host (owned), for callers that only have device tensors.
#[derive(Debug, Clone)]
pub struct HostInputsBuf {
    input_ids: Vec<i64>,
    attention_mask: Vec<i64>,
    completion_mask: Vec<i64>,
    shape: [usize; 2],
}

impl HostInputsBuf {
    /// Reads the three tensors (one transfer each).
    pub fn read(inputs: &OrpoInputs) -> Self {
        Self {
            input_ids: read_i64(&inputs.input_ids, "input_ids"),
            attention_mask: read_i64(&inputs.attention_mask, "attention_mask"),
            completion_mask: read_i64(&inputs.completion_mask, "completion_mask"),
            shape: inputs.input_ids.dims(),
        }
    }

    /// A view for [`crate::preference_loss`].
    pub fn view(&self) -> HostInputs<'_> {
        HostInputs {
            input_ids: &self.input_ids,
            attention_mask: &self.attention_mask,
            completion_mask: &self.completion_mask,
            shape: self.shape,
        }
    }
}

impl OrpoInputs {
    /// [`nll_token_count`] of these inputs (reads the two masks to the host).
    pub fn nll_token_count(&self, nll_on_completion_only: bool) -> usize {
        let host = HostInputsBuf::read(self);
        let h = host.view();
        nll_token_count(
            h.attention_mask,
            h.completion_mask,
            h.shape,
            nll_on_completion_only,
        )
    }
}

/// Reads a `[R, T]` integer tensor to the host as `i64`.
pub(crate) fn read_i64(t: &Tensor<2, Int>, what: &str) -> Vec<i64> {
    t.clone()
        .inner()
        .try_into_vec_as::<i64>()
        .unwrap_or_else(|e| panic!("orpo-loss: cannot read {what}: {e:?}"))
}

/// The denominators of the loss's two means, for splitting one batch into micro-batches
/// (gradient accumulation) without changing the update.
///
/// The loss of a batch is `w · Σ_tokens nll / N + Σ_pairs ℓ / P` (`w` the objective's NLL
/// weight, `ℓ` its per-pair loss), with `N` the batch's NLL tokens and `P` its pairs. When a batch
/// is cut into micro-batches, giving each micro-batch the `N` and `P` of the whole batch makes the
/// micro-batch losses (and their gradients) sum to the whole batch's: accumulation is then one
/// big batch, even when the micro-batches hold different numbers of tokens (where the mean of the
/// micro-batch means is not the token mean). [`nll_token_count`] gives each micro-batch's `N` on
/// the host, before any forward pass.
///
/// `None` (the default) uses this batch's own count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossDenominators {
    /// `N`: tokens the NLL sum is divided by (at least this batch's NLL tokens).
    pub nll_tokens: Option<usize>,
    /// `P`: pairs the per-pair sum is divided by (at least this batch's pairs).
    pub pairs: Option<usize>,
}

impl LossDenominators {
    /// Divide by `nll_tokens` and `pairs`: the totals of all micro-batches of one step.
    pub fn new(nll_tokens: usize, pairs: usize) -> Self {
        Self {
            nll_tokens: Some(nll_tokens),
            pairs: Some(pairs),
        }
    }
}

/// Whether position `j` (≥ 1) of row `r` of a `[2B, T]` batch is a completion token and whether
/// it is an NLL token (chosen rows only; masked by the attention mask, and by the completion
/// mask when `nll_on_completion_only`). The one definition the loss's plan and
/// [`nll_token_count`] share.
pub(crate) fn token_role(
    r: usize,
    b: usize,
    att: i64,
    comp: i64,
    nll_on_completion_only: bool,
) -> (bool, bool) {
    let is_att = att != 0;
    let is_comp = is_att && comp != 0;
    let is_nll = r < b
        && if nll_on_completion_only {
            is_comp
        } else {
            is_att
        };
    (is_comp, is_nll)
}

/// The number of tokens the NLL term of a batch averages over, from its host-side masks
/// (`[2B, T]` row-major, rows `0..B` chosen): labels are shifted by one, so position 0 of a row
/// is never scored. Equals [`crate::OrpoOutput::nll_tokens`] of the same batch; use it to build
/// [`LossDenominators`] before the forward passes.
///
/// # Panics
/// If the masks do not hold `2B · T` values or the row count is odd.
pub fn nll_token_count(
    attention_mask: &[i64],
    completion_mask: &[i64],
    shape: [usize; 2],
    nll_on_completion_only: bool,
) -> usize {
    let [rows, t] = shape;
    assert!(rows % 2 == 0, "orpo-loss: need 2B rows, got {rows}");
    assert!(
        attention_mask.len() == rows * t && completion_mask.len() == rows * t,
        "orpo-loss: masks must hold {rows} × {t} values"
    );
    let b = rows / 2;
    let mut n = 0;
    for r in 0..b {
        for j in (r * t + 1)..(r * t + t) {
            n += token_role(
                r,
                b,
                attention_mask[j],
                completion_mask[j],
                nll_on_completion_only,
            )
            .1 as usize;
        }
    }
    n
}
