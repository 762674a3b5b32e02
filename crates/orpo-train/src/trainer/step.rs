//! The model-side step: a batch's input tensors, the ORPO forward pass over them, one
//! micro-batch's backward, and the config mappers ([`tokenize_config`], [`loss_config`]) that
//! turn an [`OrpoConfig`] into the data and loss crates' settings.

use std::collections::BTreeMap;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_data::{Batch, Collator, TokenizeConfig, TokenizedPair};
use orpo_loss::{LossDenominators, OrpoInputs, OrpoLossConfig, orpo_loss_with_denominators};

use crate::config::OrpoConfig;
use crate::model::CausalLm;
use crate::progress::Progress;

/// Tokenization limits of an [`OrpoConfig`].
pub fn tokenize_config(config: &OrpoConfig) -> TokenizeConfig {
    TokenizeConfig {
        max_length: Some(config.max_length),
        max_prompt_length: config.max_prompt_length,
        max_completion_length: config.max_completion_length,
        truncation_mode: config.truncation_mode,
        ..TokenizeConfig::default()
    }
}

/// The loss settings of an [`OrpoConfig`].
pub fn loss_config(config: &OrpoConfig) -> OrpoLossConfig {
    OrpoLossConfig::new(config.lambda())
        .with_orpo_beta(config.orpo_beta)
        .with_nll_on_completion_only(config.nll_on_completion_only)
        .with_chunk_size(config.logits_chunk_size)
}

/// One batch on the device, and the ORPO forward pass over it.
pub struct OrpoStep;

impl OrpoStep {
    /// Builds the `[2B, T]` input tensors of `pairs` on `device`.
    pub fn inputs(
        pairs: &[&TokenizedPair],
        pad_id: u32,
        device: &Device,
    ) -> (OrpoInputs, Tensor<2>) {
        Self::batch_inputs(
            &Collator::new(pad_id).collate(pairs.iter().copied()),
            device,
        )
    }

