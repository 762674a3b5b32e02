//! The checks of a run: the model's device against the config (before anything is tokenized),
//! the tokenizer's ids against the model's embedding, and what a step whose loss or gradient
//! norm is not finite does (stop, or skip with `skip_nonfinite_steps`).

use anyhow::bail;
use orpo_data::{PreferenceTokenizer, TokenizedPair};

use crate::config::OrpoConfig;
use crate::model::CausalLm;
use crate::precision::StepVerdict;

/// Checks that every token id `tokenizer` can produce has a row in a model embedding of
/// `model_vocab` rows: a tokenizer with tokens added after the model was trained (and the
/// embedding not resized) would otherwise index past the embedding. The error names both sizes.
pub fn check_tokenizer_fits(
    model_vocab: usize,
    tokenizer: &PreferenceTokenizer,
) -> anyhow::Result<()> {
    let ids = tokenizer
        .inner()
        .get_vocab(true)
        .into_values()
        .max()
        .map_or(0, |max| max as usize + 1)
        .max(tokenizer.padding_id() as usize + 1);
    if ids > model_vocab {
        bail!(
            "the tokenizer's vocabulary ({ids} token ids) exceeds the model's embedding \
             ({model_vocab} rows, `vocab_size` in config.json); use the model's own tokenizer or \
             resize the model's embedding"
        );
    }
    Ok(())
}

/// The model must live on the device [`crate::training_device`] makes of the config: autodiff,
/// with the float type and the gradient checkpointing the config asks for. Both are properties
/// of the device in burn 0.22, so a config key cannot change them once the model exists.
pub(super) fn check_device<M: CausalLm>(model: &M, config: &OrpoConfig) -> anyhow::Result<()> {
    let (weight, _) = model.output_head();
    let device = weight.device();
    let made_by = "create the model on `orpo_train::training_device(device, &config)`";
    if !device.is_autodiff() {
        bail!("the model is not on an autodiff device: {made_by}");
    }
    if config.gradient_checkpointing
        && device.gradient_checkpointing_strategy()
            != Some(burn::tensor::GradientCheckpointingStrategy::Balanced)
    {
        bail!(
            "`gradient_checkpointing: true`, but the model's device does not checkpoint: {made_by}"
        );
    }
    match crate::device::requested_float_dtype(config) {
        Some((key, dtype)) if weight.dtype() != dtype.into() => bail!(
            "`{key}: true` asks for {dtype:?} weights, but the model's are {:?}: {made_by}",
            weight.dtype()
        ),
        None if weight.dtype() != burn::tensor::DType::F32 => bail!(
            "the model's weights are {:?}: set `bf16: true` or `fp16: true` to train in that \
             precision, or {made_by}",
            weight.dtype()
        ),
        _ => {}
    }
    Ok(())
}

/// The tokenizer fits the model's embedding, and so does every id of `pairs`.
pub(super) fn check_vocab<M: CausalLm>(
    model: &M,
    tokenizer: &PreferenceTokenizer,
    pairs: &[TokenizedPair],
) -> anyhow::Result<()> {
    let vocab = model.vocab_size();
    check_tokenizer_fits(vocab, tokenizer)?;
    let max_id = pairs
        .iter()
        .flat_map(|p| p.chosen_ids.iter().chain(&p.rejected_ids))
        .max()
        .copied()
        .unwrap_or(0) as usize;
    if max_id >= vocab {
        bail!(
            "the tokenizer produces token id {max_id} but the model's embedding has only \
             {vocab} rows (tokenizer vocabulary {}); use the model's own tokenizer or resize \
             the model",
            tokenizer.vocab_size()
        );
    }
    Ok(())
}

/// A step `step` (0-based) whose update is not applied (`verdict` is not `Update`): an fp16
/// overflow is reported (the scaler has lowered its scale to `loss_scale`); a non-finite loss or
/// gradient norm stops the run before the update, or is skipped with a warning when
/// `skip_nonfinite_steps` is set.
pub(super) fn skipped_step(
    verdict: StepVerdict,
    step: usize,
    step_loss: f64,
    grad_norm: f64,
    loss_scale: f64,
    skip_nonfinite_steps: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if verdict == StepVerdict::SkipOverflow {
        if !quiet {
            tracing::info!(
                "step {}: fp16 gradients overflowed (norm {grad_norm}); update skipped, \
                 loss scale lowered to {loss_scale}",
                step + 1,
            );
        }
        return Ok(());
    }
    let (what, value) = if step_loss.is_finite() {
        ("gradient norm", grad_norm)
    } else {
        ("loss", step_loss)
    };
    if !skip_nonfinite_steps {
        bail!(
            "step {}: non-finite {what} ({value}); stopping before the update, the \
             last checkpoint is untouched (set skip_nonfinite_steps: true to skip \
             such steps instead)",
            step + 1
        );
    }
    tracing::warn!(
        "step {}: non-finite {what} ({value}); update skipped \
         (skip_nonfinite_steps)",
        step + 1
    );
    Ok(())
}
