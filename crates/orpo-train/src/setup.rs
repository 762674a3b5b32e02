//! From a config to the parts of a run: the training devices, the model, the tokenizer and the
//! train / evaluation splits, resolved as the `orpo` binary resolves them, for a library user
//! as much as for the CLI ([`OrpoTrainer::from_config`] is this module followed by
//! [`OrpoTrainer::new`]).
//!
//! Names that are not local paths (Hugging Face Hub ids) go to a [`Remote`]: the library
//! downloads nothing itself, the binary plugs in its Hub client. Errors say whether the config
//! was at fault ([`SetupError::Usage`]: a missing key, a path that is a file) or the run
//! ([`SetupError::Runtime`]: an unreadable model, a bad dataset row).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use burn::tensor::Device;
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer, list_splits};
use orpo_model::{DecoderConfig, DecoderForCausalLM};

use crate::OrpoConfig;
use crate::trainer::OrpoTrainer;

/// How resolving a run failed: the configuration or the arguments (`Usage`; the binary exits
/// with 2), or something while loading (`Runtime`; exit 1).
pub enum SetupError {
    /// A missing or contradictory key, a path of the wrong kind.
    Usage(anyhow::Error),
    /// Anything that went wrong while reading the model, tokenizer or data.
    Runtime(anyhow::Error),
}

impl SetupError {
    /// The error itself, usage or runtime.
    pub fn into_inner(self) -> anyhow::Error {
        match self {
            SetupError::Usage(e) | SetupError::Runtime(e) => e,
        }
    }

    fn inner(&self) -> &anyhow::Error {
        match self {
            SetupError::Usage(e) | SetupError::Runtime(e) => e,
        }
    }
}

/// A usage error (exit 2 in the binary).
pub fn usage(e: impl Into<anyhow::Error>) -> SetupError {
    SetupError::Usage(e.into())
}

impl fmt::Debug for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            SetupError::Usage(_) => "Usage",
            SetupError::Runtime(_) => "Runtime",
        };
        write!(f, "{kind}({:?})", self.inner())
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner(), f)
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner().source()
    }
}

impl From<anyhow::Error> for SetupError {
    fn from(e: anyhow::Error) -> Self {
        SetupError::Runtime(e)
    }
}

macro_rules! runtime_from {
    ($($t:ty),*) => {$(
        impl From<$t> for SetupError {
            fn from(e: $t) -> Self {
                SetupError::Runtime(e.into())
            }
        }
    )*};
}
runtime_from!(orpo_data::DataError, orpo_model::ModelError, std::io::Error);

/// What a remote name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// A model repository: weights, config and tokenizer.
    Model,
    /// A dataset repository.
    Dataset,
}

/// Where names that are not local paths come from (the binary's Hugging Face Hub client).
pub trait Remote {
    /// The local directory of the remote `name` at `revision` (unset: the default branch), or
    /// `None` when `name` is not a remote name at all (the caller then reports the missing local
    /// path). `what` names the key or flag the name came from, for messages.
    fn resolve(
        &self,
        name: &str,
        kind: RemoteKind,
        what: &str,
        revision: Option<&str>,
    ) -> Option<Result<PathBuf, SetupError>>;
}

/// Local paths only: every name is a path.
pub struct LocalOnly;

impl Remote for LocalOnly {
    fn resolve(
        &self,
        _name: &str,
        _kind: RemoteKind,
        _what: &str,
        _revision: Option<&str>,
    ) -> Option<Result<PathBuf, SetupError>> {
        None
    }
}

/// The datasets of a run.
pub struct Datasets {
    /// The dataset path (a directory of splits, or one file) after [`Remote`] resolution.
    pub path: PathBuf,
    /// The `dataset_train_split` split.
    pub train: PreferenceDataset,
    /// The `dataset_test_split` split, when the dataset is a directory that has it. A single
    /// file is the training split it is given for, never also the held-out one.
    pub eval: Option<PreferenceDataset>,
}