    /// The `[2B, T]` input tensors of a collated batch, on `device`.
    pub fn batch_inputs(batch: &Batch, device: &Device) -> (OrpoInputs, Tensor<2>) {
        let shape = batch.shape();
        let int =
            |v: &[i64]| Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), shape), device);
        let mask_f: Vec<f32> = batch.attention_mask.iter().map(|&m| m as f32).collect();
        let attention = Tensor::<2>::from_data(TensorData::new(mask_f, shape), device);
        (
            OrpoInputs {
                input_ids: int(&batch.input_ids),
                attention_mask: int(&batch.attention_mask),
                completion_mask: int(&batch.completion_mask),
            },
            attention,
        )
    }

    /// Loss `[1]` and TRL's metrics for one batch.
    pub fn forward<M: CausalLm>(
        model: &M,
        inputs: &OrpoInputs,
        attention: Tensor<2>,
        loss: &OrpoLossConfig,
    ) -> (Tensor<1>, Vec<(&'static str, f64)>) {
        Self::forward_with_denominators(model, inputs, attention, loss, LossDenominators::default())
    }

    /// As [`forward`](Self::forward), with the loss's NLL and odds-ratio sums divided by
    /// `denominators` (the totals of an accumulated step) instead of this batch's own counts;
    /// the metrics stay this batch's own means.
    pub fn forward_with_denominators<M: CausalLm>(
        model: &M,
        inputs: &OrpoInputs,
        attention: Tensor<2>,
        loss: &OrpoLossConfig,
        denominators: LossDenominators,
    ) -> (Tensor<1>, Vec<(&'static str, f64)>) {
        // The head's soft-cap belongs to the model (Gemma 2): every loss on it applies the cap.
        let capped;
        let loss = match model.final_logit_softcap() {
            Some(cap) if loss.logit_softcap != Some(cap) => {
                capped = loss.clone().with_logit_softcap(Some(cap));
                &capped
            }
            _ => loss,
        };
        let hidden = model.hidden_states(inputs.input_ids.clone(), attention);
        let (weight, bias) = model.output_head();
        let out = orpo_loss_with_denominators(hidden, weight, bias, inputs, loss, denominators);
        let metrics = out.metrics.to_metrics().to_named();
        (out.loss, metrics)
    }

    /// Forward and backward of one micro-batch on `model` (on its own device): the loss, the
    /// batch's metrics, and the gradients moved to `main` (the device the optimizer runs on).
    pub fn backward_on<M: CausalLm>(
        model: &M,
        batch: &Batch,
        loss: &OrpoLossConfig,
        denominators: LossDenominators,
        main: &Device,
    ) -> (f64, Vec<(&'static str, f64)>, GradientsParams) {
        Self::backward_scaled_on(model, batch, loss, denominators, main, 1.0)
    }

    /// [`backward_on`](Self::backward_on) with the loss multiplied by `loss_scale` before the
    /// backward pass (f16 loss scaling, [`crate::precision`]): the gradients come back scaled,
    /// the returned loss does not.
    pub fn backward_scaled_on<M: CausalLm>(
        model: &M,
        batch: &Batch,
        loss: &OrpoLossConfig,
        denominators: LossDenominators,
        main: &Device,
        loss_scale: f64,
    ) -> (f64, Vec<(&'static str, f64)>, GradientsParams) {
        let device = device_of(model);
        let (inputs, attention) = Self::batch_inputs(batch, &device);
        let (loss, metrics) =
            Self::forward_with_denominators(model, &inputs, attention, loss, denominators);
        let backward = if loss_scale == 1.0 {
            loss.backward()
        } else {
            loss.clone().mul_scalar(loss_scale).backward()
        };
        let mut grads = GradientsParams::from_grads(backward, model);
        if device != *main {
            grads = grads.to_device(main, model);
        }
        (loss.into_scalar::<f32>() as f64, metrics, grads)
    }
}

/// ORPO metrics of `model` on `pairs` without gradients: `eval_loss` and TRL's metrics with the
/// `eval_` prefix, averaged over batches of `per_device_eval_batch_size` pairs (as TRL averages
/// its stored per-batch metrics).
pub fn evaluate_pairs<M: CausalLm>(
    model: &M,
    pairs: &[TokenizedPair],
    pad_id: u32,
    config: &OrpoConfig,
) -> BTreeMap<String, f64> {
    evaluate_pairs_reporting(model, pairs, pad_id, config, &*crate::progress::global())
}

/// [`evaluate_pairs`], reporting its batches to `progress`.
pub fn evaluate_pairs_reporting<M: CausalLm>(
    model: &M,
    pairs: &[TokenizedPair],
    pad_id: u32,
    config: &OrpoConfig,
    progress: &dyn Progress,
) -> BTreeMap<String, f64> {
    let loss_cfg = loss_config(config);
    let device = device_of(model);
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let chunks: Vec<&[TokenizedPair]> = pairs.chunks(config.per_device_eval_batch_size).collect();
    progress.task_begin("evaluating", "batches", chunks.len() as u64);
    for chunk in &chunks {
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let (inputs, attention) = OrpoStep::inputs(&refs, pad_id, &device);
        let (loss, metrics) = OrpoStep::forward(model, &inputs, attention, &loss_cfg);
        *sums.entry("eval_loss".into()).or_default() += loss.into_scalar::<f32>() as f64;
        for (name, value) in metrics {
            *sums.entry(format!("eval_{name}")).or_default() += value;
        }
        progress.task_advance(1);
    }
    progress.task_end();
    let n = chunks.len().max(1) as f64;
    sums.into_iter().map(|(k, v)| (k, v / n)).collect()
}

/// The device `model` lives on (its output head's).
pub(crate) fn device_of<M: CausalLm>(model: &M) -> Device {
    model.output_head().0.device()
}
