//! The subcommands, each a thin layer over the library crates.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use crate::hub;
use burn::tensor::Device;
use orpo_data::{Message, PreferenceTokenizer, list_splits, summarize};
use orpo_model::{DecoderForCausalLM, GenerationConfig};
use orpo_train::setup::{Remote, RemoteKind, Resolved, load_split};
use orpo_train::{
    LearnerKind, OrpoConfig, OrpoTrainer, Setup, SetupError, check_tokenizer_fits, evaluate_pairs,
    read_metrics, tokenize_config,
};

/// How a command failed: a usage or configuration error (exit 2) or a runtime error (exit 1),
/// the library's own split of its setup errors.
pub use orpo_train::SetupError as Failure;
use orpo_train::setup::usage;

/// The Hugging Face Hub as the library's [`Remote`]: an `owner/name` id resolved to its cached
/// or downloaded snapshot at `revision` (unset: `main`) (`hub` feature; without it, a usage
/// error that says how to fetch the files).
struct Hub;

impl Remote for Hub {
    fn resolve(
        &self,
        name: &str,
        kind: RemoteKind,
        what: &str,
        revision: Option<&str>,
    ) -> Option<Result<PathBuf, SetupError>> {
        if !hub::looks_like_hub_id(name) {
            return None;
        }
        let kind = match kind {
            RemoteKind::Model => hub::HubKind::Model,
            RemoteKind::Dataset => hub::HubKind::Dataset,
        };
        Some(from_hub(name, kind, what, revision))
    }
}

/// How the commands resolve names and fresh models: Hub ids through [`Hub`], a fresh model's
/// weights drawn on the CPU backend (the same on every backend); `origin` names the config in
/// errors about missing keys.
fn setup(origin: &str) -> Setup<'_> {
    let setup = Setup::new(origin).with_remote(&Hub);
    #[cfg(feature = "cpu")]
    let setup = setup.with_fresh_weights_device(Device::flex());
    setup
}

/// A local directory, else a Hub id's snapshot ([`Setup::dir`]).
fn resolve_dir(name: &str, what: &str, revision: Option<&str>) -> Result<PathBuf, Failure> {
    setup("").dir(name, what, revision)
}

/// A local dataset path (file or folder), else a Hub dataset id ([`Setup::dataset_path`]).
fn resolve_dataset(name: &str, what: &str) -> Result<PathBuf, Failure> {
    setup("").dataset_path(name, what)
}

#[cfg(feature = "hub")]
fn from_hub(
    name: &str,
    kind: hub::HubKind,
    what: &str,
    revision: Option<&str>,
) -> Result<PathBuf, SetupError> {
    let dir = hub::resolve(name, kind, revision, &hub::HubEnv::from_env())
        .with_context(|| format!("{what} `{name}`"))?;
    tracing::info!("{what} `{name}` → {}", dir.display());
    Ok(dir)
}

#[cfg(not(feature = "hub"))]
fn from_hub(
    name: &str,
    _kind: hub::HubKind,
    what: &str,
    _revision: Option<&str>,
) -> Result<PathBuf, SetupError> {
    Err(orpo_train::setup::usage(anyhow!(
        "{what} `{name}` is not a local path, and this build has no Hub support (feature `hub`); \
         fetch it with `huggingface-cli download {name} --local-dir DIR` and pass DIR"
    )))
}

/// Says once what a config has that a TRL user should know: the keys with no effect here, and
/// values derived from others (`max_prompt_length`).
fn say_config_warnings(config: &OrpoConfig) {
    for line in config.warnings() {
        tracing::warn!("config: {line}");
    }
}

/// `orpo config`: every key with its default and meaning, as YAML (or as the Markdown table of
/// docs/config.md).
pub fn config(markdown: bool) -> Result<(), Failure> {
    if markdown {
        print!("{}", orpo_train::config::keys::markdown_table());
    } else {
        print!("{}", orpo_train::config::keys::yaml_listing());
    }
    Ok(())
}