/// Everything a run needs, resolved from its config ([`Setup::resolve`]).
pub struct Resolved {
    /// The training devices ([`crate::training_device`] of each given device); the model lives
    /// on the first.
    pub devices: Vec<Device>,
    /// The model, loaded or freshly initialised.
    pub model: DecoderForCausalLM,
    /// The model's directory, when it was loaded from one.
    pub model_dir: Option<PathBuf>,
    /// The tokenizer.
    pub tokenizer: PreferenceTokenizer,
    /// The directory the tokenizer was read from (its files are copied into checkpoints).
    pub tokenizer_dir: PathBuf,
    /// The train and evaluation splits.
    pub datasets: Datasets,
}

/// Resolves a config's model, tokenizer and datasets.
pub struct Setup<'a> {
    origin: &'a str,
    remote: &'a dyn Remote,
    fresh_weights_device: Option<Device>,
}

impl<'a> Setup<'a> {
    /// Local paths only; `origin` (the config file's path) names the config in errors about
    /// missing keys.
    pub fn new(origin: &'a str) -> Self {
        Self {
            origin,
            remote: &LocalOnly,
            fresh_weights_device: None,
        }
    }

    /// Resolves names that are not local paths through `remote`.
    pub fn with_remote(mut self, remote: &'a dyn Remote) -> Self {
        self.remote = remote;
        self
    }

    /// Draws a fresh model's weights (`model_config`) on `device` (a plain backend device, the
    /// CPU one in the binary) in f32 runs and moves them to the training device, so that every
    /// backend starts from the same weights (each backend's own random numbers differ).
    pub fn with_fresh_weights_device(mut self, device: Device) -> Self {
        self.fresh_weights_device = Some(device);
        self
    }

    /// A local directory, else the [`Remote`]'s directory for `name` at `revision`; `what`
    /// names the key or flag in errors.
    pub fn dir(
        &self,
        name: &str,
        what: &str,
        revision: Option<&str>,
    ) -> Result<PathBuf, SetupError> {
        let path = PathBuf::from(name);
        if path.is_dir() {
            return Ok(path);
        }
        if path.exists() {
            return Err(usage(anyhow!(
                "{what} `{name}` is a file; expected a directory"
            )));
        }
        match self.remote.resolve(name, RemoteKind::Model, what, revision) {
            Some(dir) => dir,
            None => Err(usage(anyhow!("{what} `{name}`: no such directory"))),
        }
    }

    /// A local dataset path (file or folder), else the [`Remote`]'s, as [`dir`](Self::dir).
    pub fn dataset_path(&self, name: &str, what: &str) -> Result<PathBuf, SetupError> {
        let path = PathBuf::from(name);
        if path.exists() {
            return Ok(path);
        }
        // `model_revision` pins the model; TRL's dataset keys have no revision.
        match self.remote.resolve(name, RemoteKind::Dataset, what, None) {
            Some(dir) => dir,
            // A missing local path is reported by the loader, with the path.
            None => Ok(path),
        }
    }

    /// The model of `config`: `model_name_or_path` loaded on `device`, else a fresh model of
    /// `model_config`; with the directory it was loaded from. `device` is a training device.
    pub fn model(
        &self,
        config: &OrpoConfig,
        device: &Device,
    ) -> Result<(DecoderForCausalLM, Option<PathBuf>), SetupError> {
        match (&config.model_name_or_path, &config.model_config) {
            (Some(name), _) => {
                let dir = self.dir(name, "model_name_or_path", config.model_revision.as_deref())?;
                let model = DecoderForCausalLM::from_pretrained(&dir, device)
                    .with_context(|| format!("loading the model from {}", dir.display()))?;
                Ok((model, Some(dir)))
            }
            (None, Some(config_json)) => {
                let model_config = DecoderConfig::from_file(config_json).map_err(usage)?;
                Ok((self.fresh_model(&model_config, device, config)?, None))
            }
            (None, None) => Err(usage(anyhow!(
                "{}: set `model_name_or_path` (a model directory) or `model_config` (a \
                 config.json to initialise a fresh model from)",
                self.origin
            ))),
        }
    }

