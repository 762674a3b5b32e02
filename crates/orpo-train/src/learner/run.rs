//! A whole run of an [`OrpoConfig`] through burn-train (`orpo train --learner burn-train`):
//! the config's keys mapped onto `SupervisedTraining`, the keys burn-train cannot honour
//! refused by name, and `output_dir` written as `OrpoTrainer` writes it (`metrics.jsonl`,
//! `metrics.csv`, `config.yaml`, `plots/`, `final/`), plus burn-train's own files
//! (`checkpoint/` per epoch, `train/` and `valid/` metric logs, and `experiment.log` where
//! burn-train can install its file logger, i.e. when the application has not set a global
//! tracing subscriber first, as the `orpo` binary does).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::module::ModuleDisplay;
use burn::tensor::Device;
use burn_train::checkpoint::KeepLastNCheckpoints;
use burn_train::{ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining};
use orpo_data::{BatchOrder, TokenizedPair, batch_indices};

use super::data::{OrpoBatcher, pair_dataset};
use super::metrics::{MetricsJsonlLogger, TrlNamesFileLogger, register_metrics};
use super::optim::orpo_adamw;
use super::renderer::SilentRenderer;
use super::schedule::OrpoLrScheduler;
use super::step::OrpoLearnerModel;
use crate::config::{IntervalStrategy, OrpoConfig};
use crate::metrics::read_metrics;
use crate::model::CausalLm;
use crate::optim::AdamWSettings;
use crate::trainer::TrainSummary;

/// What a run through burn-train takes beyond the config.
#[derive(Debug, Clone, Default)]
pub struct LearnerRunOptions {
    /// Whose tokenizer files go into `final/`.
    pub tokenizer_dir: Option<PathBuf>,
    /// The chat template that replaced the tokenizer's (`chat_template`), written into `final/`.
    pub chat_template: Option<String>,
    /// Several devices (`--devices`): burn-train's `MultiDevice` execution strategy over them,
    /// each a training device ([`crate::training_device`]); empty or one: the model's device.
    pub devices: Vec<Device>,
    /// No progress lines on stderr (off a terminal they print, as `OrpoTrainer`'s).
    pub quiet: bool,
}

/// How the config's data and length map onto burn-train's epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerPlan {
    /// The config with the step keys given as fractions resolved for this run's length
    /// ([`OrpoConfig::resolve_for_run`]).
    pub config: OrpoConfig,
    /// burn-train epochs.
    pub epochs: usize,
    /// Optimizer steps of the run.
    pub total_steps: usize,
    /// Optimizer steps per burn-train epoch.
    pub steps_per_epoch: usize,
    /// Pairs per loader item (one optimizer step on one device).
    pub pairs_per_step: usize,
    /// The training pairs' indices in the order of the first epoch (all of them, or the first
    /// `max_steps` steps' worth).
    pub order: Vec<usize>,
    /// Whether the loader reshuffles every epoch (`train_sampling_strategy: random` over whole
    /// epochs).
    pub loader_shuffle: bool,
    /// Whether burn-train writes a checkpoint after each epoch (`save_strategy` not `no`).
    pub checkpoints: bool,
    /// Whether burn-train validates after each epoch (`eval_strategy` not `no`).
    pub validate: bool,
}

