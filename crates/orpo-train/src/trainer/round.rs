//! One optimizer step's micro-batches over the devices: the step's denominators, the
//! data-parallel rounds (one micro-batch per device per round, each device on its own thread),
//! and the gradients and metrics summed in micro-batch order.
//!
//! Accumulation is one big batch: every micro-batch's NLL sum is divided by the NLL tokens of
//! the whole step and its odds-ratio sum by the step's pairs, so the micro-batch losses and
//! gradients add up to those of the step's pairs in one batch. (The Hugging Face Trainer divides
//! each micro-batch mean by the accumulation steps instead, which weights tokens unequally when
//! micro-batches differ in length.)

use std::collections::BTreeMap;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use orpo_data::Batch;
use orpo_loss::{LossDenominators, OrpoLossConfig, nll_token_count};

use super::step::OrpoStep;
use crate::collective::GradientExchange;
use crate::model::CausalLm;
use crate::optim::accumulate;
use crate::precision::Precision;

/// What one micro-batch's forward and backward return: the loss, the batch's metrics, and the
/// gradients on the optimizer's device (or the exchange's).
type MicroResult = (f64, Vec<(&'static str, f64)>, GradientsParams);

/// The collated micro-batches of one optimizer step (accumulation steps × devices, in the order
/// the data gives them) and the step's loss denominators.
pub(super) struct StepBatches {
    batches: Vec<Batch>,
    /// NLL tokens of each micro-batch.
    nll_tokens: Vec<usize>,
    total_tokens: usize,
    total_pairs: usize,
    denominators: LossDenominators,
}

impl StepBatches {
    /// Counts the NLL tokens and pairs of `batches` as `loss` counts them.
    pub(super) fn new(batches: Vec<Batch>, loss: &OrpoLossConfig) -> Self {
        let nll_tokens: Vec<usize> = batches
            .iter()
            .map(|b| {
                nll_token_count(
                    &b.attention_mask,
                    &b.completion_mask,
                    b.shape(),
                    loss.nll_on_completion_only,
                )
            })
            .collect();
        let total_tokens: usize = nll_tokens.iter().sum();
        let total_pairs: usize = batches.iter().map(|b| b.pairs).sum();
        Self {
            batches,
            nll_tokens,
            total_tokens,
            total_pairs,
            denominators: LossDenominators::new(total_tokens, total_pairs),
        }
    }

    /// Forward and backward of every micro-batch. The micro-batches go to the devices in turn,
    /// one round at a time (`model` on `device`, then `replicas`); the results come back in
    /// micro-batch order, so what is summed does not depend on which device finishes first. One
    /// device runs without a thread.
    pub(super) fn backward<M: CausalLm>(
        &self,
        model: &M,
        replicas: &[M],
        exchange: &GradientExchange,
        device: &Device,
        loss: &OrpoLossConfig,
        loss_scale: f64,
    ) -> Vec<MicroResult> {
        let denominators = self.denominators;
        let mut results = Vec::with_capacity(self.batches.len());
        for round in self.batches.chunks(1 + replicas.len()) {
            if let [batch] = round {
                // One device: no thread.
                let main = device;
                let r = OrpoStep::backward_scaled_on(
                    model,
                    batch,
                    loss,
                    denominators,
                    main,
                    loss_scale,
                );
                results.push(r);
                continue;
            }
            results.extend(std::thread::scope(|scope| {
                let handles: Vec<_> = round
                    .iter()
                    .enumerate()
                    .map(|(d, batch)| {
                        let replica = if d == 0 { model } else { &replicas[d - 1] };
                        scope.spawn(move || {
                            OrpoStep::backward_scaled_on(
                                replica,
                                batch,
                                loss,
                                denominators,
                                exchange.destination(d, device),
                                loss_scale,
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a device's micro-step panicked"))
                    .collect::<Vec<_>>()
            }));
        }
        results
    }

    /// Sums `results` (of [`backward`](Self::backward)) in micro-batch order: the gradients
    /// (bf16 / f16 ones unscaled to f32 first, [`crate::precision`]) through `exchange`, the
    /// losses, and the metrics weighted by each micro-batch's share of the step's tokens and
    /// pairs. Returns the step's gradients, loss and metrics.
    pub(super) fn sum<M: CausalLm>(
        &self,
        model: &M,
        results: Vec<MicroResult>,
        exchange: &GradientExchange,
        precision: &Precision,
    ) -> (GradientsParams, f64, BTreeMap<String, f64>) {
        let mut sums = exchange.accumulators();
        let mut step_loss = 0.0;
        let mut step_metrics: BTreeMap<String, f64> = BTreeMap::new();
        for (k, ((loss, metrics, micro_grads), (batch, &tokens))) in results
            .into_iter()
            .zip(self.batches.iter().zip(&self.nll_tokens))
            .enumerate()
        {
            // bf16 / f16: summed, clipped and applied in f32, unscaled (crate::precision).
            let micro_grads = precision.unscale_to_f32(model, micro_grads);
            accumulate(model, &mut sums[exchange.slot(k)], micro_grads);
            step_loss += loss;
            crate::metrics::add_micro_batch_metrics(
                &mut step_metrics,
                metrics,
                (tokens, self.total_tokens),
                (batch.pairs, self.total_pairs),
            );
        }
        (exchange.combine(model, sums), step_loss, step_metrics)
    }
}
