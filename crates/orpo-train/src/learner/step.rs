//! [`OrpoLearnerModel`]: a [`CausalLm`] with the ORPO loss, as burn-train's `TrainStep` and
//! `InferenceStep`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, ModuleDisplay, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::{ExecutionError, Tensor, TensorData};
use burn_train::metric::{Adaptor, ItemLazy, LossInput};
use burn_train::{InferenceStep, Interrupter, TrainOutput, TrainStep};
use orpo_loss::{LossDenominators, OrpoLossConfig};

use super::data::{MicroBatch, OrpoBatch};
use crate::config::OrpoConfig;
use crate::model::CausalLm;
use crate::optim::{accumulate, clip_global_norm};
use crate::trainer::{OrpoStep, loss_config};

/// The model burn-train's `Learner` trains: a [`CausalLm`] and the ORPO settings of a run.
///
/// - `TrainStep::step`: forward and backward of every micro-batch of an [`OrpoBatch`] with the
///   step's denominators (accumulation is one big batch, as in [`crate::OrpoTrainer`]); the
///   output carries the step's loss and TRL's metrics ([`OrpoOutput`]).
/// - `TrainStep::optimize`: global-norm clipping of `max_grad_norm` (PyTorch's
///   `clip_grad_norm_`, not burn's per-tensor clipping), then the optimizer; a non-finite loss
///   or gradient norm skips the update and, unless `skip_nonfinite_steps`, stops the run
///   through the learner's [`Interrupter`] (set with [`with_interrupter`](Self::with_interrupter)).
/// - `InferenceStep::step`: the loss and metrics of a batch without gradients (validation).
///
/// The parameters are the model's under the path prefix `model.`.
#[derive(Module, Debug)]
pub struct OrpoLearnerModel<M: CausalLm> {
    /// The language model.
    pub model: M,
    #[module(skip)]
    settings: StepSettings,
}

#[derive(Clone)]
struct StepSettings {
    loss: OrpoLossConfig,
    max_grad_norm: f64,
    skip_nonfinite_steps: bool,
    interrupter: Option<Interrupter>,
    /// Reports of the steps whose update has not run yet: `optimize` fills in their gradient
    /// norm, which the metrics read once burn-train hands them the step's output.
    pending: Arc<Mutex<Vec<Arc<StepReport>>>>,
    /// Updates skipped for a non-finite loss or norm (`skip_nonfinite_steps`).
    skipped: Arc<AtomicUsize>,
}

impl fmt::Debug for StepSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepSettings")
            .field("loss", &self.loss)
            .field("max_grad_norm", &self.max_grad_norm)
            .field("skip_nonfinite_steps", &self.skip_nonfinite_steps)
            .finish_non_exhaustive()
    }
}

/// What `optimize` learns about a step after its output was made.
#[derive(Debug, Default)]
struct StepReport {
    loss: f64,
    /// The global gradient norm before clipping.
    grad_norm: OnceLock<f64>,
}

impl<M: CausalLm> OrpoLearnerModel<M> {
    /// `model` with the loss, clipping and non-finite settings of `config` (`beta`,
    /// `orpo_beta`, `nll_on_completion_only`, `logits_chunk_size`,
    /// `max_grad_norm`, `skip_nonfinite_steps`).
    pub fn new(model: M, config: &OrpoConfig) -> Self {
        Self {
            model,
            settings: StepSettings {
                loss: loss_config(config),
                max_grad_norm: config.max_grad_norm,
                skip_nonfinite_steps: config.skip_nonfinite_steps,
                interrupter: None,
                pending: Arc::default(),
                skipped: Arc::default(),
            },
        }
    }

    /// Stops the run through `interrupter` (give the learner's:
    /// `SupervisedTraining::interrupter()`) on a non-finite loss or gradient norm, when
    /// `skip_nonfinite_steps` is off; without one such a step panics.
    pub fn with_interrupter(mut self, interrupter: Interrupter) -> Self {
        self.settings.interrupter = Some(interrupter);
        self
    }

    /// Steps whose update was skipped for a non-finite loss or gradient norm
    /// (`skip_nonfinite_steps: true`), over every copy of this model.
    pub fn skipped_steps(&self) -> usize {
        self.settings.skipped.load(Ordering::Relaxed)
    }

    /// The language model.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Loss and metrics of the micro-batches of one step, each divided by the step's totals;
    /// `backward` also returns the summed gradients.
    fn run(&self, batch: OrpoBatch, backward: bool) -> (OrpoOutput, Option<GradientsParams>) {
        let total_tokens = batch.nll_tokens();
        let total_pairs = batch.pairs();
        let denominators = LossDenominators::new(total_tokens, total_pairs);
        let device = batch
            .micro
            .first()
            .map(|m| m.attention.device())
            .expect("a batch has a micro-batch");
        let mut grads = backward.then(GradientsParams::new);
        let mut loss_sum = 0.0;
        let mut values: BTreeMap<&'static str, f64> = BTreeMap::new();
        for micro in batch.micro {
            let MicroBatch {
                inputs,
                attention,
                pairs,
                nll_tokens,
            } = micro;
            let (loss, metrics) = OrpoStep::forward_with_denominators(
                &self.model,
                &inputs,
                attention,
                &self.settings.loss,
                denominators,
            );
            if let Some(grads) = &mut grads {
                let micro_grads = GradientsParams::from_grads(loss.backward(), &self.model);
                accumulate(&self.model, grads, micro_grads);
            }
            loss_sum += loss.into_scalar::<f32>() as f64;
            crate::metrics::add_micro_batch_metrics(
                &mut values,
                metrics,
                (nll_tokens, total_tokens),
                (pairs, total_pairs),
            );
        }
        values.insert("loss", loss_sum);
        let loss =
            Tensor::<1>::from_data(TensorData::new(vec![loss_sum as f32], [1]), &device.inner());
        let report = backward.then(|| {
            let report = Arc::new(StepReport {
                loss: loss_sum,
                grad_norm: OnceLock::new(),
            });
            let mut pending = self.settings.pending.lock().expect("pending steps");
            pending.push(report.clone());
            report
        });
        let output = OrpoOutput {
            loss,
            pairs: total_pairs,
            values,
            report,
        };
        (output, grads)
    }

