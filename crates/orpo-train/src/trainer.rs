//! The ORPO training loop: micro-batches, gradient accumulation, global-norm clipping, AdamW,
//! the learning-rate schedule, step-level logging, evaluation and checkpoints, and resume.
//!
//! burn-train's `Learner` checkpoints only per epoch and does not save the data position, so
//! this loop drives the steps itself; the model-side step is [`OrpoStep`]. With the `burn-train`
//! feature, `orpo_train::learner` runs the same step inside burn-train's `Learner`
//! (`learner::OrpoLearnerModel` implements `TrainStep` / `InferenceStep`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_data::{
    Batch, BatchOrder, Collator, PreferenceDataset, PreferenceTokenizer, TokenizeConfig,
    TokenizeReport, TokenizedPair, batch_indices,
};
use orpo_loss::{
    LossDenominators, OrpoInputs, OrpoLossConfig, nll_token_count, orpo_loss_with_denominators,
};
use serde::Serialize;

use crate::checkpoint::{self, TrainerState};
use crate::collective::GradientExchange;
use crate::config::{OrpoConfig, ResumeFrom, SamplingStrategy, TruncationMode};
use crate::metrics::{LogEntry, MetricsWriter};
use crate::model::CausalLm;
use crate::optim::{AdamW, AdamWSettings, accumulate, clip_global_norm};
use crate::precision::{LossScaler, Precision, StepVerdict};
use crate::schedule::LrSchedule;

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