/// Checks that burn-train can run `config` as `OrpoTrainer` would, and plans its epochs, for
/// `devices` devices.
///
/// burn-train works in whole epochs. Refused, naming the key:
/// - `fp16: true`: the learner has no f16 loss scaler (bf16 trains with f32 masters).
/// - `num_train_epochs` with a fraction (when `max_steps` is not set), and `max_steps` beyond
///   one epoch (burn-train's loader cannot start an epoch part-way).
/// - `save_strategy: steps` with a `save_steps` inside the run: burn-train checkpoints after
///   each epoch (`save_strategy: epoch`).
/// - `eval_steps` inside the run (unless `eval_strategy` is `epoch` or `no`): burn-train
///   validates after each epoch.
///
/// `max_steps` within an epoch runs one epoch of the first `max_steps` steps' pairs, in
/// `OrpoTrainer`'s order (dataset order, or its seeded shuffle); whole epochs run in dataset
/// order, or reshuffled every epoch by burn's loader with `seed` (not `OrpoTrainer`'s order).
pub fn plan(
    config: &OrpoConfig,
    pairs: &[TokenizedPair],
    devices: usize,
) -> anyhow::Result<LearnerPlan> {
    let key = "with `learner: burn-train`";
    if config.fp16 {
        bail!(
            "key `fp16`: {key}, there is no f16 loss scaler (the default learner's \
             `precision::LossScaler`); use bf16: true, or learner: orpo"
        );
    }
    if pairs.is_empty() {
        bail!("the training split has no usable pair");
    }
    let devices = devices.max(1);
    let pairs_per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps;
    let loader_items = pairs.len().div_ceil(pairs_per_step);
    // burn-train's multi-device strategy splits each epoch's items between the devices.
    let steps_per_epoch = loader_items.div_ceil(devices);
    let first_epoch = || -> Vec<usize> {
        let order = config.train_sampling_strategy;
        batch_indices(
            pairs,
            config.per_device_train_batch_size,
            order,
            config.seed,
            false,
        )
        .into_iter()
        .flatten()
        .collect()
    };
    let (epochs, total_steps, steps_per_epoch, order, loader_shuffle) = if config.max_steps > 0 {
        let steps = config.max_steps as usize;
        if steps > steps_per_epoch {
            bail!(
                "key `max_steps` ({steps}): {key}, a run is whole epochs and one epoch is \
                 {steps_per_epoch} steps; set max_steps to at most {steps_per_epoch}, or \
                 max_steps: -1 and num_train_epochs"
            );
        }
        let mut order = first_epoch();
        order.truncate(steps * pairs_per_step * devices);
        (1, steps, steps, order, false)
    } else {
        let epochs = config.num_train_epochs;
        if epochs.fract() != 0.0 || epochs < 1.0 {
            bail!(
                "key `num_train_epochs` ({epochs}): {key}, a run is a whole number of epochs \
                 (at least 1); or set max_steps"
            );
        }
        let epochs = epochs as usize;
        if config.train_sampling_strategy == BatchOrder::LengthGrouped {
            bail!(
                "key `train_sampling_strategy` (group_by_length): {key}, whose loader shuffles \
                 pairs, not length-grouped batches; use `random` or `sequential`, or max_steps"
            );
        }
        let shuffle = config.train_sampling_strategy == BatchOrder::Random;
        let order = if shuffle {
            (0..pairs.len()).collect()
        } else {
            first_epoch()
        };
        (
            epochs,
            steps_per_epoch * epochs,
            steps_per_epoch,
            order,
            shuffle,
        )
    };
    let mut config = config.clone();
    config.resolve_for_run(total_steps);
    let checkpoints = match config.save_strategy {
        IntervalStrategy::No => false,
        IntervalStrategy::Epoch => true,
        IntervalStrategy::Steps => {
            if config.save_steps > 0 && config.save_steps < total_steps {
                bail!(
                    "key `save_steps` ({}): {key}, checkpoints are written after each epoch \
                     (burn-train's checkpointer, into output_dir/checkpoint), not every \
                     save_steps steps; set save_strategy: epoch",
                    config.save_steps
                );
            }
            true
        }
    };
    let validate = match config.eval_strategy {
        Some(IntervalStrategy::No) => false,
        Some(IntervalStrategy::Epoch) => true,
        Some(IntervalStrategy::Steps) | None => {
            if let Some(steps) = config.eval_steps.filter(|&e| e > 0 && e < total_steps) {
                bail!(
                    "key `eval_steps` ({steps}): {key}, validation runs after each epoch, not \
                     every eval_steps steps; set eval_strategy: epoch"
                );
            }
            true
        }
    };
    Ok(LearnerPlan {
        config,
        epochs,
        total_steps,
        steps_per_epoch,
        pairs_per_step,
        order,
        loader_shuffle,
        checkpoints,
        validate,
    })
}

