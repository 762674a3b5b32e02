//! The subcommands, each a thin layer over the library crates.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use crate::hub;
use burn::tensor::Device;
use orpo_data::{
    DataConfig, Message, PreferenceDataset, PreferenceTokenizer, list_splits, summarize,
};
use orpo_model::{GenerationConfig, LlamaConfig, LlamaForCausalLM};
use orpo_train::{
    OrpoConfig, OrpoTrainer, check_tokenizer_fits, evaluate_pairs, read_metrics, tokenize_config,
};

/// How a command failed: a usage or configuration error (exit 2) or a runtime error (exit 1).
pub enum Failure {
    /// Bad arguments, config keys or values.
    Usage(anyhow::Error),
    /// Anything that went wrong while running.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

macro_rules! runtime_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::Runtime(e.into())
            }
        }
    )*};
}
runtime_from!(orpo_data::DataError, orpo_model::ModelError, std::io::Error);

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

/// A local directory, else a Hugging Face Hub id resolved to its cached or downloaded snapshot
/// (`hub` feature; without it, a usage error that says how to fetch the files).
fn resolve_dir(name: &str, what: &str) -> Result<PathBuf, Failure> {
    let path = PathBuf::from(name);
    if path.is_dir() {
        return Ok(path);
    }
    if path.exists() {
        return Err(usage(anyhow!(
            "{what} `{name}` is a file; expected a directory"
        )));
    }
    if hub::looks_like_hub_id(name) {
        return from_hub(name, hub::HubKind::Model, what);
    }
    Err(usage(anyhow!("{what} `{name}`: no such directory")))
}

/// A local dataset path (file or folder), else a Hub dataset id, as [`resolve_dir`].
fn resolve_dataset(name: &str, what: &str) -> Result<PathBuf, Failure> {
    let path = PathBuf::from(name);
    if path.exists() || !hub::looks_like_hub_id(name) {
        // A missing local path is reported by the loader, with the path.
        return Ok(path);
    }
    from_hub(name, hub::HubKind::Dataset, what)
}

#[cfg(feature = "hub")]
fn from_hub(name: &str, kind: hub::HubKind, what: &str) -> Result<PathBuf, Failure> {
    let dir = hub::resolve(name, kind).with_context(|| format!("{what} `{name}`"))?;
    eprintln!("{what} `{name}` → {}", dir.display());
    Ok(dir)
}

#[cfg(not(feature = "hub"))]
fn from_hub(name: &str, _kind: hub::HubKind, what: &str) -> Result<PathBuf, Failure> {
    Err(usage(anyhow!(
        "{what} `{name}` is not a local path, and this build has no Hub support (feature `hub`); \
         fetch it with `huggingface-cli download {name} --local-dir DIR` and pass DIR"
    )))
}

fn data_config(config: &OrpoConfig) -> DataConfig {
    DataConfig {
        prompt_column: config.prompt_column.clone(),
        chosen_column: config.chosen_column.clone(),
        rejected_column: config.rejected_column.clone(),
        skip_bad_rows: config.skip_bad_rows,
        ..DataConfig::default()
    }
}

fn has_split(dataset: &Path, split: &str) -> bool {
    list_splits(dataset)
        .map(|splits| splits.iter().any(|s| s.name == split))
        .unwrap_or(false)
}