/// `orpo train` on `devices` (one, or several for data parallelism; the model lives on the first).
pub fn train(
    config_path: &str,
    set: &[String],
    resume: bool,
    devices: Vec<Device>,
) -> Result<(), Failure> {
    let config = OrpoConfig::from_yaml_file(config_path)
        .and_then(|c| c.apply_overrides(set))
        .map_err(usage)?;
    say_config_warnings(&config);
    if resume && config.learner == LearnerKind::BurnTrain {
        return Err(usage(anyhow!(
            "--resume with `learner: burn-train`: burn-train restarts at epoch boundaries only and \
             does not keep the data position; resume with the default learner (`learner: orpo`)"
        )));
    }
    let setup = setup(config_path);
    if config.learner == LearnerKind::BurnTrain {
        return train_burn_train(setup.resolve(&config, devices)?, &config);
    }
    let mut trainer = OrpoTrainer::from_config(&config, devices, &setup)?.resume(resume);
    let report = &trainer.train_report;
    tracing::info!(
        "train: {} pairs kept of {} ({} truncated, {} dropped); {} optimizer steps",
        report.rows_out,
        report.rows_in,
        report.truncated,
        report.dropped_total(),
        trainer.total_steps()
    );
    let summary = trainer.train()?;
    tracing::info!("final model: {}", summary.final_model_dir.display());
    println!(
        "{}",
        serde_json::to_string(&summary).expect("summary serialises")
    );
    Ok(())
}

/// `orpo train` with `learner: burn-train`: tokenized as the default learner tokenizes, then
/// burn-train's `SupervisedTraining` (`orpo_train::learner`); several devices run burn-train's
/// `MultiDevice` execution strategy.
fn train_burn_train(resolved: Resolved, config: &OrpoConfig) -> Result<(), Failure> {
    let Resolved {
        devices,
        model,
        tokenizer,
        tokenizer_dir,
        datasets,
        ..
    } = resolved;
    let (train, test) = (datasets.train, datasets.eval);
    check_tokenizer_fits(model.config.vocab_size, &tokenizer)?;
    let tokenize = tokenize_config(config);
    let progress = orpo_train::progress::global();
    let (pairs, report) = orpo_train::progress::tokenize_reporting(
        &train,
        &tokenizer,
        &tokenize,
        &*progress,
        "tokenizing train",
    )
    .context("tokenizing the training split")?;
    let eval_pairs = match test {
        Some(test) => {
            orpo_train::progress::tokenize_reporting(
                &test,
                &tokenizer,
                &tokenize,
                &*progress,
                "tokenizing eval",
            )
            .context("tokenizing the evaluation split")?
            .0
        }
        None => Vec::new(),
    };
    // What burn-train cannot honour is a configuration error, naming the key.
    let plan = orpo_train::learner::plan(config, &pairs, devices.len()).map_err(usage)?;
    tracing::info!(
        "train (burn-train learner): {} pairs kept of {} ({} truncated, {} dropped); {} \
         optimizer steps in {} epoch(s)",
        report.rows_out,
        report.rows_in,
        report.truncated,
        report.dropped_total(),
        plan.total_steps,
        plan.epochs
    );
    let options = orpo_train::learner::LearnerRunOptions {
        chat_template: orpo_train::setup::replaced_chat_template(config, &tokenizer),
        tokenizer_dir: Some(tokenizer_dir),
        devices: if devices.len() > 1 {
            devices
        } else {
            Vec::new()
        },
        quiet: false,
    };
    let summary = orpo_train::learner::train_with_burn_train(
        model,
        config,
        pairs,
        eval_pairs,
        tokenizer.padding_id(),
        options,
    )?;
    tracing::info!("final model: {}", summary.final_model_dir.display());
    println!(
        "{}",
        serde_json::to_string(&summary).expect("summary serialises")
    );
    Ok(())
}

/// `orpo eval`.
pub fn eval(
    model: &str,
    dataset: &str,
    split: Option<&str>,
    set: &[String],
    device: Device,
) -> Result<(), Failure> {
    let config = OrpoConfig::default().apply_overrides(set).map_err(usage)?;
    say_config_warnings(&config);
    let dir = resolve_dir(model, "--model", config.model_revision.as_deref())?;
    let model = load_model(&dir, None, &device)?;
    let mut tokenizer = PreferenceTokenizer::from_dir(&dir)?;
    orpo_train::setup::apply_chat_template(&config, &mut tokenizer).map_err(usage)?;
    check_tokenizer_fits(model.config.vocab_size, &tokenizer)
        .with_context(|| format!("{}", dir.display()))?;
    let split = split.unwrap_or(&config.dataset_test_split);
    let dataset = resolve_dataset(dataset, "--dataset")?;
    let data = load_split(&dataset, split, &config)?;
    let (mut pairs, report) = orpo_train::progress::tokenize_reporting(
        &data,
        &tokenizer,
        &tokenize_config(&config),
        &*orpo_train::progress::global(),
        "tokenizing",
    )?;
    if let Some(max) = config.max_eval_samples {
        pairs.truncate(max);
    }
    if pairs.is_empty() {
        return Err(Failure::Runtime(anyhow!(
            "{} [{split}]: no usable pair ({report:?})",
            dataset.display()
        )));
    }
    let mut metrics = evaluate_pairs(&model, &pairs, tokenizer.padding_id(), &config);
    metrics.insert("eval_samples".into(), pairs.len() as f64);
    tracing::info!(
        "evaluated {} pairs of {} [{split}]",
        pairs.len(),
        dataset.display()
    );
    println!(
        "{}",
        serde_json::to_string(&metrics).expect("metrics serialise")
    );
    Ok(())
}