/// Tokenization limits of an [`OrpoConfig`].
pub fn tokenize_config(config: &OrpoConfig) -> TokenizeConfig {
    TokenizeConfig {
        max_length: Some(config.max_length),
        max_prompt_length: config.max_prompt_length,
        max_completion_length: config.max_completion_length,
        truncation_mode: match config.truncation_mode {
            TruncationMode::KeepEnd => orpo_data::TruncationMode::KeepEnd,
            TruncationMode::KeepStart => orpo_data::TruncationMode::KeepStart,
        },
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

/// Trains a [`CausalLm`] with ORPO, TRL's `ORPOTrainer` in Rust.
///
/// ```no_run
/// # use orpo_train::{OrpoConfig, OrpoTrainer};
/// # use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
/// # use orpo_model::LlamaForCausalLM;
/// # fn main() -> anyhow::Result<()> {
/// let device = burn::tensor::Device::default().autodiff();
/// let model = LlamaForCausalLM::from_pretrained("SmolLM2-135M", &device)?;
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
    tokenizer_dir: Option<PathBuf>,
    train_pairs: Vec<TokenizedPair>,
    eval_pairs: Vec<TokenizedPair>,
    /// Tokenization report of the training split.
    pub train_report: TokenizeReport,
    /// Tokenization report of the evaluation split, when there is one.
    pub eval_report: Option<TokenizeReport>,
    resume: bool,
    quiet: bool,
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
        let (train_pairs, train_report) = train_dataset
            .tokenize(&tokenizer, &tokenize_config(&config))
            .context("tokenizing the training split")?;
        if train_pairs.is_empty() {
            bail!("the training split has no usable pair after tokenization ({train_report:?})");
        }
        check_vocab(&model, &tokenizer, &train_pairs)?;
        Ok(Self {
            model,
            tokenizer,
            tokenizer_dir: None,
            train_pairs,
            eval_pairs: Vec::new(),
            train_report,
            eval_report: None,
            resume: false,
            quiet: false,
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
        let (mut pairs, report) = dataset
            .tokenize(&self.tokenizer, &tokenize_config(&self.config))
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
        self.tokenizer_dir = Some(dir.into());
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

    /// Silence the progress lines on stderr.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
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
            let order = match self.config.train_sampling_strategy {
                SamplingStrategy::Random => BatchOrder::Random,
                SamplingStrategy::Sequential => BatchOrder::Sequential,
            };
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
        Ok(evaluate_pairs(
            &self.model.valid(),
            &self.eval_pairs,
            self.tokenizer.padding_id(),
            &self.config,
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
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        checkpoint::remove_partial_checkpoints(&out);
        let existing = checkpoint::list_checkpoints(&out);
        let has_run = !existing.is_empty() || out.join("metrics.jsonl").exists();
        // `resume_from_checkpoint: true` is `--resume`; a path names the checkpoint.
        let resume = self.resume
            || matches!(
                cfg.resume_from_checkpoint,
                Some(ResumeFrom::Latest(true) | ResumeFrom::Path(_))
            );
        let resume_dir = match &cfg.resume_from_checkpoint {
            Some(ResumeFrom::Path(dir)) => {
                if !dir.join(checkpoint::TRAINER_STATE).is_file() {
                    bail!(
                        "resume_from_checkpoint: {} is not a checkpoint (no {})",
                        dir.display(),
                        checkpoint::TRAINER_STATE
                    );
                }
                Some(dir.clone())
            }
            _ if resume => existing.last().map(|(_, dir)| dir.clone()),
            _ => None,
        };
        if has_run && !resume && !cfg.overwrite_output_dir {
            bail!(
                "{} already holds a run; pass --resume to continue it or set \
                 overwrite_output_dir: true to start over",
                out.display()
            );
        }
        let device = device_of(&self.model);
        let settings = AdamWSettings {
            beta1: cfg.adam_beta1,
            beta2: cfg.adam_beta2,
            epsilon: cfg.adam_epsilon,
            weight_decay: cfg.weight_decay,
        };
        let total_steps = self.total_steps();
        let mut optim = AdamW::new(settings.clone());
        let mut precision = self.precision.clone();
        let mut state = TrainerState {
            global_step: 0,
            micro_batches_done: 0,
            epoch: 0.0,
            max_steps: total_steps,
            log_history: Vec::new(),
            loss_scaler: None,
        };
        if let Some(dir) = resume_dir {
            let text = std::fs::read_to_string(dir.join(checkpoint::TRAINER_STATE))?;
            state = serde_json::from_str(&text).with_context(|| {
                format!("reading {}", dir.join(checkpoint::TRAINER_STATE).display())
            })?;
            self.model = crate::lora::restore_model(self.model.clone(), &dir, &device)
                .with_context(|| format!("loading the model of {}", dir.display()))?;
            optim = AdamW::load(settings, &dir.join(checkpoint::OPTIMIZER_STATE), &device)?;
            // The weights the interrupted run computed with: its masters' rounding, whatever
            // type the checkpoint's weights were written in.
            self.model = optim.round_masters_into(self.model.clone());
            if let Some(scaler) = state.loss_scaler.clone() {
                precision.set_loss_scaler(scaler);
            }
            if !self.quiet {
                eprintln!(
                    "resuming from {} (step {})",
                    dir.display(),
                    state.global_step
                );
            }
        }
        if !self.quiet {
            eprintln!(
                "precision: {}; checkpoints and final/ in {}",
                precision.describe(),
                self.save_dtype.torch_name()
            );
        }
        let resolved = serde_yaml::to_string(&cfg).expect("config serialises");
        crate::io::write_atomic(&out.join("config.yaml"), resolved.as_bytes())?;
        let metrics_writer = MetricsWriter::create(&out, &state.log_history)?;

        let schedule = LrSchedule::from_config(&cfg, total_steps);
        let loss_cfg = loss_config(&cfg);
        let micro_per_step = self.micro_batches_per_step();
        let per_epoch = self.micro_batches_per_epoch();
        let collator = Collator::new(self.tokenizer.padding_id());
        let mut order_cache = None;
        let mut window: BTreeMap<String, f64> = BTreeMap::new();
        let mut window_steps = 0usize;
        let mut loss_sum_run = 0.0;
        let mut steps_run = 0usize;
        let mut skipped_steps = 0usize;
        let mut last_eval = BTreeMap::new();
        let first_step = state.global_step;
        let loop_started = Instant::now();
        // Several devices: NCCL's all-reduce on CUDA, else the copy to the first device.
        let all_devices: Vec<Device> = std::iter::once(device.clone())
            .chain(self.replica_devices.iter().cloned())
            .collect();
        let (exchange, exchange_note) = GradientExchange::new(&all_devices);
        if let (Some(note), false) = (exchange_note, self.quiet) {
            eprintln!("{note}");
        }

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
            let mut sums = exchange.accumulators();
            let mut step_loss = 0.0;
            let mut step_metrics: BTreeMap<String, f64> = BTreeMap::new();
            // Accumulation is one big batch: every micro-batch's NLL sum is divided by the NLL
            // tokens of the whole step and its odds-ratio sum by the step's pairs, so the
            // micro-batch losses and gradients add up to those of the step's pairs in one batch.
            // (The Hugging Face Trainer divides each micro-batch mean by the accumulation steps
            // instead, which weights tokens unequally when micro-batches differ in length.)
            let mut batches = Vec::with_capacity(micro_per_step);
            for _ in 0..micro_per_step {
                let indices = self.micro_batch(state.micro_batches_done, &mut order_cache);
                state.micro_batches_done += 1;
                batches.push(collator.collate(indices.iter().map(|&i| &self.train_pairs[i])));
            }
            let nll_tokens: Vec<usize> = batches
                .iter()
                .map(|b| {
                    nll_token_count(
                        &b.attention_mask,
                        &b.completion_mask,
                        b.shape(),
                        loss_cfg.nll_on_completion_only,
                    )
                })
                .collect();
            let total_tokens: usize = nll_tokens.iter().sum();
            let total_pairs: usize = batches.iter().map(|b| b.pairs).sum();
            let denominators = LossDenominators::new(total_tokens, total_pairs);
            // Data parallelism: micro-batches go to the devices in turn, one round at a time;
            // the results are added in micro-batch order, so the sum does not depend on which
            // device finishes first.
            let mut results = Vec::with_capacity(batches.len());
            let loss_scale = precision.loss_scale();
            for round in batches.chunks(self.world_size()) {
                if let [batch] = round {
                    // One device: no thread.
                    let main = &device;
                    let r = OrpoStep::backward_scaled_on(
                        &self.model,
                        batch,
                        &loss_cfg,
                        denominators,
                        main,
                        loss_scale,
                    );
                    results.push(r);
                    continue;
                }
                let model = &self.model;
                let replicas = &replicas;
                let exchange = &exchange;
                let loss_cfg = &loss_cfg;
                let device = &device;
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
                                    loss_cfg,
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
            for (k, ((loss, metrics, micro_grads), (batch, &tokens))) in results
                .into_iter()
                .zip(batches.iter().zip(&nll_tokens))
                .enumerate()
            {
                // bf16 / f16: summed, clipped and applied in f32, unscaled (crate::precision).
                let micro_grads = precision.unscale_to_f32(&self.model, micro_grads);
                accumulate(&self.model, &mut sums[exchange.slot(k)], micro_grads);
                step_loss += loss;
                crate::metrics::add_micro_batch_metrics(
                    &mut step_metrics,
                    metrics,
                    (tokens, total_tokens),
                    (batch.pairs, total_pairs),
                );
            }
            let mut grads = exchange.combine(&self.model, sums);
            let grad_norm = clip_global_norm(&self.model, &mut grads, cfg.max_grad_norm);
            let verdict = precision.judge(step_loss, grad_norm);
            if verdict == StepVerdict::Update {
                self.model = optim.step(lr, self.model.clone(), &mut grads);
                loss_sum_run += step_loss;
                steps_run += 1;
                window_steps += 1;
                *window.entry("loss".into()).or_default() += step_loss;
                *window.entry("grad_norm".into()).or_default() += grad_norm;
                for (k, v) in step_metrics {
                    *window.entry(k).or_default() += v;
                }
            } else if verdict == StepVerdict::SkipOverflow {
                if !self.quiet {
                    eprintln!(
                        "step {}: fp16 gradients overflowed (norm {grad_norm}); update skipped, \
                         loss scale lowered to {}",
                        step + 1,
                        precision.loss_scale()
                    );
                }
                skipped_steps += 1;
            } else {
                let (what, value) = if step_loss.is_finite() {
                    ("gradient norm", grad_norm)
                } else {
                    ("loss", step_loss)
                };
                if !cfg.skip_nonfinite_steps {
                    bail!(
                        "step {}: non-finite {what} ({value}); stopping before the update, the \
                         last checkpoint is untouched (set skip_nonfinite_steps: true to skip \
                         such steps instead)",
                        step + 1
                    );
                }
                eprintln!(
                    "warning: step {}: non-finite {what} ({value}); update skipped \
                     (skip_nonfinite_steps)",
                    step + 1
                );
                skipped_steps += 1;
            }
            state.global_step += 1;
            state.epoch = state.micro_batches_done as f64 / per_epoch as f64;

            let step = state.global_step;
            let last = step == total_steps;
            // Whether this step's micro-batches finished an epoch (eval/save_strategy: epoch).
            let epoch_end = state.micro_batches_done / per_epoch
                > (state.micro_batches_done - micro_per_step) / per_epoch;
            // (A window of skipped steps only has nothing to log.)
            if (step.is_multiple_of(cfg.logging_steps) || last) && window_steps > 0 {
                let mut values: BTreeMap<String, f64> = window
                    .iter()
                    .map(|(k, v)| (k.clone(), v / window_steps as f64))
                    .collect();
                values.insert(
                    "learning_rate".into(),
                    schedule.lr_at(step.min(total_steps - 1)),
                );
                if let Some(scaler) = precision.loss_scaler() {
                    values.insert("loss_scale".into(), scaler.scale);
                    let skipped = scaler.skipped_steps as f64;
                    values.insert("loss_scale_skipped_steps".into(), skipped);
                }
                let entry = LogEntry {
                    step,
                    epoch: state.epoch,
                    values,
                };
                metrics_writer.append(&entry)?;
                if !self.quiet {
                    let elapsed = loop_started.elapsed().as_secs_f64();
                    let per_step = elapsed / (step - first_step) as f64;
                    let eta = per_step * (total_steps - step) as f64;
                    eprintln!(
                        "step {step}/{total_steps} | epoch {:.2} | loss {:.4} | nll {:.4} | acc {:.3} | lr {:.2e} | {:.2} s/step | ETA {}",
                        state.epoch,
                        entry.values["loss"],
                        entry.values.get("nll_loss").copied().unwrap_or(f64::NAN),
                        entry
                            .values
                            .get("rewards/accuracies")
                            .copied()
                            .unwrap_or(f64::NAN),
                        entry.values["learning_rate"],
                        per_step,
                        format_duration(eta)
                    );
                }
                state.log_history.push(entry);
                window.clear();
                window_steps = 0;
            }
            if !self.eval_pairs.is_empty() && cfg.eval_due(step, epoch_end, last) {
                let eval = self.evaluate()?;
                let entry = LogEntry {
                    step,
                    epoch: state.epoch,
                    values: eval.clone(),
                };
                metrics_writer.append(&entry)?;
                if !self.quiet {
                    eprintln!(
                        "eval @ step {step} | eval_loss {:.4} | eval_rewards/accuracies {:.3} | eval_logps chosen {:.3} rejected {:.3}",
                        eval["eval_loss"],
                        eval.get("eval_rewards/accuracies")
                            .copied()
                            .unwrap_or(f64::NAN),
                        eval.get("eval_logps/chosen").copied().unwrap_or(f64::NAN),
                        eval.get("eval_logps/rejected").copied().unwrap_or(f64::NAN),
                    );
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

    fn save_checkpoint(
        &self,
        out: &Path,
        state: &TrainerState,
        optim: &AdamW,
    ) -> anyhow::Result<()> {
        checkpoint::write_checkpoint(out, state.global_step, |dir| {
            // From the f32 masters of a bf16 / f16 run (also kept in the optimizer state).
            let model = optim.with_masters(self.model.clone());
            crate::lora::save_model(&model, dir, self.save_dtype)?;
            optim.save(&dir.join(checkpoint::OPTIMIZER_STATE))?;
            if let Some(tok) = &self.tokenizer_dir {
                checkpoint::copy_tokenizer_files(tok, dir)?;
            }
            let text = serde_json::to_string_pretty(state)?;
            crate::io::write_atomic(&dir.join(checkpoint::TRAINER_STATE), text.as_bytes())?;
            Ok(())
        })?;
        checkpoint::prune_checkpoints(out, self.config.save_total_limit);
        Ok(())
    }

    /// Writes the current model (and tokenizer files) as a Hugging Face directory, atomically,
    /// the weights in `save_dtype`; for a LoRA run, the adapter and/or the merged model as
    /// `lora_export` says ([`crate::lora::export_final`]). After a bf16 / f16 run this is the
    /// model's own bf16 / f16 weights; `final/`, which `train` writes, holds the f32 masters'.
    pub fn export(&self, dir: &Path) -> anyhow::Result<()> {
        self.export_model(&self.model, dir)
    }

    fn export_model(&self, model: &M, dir: &Path) -> anyhow::Result<()> {
        crate::lora::export_final(
            model,
            self.tokenizer_dir.as_deref(),
            dir,
            self.config.lora_export,
            self.save_dtype,
            self.config.max_shard_size.0,
        )?;
        Ok(())
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
    let loss_cfg = loss_config(config);
    let device = device_of(model);
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let chunks: Vec<&[TokenizedPair]> = pairs.chunks(config.per_device_eval_batch_size).collect();
    for chunk in &chunks {
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let (inputs, attention) = OrpoStep::inputs(&refs, pad_id, &device);
        let (loss, metrics) = OrpoStep::forward(model, &inputs, attention, &loss_cfg);
        *sums.entry("eval_loss".into()).or_default() += loss.into_scalar::<f32>() as f64;
        for (name, value) in metrics {
            *sums.entry(format!("eval_{name}")).or_default() += value;
        }
    }
    let n = chunks.len().max(1) as f64;
    sums.into_iter().map(|(k, v)| (k, v / n)).collect()
}

fn device_of<M: CausalLm>(model: &M) -> Device {
    model.output_head().0.device()
}

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
fn check_device<M: CausalLm>(model: &M, config: &OrpoConfig) -> anyhow::Result<()> {
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

fn check_vocab<M: CausalLm>(
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

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