/// Trains `model` with `config` through burn-train's `SupervisedTraining` and `Learner`, on
/// tokenized pairs (`PreferenceDataset::tokenize` with [`crate::tokenize_config`]); `pad_id` is
/// the tokenizer's padding id. Writes `output_dir` (see the module docs) and returns what
/// `OrpoTrainer::train` returns.
///
/// The model must live on a training device ([`crate::training_device`]); `use_peft: true`
/// attaches LoRA adapters first, as `OrpoTrainer` does.
pub fn train_with_burn_train<M: CausalLm + ModuleDisplay>(
    model: M,
    config: &OrpoConfig,
    train_pairs: Vec<TokenizedPair>,
    mut eval_pairs: Vec<TokenizedPair>,
    pad_id: u32,
    options: LearnerRunOptions,
) -> anyhow::Result<TrainSummary> {
    let started = Instant::now();
    config.validate("config").map_err(anyhow::Error::from)?;
    let devices = options.devices.len().max(1);
    let plan = plan(config, &train_pairs, devices)?;
    let config = &plan.config;
    let device = model.output_head().0.device();
    if !device.is_autodiff() {
        bail!(
            "the model is not on an autodiff device: create it on \
             `orpo_train::training_device(device, &config)`"
        );
    }
    let model = crate::lora::prepare_model(model, config)?;

    let out = PathBuf::from(&config.output_dir);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let has_run = out.join("metrics.jsonl").exists() || out.join("checkpoint").exists();
    if has_run && !config.overwrite_output_dir {
        bail!(
            "{} already holds a run; set overwrite_output_dir: true to start over (the \
             burn-train learner does not resume: `--resume` is the default learner's)",
            out.display()
        );
    }
    let resolved = serde_yaml::to_string(config).expect("config serialises");
    crate::io::write_atomic(&out.join("config.yaml"), resolved.as_bytes())?;

    let ordered: Vec<TokenizedPair> = plan.order.iter().map(|&i| train_pairs[i].clone()).collect();
    drop(train_pairs);
    let micro = config.per_device_train_batch_size;
    let batcher = OrpoBatcher::new(pad_id, micro, config.nll_on_completion_only);
    let mut train_loader = DataLoaderBuilder::new(batcher)
        .batch_size(plan.pairs_per_step)
        .set_device(device.clone());
    if plan.loader_shuffle {
        train_loader = train_loader.shuffle(config.seed);
    }
    let train_loader = train_loader.build(pair_dataset(ordered));
    if let Some(max) = config.max_eval_samples {
        eval_pairs.truncate(max);
    }
    if !plan.validate {
        eval_pairs.clear();
    }
    let eval_batch = config.per_device_eval_batch_size;
    let valid_loader = DataLoaderBuilder::new(OrpoBatcher::new(
        pad_id,
        eval_batch,
        config.nll_on_completion_only,
    ))
    .batch_size(eval_batch)
    .set_device(device.clone())
    .build(pair_dataset(eval_pairs));

    let progress = !options.quiet && !std::io::stdout().is_terminal();
    let jsonl = MetricsJsonlLogger::create(
        &out,
        config.logging_steps,
        plan.total_steps,
        plan.steps_per_epoch,
        progress,
    )?;
    let mut training = SupervisedTraining::new(&out, train_loader, valid_loader)
        .num_epochs(plan.epochs)
        // burn-train reads past values (early stopping, best checkpoint) from the first logger.
        .with_metric_logger(TrlNamesFileLogger::new(&out))
        .with_metric_logger(jsonl);
    if !std::io::stdout().is_terminal() || options.quiet {
        // Off a terminal the run's own lines (the jsonl logger) say where it is.
        training = training.renderer(Box::new(SilentRenderer));
    }
    if plan.checkpoints {
        // The last `save_total_limit` epochs (all by default), as `OrpoTrainer` prunes.
        training = training
            .with_default_checkpointers()
            .with_checkpointing_strategy(KeepLastNCheckpoints::new(
                config.save_total_limit.unwrap_or(usize::MAX).max(1),
            ));
    }
    training = register_metrics(training);
    if options.devices.len() > 1 {
        training = training.with_training_strategy(
            ExecutionStrategy::multi(options.devices.clone(), MultiDeviceOptim::OptimMainDevice)
                .into(),
        );
    }
    let learner_model =
        OrpoLearnerModel::new(model, config).with_interrupter(training.interrupter());
    let settings = AdamWSettings {
        beta1: config.adam_beta1,
        beta2: config.adam_beta2,
        epsilon: config.adam_epsilon,
        weight_decay: config.weight_decay,
    };
    let learner = Learner::new(
        learner_model,
        orpo_adamw(settings),
        OrpoLrScheduler::from_config(config, plan.total_steps),
    );
    let result = training.launch(learner);
    if let Some(error) = result.error {
        bail!("burn-train stopped on an error: {error}");
    }
    if let Some(stop) = result.interrupted {
        bail!(
            "training stopped: {}",
            stop.reason.as_deref().unwrap_or("interrupted")
        );
    }
    let skipped_steps = result.model.skipped_steps();
    let model = result.model.into_model();

    let history = read_metrics(&out.join("metrics.jsonl"))?;
    crate::plot::write_run_plots(&history, &out.join("plots"))?;
    let final_dir = out.join("final");
    let tokenizer_files = options.tokenizer_dir.as_ref().map(|dir| {
        crate::checkpoint::TokenizerFiles::new(dir)
            .with_chat_template(options.chat_template.clone())
    });
    crate::lora::export_final(
        &model,
        tokenizer_files.as_ref(),
        &final_dir,
        config.lora_export,
        // `save_dtype`, else the type the model was loaded from (f32 for a fresh one).
        config
            .save_dtype
            .or_else(|| model.stored_dtype())
            .unwrap_or_default(),
        config.max_shard_size.0,
    )?;
    Ok(TrainSummary {
        global_step: plan.total_steps,
        train_loss: mean_train_loss(&history),
        train_runtime_s: started.elapsed().as_secs_f64(),
        eval_metrics: history
            .iter()
            .rev()
            .find(|e| e.values.contains_key("eval_loss"))
            .map(|e| e.values.clone())
            .unwrap_or_default(),
        final_model_dir: final_dir,
        skipped_steps,
    })
}