    /// Clips `grads` to the global norm, then updates through `update` unless the loss or the
    /// norm is not finite.
    fn finish(
        self,
        mut grads: GradientsParams,
        update: impl FnOnce(Self, GradientsParams) -> Self,
    ) -> Self {
        let norm = clip_global_norm(&self.model, &mut grads, self.settings.max_grad_norm);
        let reports: Vec<_> = std::mem::take(&mut *self.settings.pending.lock().expect("pending"));
        let loss: f64 = reports.iter().map(|r| r.loss).sum();
        for report in &reports {
            let _ = report.grad_norm.set(norm);
        }
        if loss.is_finite() && norm.is_finite() {
            return update(self, grads);
        }
        let (what, value) = if loss.is_finite() {
            ("gradient norm", norm)
        } else {
            ("loss", loss)
        };
        if self.settings.skip_nonfinite_steps {
            tracing::warn!("non-finite {what} ({value}); update skipped (skip_nonfinite_steps)");
            self.settings.skipped.fetch_add(1, Ordering::Relaxed);
            return self;
        }
        let message = format!(
            "non-finite {what} ({value}); stopped before the update (set skip_nonfinite_steps: \
             true to skip such steps instead)"
        );
        match &self.settings.interrupter {
            Some(interrupter) => interrupter.stop(Some(&message)),
            None => panic!("{message}"),
        }
        self
    }
}

impl<M: CausalLm + ModuleDisplay> TrainStep for OrpoLearnerModel<M> {
    type Input = OrpoBatch;
    type Output = OrpoOutput;

    fn step(&self, batch: OrpoBatch) -> TrainOutput<OrpoOutput> {
        let (item, grads) = self.run(batch, true);
        TrainOutput {
            grads: grads.expect("backward pass"),
            item,
        }
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        self.finish(grads, |model, grads| optim.step(lr, model, grads))
    }

    /// Several devices (burn-train's `MultiDevice` strategy): each device's gradients are those
    /// of its own batch's mean loss; they are gathered on the first device and averaged (the
    /// mean over devices, as PyTorch's DDP), clipped to the global norm, and the update runs
    /// there, whichever `MultiDeviceOptim` was asked for (global-norm clipping needs every
    /// gradient in one place).
    fn optimize_multi(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: MultiGradientsParams,
    ) -> Self {
        let devices = grads.grads.len();
        let mut parts = grads.grads.into_iter();
        let Some((mut sum, main)) = parts.next() else {
            return self;
        };
        for (part, _) in parts {
            accumulate(&self.model, &mut sum, part.to_device(&main, &self.model));
        }
        if devices > 1 {
            scale(&self.model, &mut sum, 1.0 / devices as f64);
        }
        self.finish(sum, |model, grads| optim.step(lr, model, grads))
    }
}

fn scale<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scaler<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scaler<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, grad.mul_scalar(self.factor));
            }
        }
    }
    module.visit(&mut Scaler { grads, factor });
}

impl<M: CausalLm + ModuleDisplay> InferenceStep for OrpoLearnerModel<M> {
    type Input = OrpoBatch;
    type Output = OrpoOutput;

    fn step(&self, batch: OrpoBatch) -> OrpoOutput {
        self.run(batch, false).0
    }
}

/// The output of a step: its loss and TRL's metrics, read to the host when the step ran.
#[derive(Debug, Clone)]
pub struct OrpoOutput {
    /// The step's loss `[1]` (no autodiff), for burn's `LossMetric`.
    pub loss: Tensor<1>,
    /// Pairs of the step (the weight of its values in an epoch's mean).
    pub pairs: usize,
    /// `loss` and TRL's metrics by name (`nll_loss`, `rewards/chosen`, ...).
    pub values: BTreeMap<&'static str, f64>,
    report: Option<Arc<StepReport>>,
}

impl OrpoOutput {
    /// The value of a metric: TRL's names as in [`values`](Self::values), and `grad_norm` (the
    /// global norm before clipping) of a training step once its update has run.
    pub fn value(&self, name: &str) -> Option<f64> {
        if name == "grad_norm" {
            return self
                .report
                .as_ref()
                .and_then(|r| r.grad_norm.get().copied());
        }
        self.values.get(name).copied()
    }
}

impl ItemLazy for OrpoOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        // The values are on the host already; the loss tensor was made off the tape.
        Ok(self)
    }
}

impl Adaptor<LossInput> for OrpoOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl Adaptor<OrpoOutput> for OrpoOutput {
    fn adapt(&self) -> OrpoOutput {
        self.clone()
    }
}