/// The prompt token ids for `text`: the chat template with a generation prompt, BOS added once.
fn prompt_ids(tokenizer: &PreferenceTokenizer, text: &str) -> anyhow::Result<Vec<u32>> {
    let messages = [Message {
        role: "user".into(),
        content: text.into(),
    }];
    let rendered = tokenizer
        .chat_template()
        .render(&messages, true)
        .map_err(|e| anyhow!("chat template: {e}"))?;
    let mut ids = tokenizer.encode(&rendered)?;
    if let Some(bos) = tokenizer.bos_id()
        && ids.first() != Some(&bos)
    {
        ids.insert(0, bos);
    }
    Ok(ids)
}

/// `orpo generate`.
pub fn generate(
    model: &str,
    prompt: &str,
    mut config: GenerationConfig,
    device: Device,
) -> Result<(), Failure> {
    let dir = resolve_dir(model, "--model", None)?;
    let model = load_model(&dir, None, &device)?;
    let tokenizer = PreferenceTokenizer::from_dir(&dir)?;
    check_tokenizer_fits(model.config.vocab_size, &tokenizer)
        .with_context(|| format!("{}", dir.display()))?;
    let ids = prompt_ids(&tokenizer, prompt)?;
    config.eos_token_ids = model.config.eos_token_ids.clone();
    if let Some(eos) = tokenizer.eos_id() {
        config.eos_token_ids.push(eos);
    }
    let new = model.generate(&ids, &config);
    let text = tokenizer
        .inner()
        .decode(&new, true)
        .map_err(|e| anyhow!("decoding: {e}"))?;
    println!("{}", text.trim_end());
    Ok(())
}

/// `orpo data inspect`.
pub fn inspect(
    dataset: &str,
    tokenizer: Option<&str>,
    split: Option<&str>,
    json: bool,
    set: &[String],
) -> Result<(), Failure> {
    let config = OrpoConfig::default().apply_overrides(set).map_err(usage)?;
    say_config_warnings(&config);
    let dataset = resolve_dataset(dataset, "--dataset")?;
    let splits: Vec<String> = match split {
        Some(s) => vec![s.to_string()],
        None => list_splits(&dataset)?.into_iter().map(|s| s.name).collect(),
    };
    let tokenizer = match tokenizer {
        Some(t) => {
            let mut tok = PreferenceTokenizer::from_dir(resolve_dir(
                t,
                "--tokenizer",
                config.model_revision.as_deref(),
            )?)?;
            orpo_train::setup::apply_chat_template(&config, &mut tok).map_err(usage)?;
            Some(tok)
        }
        None => None,
    };
    let mut all = serde_json::Map::new();
    for name in splits {
        let data = load_split(&dataset, &name, &config)?;
        let value = match &tokenizer {
            Some(tok) => {
                let (pairs, report) = data.tokenize(tok, &tokenize_config(&config))?;
                let summary = summarize(&data, &pairs, &report);
                if !json {
                    println!("== split `{name}`\n{summary}");
                }
                serde_json::to_value(&summary).expect("summary serialises")
            }
            None => {
                let report = data.load_report();
                if !json {
                    println!(
                        "== split `{name}`: {} rows ({} skipped); pass --tokenizer DIR for token statistics",
                        data.len(),
                        report.skipped_total()
                    );
                }
                serde_json::json!({ "rows": data.len(), "load": report })
            }
        };
        all.insert(name, value);
    }
    if json {
        println!("{}", serde_json::Value::Object(all));
    }
    Ok(())
}

/// What `orpo export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A Hugging Face model directory (config.json, safetensors, tokenizer files).
    Safetensors,
    /// One GGUF file (llama.cpp).
    Gguf,
}

/// `orpo export`'s format flags.
pub struct ExportOptions<'a> {
    /// `--dtype`, read per format.
    pub dtype: Option<&'a str>,
    /// `--format`.
    pub format: ExportFormat,
    /// `--max-shard-size` (safetensors).
    pub max_shard_size: &'a str,
}