/// The mean loss over the logged steps: each logged window's mean weighted by its steps.
fn mean_train_loss(history: &[crate::LogEntry]) -> f64 {
    let (mut sum, mut steps, mut last) = (0.0, 0usize, 0usize);
    for entry in history {
        if let Some(loss) = entry.values.get("loss") {
            let n = entry.step - last;
            sum += loss * n as f64;
            steps += n;
            last = entry.step;
        }
    }
    if steps == 0 {
        f64::NAN
    } else {
        sum / steps as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IntervalStrategy;

    fn pairs(n: usize) -> Vec<TokenizedPair> {
        (0..n)
            .map(|index| TokenizedPair {
                index,
                chosen_ids: vec![1, 5, 6, 2],
                chosen_prompt_len: 2,
                rejected_ids: vec![1, 5, 7, 2],
                rejected_prompt_len: 2,
            })
            .collect()
    }

    fn config() -> OrpoConfig {
        OrpoConfig {
            per_device_train_batch_size: 4,
            gradient_accumulation_steps: 2,
            num_train_epochs: 2.0,
            save_steps: 0,
            ..Default::default()
        }
    }

    /// What burn-train cannot honour is refused with the key's name.
    #[test]
    fn keys_burn_train_cannot_honour_are_named() {
        let data = pairs(20); // 3 steps of 8 pairs per epoch
        for (bad, key) in [
            (
                OrpoConfig {
                    fp16: true,
                    ..config()
                },
                "`fp16`",
            ),
            (
                OrpoConfig {
                    save_steps: 2,
                    ..config()
                },
                "`save_steps`",
            ),
            (
                OrpoConfig {
                    eval_steps: Some(2),
                    ..config()
                },
                "`eval_steps`",
            ),
            (
                OrpoConfig {
                    num_train_epochs: 1.5,
                    ..config()
                },
                "`num_train_epochs`",
            ),
            (
                OrpoConfig {
                    max_steps: 4,
                    ..config()
                },
                "`max_steps`",
            ),
            (
                OrpoConfig {
                    train_sampling_strategy: BatchOrder::LengthGrouped,
                    ..config()
                },
                "`train_sampling_strategy`",
            ),
        ] {
            let err = plan(&bad, &data, 1).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn epochs_and_max_steps_plan_the_run() {
        let data = pairs(20);
        let p = plan(&config(), &data, 1).unwrap();
        assert_eq!((p.epochs, p.steps_per_epoch, p.total_steps), (2, 3, 6));
        assert!(p.loader_shuffle && p.checkpoints && p.validate);
        // Step checkpoints at the run's end only, and evaluation per epoch, are burn-train's.
        let c = OrpoConfig {
            save_steps: 6,
            eval_strategy: Some(IntervalStrategy::Epoch),
            eval_steps: Some(2),
            ..config()
        };
        assert!(plan(&c, &data, 1).is_ok());
        // max_steps within an epoch: the default learner's first-epoch order, cut.
        let c = OrpoConfig {
            max_steps: 2,
            train_sampling_strategy: BatchOrder::Sequential,
            ..config()
        };
        let p = plan(&c, &data, 1).unwrap();
        assert_eq!((p.epochs, p.total_steps), (1, 2));
        assert_eq!(p.order, (0..16).collect::<Vec<_>>());
        assert!(!p.loader_shuffle);
        // Two devices share an epoch's steps.
        let p = plan(&config(), &data, 2).unwrap();
        assert_eq!(p.steps_per_epoch, 2);
    }
}
