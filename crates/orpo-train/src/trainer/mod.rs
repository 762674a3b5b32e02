//! The ORPO training loop: micro-batches, gradient accumulation, global-norm clipping, AdamW,
//! the learning-rate schedule, step-level logging, evaluation and checkpoints, and resume.
//!
//! burn-train's `Learner` checkpoints only per epoch and does not save the data position, so
//! this loop drives the steps itself; the model-side step is [`OrpoStep`]. With the `burn-train`
//! feature, `orpo_train::learner` runs the same step inside burn-train's `Learner`
//! (`learner::OrpoLearnerModel` implements `TrainStep` / `InferenceStep`).
//!
//! The parts: [`step`] (the model-side step and the config mappers), `round` (one optimizer
//! step's micro-batches over the devices), `window` (the logging window and the progress
//! lines), `checks` (device, vocabulary, non-finite steps) and `checkpoint_policy` (where a run
//! starts, what checkpoints and `final/` hold). This file holds the trainer and its loop.

mod checkpoint_policy;
mod checks;
mod round;
pub mod step;
mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::Device;
use orpo_data::{
    Collator, PreferenceDataset, PreferenceTokenizer, TokenizeReport, TokenizedPair, batch_indices,
};
use serde::Serialize;

pub use checks::check_tokenizer_fits;
pub(crate) use step::device_of;
pub use step::{OrpoStep, evaluate_pairs, evaluate_pairs_reporting, loss_config, tokenize_config};

use crate::checkpoint::TrainerState;
use crate::collective::GradientExchange;
use crate::config::OrpoConfig;
use crate::metrics::{LogEntry, MetricsWriter};
use crate::model::CausalLm;
use crate::optim::{AdamW, AdamWSettings, clip_global_norm};
use crate::precision::{LossScaler, Precision, StepVerdict};
use crate::progress::Progress;
use crate::schedule::LrSchedule;
use checks::{check_device, check_vocab};
use round::StepBatches;
use window::LogWindow;

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Optimizer steps done.
    pub global_step: usize,
    /// Mean training loss over the run's steps.
    pub train_loss: f64,
    /// Wall-clock seconds of `train()`.
    pub train_runtime_s: f64,
    /// Last evaluation metrics (`eval_` names), when evaluated.
    pub eval_metrics: BTreeMap<String, f64>,
    /// The final model directory.
    pub final_model_dir: PathBuf,
    /// Steps of this run whose update was skipped for a non-finite loss or gradient norm:
    /// with `skip_nonfinite_steps`, and in fp16 the loss scaler's skips of overflowed scaled
    /// gradients (also logged, as `loss_scale_skipped_steps`).
    pub skipped_steps: usize,
}

/// Trains a [`CausalLm`] with ORPO, TRL's `ORPOTrainer` in Rust.
///
/// ```no_run
/// # use orpo_train::{OrpoConfig, OrpoTrainer};
/// # use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
/// # use orpo_model::DecoderForCausalLM;
/// # fn main() -> anyhow::Result<()> {
/// let device = burn::tensor::Device::default().autodiff();
/// let model = DecoderForCausalLM::from_pretrained("SmolLM2-135M", &device)?;
/// let tokenizer = PreferenceTokenizer::from_dir("SmolLM2-135M")?;
/// let train = PreferenceDataset::load("datasets/arith-prefs", Some("train"), &DataConfig::default())?;
/// let config = OrpoConfig { output_dir: "runs/x".into(), ..Default::default() };
/// let summary = OrpoTrainer::new(model, config, train, tokenizer)?.train()?;
/// println!("{summary:?}");
/// # Ok(()) }
/// ```
pub struct OrpoTrainer<M: CausalLm> {
    model: M,
    config: OrpoConfig,
    tokenizer: PreferenceTokenizer,
    tokenizer_files: Option<crate::checkpoint::TokenizerFiles>,
    train_pairs: Vec<TokenizedPair>,
    eval_pairs: Vec<TokenizedPair>,
    /// Tokenization report of the training split.
    pub train_report: TokenizeReport,
    /// Tokenization report of the evaluation split, when there is one.
    pub eval_report: Option<TokenizeReport>,
    resume: bool,
    quiet: bool,
    /// Where progress goes (`crate::progress`); unset: the process-wide one.
    progress: Option<Arc<dyn Progress>>,
    /// Data parallelism: the devices beyond the model's own, each training a replica.
    replica_devices: Vec<Device>,
    /// f32, or bf16 / f16 with f32 masters (and f16's loss scaler).
    precision: Precision,
    /// What checkpoints and `final/` are written in (`save_dtype`, else the loaded model's).
    save_dtype: orpo_model::SaveDtype,
}