    /// A fresh model from `model_config`, drawn from the seed on the fresh-weights device and
    /// then moved to `device` ([`with_fresh_weights_device`](Self::with_fresh_weights_device)).
    /// With `bf16` / `fp16`, or without such a device, it is drawn on `device`.
    fn fresh_model(
        &self,
        model_config: &DecoderConfig,
        device: &Device,
        config: &OrpoConfig,
    ) -> Result<DecoderForCausalLM, SetupError> {
        if let Some(plain) = &self.fresh_weights_device
            && !(config.bf16 || config.fp16)
        {
            // Same checkpointing strategy as `device`: `fork` keeps the tensors' own.
            let cpu = crate::training_device(plain.clone(), config)?;
            if cpu != *device {
                cpu.seed(config.seed);
                let model = DecoderForCausalLM::init(model_config, &cpu);
                return Ok(burn::module::Module::fork(model, device));
            }
        }
        Ok(DecoderForCausalLM::init(model_config, device))
    }

    /// The tokenizer of `config`: `tokenizer_name_or_path`, else the model's directory; with
    /// the directory it was read from.
    pub fn tokenizer(
        &self,
        config: &OrpoConfig,
        model_dir: Option<&Path>,
    ) -> Result<(PreferenceTokenizer, PathBuf), SetupError> {
        let dir = match (&config.tokenizer_name_or_path, model_dir) {
            (Some(t), _) => self.dir(
                t,
                "tokenizer_name_or_path",
                config.model_revision.as_deref(),
            )?,
            (None, Some(d)) => d.to_path_buf(),
            (None, None) => {
                return Err(usage(anyhow!(
                    "{}: set `tokenizer_name_or_path`",
                    self.origin
                )));
            }
        };
        let mut tokenizer = PreferenceTokenizer::from_dir(&dir)
            .with_context(|| format!("loading the tokenizer from {}", dir.display()))?;
        apply_chat_template(config, &mut tokenizer).map_err(usage)?;
        Ok((tokenizer, dir))
    }

    /// The train split and, when there is one, the evaluation split of `config`'s `dataset`
    /// (or of the `datasets` mixture, which has no evaluation split of its own). With
    /// `test_size` and no evaluation split, the evaluation split is that part of the training
    /// split ([`PreferenceDataset::train_test_split`], seeded with `seed`); `test_size` with a
    /// dataset that has its `dataset_test_split` is a usage error naming both.
    pub fn datasets(&self, config: &OrpoConfig) -> Result<Datasets, SetupError> {
        let (path, train, eval) = match &config.datasets {
            Some(list) => self.mixture(list, config)?,
            None => {
                let name = config.dataset.as_deref().ok_or_else(|| {
                    usage(anyhow!("{}: set `dataset` (or `datasets`)", self.origin))
                })?;
                let path = self.dataset_path(name, "dataset")?;
                let train = load_split(&path, &config.dataset_train_split, config)?;
                let test = &config.dataset_test_split;
                let eval = if !path.is_file() && has_split(&path, test) {
                    Some(load_split(&path, test, config)?)
                } else {
                    None
                };
                (path, train, eval)
            }
        };
        let Some(size) = config.test_size else {
            return Ok(Datasets { path, train, eval });
        };
        if let Some(eval) = eval {
            return Err(usage(anyhow!(
                "{}: `test_size` holds out part of the training split, but {} has the test \
                 split `{}` ({} examples) given by `dataset_test_split`: drop one of the two",
                self.origin,
                path.display(),
                config.dataset_test_split,
                eval.len()
            )));
        }
        let n = train.len();
        let (train, eval) = train
            .train_test_split(size.of(n), config.seed)
            .map_err(|e| usage(anyhow!("{}: key `test_size`: {e}", self.origin)))?;
        tracing::info!(
            "test_size: {} of the {n} training examples held out for evaluation (shuffle seed \
             {}), {} left for training",
            eval.len(),
            config.seed,
            train.len()
        );
        Ok(Datasets {
            path,
            train,
            eval: Some(eval),
        })
    }