/// A fresh model from `model_config`, drawn from the seed on the CPU backend and then moved to
/// `device`, so that every backend starts from the same weights (each backend's own random
/// numbers differ). With `bf16` / `fp16`, or without the CPU backend, it is drawn on `device`.
fn init_model(
    model_config: &LlamaConfig,
    device: &Device,
    config: &OrpoConfig,
) -> LlamaForCausalLM {
    #[cfg(feature = "cpu")]
    if !(config.bf16 || config.fp16) {
        // Same checkpointing strategy as `device`: `fork` keeps the tensors' own.
        let cpu = orpo_train::training_device(Device::flex(), config).expect("f32 on the CPU");
        if cpu != *device {
            cpu.seed(config.seed);
            return burn::module::Module::fork(LlamaForCausalLM::init(model_config, &cpu), device);
        }
    }
    let _ = config;
    LlamaForCausalLM::init(model_config, device)
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
    // bf16 / fp16 and gradient checkpointing are properties of the device (burn 0.22).
    let devices: Vec<Device> = devices
        .into_iter()
        .map(|d| orpo_train::training_device(d, &config))
        .collect::<anyhow::Result<_>>()
        .map_err(usage)?;
    let device = devices[0].clone();
    device.seed(config.seed);
    let (model, model_dir) = match (&config.model_name_or_path, &config.model_config) {
        (Some(name), _) => {
            let dir = resolve_dir(name, "model_name_or_path")?;
            let model = LlamaForCausalLM::from_pretrained(&dir, &device)
                .with_context(|| format!("loading the model from {}", dir.display()))?;
            (model, Some(dir))
        }
        (None, Some(config_json)) => {
            let model_config = LlamaConfig::from_file(config_json).map_err(usage)?;
            (init_model(&model_config, &device, &config), None)
        }
        (None, None) => {
            return Err(usage(anyhow!(
                "{config_path}: set `model_name_or_path` (a model directory) or `model_config` \
                 (a config.json to initialise a fresh model from)"
            )));
        }
    };
    let tokenizer_dir = match (&config.tokenizer_name_or_path, &model_dir) {
        (Some(t), _) => resolve_dir(t, "tokenizer_name_or_path")?,
        (None, Some(d)) => d.clone(),
        (None, None) => {
            return Err(usage(anyhow!(
                "{config_path}: set `tokenizer_name_or_path`"
            )));
        }
    };
    let tokenizer = PreferenceTokenizer::from_dir(&tokenizer_dir)
        .with_context(|| format!("loading the tokenizer from {}", tokenizer_dir.display()))?;
    let dataset = config
        .dataset
        .clone()
        .ok_or_else(|| usage(anyhow!("{config_path}: set `dataset`")))?;
    let dataset = resolve_dataset(&dataset, "dataset")?;
    let train = PreferenceDataset::load(
        &dataset,
        Some(&config.dataset_train_split),
        &data_config(&config),
    )?;
    let test_split = config.dataset_test_split.clone();
    let mut trainer = OrpoTrainer::new(model, config.clone(), train, tokenizer)?
        .with_tokenizer_dir(&tokenizer_dir)
        .resume(resume)
        .with_devices(devices)
        .map_err(usage)?;
    if has_split(&dataset, &test_split) {
        let test = PreferenceDataset::load(&dataset, Some(&test_split), &data_config(&config))?;
        trainer = trainer.with_eval_dataset(test)?;
    }
    let report = &trainer.train_report;
    eprintln!(
        "train: {} pairs kept of {} ({} truncated, {} dropped); {} optimizer steps",
        report.rows_out,
        report.rows_in,
        report.truncated,
        report.dropped_total(),
        trainer.total_steps()
    );
    let summary = trainer.train()?;
    eprintln!("final model: {}", summary.final_model_dir.display());
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
    let dir = resolve_dir(model, "--model")?;
    let model = load_model(&dir, None, &device)?;
    let tokenizer = PreferenceTokenizer::from_dir(&dir)?;
    check_tokenizer_fits(model.config.vocab_size, &tokenizer)
        .with_context(|| format!("{}", dir.display()))?;
    let split = split.unwrap_or(&config.dataset_test_split);
    let dataset = resolve_dataset(dataset, "--dataset")?;
    let data = PreferenceDataset::load(&dataset, Some(split), &data_config(&config))?;
    let (pairs, report) = data.tokenize(&tokenizer, &tokenize_config(&config))?;
    if pairs.is_empty() {
        return Err(Failure::Runtime(anyhow!(
            "{} [{split}]: no usable pair ({report:?})",
            dataset.display()
        )));
    }
    let mut metrics = evaluate_pairs(&model, &pairs, tokenizer.padding_id(), &config);
    metrics.insert("eval_samples".into(), pairs.len() as f64);
    eprintln!(
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
    let dir = resolve_dir(model, "--model")?;
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
    let dataset = resolve_dataset(dataset, "--dataset")?;
    let splits: Vec<String> = match split {
        Some(s) => vec![s.to_string()],
        None => list_splits(&dataset)?.into_iter().map(|s| s.name).collect(),
    };
    let tokenizer = match tokenizer {
        Some(t) => Some(PreferenceTokenizer::from_dir(resolve_dir(
            t,
            "--tokenizer",
        )?)?),
        None => None,
    };
    let mut all = serde_json::Map::new();
    for name in splits {
        let data = PreferenceDataset::load(&dataset, Some(&name), &data_config(&config))?;
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

/// `orpo export`.
///
/// A LoRA checkpoint (a PEFT adapter directory) is loaded onto its base model (`--base`, else
/// the adapter's `base_model_name_or_path`) and written merged with `--merge`, else as a PEFT
/// adapter directory. A full checkpoint is written as a Hugging Face model.
pub fn export(
    checkpoint: &str,
    out: &str,
    merge: bool,
    base: Option<&str>,
    device: Device,
) -> Result<(), Failure> {
    let dir = resolve_dir(checkpoint, "--checkpoint")?;
    let model = load_model(&dir, base, &device)?;
    let out = PathBuf::from(out);
    if model.lora_config().is_some() && !merge {
        orpo_train::lora::export_adapter(&model, Some(&dir), &out)?;
    } else {
        orpo_train::checkpoint::export_model(&model.merge_lora(), Some(&dir), &out)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The model of `dir`: a Hugging Face model directory, or a PEFT adapter directory
/// (`adapter_config.json`) loaded onto its base model, `base` or else the adapter's
/// `base_model_name_or_path`.
fn load_model(
    dir: &Path,
    base: Option<&str>,
    device: &Device,
) -> Result<LlamaForCausalLM, Failure> {
    if !dir.join(orpo_model::lora::ADAPTER_CONFIG).is_file() {
        return Ok(LlamaForCausalLM::from_pretrained(dir, device)?);
    }
    let lora = orpo_model::LoraConfig::from_adapter_dir(dir)?;
    let base = match (base, &lora.base_model_name_or_path) {
        (Some(base), _) => resolve_dir(base, "--base")?,
        (None, Some(base)) => resolve_dir(
            base,
            &format!(
                "{}: `base_model_name_or_path`",
                dir.join(orpo_model::lora::ADAPTER_CONFIG).display()
            ),
        )?,
        (None, None) => {
            return Err(usage(anyhow!(
                "{} is a LoRA adapter without `base_model_name_or_path`; pass --base DIR",
                dir.display()
            )));
        }
    };
    let model = LlamaForCausalLM::from_pretrained(&base, device)
        .with_context(|| format!("loading the base model from {}", base.display()))?;
    Ok(model.load_adapter(dir)?)
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