impl<M: CausalLm> OrpoTrainer<M> {
    /// Tokenizes `train_dataset` as TRL does and prepares a run. The model must live on an
    /// autodiff device (`Device::...().autodiff()`).
    pub fn new(
        model: M,
        config: OrpoConfig,
        train_dataset: PreferenceDataset,
        tokenizer: PreferenceTokenizer,
    ) -> anyhow::Result<Self> {
        config.validate("config").map_err(anyhow::Error::from)?;
        check_device(&model, &config)?;
        let save_dtype = config
            .save_dtype
            .or_else(|| model.stored_dtype())
            .unwrap_or_default();
        let model = crate::lora::prepare_model(model, &config)?;
        let (train_pairs, train_report) = crate::progress::tokenize_reporting(
            &train_dataset,
            &tokenizer,
            &tokenize_config(&config),
            &*crate::progress::global(),
            "tokenizing train",
        )
        .context("tokenizing the training split")?;
        if train_pairs.is_empty() {
            bail!("the training split has no usable pair after tokenization ({train_report:?})");
        }
        check_vocab(&model, &tokenizer, &train_pairs)?;
        Ok(Self {
            model,
            tokenizer,
            tokenizer_files: None,
            train_pairs,
            eval_pairs: Vec::new(),
            train_report,
            eval_report: None,
            resume: false,
            quiet: false,
            progress: None,
            replica_devices: Vec::new(),
            precision: Precision::from_config(&config),
            save_dtype,
            config,
        })
    }

    /// Replaces an `fp16: true` run's loss scaler (default: torch's `GradScaler()`, initial scale
    /// 2^16); other runs scale nothing and ignore it.
    pub fn with_loss_scaler(mut self, scaler: LossScaler) -> Self {
        self.precision.set_loss_scaler(scaler);
        self
    }

    /// Adds a held-out split, evaluated every `eval_steps` and at the end.
    pub fn with_eval_dataset(mut self, dataset: PreferenceDataset) -> anyhow::Result<Self> {
        let (mut pairs, report) = crate::progress::tokenize_reporting(
            &dataset,
            &self.tokenizer,
            &tokenize_config(&self.config),
            &*self.progress(),
            "tokenizing eval",
        )
        .context("tokenizing the evaluation split")?;
        check_vocab(&self.model, &self.tokenizer, &pairs)?;
        if let Some(max) = self.config.max_eval_samples {
            pairs.truncate(max);
        }
        self.eval_pairs = pairs;
        self.eval_report = Some(report);
        Ok(self)
    }