    /// The `datasets` mixture as TRL 1.x's `get_dataset`: each entry's split, with `fraction`s
    /// normalised to weights `w_i` and `total = min(len_i / w_i)` the first
    /// `round(w_i × total)` rows of each (Python's round: ties to even), concatenated in list
    /// order. The path reported is the first entry's.
    fn mixture(
        &self,
        list: &[crate::config::DatasetSpec],
        config: &OrpoConfig,
    ) -> Result<(PathBuf, PreferenceDataset, Option<PreferenceDataset>), SetupError> {
        let mut parts = Vec::with_capacity(list.len());
        let mut first = None;
        for (i, spec) in list.iter().enumerate() {
            let path = self.dataset_path(&spec.path, &format!("datasets[{i}].path"))?;
            let part = load_split(&path, &spec.split, config)?;
            first.get_or_insert(path);
            parts.push(part);
        }
        let fractions: Option<Vec<f64>> = list.iter().map(|d| d.fraction).collect();
        if let Some(fractions) = fractions {
            let sum: f64 = fractions.iter().sum();
            let weights: Vec<f64> = fractions.iter().map(|f| f / sum).collect();
            let total = parts
                .iter()
                .zip(&weights)
                .map(|(p, w)| p.len() as f64 / w)
                .fold(f64::INFINITY, f64::min);
            parts = parts
                .into_iter()
                .zip(&weights)
                .map(|(p, w)| {
                    let keep = ((w * total).round_ties_even() as usize).min(p.len());
                    let idx: Vec<usize> = (0..keep).collect();
                    p.select(&idx, &config.dataset_train_split)
                })
                .collect();
        }
        for (spec, part) in list.iter().zip(&parts) {
            tracing::info!(
                "datasets: {} [{}]: {} examples",
                spec.path,
                spec.split,
                part.len()
            );
        }
        let train = PreferenceDataset::concat(parts, &config.dataset_train_split);
        tracing::info!("datasets: {} training examples in all", train.len());
        Ok((first.expect("validated: not empty"), train, None))
    }

    /// The model of `dir`: a Hugging Face model directory, or a PEFT adapter directory
    /// (`adapter_config.json`) loaded onto its base model, `base` or else the adapter's
    /// `base_model_name_or_path`.
    pub fn load_model(
        &self,
        dir: &Path,
        base: Option<&str>,
        device: &Device,
    ) -> Result<DecoderForCausalLM, SetupError> {
        if !dir.join(orpo_model::lora::ADAPTER_CONFIG).is_file() {
            return Ok(DecoderForCausalLM::from_pretrained(dir, device)?);
        }
        let lora = orpo_model::LoraConfig::from_adapter_dir(dir)?;
        let base = match (base, &lora.base_model_name_or_path) {
            (Some(base), _) => self.dir(base, "--base", None)?,
            (None, Some(base)) => self.dir(
                base,
                &format!(
                    "{}: `base_model_name_or_path`",
                    dir.join(orpo_model::lora::ADAPTER_CONFIG).display()
                ),
                None,
            )?,
            (None, None) => {
                return Err(usage(anyhow!(
                    "{} is a LoRA adapter without `base_model_name_or_path`; pass --base DIR",
                    dir.display()
                )));
            }
        };
        let model = DecoderForCausalLM::from_pretrained(&base, device)
            .with_context(|| format!("loading the base model from {}", base.display()))?;
        Ok(model.load_adapter(dir)?)
    }

    /// Everything a run of `config` on `devices` needs: the training devices (the first seeded
    /// with `seed`), then the model, the tokenizer and the datasets, in that order.
    pub fn resolve(
        &self,
        config: &OrpoConfig,
        devices: Vec<Device>,
    ) -> Result<Resolved, SetupError> {
        // bf16 / fp16 and gradient checkpointing are properties of the device (burn 0.22).
        let devices: Vec<Device> = devices
            .into_iter()
            .map(|d| crate::training_device(d, config))
            .collect::<anyhow::Result<_>>()
            .map_err(usage)?;
        let device = devices
            .first()
            .cloned()
            .ok_or_else(|| usage(anyhow!("no device given")))?;
        device.seed(config.seed);
        let (model, model_dir) = self.model(config, &device)?;
        let (tokenizer, tokenizer_dir) = self.tokenizer(config, model_dir.as_deref())?;
        let datasets = self.datasets(config)?;
        Ok(Resolved {
            devices,
            model,
            model_dir,
            tokenizer,
            tokenizer_dir,
            datasets,
        })
    }
}

