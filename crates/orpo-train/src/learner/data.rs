//! orpo-data's tokenized pairs into the learner: burn's `InMemDataset<TokenizedPair>` holds the
//! pairs as `PreferenceDataset::tokenize` made them (token ids; nothing is tokenized twice), and
//! [`OrpoBatcher`] collates the pairs of one optimizer step into [`OrpoBatch`]es on the device.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::tensor::{Device, Tensor};
use orpo_data::{Collator, TokenizedPair};
use orpo_loss::{OrpoInputs, nll_token_count};

use crate::trainer::OrpoStep;

/// The pairs of a split as a burn dataset (`Dataset<TokenizedPair>`).
pub fn pair_dataset(pairs: Vec<TokenizedPair>) -> InMemDataset<TokenizedPair> {
    InMemDataset::new(pairs)
}

/// One micro-batch on its device: `[2B, T]` inputs (rows `0..B` prompt+chosen, `B..2B`
/// prompt+rejected), with the host-side counts the loss's denominators need.
#[derive(Debug, Clone)]
pub struct MicroBatch {
    /// Token ids, attention and completion masks, each `[2B, T]`.
    pub inputs: OrpoInputs,
    /// The attention mask as floats `[2B, T]` (what the model's forward takes).
    pub attention: Tensor<2>,
    /// `B`, the pairs of this micro-batch.
    pub pairs: usize,
    /// Tokens of the NLL term (`orpo_loss::nll_token_count`).
    pub nll_tokens: usize,
}

/// What the data loader yields: the micro-batches of one optimizer step (one for
/// `gradient_accumulation_steps: 1`), in data order.
///
/// The step is one item, rather than burn-train's `grads_accumulation` over separate items,
/// because ORPO's accumulation divides every micro-batch's NLL sum by the NLL tokens of the whole
/// step and its odds-ratio sum by the step's pairs (`orpo_loss::LossDenominators`), so the step's
/// gradient is that of one batch of all its pairs; that needs all the step's counts up front.
#[derive(Debug, Clone)]
pub struct OrpoBatch {
    /// The micro-batches, each of at most `per_device_train_batch_size` pairs.
    pub micro: Vec<MicroBatch>,
}

impl OrpoBatch {
    /// Pairs of the whole step.
    pub fn pairs(&self) -> usize {
        self.micro.iter().map(|m| m.pairs).sum()
    }

    /// NLL tokens of the whole step.
    pub fn nll_tokens(&self) -> usize {
        self.micro.iter().map(|m| m.nll_tokens).sum()
    }
}

/// Collates pairs into an [`OrpoBatch`]: padded with `pad_id` to the longest row of each
/// micro-batch (orpo-data's `Collator`), split into micro-batches of `micro_batch_size` pairs.
///
/// Give the data loader `batch_size = per_device_train_batch_size ×
/// gradient_accumulation_steps` and this batcher `micro_batch_size =
/// per_device_train_batch_size`: each loader item is then one optimizer step.
#[derive(Debug, Clone)]
pub struct OrpoBatcher {
    pad_id: u32,
    micro_batch_size: usize,
    nll_on_completion_only: bool,
}

impl OrpoBatcher {
    /// A batcher padding with `pad_id` (the tokenizer's `padding_id()`); `micro_batch_size`
    /// pairs per forward pass; `nll_on_completion_only` as in the loss settings (it decides
    /// which tokens the NLL counts).
    pub fn new(pad_id: u32, micro_batch_size: usize, nll_on_completion_only: bool) -> Self {
        assert!(micro_batch_size > 0, "micro_batch_size must be positive");
        Self {
            pad_id,
            micro_batch_size,
            nll_on_completion_only,
        }
    }
}

impl Batcher<TokenizedPair, OrpoBatch> for OrpoBatcher {
    fn batch(&self, items: Vec<TokenizedPair>, device: &Device) -> OrpoBatch {
        let collator = Collator::new(self.pad_id);
        let micro = items
            .chunks(self.micro_batch_size)
            .map(|chunk| {
                let batch = collator.collate(chunk.iter());
                let nll_tokens = nll_token_count(
                    &batch.attention_mask,
                    &batch.completion_mask,
                    batch.shape(),
                    self.nll_on_completion_only,
                );
                let (inputs, attention) = OrpoStep::batch_inputs(&batch, device);
                MicroBatch {
                    inputs,
                    attention,
                    pairs: batch.pairs,
                    nll_tokens,
                }
            })
            .collect();
        OrpoBatch { micro }
    }
}