/// `orpo export`.
///
/// A LoRA checkpoint (a PEFT adapter directory) is loaded onto its base model (`--base`, else
/// the adapter's `base_model_name_or_path`) and written merged with `--merge`, else as a PEFT
/// adapter directory. A full checkpoint is written as a Hugging Face model, sharded at
/// `--max-shard-size`. `--format gguf` writes one GGUF file (adapters merged) with the
/// tokenizer of the checkpoint (or, for an adapter, of its base model).
pub fn export(
    checkpoint: &str,
    out: &str,
    merge: bool,
    base: Option<&str>,
    options: ExportOptions<'_>,
    device: Device,
) -> Result<(), Failure> {
    let max_shard_size = orpo_model::shard::parse_shard_size(options.max_shard_size)
        .map_err(|e| usage(anyhow!("--max-shard-size: {e}")))?;
    let gguf_type = match options.format {
        ExportFormat::Gguf => {
            if !out.ends_with(".gguf") {
                return Err(usage(anyhow!(
                    "--format gguf writes one file: --out must name it, ending in .gguf (got `{out}`)"
                )));
            }
            Some(
                options
                    .dtype
                    .map(str::parse::<orpo_model::gguf::GgufType>)
                    .transpose()
                    .map_err(|e| usage(anyhow!("--dtype: {e}")))?
                    .unwrap_or_default(),
            )
        }
        ExportFormat::Safetensors => None,
    };
    let dtype = match (options.format, options.dtype) {
        (ExportFormat::Safetensors, Some(name)) => Some(
            name.parse::<orpo_model::SaveDtype>()
                .map_err(|e| usage(anyhow!("--dtype: {e}")))?,
        ),
        _ => None,
    };
    let dir = resolve_dir(checkpoint, "--checkpoint", None)?;
    let model = load_model(&dir, base, &device)?;
    // Default: the type the checkpoint (a LoRA adapter's base) is stored in.
    let dtype = dtype.or_else(|| model.stored_dtype()).unwrap_or_default();
    // A checkpoint of a bf16 / f16 run keeps the f32 master weights in its optimizer state:
    // export those, not their rounding in the checkpoint's weights file.
    let optimizer = dir.join(orpo_train::checkpoint::OPTIMIZER_STATE);
    let model = if optimizer.is_file() {
        let optim = orpo_train::optim::AdamW::load(Default::default(), &optimizer, &device)
            .with_context(|| format!("reading the master weights of {}", optimizer.display()))?;
        optim.with_masters(model)
    } else {
        model
    };
    let out = PathBuf::from(out);
    if let Some(ty) = gguf_type {
        // The tokenizer: the checkpoint's copy, else (an adapter) the base model's.
        let base_name = base.map(str::to_string).or_else(|| {
            model
                .lora_config()
                .and_then(|_| orpo_model::LoraConfig::from_adapter_dir(&dir).ok())
                .and_then(|lora| lora.base_model_name_or_path)
        });
        let tokenizer_dir = match base_name {
            Some(name) if !dir.join("tokenizer.json").is_file() => {
                resolve_dir(&name, "--base", None)?
            }
            _ => dir.clone(),
        };
        model
            .merge_lora()
            .save_gguf(&out, &tokenizer_dir, ty)
            .with_context(|| format!("writing {}", out.display()))?;
    } else if model.lora_config().is_some() && !merge {
        let files = orpo_train::checkpoint::TokenizerFiles::new(&dir);
        orpo_train::lora::export_adapter(&model, Some(&files), &out)?;
    } else {
        orpo_train::checkpoint::export_model(
            &model.merge_lora(),
            Some(&orpo_train::checkpoint::TokenizerFiles::new(&dir)),
            &out,
            dtype,
            max_shard_size,
        )?;
    }
    tracing::info!("wrote {}", out.display());
    Ok(())
}

/// The model of `dir`: a Hugging Face model directory, or a PEFT adapter directory
/// (`adapter_config.json`) loaded onto its base model, `base` or else the adapter's
/// `base_model_name_or_path`.
fn load_model(
    dir: &Path,
    base: Option<&str>,
    device: &Device,
) -> Result<DecoderForCausalLM, Failure> {
    setup("").load_model(dir, base, device)
}

/// `orpo plot`.
pub fn plot(run_dir: &str) -> Result<(), Failure> {
    let run = PathBuf::from(run_dir);
    let history = read_metrics(&run.join("metrics.jsonl"))
        .with_context(|| format!("reading {}", run.join("metrics.jsonl").display()))?;
    for file in orpo_train::plot::write_run_plots(&history, &run.join("plots"))? {
        println!("{}", file.display());
    }
    Ok(())
}