/// The Jinja source of `tokenizer`'s chat template when `config`'s `chat_template` replaced it
/// ([`apply_chat_template`]), for the tokenizer files saved with the model.
pub fn replaced_chat_template(
    config: &OrpoConfig,
    tokenizer: &PreferenceTokenizer,
) -> Option<String> {
    config
        .chat_template
        .as_ref()
        .map(|_| tokenizer.chat_template().source().to_string())
}

/// Replaces `tokenizer`'s chat template with `config`'s `chat_template` when it is set (a
/// template string, a file or a name: [`orpo_data::template_source`]); the error names the key.
pub fn apply_chat_template(
    config: &OrpoConfig,
    tokenizer: &mut PreferenceTokenizer,
) -> anyhow::Result<()> {
    let Some(value) = &config.chat_template else {
        return Ok(());
    };
    let source =
        orpo_data::template_source(value).map_err(|e| anyhow!("key `chat_template`: {e}"))?;
    tokenizer
        .set_chat_template(&source)
        .map_err(|e| anyhow!("key `chat_template`: {e}"))?;
    tracing::info!("chat_template: the tokenizer's template is replaced by `chat_template`");
    Ok(())
}

/// The data loading settings of a config (column names, bad rows).
pub fn data_config(config: &OrpoConfig) -> DataConfig {
    DataConfig {
        prompt_column: config.prompt_column.clone(),
        chosen_column: config.chosen_column.clone(),
        rejected_column: config.rejected_column.clone(),
        skip_bad_rows: config.skip_bad_rows,
        ..DataConfig::default()
    }
}

/// Split `split` of the dataset at `path`, with `config`'s columns.
pub fn load_split(
    path: &Path,
    split: &str,
    config: &OrpoConfig,
) -> Result<PreferenceDataset, SetupError> {
    Ok(PreferenceDataset::load(
        path,
        Some(split),
        &data_config(config),
    )?)
}

/// Whether the dataset at `path` has a split named `split` (false when it cannot be listed).
pub fn has_split(path: &Path, split: &str) -> bool {
    list_splits(path)
        .map(|splits| splits.iter().any(|s| s.name == split))
        .unwrap_or(false)
}

impl OrpoTrainer<DecoderForCausalLM> {
    /// A trainer for `config` on `devices` (data parallelism beyond the first), everything
    /// resolved by `setup` ([`Setup::resolve`]): model, tokenizer, train split, and the
    /// evaluation split when the dataset has one.
    pub fn from_config(
        config: &OrpoConfig,
        devices: Vec<Device>,
        setup: &Setup<'_>,
    ) -> Result<Self, SetupError> {
        Self::from_resolved(config, setup.resolve(config, devices)?)
    }

    /// A trainer for `config` from parts [`Setup::resolve`] made.
    pub fn from_resolved(config: &OrpoConfig, resolved: Resolved) -> Result<Self, SetupError> {
        let Resolved {
            devices,
            model,
            tokenizer,
            tokenizer_dir,
            datasets,
            ..
        } = resolved;
        let files = crate::checkpoint::TokenizerFiles::new(&tokenizer_dir)
            .with_chat_template(replaced_chat_template(config, &tokenizer));
        let mut trainer = OrpoTrainer::new(model, config.clone(), datasets.train, tokenizer)?
            .with_tokenizer_files(files)
            .with_devices(devices)
            .map_err(usage)?;
        if let Some(eval) = datasets.eval {
            trainer = trainer.with_eval_dataset(eval)?;
        }
        Ok(trainer)
    }
}