    /// The directory whose tokenizer files are copied into checkpoints and the final model.
    pub fn with_tokenizer_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tokenizer_files = Some(crate::checkpoint::TokenizerFiles::new(dir));
        self
    }

    /// The tokenizer files copied into checkpoints and the final model, with the chat template
    /// that replaced the tokenizer's (`chat_template`).
    pub fn with_tokenizer_files(mut self, files: crate::checkpoint::TokenizerFiles) -> Self {
        self.tokenizer_files = Some(files);
        self
    }

    /// Continue from the latest complete checkpoint in `output_dir`.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Data parallelism over `devices` (`--devices cuda:0,cuda:1`): the first must be the
    /// model's own device; each other one trains a replica (`Module::fork`). Every optimizer
    /// step takes `per_device_train_batch_size` pairs per device per accumulation step, as the
    /// Hugging Face Trainer does; the devices run their micro-batches in parallel, the gradients
    /// are summed on the first device with the step's token and pair counts as denominators (so
    /// the update is that of one batch of all the step's pairs), and the updated weights are
    /// copied back to the replicas. Each device must be a training device
    /// ([`crate::training_device`]).
    pub fn with_devices(mut self, devices: Vec<Device>) -> anyhow::Result<Self> {
        let own = device_of(&self.model);
        let Some((first, rest)) = devices.split_first() else {
            bail!("with_devices: no device given");
        };
        if *first != own {
            bail!("with_devices: the first device ({first:?}) must be the model's ({own:?})");
        }
        for d in rest {
            if !d.is_autodiff()
                || d.gradient_checkpointing_strategy() != own.gradient_checkpointing_strategy()
            {
                bail!(
                    "with_devices: {d:?} is not a training device like the model's ({own:?}): \
                     make each with orpo_train::training_device"
                );
            }
        }
        self.replica_devices = rest.to_vec();
        Ok(self)
    }

    /// How many devices train in parallel (1 without [`with_devices`](Self::with_devices)).
    pub fn world_size(&self) -> usize {
        1 + self.replica_devices.len()
    }

    /// Silence the progress lines and bars ([`crate::progress::Silent`]) and the run's other
    /// INFO events; warnings still go to `tracing`.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Reports progress to `progress` instead of the process-wide [`crate::progress::global`].
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Where this trainer's progress goes.
    fn progress(&self) -> Arc<dyn Progress> {
        if self.quiet {
            return Arc::new(crate::progress::Silent);
        }
        self.progress
            .clone()
            .unwrap_or_else(crate::progress::global)
    }

    /// The model (trained, after [`train`](Self::train)).
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Consumes the trainer, returning the model.
    pub fn into_model(self) -> M {
        self.model
    }

    fn micro_batches_per_epoch(&self) -> usize {
        self.train_pairs
            .len()
            .div_ceil(self.config.per_device_train_batch_size)
    }

    /// Total optimizer steps: `max_steps`, else
    /// `ceil(epochs · micro_batches / (accumulation · devices))`.
    pub fn total_steps(&self) -> usize {
        if self.config.max_steps > 0 {
            return self.config.max_steps as usize;
        }
        let micro = self.micro_batches_per_epoch() as f64 * self.config.num_train_epochs;
        let per_step = self.micro_batches_per_step() as f64;
        ((micro / per_step).ceil() as usize).max(1)
    }

    /// Micro-batches per optimizer step: accumulation steps × devices.
    fn micro_batches_per_step(&self) -> usize {
        self.config.gradient_accumulation_steps * self.world_size()
    }

    /// The pairs of micro-batch number `k` of the run (epochs follow each other; each epoch's
    /// order depends only on the seed and the epoch number, so a resumed run sees the same data).
    fn micro_batch(&self, k: usize, cache: &mut Option<(usize, Vec<Vec<usize>>)>) -> Vec<usize> {
        let per_epoch = self.micro_batches_per_epoch();
        let epoch = k / per_epoch;
        if cache.as_ref().map(|c| c.0) != Some(epoch) {
            let order = self.config.train_sampling_strategy;
            let seed = self.config.seed.wrapping_add(epoch as u64);
            let batches = batch_indices(
                &self.train_pairs,
                self.config.per_device_train_batch_size,
                order,
                seed,
                false,
            );
            *cache = Some((epoch, batches));
        }
        cache.as_ref().expect("filled above").1[k % per_epoch].clone()
    }

    /// Evaluates on the held-out split: the `eval_`-prefixed metrics and `eval_loss`.
    pub fn evaluate(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        if self.eval_pairs.is_empty() {
            bail!("no evaluation split was given");
        }
        Ok(evaluate_pairs_reporting(
            &self.model.valid(),
            &self.eval_pairs,
            self.tokenizer.padding_id(),
            &self.config,
            &*self.progress(),
        ))
    }

    /// Runs the training; writes metrics, checkpoints, plots and `final/` into `output_dir`.
    pub fn train(&mut self) -> anyhow::Result<TrainSummary> {
        let started = Instant::now();
        let mut cfg = self.config.clone();
        // Step keys given as fractions of the run, and eval_strategy's fallback (config.yaml
        // below gets the resolved values).
        cfg.resolve_for_run(self.total_steps());
        let out = PathBuf::from(&cfg.output_dir);
        let resume_dir = checkpoint_policy::resume_dir(&out, &cfg, self.resume)?;
        let device = device_of(&self.model);
        let settings = AdamWSettings {
            beta1: cfg.adam_beta1,
            beta2: cfg.adam_beta2,
            epsilon: cfg.adam_epsilon,
            weight_decay: cfg.weight_decay,
        };
        let total_steps = self.total_steps();
        let mut precision = self.precision.clone();
        let (mut state, mut optim) = match resume_dir {
            Some(dir) => self.restore(&dir, settings, &device, &mut precision)?,
            None => (
                TrainerState {
                    global_step: 0,
                    micro_batches_done: 0,
                    epoch: 0.0,
                    max_steps: total_steps,
                    log_history: Vec::new(),
                    loss_scaler: None,
                },
                AdamW::new(settings),
            ),
        };
        if !self.quiet {
            tracing::info!(
                "precision: {}; checkpoints and final/ in {}",
                precision.describe(),
                self.save_dtype.torch_name()
            );
        }
        let resolved = serde_yaml::to_string(&cfg).expect("config serialises");
        crate::io::write_atomic(&out.join("config.yaml"), resolved.as_bytes())?;
        let metrics_writer = MetricsWriter::create(&out, &state.log_history)?;
        // report_to: tensorboard; a new event file per run, as transformers' callback.
        let mut tensorboard = if cfg.report_to.tensorboard() {
            let dir = crate::tensorboard::logging_dir(&out, cfg.logging_dir.as_deref());
            let writer = crate::tensorboard::EventWriter::create(&dir).with_context(|| {
                format!("creating a TensorBoard event file in {}", dir.display())
            })?;
            if !self.quiet {
                tracing::info!("TensorBoard events: {}", writer.path().display());
            }
            Some(writer)
        } else {
            None
        };
        let samples = if cfg.generate_during_eval && !self.eval_pairs.is_empty() {
            Some(crate::samples::SamplesWriter::create(
                &out,
                state.global_step,
            )?)
        } else {
            None
        };
        let progress = self.progress();

        let schedule = LrSchedule::from_config(&cfg, total_steps);
        let loss_cfg = loss_config(&cfg);
        let micro_per_step = self.micro_batches_per_step();
        let per_epoch = self.micro_batches_per_epoch();
        let collator = Collator::new(self.tokenizer.padding_id());
        let mut order_cache = None;
        let mut window = LogWindow::default();
        let mut loss_sum_run = 0.0;
        let mut steps_run = 0usize;
        let mut skipped_steps = 0usize;
        let mut last_eval = BTreeMap::new();
        let first_step = state.global_step;
        // Several devices: NCCL's all-reduce on CUDA, else the copy to the first device.
        let all_devices: Vec<Device> = std::iter::once(device.clone())
            .chain(self.replica_devices.iter().cloned())
            .collect();
        let (exchange, exchange_note) = GradientExchange::new(&all_devices);
        if let (Some(note), false) = (exchange_note, self.quiet) {
            tracing::info!("{note}");
        }
        progress.train_begin(first_step, total_steps);

        while state.global_step < total_steps {
            let step = state.global_step;
            let lr = schedule.lr_at(step);
            crate::lora::seed_step(&self.model, &device, cfg.seed, step);
            // The replicas start each step from the model's weights.
            let replicas: Vec<M> = self
                .replica_devices
                .iter()
                .map(|d| {
                    crate::lora::seed_step(&self.model, d, cfg.seed, step);
                    self.model.clone().fork(d)
                })
                .collect();
            let mut batches = Vec::with_capacity(micro_per_step);
            for _ in 0..micro_per_step {
                let indices = self.micro_batch(state.micro_batches_done, &mut order_cache);
                state.micro_batches_done += 1;
                batches.push(collator.collate(indices.iter().map(|&i| &self.train_pairs[i])));
            }
            let batches = StepBatches::new(batches, &loss_cfg);
            let results = batches.backward(
                &self.model,
                &replicas,
                &exchange,
                &device,
                &loss_cfg,
                precision.loss_scale(),
            );
            let (mut grads, step_loss, step_metrics) =
                batches.sum(&self.model, results, &exchange, &precision);
            let grad_norm = clip_global_norm(&self.model, &mut grads, cfg.max_grad_norm);
            let verdict = precision.judge(step_loss, grad_norm);
            if verdict == StepVerdict::Update {
                self.model = optim.step(lr, self.model.clone(), &mut grads);
                loss_sum_run += step_loss;
                steps_run += 1;
                window.add(step_loss, grad_norm, step_metrics);
            } else {
                checks::skipped_step(
                    verdict,
                    step,
                    step_loss,
                    grad_norm,
                    precision.loss_scale(),
                    cfg.skip_nonfinite_steps,
                    self.quiet,
                )?;
                skipped_steps += 1;
            }
            state.global_step += 1;
            state.epoch = state.micro_batches_done as f64 / per_epoch as f64;

            let step = state.global_step;
            let last = step == total_steps;
            progress.train_step(step, step_loss, window.accuracy());
            // Whether this step's micro-batches finished an epoch (eval/save_strategy: epoch).
            let epoch_end = state.micro_batches_done / per_epoch
                > (state.micro_batches_done - micro_per_step) / per_epoch;
            // (A window of skipped steps only has nothing to log.)
            if (step.is_multiple_of(cfg.logging_steps) || last) && !window.is_empty() {
                let lr = schedule.lr_at(step.min(total_steps - 1));
                let entry = window.take(step, state.epoch, lr, &precision);
                metrics_writer.append(&entry)?;
                if let Some(tb) = &mut tensorboard {
                    tb.log_entry(&entry)
                        .with_context(|| format!("writing {}", tb.path().display()))?;
                }
                progress.logged(&entry);
                state.log_history.push(entry);
            }
            if !self.eval_pairs.is_empty() && cfg.eval_due(step, epoch_end, last) {
                let eval = self.evaluate()?;
                let entry = LogEntry {
                    step,
                    epoch: state.epoch,
                    values: eval.clone(),
                };
                metrics_writer.append(&entry)?;
                if let Some(tb) = &mut tensorboard {
                    tb.log_entry(&entry)
                        .with_context(|| format!("writing {}", tb.path().display()))?;
                }
                progress.evaluated(step, &eval);
                if let Some(samples) = &samples {
                    let rows = crate::samples::generate_samples(
                        &self.model.valid(),
                        &self.eval_pairs,
                        &self.tokenizer,
                        &cfg,
                        step,
                    )?;
                    samples.append(&rows)?;
                }
                state.log_history.push(entry);
                last_eval = eval;
            }
            if cfg.save_due(step, epoch_end, last) {
                state.loss_scaler = precision.loss_scaler().cloned();
                self.save_checkpoint(&out, &state, &optim)?;
                metrics_writer.write_csv(&state.log_history)?;
            }
        }

        progress.train_end();
        metrics_writer.write_csv(&state.log_history)?;
        crate::plot::write_run_plots(&state.log_history, &out.join("plots"))?;
        let final_dir = out.join("final");
        // From the f32 masters of a bf16 / f16 run, not from their rounding.
        self.export_model(&optim.with_masters(self.model.clone()), &final_dir)?;
        Ok(TrainSummary {
            global_step: state.global_step,
            train_loss: if steps_run > 0 {
                loss_sum_run / steps_run as f64
            } else {
                f64::NAN
            },
            train_runtime_s: started.elapsed().as_secs_f64(),
            eval_metrics: last_eval,
            final_model_dir: final_dir,
            skipped_steps,
        })
    }
}
