//! The training configuration: the keys of TRL's `ORPOConfig`, transformers'
//! `TrainingArguments` and TRL's script arguments, with their defaults.
//!
//! Read from YAML ([`OrpoConfig::from_yaml_file`]); unknown keys and wrong types are errors that
//! name the key; `KEY=VALUE` overrides ([`OrpoConfig::apply_overrides`]) replace any key.
//!
//! Every key TRL's own parser accepts for ORPO is accepted ([`keys::KEYS`]): the keys that act
//! here are fields of [`OrpoConfig`] (or other names of them, such as `dataset_name`), those
//! without effect here are named in one warning ([`OrpoConfig::warnings`]), and those whose
//! non-default values would change the result in TRL are accepted at their default only.

pub mod keys;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

pub use keys::{KEYS, KeyDoc, KeyKind};

/// TRL 0.2x's default `max_prompt_length`; TRL 1.x has no such key.
pub const TRL_MAX_PROMPT_LENGTH: usize = 512;

/// The `optim` values that are PyTorch's AdamW, which is what runs here (fused, XLA and NPU
/// builds compute the same update).
pub const ADAMW_OPTIMS: [&str; 4] = [
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_torch_xla",
    "adamw_torch_npu_fused",
];

/// The step keys that transformers reads as a fraction of the total steps when below 1.
const RATIO_KEYS: [&str; 4] = ["logging_steps", "eval_steps", "save_steps", "warmup_steps"];

/// A configuration problem, always naming the file and key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key is unknown, has the wrong type, or the YAML is malformed.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file, or `--set` for overrides.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// How the training set is ordered each epoch (transformers' `train_sampling_strategy`:
/// `random`, `sequential`, `group_by_length`): the data crate's batch order, one enum for both.
pub use orpo_data::BatchOrder;

/// Learning-rate schedule after warm-up (transformers' `lr_scheduler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    /// Linear decay to 0 at the last step.
    #[default]
    Linear,
    /// Half a cosine from the peak to 0.
    Cosine,
    /// Constant (warm-up still applies when set).
    Constant,
    /// Constant after the warm-up (transformers' name for the same with warm-up).
    ConstantWithWarmup,
}

/// When to evaluate or save (transformers' `eval_strategy` / `save_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalStrategy {
    /// Never.
    No,
    /// Every `eval_steps` / `save_steps` optimizer steps.
    Steps,
    /// At the end of every epoch.
    Epoch,
}

/// `resume_from_checkpoint`: `true` (the latest checkpoint in `output_dir`), `false`, or the
/// path of a `checkpoint-<step>` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResumeFrom {
    /// `true`: the latest checkpoint of `output_dir`; `false`: start afresh.
    Latest(bool),
    /// A checkpoint directory.
    Path(PathBuf),
}

/// `test_size` (`val_set_size`, `test_split_size`): the part of the training split held out for
/// evaluation when the dataset has no test split, as `datasets.train_test_split(test_size=)`:
/// an integer is a count of examples, a float in (0, 1) a fraction (`ceil(fraction × n)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TestSize {
    /// A number of examples (≥ 1).
    Count(u64),
    /// A fraction of the examples, in (0, 1).
    Fraction(f64),
}

impl TestSize {
    /// The number of examples held out of `n` (`datasets`: `ceil(fraction × n)`).
    pub fn of(self, n: usize) -> usize {
        match self {
            TestSize::Count(c) => c as usize,
            TestSize::Fraction(f) => (f * n as f64).ceil() as usize,
        }
    }
}

/// One entry of `datasets` (TRL 1.x's `DatasetMixtureConfig.datasets`, `get_dataset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A dataset path (file or folder) or Hub id, as `dataset`.
    pub path: String,
    /// A Hub dataset's configuration name: accepted unset only (as `dataset_config`).
    #[serde(default)]
    pub name: Option<String>,
    /// The split to read (default `train`).
    #[serde(default = "train_split")]
    pub split: String,
    /// TRL's `select_columns`: the columns read here are always `prompt_column`,
    /// `chosen_column` and `rejected_column`, which this list must then contain (the prompt
    /// column only when the data has one).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The dataset's share of the mixture: set for all entries or none; normalised to sum to
    /// one, and the mixture is the largest whose shares no dataset is too small for (TRL: the
    /// first `round(weight × total)` rows of each).
    #[serde(default)]
    pub fraction: Option<f64>,
}

fn train_split() -> String {
    "train".into()
}

/// Step keys given as a fraction of the run (transformers: a value below 1 is
/// `ceil(fraction × total steps)`), resolved by [`OrpoConfig::resolve_for_run`] once the total
/// is known.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepRatios {
    /// `logging_steps` below 1.
    pub logging: Option<f64>,
    /// `eval_steps` below 1.
    pub eval: Option<f64>,
    /// `save_steps` below 1.
    pub save: Option<f64>,
    /// `warmup_steps` below 1 (transformers 5 folded `warmup_ratio` into it).
    pub warmup: Option<f64>,
}

impl StepRatios {
    fn slot(&mut self, key: &str) -> &mut Option<f64> {
        match key {
            "logging_steps" => &mut self.logging,
            "eval_steps" => &mut self.eval,
            "save_steps" => &mut self.save,
            "warmup_steps" => &mut self.warmup,
            _ => unreachable!("not a ratio key: {key}"),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> {
        RATIO_KEYS
            .into_iter()
            .zip([self.logging, self.eval, self.save, self.warmup])
            .filter_map(|(key, ratio)| ratio.map(|r| (key, r)))
    }
}

/// Which end of an over-long prompt is kept (TRL's `truncation_mode`): the tokenizer's own
/// setting, `keep_end` or `keep_start`.
pub use orpo_data::TruncationMode;

/// Every key of a training run. `Default` gives TRL's defaults (ORPOConfig v0.25 overrides
/// `learning_rate` to 1e-6 and `logging_steps` to 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrpoConfig {
    // ---- model and data
    /// A local model directory or a Hugging Face Hub id (resolved with `hf-hub` when online).
    pub model_name_or_path: Option<String>,
    /// A `config.json` to initialise a fresh model from, instead of pretrained weights.
    pub model_config: Option<String>,
    /// Tokenizer directory; defaults to `model_name_or_path`.
    pub tokenizer_name_or_path: Option<String>,
    /// The Hub revision (branch, tag or commit) of `model_name_or_path`,
    /// `tokenizer_name_or_path` and `dataset` when they are Hub ids (TRL's `model_revision`;
    /// `revision` is read too). Unset: `main`.
    pub model_revision: Option<String>,
    /// A dataset path (Parquet file or folder, Hugging Face layout, JSONL) or Hub id (TRL's
    /// `dataset_name` is read as this key).
    pub dataset: Option<String>,
    /// Training split name.
    pub dataset_train_split: String,
    /// Evaluation split name.
    pub dataset_test_split: String,
    /// The part of the training split held out for evaluation when the dataset has no
    /// `dataset_test_split` (axolotl's `val_set_size` and TRL's `test_split_size` are read as
    /// this key): a count or a fraction, drawn by a shuffle seeded with `seed`.
    pub test_size: Option<TestSize>,
    /// Several datasets concatenated for training (TRL 1.x's dataset mixture); excludes
    /// `dataset`.
    pub datasets: Option<Vec<DatasetSpec>>,
    /// A chat template that replaces the tokenizer's: a template string, a file, or a name
    /// (`chatml`, `llama3`, `zephyr`, `gemma`, `phi3`).
    pub chat_template: Option<String>,
    /// Column holding the prompt (absent: implicit prompt).
    pub prompt_column: String,
    /// Column holding the preferred completion.
    pub chosen_column: String,
    /// Column holding the rejected completion.
    pub rejected_column: String,
    /// Skip and count bad rows instead of stopping with an error.
    pub skip_bad_rows: bool,
    /// Where checkpoints, metrics, plots and the final model go.
    pub output_dir: String,
    /// Continue into an `output_dir` that already holds a run without resuming (overwrites).
    pub overwrite_output_dir: bool,
    /// Resume from a checkpoint: `true` for the latest in `output_dir` (as `--resume`), or a
    /// `checkpoint-<step>` directory.
    pub resume_from_checkpoint: Option<ResumeFrom>,
    /// Seed of initialisation, shuffling and sampling.
    pub seed: u64,
    /// `random` (default) or `sequential`.
    pub train_sampling_strategy: BatchOrder,

    // ---- optimisation
    /// Peak learning rate.
    pub learning_rate: f64,
    /// The optimizer: one of [`ADAMW_OPTIMS`] (PyTorch's AdamW, what runs here); any other
    /// transformers optimizer is refused rather than silently replaced.
    pub optim: String,
    /// Pairs per micro-batch (each pair is two sequences).
    pub per_device_train_batch_size: usize,
    /// Pairs per evaluation batch.
    pub per_device_eval_batch_size: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Epochs (fractional allowed) when `max_steps` is not positive.
    pub num_train_epochs: f64,
    /// Total optimizer steps; overrides `num_train_epochs` when > 0.
    pub max_steps: i64,
    /// Warm-up as a fraction of the total steps.
    pub warmup_ratio: f64,
    /// Warm-up steps; wins over `warmup_ratio` when > 0.
    pub warmup_steps: usize,
    /// `linear`, `cosine`, `constant`, `constant_with_warmup`.
    pub lr_scheduler_type: SchedulerType,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
    /// AdamW β1.
    pub adam_beta1: f64,
    /// AdamW β2.
    pub adam_beta2: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// Clip the global gradient norm to this (0 disables), as `clip_grad_norm_`.
    pub max_grad_norm: f64,
    /// What a non-finite (NaN or infinite) loss or gradient norm does. `false` (default): stop
    /// the run with an error naming the step, before the update (the last checkpoint is left as
    /// it was). `true`: skip that step's update (weights and optimizer moments unchanged, its
    /// micro-batches consumed, the step counted), print a warning naming the step, go on.
    pub skip_nonfinite_steps: bool,

    // ---- precision and memory (see `orpo_train::training_device`)
    /// Recompute memory-bound activations during the backward pass instead of keeping them
    /// (transformers' name). burn's checkpointing is op-level (`Balanced`): outputs of matmuls
    /// are still kept, so it saves less than PyTorch's per-layer recomputation.
    pub gradient_checkpointing: bool,
    /// Compute in bfloat16 (weights as used by the forward pass, activations, gradients), with
    /// f32 master weights in the optimizer and gradients summed, clipped and applied in f32
    /// (`orpo_train::precision`, docs/backends.md).
    pub bf16: bool,
    /// Compute in float16, as `bf16`, with dynamic loss scaling (torch's `GradScaler`).
    pub fp16: bool,
    /// The float type of the weights written to checkpoints and `final/`: `f32`, `bf16` or
    /// `f16` (transformers' `float32`, `bfloat16`, `float16` also read). Unset: the type the
    /// loaded model was stored in (`dtype` / `torch_dtype` in its config.json), f32 for a model
    /// made from `model_config`. bf16/f16 runs write from their f32 master weights. LoRA adapter
    /// files stay f32 (PEFT's adapters of an f32 or mixed-precision model are f32).
    pub save_dtype: Option<orpo_model::SaveDtype>,
    /// The largest safetensors file of `final/`: bytes, or a string such as `"5GB"` /
    /// `"500MB"` (powers of 1000, as huggingface_hub parses them). Larger models are split into
    /// `model-00001-of-0000N.safetensors` with `model.safetensors.index.json`, as transformers'
    /// `save_pretrained(max_shard_size=...)` writes them.
    pub max_shard_size: orpo_model::shard::ShardSize,

    // ---- ORPO and tokenization
    /// λ, the weight of the odds-ratio term (TRL's `beta`; axolotl's `orpo_alpha` is read as it,
    /// and the two with different values are an error).
    pub beta: f64,
    /// τ, an inverse temperature on the log odds (1.0 = the paper and TRL).
    pub orpo_beta: f64,
    /// Mask the prompt out of the NLL term (TRL includes it).
    pub nll_on_completion_only: bool,
    /// Longest prompt + completion in tokens.
    pub max_length: usize,
    /// Longest prompt once a pair has to be truncated.
    pub max_prompt_length: usize,
    /// Longest completion, when set.
    pub max_completion_length: Option<usize>,
    /// `keep_end` (default) or `keep_start`.
    pub truncation_mode: TruncationMode,
    /// Positions per chunk of the output head in the loss (memory vs speed).
    pub logits_chunk_size: usize,

    // ---- cadence
    /// Log metrics every this many optimizer steps (a YAML value below 1 is a fraction of the
    /// run, see [`StepRatios`]).
    pub logging_steps: usize,
    /// When to evaluate (when a test split exists): `no`, `steps` (every `eval_steps`, else
    /// every `logging_steps`, as transformers) or `epoch`; evaluation also runs after the last
    /// step unless `no`. Unset: every `eval_steps` when set, and at the end.
    pub eval_strategy: Option<IntervalStrategy>,
    /// Evaluate every this many steps (when a test split exists); unset: at the end only.
    pub eval_steps: Option<usize>,
    /// When to write checkpoints: `no`, `steps` (every `save_steps`, and after the last step)
    /// or `epoch` (after every epoch and the last step).
    pub save_strategy: IntervalStrategy,
    /// Write a checkpoint every this many steps (0: never, but at the end).
    pub save_steps: usize,
    /// Keep at most this many checkpoints (oldest deleted first).
    pub save_total_limit: Option<usize>,
    /// Largest number of evaluation pairs used (all when unset).
    pub max_eval_samples: Option<usize>,

    // ---- LoRA (TRL's `ModelConfig` / PEFT's `LoraConfig` names and defaults)
    /// Train LoRA adapters on frozen base weights instead of every weight (TRL's `use_peft`).
    pub use_peft: bool,
    /// LoRA rank `r`.
    pub lora_r: usize,
    /// LoRA `alpha`: the adapters' update is scaled by `lora_alpha / lora_r`.
    pub lora_alpha: f64,
    /// Dropout on the adapters' input while training.
    pub lora_dropout: f64,
    /// Projections that get adapters: a list of names among `q_proj`, `k_proj`, `v_proj`,
    /// `o_proj`, `gate_proj`, `up_proj`, `down_proj`, or `all-linear`. Unset: `q_proj` and
    /// `v_proj` (PEFT's default for Llama, Mistral and Qwen2, which TRL keeps).
    pub lora_target_modules: Option<LoraTargetModules>,
    /// Rank-stabilised LoRA: scale by `lora_alpha / √lora_r` (PEFT's `use_rslora`).
    pub use_rslora: bool,
    /// What a LoRA run writes to `final/`: `adapter` (default: a PEFT adapter directory, what
    /// TRL saves), `merged` (the base with the adapters merged in, a plain Hugging Face model),
    /// or `both` (the adapter in `final/`, the merged model in `final-merged/`).
    pub lora_export: LoraExport,

    // ---- the training loop
    /// Which loop trains: `orpo` (default: `OrpoTrainer`, step checkpoints and exact resume) or
    /// `burn-train` (burn-train's `SupervisedTraining` and `Learner`, whole epochs, its
    /// dashboard; `orpo_train::learner`, docs/architecture.md).
    pub learner: LearnerKind,

    // ---- reporting
    /// Where the logged metrics also go, besides `metrics.jsonl`, `metrics.csv` and `plots/`:
    /// `none` (default), `tensorboard` (event files in `logging_dir`, `orpo_train::tensorboard`),
    /// `all` (every integration available here: tensorboard) or a list of them. Other trackers
    /// (`wandb`, `mlflow`, ...) are not available here and are named in a warning.
    pub report_to: ReportTo,
    /// The TensorBoard log directory; unset: `$TENSORBOARD_LOGGING_DIR`, else
    /// `<output_dir>/runs/<Mon DD_HH-MM-SS>_<host>`, a new one per run (transformers' default).
    pub logging_dir: Option<String>,
    /// After every evaluation, append greedy completions of the first
    /// `per_device_eval_batch_size` evaluation prompts to `<output_dir>/samples.jsonl`
    /// (`orpo_train::samples`; TRL logs the same table to Weights & Biases).
    pub generate_during_eval: bool,

    // ---- what reading the YAML found (not keys)
    /// Step keys given as fractions of the run, resolved by [`OrpoConfig::resolve_for_run`].
    #[serde(skip)]
    pub step_ratios: StepRatios,
    /// How the YAML was written (no part of equality).
    #[serde(skip)]
    pub provenance: Provenance,
}

/// How a config was written: what was given, ignored or derived. It changes nothing a run
/// does beyond what the values say, so it takes no part in equality: a config read back from
/// its own YAML (where every key is written out) equals it.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// Whether `max_prompt_length` was given; unset, it follows `max_length`
    /// (`min(512, max_length / 2)`), also after `--set max_length=...`.
    pub max_prompt_length_set: bool,
    /// The keys of the YAML that have no effect here, in the order given.
    pub ignored_keys: Vec<String>,
    /// Values derived while reading (said in the log by [`OrpoConfig::warnings`]).
    pub derived: Vec<String>,
}

impl PartialEq for Provenance {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `lora_target_modules`: one name (`all-linear`, `q_proj`) or a list of names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LoraTargetModules {
    /// A single name, or `all-linear`.
    One(String),
    /// Several projection names.
    List(Vec<String>),
}

impl LoraTargetModules {
    /// The names as given.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::One(name) => vec![name.clone()],
            Self::List(names) => names.clone(),
        }
    }
}

/// `report_to`: one integration name (`none`, `all`, `tensorboard`, ...) or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReportTo {
    /// One name.
    One(String),
    /// Several names.
    List(Vec<String>),
}

impl Default for ReportTo {
    fn default() -> Self {
        Self::One("none".into())
    }
}

impl ReportTo {
    /// The names as given.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::One(name) => vec![name.clone()],
            Self::List(names) => names.clone(),
        }
    }

    /// Whether TensorBoard event files are written (`tensorboard` or `all`).
    pub fn tensorboard(&self) -> bool {
        self.names()
            .iter()
            .any(|n| n == "tensorboard" || n == "all")
    }

    /// The trackers named that are not available here (all but `none`, `all`, `tensorboard`).
    pub fn unavailable(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| !matches!(n.as_str(), "none" | "all" | "tensorboard"))
            .collect()
    }
}

/// The training loop of a run (`learner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LearnerKind {
    /// `OrpoTrainer`: TRL's step-level cadence, global-norm clipping, exact resume.
    #[default]
    Orpo,
    /// burn-train's `Learner` (the `burn-train` feature of orpo-train).
    BurnTrain,
}

/// What the final directory of a LoRA run holds (`lora_export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoraExport {
    /// A PEFT adapter directory (`adapter_config.json`, `adapter_model.safetensors`).
    #[default]
    Adapter,
    /// The merged model, as a Hugging Face model directory.
    Merged,
    /// The adapter in `final/` and the merged model in `final-merged/`.
    Both,
}

impl Default for OrpoConfig {
    fn default() -> Self {
        Self {
            model_name_or_path: None,
            model_config: None,
            tokenizer_name_or_path: None,
            model_revision: None,
            dataset: None,
            dataset_train_split: "train".into(),
            dataset_test_split: "test".into(),
            test_size: None,
            datasets: None,
            chat_template: None,
            prompt_column: "prompt".into(),
            chosen_column: "chosen".into(),
            rejected_column: "rejected".into(),
            skip_bad_rows: false,
            output_dir: "trainer_output".into(),
            overwrite_output_dir: false,
            resume_from_checkpoint: None,
            seed: 42,
            train_sampling_strategy: BatchOrder::Random,
            learning_rate: 1e-6,
            optim: "adamw_torch".into(),
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            gradient_accumulation_steps: 1,
            num_train_epochs: 3.0,
            max_steps: -1,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            lr_scheduler_type: SchedulerType::Linear,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            skip_nonfinite_steps: false,
            gradient_checkpointing: false,
            bf16: false,
            fp16: false,
            save_dtype: None,
            max_shard_size: Default::default(),
            beta: 0.1,
            orpo_beta: 1.0,
            nll_on_completion_only: false,
            max_length: 1024,
            max_prompt_length: 512,
            max_completion_length: None,
            truncation_mode: TruncationMode::KeepEnd,
            logits_chunk_size: 512,
            logging_steps: 10,
            eval_strategy: None,
            eval_steps: None,
            save_strategy: IntervalStrategy::Steps,
            save_steps: 500,
            save_total_limit: None,
            max_eval_samples: None,
            use_peft: false,
            lora_r: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.05,
            lora_target_modules: None,
            use_rslora: false,
            lora_export: LoraExport::Adapter,
            learner: LearnerKind::Orpo,
            report_to: ReportTo::default(),
            logging_dir: None,
            generate_during_eval: false,
            step_ratios: StepRatios::default(),
            provenance: Provenance::default(),
        }
    }
}

impl OrpoConfig {
    /// Reads a YAML file; unknown keys and wrong types are errors naming the key.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses YAML text; `origin` labels errors (a file name).
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let value: serde_yaml::Value = if text.trim().is_empty() {
            serde_yaml::Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid {
                origin: origin.into(),
                message: e.to_string(),
            })?
        };
        Self::from_yaml_value(value, origin)
    }

    fn from_yaml_value(value: serde_yaml::Value, origin: &str) -> Result<Self, ConfigError> {
        let normalized = normalize(value, origin)?;
        let mut config: Self = serde_path_to_error::deserialize(Value::Mapping(normalized.map))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().to_string();
                ConfigError::Invalid {
                    origin: origin.into(),
                    message: if key == "." {
                        message
                    } else {
                        format!("key `{key}`: {message}")
                    },
                }
            })?;
        config.step_ratios = normalized.ratios;
        config.provenance.ignored_keys = normalized.ignored;
        config.provenance.max_prompt_length_set = normalized.max_prompt_length_set;
        let unavailable = config.report_to.unavailable();
        if !unavailable.is_empty() {
            config.provenance.derived.push(format!(
                "report_to: {} not available here (only tensorboard is); metrics go to \
                 metrics.jsonl, metrics.csv and plots/",
                unavailable.join(", ")
            ));
        }
        if !config.provenance.max_prompt_length_set {
            // TRL 1.x has no `max_prompt_length`; TRL 0.2x's default (512) would refuse any
            // `max_length` of 512 or less, so the prompt gets at most half of `max_length`.
            config.max_prompt_length = TRL_MAX_PROMPT_LENGTH.min(config.max_length / 2);
            if config.max_prompt_length != TRL_MAX_PROMPT_LENGTH {
                config.provenance.derived.push(format!(
                    "max_prompt_length = {} (unset: min(512, max_length / 2) with max_length {})",
                    config.max_prompt_length, config.max_length
                ));
            }
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// What a run should say about this config once: the keys with no effect here, in one
    /// line, and the values derived while reading it.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.provenance.ignored_keys.is_empty() {
            out.push(format!(
                "config keys with no effect here (accepted for TRL compatibility; `orpo config` \
                 says why): {}",
                self.provenance.ignored_keys.join(", ")
            ));
        }
        out.extend(self.provenance.derived.iter().cloned());
        out
    }

    /// Resolves what depends on the run's total optimizer steps, as the Hugging Face Trainer
    /// does: step keys given as fractions become `ceil(fraction × total_steps)` (at least 1),
    /// and `eval_strategy: steps` without `eval_steps` evaluates every `logging_steps`.
    pub fn resolve_for_run(&mut self, total_steps: usize) {
        let at = |ratio: f64| ((ratio * total_steps as f64).ceil() as usize).max(1);
        let ratios = std::mem::take(&mut self.step_ratios);
        if let Some(r) = ratios.logging {
            self.logging_steps = at(r);
        }
        if let Some(r) = ratios.eval {
            self.eval_steps = Some(at(r));
        }
        if let Some(r) = ratios.save {
            self.save_steps = at(r);
        }
        if let Some(r) = ratios.warmup {
            self.warmup_steps = at(r);
        }
        if self.eval_strategy == Some(IntervalStrategy::Steps) && self.eval_steps.unwrap_or(0) == 0
        {
            self.eval_steps = Some(self.logging_steps);
        }
    }

    /// Whether to evaluate after optimizer step `step` (1-based); `epoch_end` when the step
    /// finished an epoch, `last` after the last step.
    pub fn eval_due(&self, step: usize, epoch_end: bool, last: bool) -> bool {
        match self.eval_strategy {
            Some(IntervalStrategy::No) => false,
            Some(IntervalStrategy::Epoch) => epoch_end || last,
            Some(IntervalStrategy::Steps) | None => {
                last || self
                    .eval_steps
                    .is_some_and(|e| e > 0 && step.is_multiple_of(e))
            }
        }
    }

    /// Whether to write a checkpoint after optimizer step `step`, as [`Self::eval_due`].
    pub fn save_due(&self, step: usize, epoch_end: bool, last: bool) -> bool {
        match self.save_strategy {
            IntervalStrategy::No => false,
            IntervalStrategy::Epoch => epoch_end || last,
            IntervalStrategy::Steps => {
                last || (self.save_steps > 0 && step.is_multiple_of(self.save_steps))
            }
        }
    }

    /// Applies `KEY=VALUE` overrides (VALUE parsed as YAML, so `0.5`, `true`, `null` work).
    pub fn apply_overrides(&self, overrides: &[String]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut value = serde_yaml::to_value(self).expect("config serialises");
        let map = value.as_mapping_mut().expect("config is a mapping");
        // What was derived rather than given is derived again from the new values.
        if !self.provenance.max_prompt_length_set {
            map.remove("max_prompt_length");
        }
        for (key, ratio) in self.step_ratios.iter() {
            map.insert(key.into(), ratio.into());
        }
        for item in overrides {
            let (key, raw) = item.split_once('=').ok_or_else(|| ConfigError::Invalid {
                origin: "--set".into(),
                message: format!("`{item}` is not KEY=VALUE"),
            })?;
            let key = key.trim();
            let parsed: serde_yaml::Value =
                serde_yaml::from_str(raw).unwrap_or_else(|_| serde_yaml::Value::String(raw.into()));
            // An override replaces the key it names under any of its names.
            let target = match keys::lookup(key).map(|k| k.kind) {
                Some(KeyKind::Alias(target)) => target,
                _ => key,
            };
            if target == "dtype" {
                map.remove("bf16");
                map.remove("fp16");
            }
            map.remove(target);
            map.insert(serde_yaml::Value::String(key.into()), parsed);
        }
        let mut config = Self::from_yaml_value(value, "--set")?;
        let mut ignored = self.provenance.ignored_keys.clone();
        ignored.extend(
            config
                .provenance
                .ignored_keys
                .drain(..)
                .filter(|k| !self.provenance.ignored_keys.contains(k)),
        );
        config.provenance.ignored_keys = ignored;
        Ok(config)
    }

    /// λ, the weight of the odds-ratio term: `beta` (which `orpo_alpha` is read as).
    pub fn lambda(&self) -> f64 {
        self.beta
    }

    /// `test_size`, `datasets` and `dataset` together.
    fn validate_data_keys(&self, bad: &dyn Fn(String) -> ConfigError) -> Result<(), ConfigError> {
        match self.test_size {
            Some(TestSize::Count(0)) => {
                return Err(bad(
                    "key `test_size` must be a count ≥ 1 or a fraction in (0, 1), not 0".into(),
                ));
            }
            Some(TestSize::Fraction(f)) if !(f > 0.0 && f < 1.0) => {
                return Err(bad(format!(
                    "key `test_size` ({f}) must be a count ≥ 1 or a fraction in (0, 1)"
                )));
            }
            _ => {}
        }
        let Some(list) = &self.datasets else {
            return Ok(());
        };
        if self.dataset.is_some() {
            return Err(bad(
                "keys `datasets` and `dataset` (or `dataset_name`) are both set: give one".into(),
            ));
        }
        if list.is_empty() {
            return Err(bad("key `datasets` is an empty list".into()));
        }
        let with_fraction = list.iter().filter(|d| d.fraction.is_some()).count();
        if with_fraction != 0 && with_fraction != list.len() {
            return Err(bad(
                "key `datasets`: `fraction` must be set for every dataset or for none".into(),
            ));
        }
        for (i, d) in list.iter().enumerate() {
            let at = format!("key `datasets[{i}]` (`{}`)", d.path);
            if let Some(f) = d.fraction
                && !(f > 0.0 && f <= 1.0)
            {
                return Err(bad(format!("{at}: `fraction` ({f}) must be in (0, 1]")));
            }
            if let Some(name) = &d.name {
                return Err(bad(format!(
                    "{at}: `name: {name}`: Hub dataset configurations are not read here; give \
                     the configuration's files as `path`"
                )));
            }
            if let Some(cols) = &d.columns {
                for need in [&self.chosen_column, &self.rejected_column] {
                    if !cols.contains(need) {
                        return Err(bad(format!(
                            "{at}: `columns` lacks `{need}`, a column every pair needs"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks values that serde alone cannot.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            origin: origin.into(),
            message,
        };
        for (key, value) in [
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
            ),
            (
                "per_device_eval_batch_size",
                self.per_device_eval_batch_size,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("max_length", self.max_length),
            ("logits_chunk_size", self.logits_chunk_size),
            ("logging_steps", self.logging_steps),
        ] {
            if value == 0 {
                return Err(bad(format!("key `{key}` must be positive")));
            }
        }
        self.validate_data_keys(&bad)?;
        if self.bf16 && self.fp16 {
            return Err(bad(
                "keys `bf16` and `fp16` are both true: choose one".into()
            ));
        }
        if self.max_prompt_length >= self.max_length {
            return Err(bad(format!(
                "key `max_prompt_length` ({}) must be smaller than `max_length` ({}); leave it \
                 unset to use min(512, max_length / 2)",
                self.max_prompt_length, self.max_length
            )));
        }
        if !ADAMW_OPTIMS.contains(&self.optim.as_str()) {
            return Err(bad(format!(
                "key `optim`: `{}` is not available here; only PyTorch's AdamW runs ({})",
                self.optim,
                ADAMW_OPTIMS.join(", ")
            )));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(bad("key `learning_rate` must be positive".into()));
        }
        // NaN and infinities parse as YAML floats (`.nan`, `.inf`); none is a usable setting.
        for (key, value) in [
            ("learning_rate", self.learning_rate),
            ("num_train_epochs", self.num_train_epochs),
            ("weight_decay", self.weight_decay),
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
            ("adam_epsilon", self.adam_epsilon),
            ("max_grad_norm", self.max_grad_norm),
            ("beta", self.beta),
            ("orpo_beta", self.orpo_beta),
        ] {
            if !value.is_finite() {
                return Err(bad(format!(
                    "key `{key}` must be a finite number, not {value}"
                )));
            }
        }
        for (key, value) in [
            ("num_train_epochs", self.num_train_epochs),
            ("weight_decay", self.weight_decay),
            ("adam_epsilon", self.adam_epsilon),
            ("max_grad_norm", self.max_grad_norm),
        ] {
            if value < 0.0 {
                return Err(bad(format!("key `{key}` must not be negative")));
            }
        }
        for (key, value) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(bad(format!("key `{key}` must be in [0, 1)")));
            }
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(bad("key `warmup_ratio` must be in [0, 1)".into()));
        }
        if self.lora_r == 0 {
            return Err(bad("key `lora_r` must be positive".into()));
        }
        if !self.lora_alpha.is_finite() || self.lora_alpha <= 0.0 {
            return Err(bad("key `lora_alpha` must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(bad("key `lora_dropout` must be in [0, 1)".into()));
        }
        if let Some(targets) = &self.lora_target_modules {
            orpo_model::lora::resolve_target_modules(&targets.names())
                .map_err(|e| bad(format!("key `lora_target_modules`: {e}")))?;
        }
        Ok(())
    }

    /// The LoRA settings of a `use_peft: true` run (`None` otherwise).
    pub fn lora_config(&self) -> Option<orpo_model::LoraConfig> {
        if !self.use_peft {
            return None;
        }
        let mut lora = orpo_model::LoraConfig {
            r: self.lora_r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            use_rslora: self.use_rslora,
            base_model_name_or_path: self.model_name_or_path.clone(),
            ..Default::default()
        };
        if let Some(targets) = &self.lora_target_modules {
            lora.target_modules = orpo_model::lora::resolve_target_modules(&targets.names())
                .expect("checked by validate");
        }
        Some(lora)
    }
}

/// A YAML mapping with TRL's names resolved: the keys without effect removed (and listed), aliases
/// renamed, `dtype` turned into `bf16`/`fp16`, `null` values dropped (TRL's `None`: the
/// default), fractional step keys taken out into [`StepRatios`].
struct Normalized {
    map: Mapping,
    ignored: Vec<String>,
    ratios: StepRatios,
    max_prompt_length_set: bool,
}

fn normalize(value: Value, origin: &str) -> Result<Normalized, ConfigError> {
    let bad = |message: String| ConfigError::Invalid {
        origin: origin.into(),
        message,
    };
    let input = match value {
        Value::Mapping(map) => map,
        Value::Null => Mapping::new(),
        other => {
            return Err(bad(format!(
                "a config is a mapping of keys to values, not {}",
                serde_yaml::to_string(&other).unwrap_or_default().trim()
            )));
        }
    };
    let mut map = Mapping::new();
    let mut ignored = Vec::new();
    for (key, value) in &input {
        let Some(name) = key.as_str() else {
            return Err(bad(format!(
                "keys are names, not `{}`",
                serde_yaml::to_string(key).unwrap_or_default().trim()
            )));
        };
        let target = match keys::lookup(name).map(|k| k.kind) {
            Some(KeyKind::Alias(target)) => {
                if let Some(other) = input.get(target)
                    && !other.is_null()
                    && !value.is_null()
                    && other != value
                {
                    return Err(bad(format!(
                        "key `{name}` and key `{target}` name the same setting with different \
                         values; give one"
                    )));
                }
                target
            }
            Some(KeyKind::NoEffect) => {
                ignored.push(name.to_string());
                continue;
            }
            Some(KeyKind::DefaultOnly(accepted)) => {
                let is_accepted = accepted.iter().any(|a| {
                    let a: Value = serde_yaml::from_str(a).expect("table values are YAML");
                    &a == value || (value.is_null() && a.is_null())
                });
                if !is_accepted {
                    let meaning = keys::lookup(name).map_or("", |k| k.meaning);
                    return Err(bad(format!(
                        "key `{name}`: {} is not supported here ({meaning}); accepted: {}",
                        serde_yaml::to_string(value).unwrap_or_default().trim(),
                        accepted.join(", ")
                    )));
                }
                ignored.push(name.to_string());
                continue;
            }
            // Acting keys, and unknown ones, which serde reports by name.
            Some(KeyKind::Acts) | None => name,
        };
        if value.is_null() {
            continue;
        }
        map.insert(target.into(), value.clone());
    }
    if let Some(dtype) = map.remove("dtype") {
        let flag = match dtype.as_str() {
            Some("auto" | "float32") => None,
            Some("bfloat16") => Some("bf16"),
            Some("float16") => Some("fp16"),
            _ => {
                return Err(bad(format!(
                    "key `dtype`: expected auto, float32, bfloat16 or float16, not {}",
                    serde_yaml::to_string(&dtype).unwrap_or_default().trim()
                )));
            }
        };
        if let Some(flag) = flag {
            if map.get(flag) == Some(&Value::Bool(false)) {
                return Err(bad(format!(
                    "key `dtype` ({}) and key `{flag}` (false) disagree; give one",
                    dtype.as_str().unwrap_or_default()
                )));
            }
            map.insert(flag.into(), true.into());
        }
    }
    let mut ratios = StepRatios::default();
    for key in RATIO_KEYS {
        let Some(Value::Number(number)) = map.get(key) else {
            continue;
        };
        if number.is_u64() || number.is_i64() {
            continue;
        }
        let x = number.as_f64().expect("a YAML number");
        if x == 0.0 {
            map.insert(key.into(), 0u64.into());
        } else if x > 0.0 && x < 1.0 {
            *ratios.slot(key) = Some(x);
            map.remove(key);
        } else if x >= 1.0 && x.fract() == 0.0 && x < 1e15 {
            map.insert(key.into(), (x as u64).into());
        } else {
            return Err(bad(format!(
                "key `{key}` ({x}) must be a whole number of steps, or a fraction of the run \
                 between 0 and 1"
            )));
        }
    }
    Ok(Normalized {
        max_prompt_length_set: map.contains_key("max_prompt_length"),
        map,
        ignored,
        ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_trls() {
        let c = OrpoConfig::default();
        assert_eq!(
            (c.beta, c.learning_rate, c.max_length, c.max_prompt_length),
            (0.1, 1e-6, 1024, 512)
        );
        assert_eq!(
            (c.adam_epsilon, c.max_grad_norm, c.orpo_beta),
            (1e-8, 1.0, 1.0)
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = OrpoConfig::from_yaml_str("learning_rat: 1e-5\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yaml") && err.contains("learning_rat"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let err = OrpoConfig::from_yaml_str("beta: 0.2\nlearning_rate: fast\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("learning_rate"), "{err}");
    }

    #[test]
    fn overrides_replace_keys_and_are_checked() {
        let c = OrpoConfig::from_yaml_str("beta: 0.2\n", "c.yaml").unwrap();
        let c = c
            .apply_overrides(&["learning_rate=0.001".into(), "output_dir=/tmp/x".into()])
            .unwrap();
        assert_eq!(
            (c.learning_rate, c.output_dir.as_str(), c.beta),
            (1e-3, "/tmp/x", 0.2)
        );
        let err = c
            .apply_overrides(&["nope=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = c
            .apply_overrides(&["max_steps=many".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_steps"), "{err}");
    }

    #[test]
    fn non_finite_and_out_of_range_numbers_are_named() {
        for (yaml, key) in [
            ("beta: .nan\n", "beta"),
            ("learning_rate: .inf\n", "learning_rate"),
            ("num_train_epochs: .inf\n", "num_train_epochs"),
            ("max_grad_norm: -.inf\n", "max_grad_norm"),
            ("orpo_beta: .NaN\n", "orpo_beta"),
            ("orpo_alpha: .nan\n", "beta"),
            ("adam_epsilon: 1e400\n", "adam_epsilon"),
            ("weight_decay: -0.1\n", "weight_decay"),
            ("adam_beta2: 1.0\n", "adam_beta2"),
        ] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{yaml}: {err}");
        }
        let err = OrpoConfig::default()
            .apply_overrides(&["beta=.nan".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`beta`") && err.contains("finite"), "{err}");
    }

    #[test]
    fn train_sampling_strategy_takes_transformers_values() {
        for (text, order) in [
            ("random", BatchOrder::Random),
            ("sequential", BatchOrder::Sequential),
            ("group_by_length", BatchOrder::LengthGrouped),
        ] {
            let yaml = format!("train_sampling_strategy: {text}\n");
            let c = OrpoConfig::from_yaml_str(&yaml, "c.yaml").unwrap();
            assert_eq!(c.train_sampling_strategy, order, "{text}");
        }
        let err = OrpoConfig::from_yaml_str("train_sampling_strategy: shuffled\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("train_sampling_strategy"), "{err}");
    }

    #[test]
    fn orpo_alpha_sets_lambda_and_conflicts_with_beta() {
        let c = OrpoConfig::from_yaml_str("orpo_alpha: 0.5\n", "c.yaml").unwrap();
        assert_eq!(c.lambda(), 0.5);
        // Overriding an unrelated key keeps λ; an override of either name sets it.
        assert_eq!(c.apply_overrides(&["seed=1".into()]).unwrap().lambda(), 0.5);
        assert_eq!(
            c.apply_overrides(&["beta=0.3".into()]).unwrap().lambda(),
            0.3
        );
        let set = c.apply_overrides(&["orpo_alpha=0.2".into()]).unwrap();
        assert_eq!(set.lambda(), 0.2);
        let c = OrpoConfig::from_yaml_str("orpo_alpha: 0.5\nbeta: 0.5\n", "c.yaml").unwrap();
        assert_eq!(c.lambda(), 0.5);
        let err = OrpoConfig::from_yaml_str("orpo_alpha: 0.5\nbeta: 0.2\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("orpo_alpha") && err.contains("beta"), "{err}");
    }

    #[test]
    fn lora_keys_parse_and_are_checked() {
        let c = OrpoConfig::from_yaml_str(
            "use_peft: true\nlora_r: 8\nlora_alpha: 16\nlora_target_modules: all-linear\n",
            "c.yaml",
        )
        .unwrap();
        let lora = c.lora_config().unwrap();
        assert_eq!((lora.r, lora.alpha, lora.dropout), (8, 16.0, 0.05));
        assert_eq!(lora.target_modules.len(), 7);
        assert_eq!(c.lora_export, LoraExport::Adapter);
        let c = OrpoConfig::from_yaml_str(
            "use_peft: true\nlora_target_modules: [v_proj, q_proj, down_proj]\nlora_export: both\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(
            c.lora_config().unwrap().target_modules,
            ["q_proj", "v_proj", "down_proj"]
        );
        assert_eq!(c.lora_export, LoraExport::Both);
        // Defaults: TRL's ModelConfig (q_proj, v_proj), and no LoRA without use_peft.
        let c = OrpoConfig::from_yaml_str("use_peft: true\n", "c.yaml").unwrap();
        assert_eq!(
            c.lora_config().unwrap().target_modules,
            ["q_proj", "v_proj"]
        );
        assert_eq!(OrpoConfig::default().lora_config(), None);
        for (yaml, key) in [
            (
                "lora_target_modules: [q_proj, lm_head]\n",
                "lora_target_modules",
            ),
            ("lora_r: 0\n", "lora_r"),
            ("lora_dropout: 1.5\n", "lora_dropout"),
            ("lora_export: zip\n", "lora_export"),
        ] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
        let with_targets = OrpoConfig {
            use_peft: true,
            lora_target_modules: Some(LoraTargetModules::List(vec!["o_proj".into()])),
            ..Default::default()
        };
        let text = serde_yaml::to_string(&with_targets).unwrap();
        assert_eq!(OrpoConfig::from_yaml_str(&text, "x").unwrap(), with_targets);
    }

    #[test]
    fn save_dtype_parses_our_and_transformers_names() {
        use orpo_model::SaveDtype;
        for (text, dtype) in [
            ("f32", SaveDtype::F32),
            ("bf16", SaveDtype::Bf16),
            ("bfloat16", SaveDtype::Bf16),
            ("f16", SaveDtype::F16),
            ("float16", SaveDtype::F16),
        ] {
            let c = OrpoConfig::from_yaml_str(&format!("save_dtype: {text}\n"), "c.yaml").unwrap();
            assert_eq!(c.save_dtype, Some(dtype), "{text}");
            let back = serde_yaml::to_string(&c).unwrap();
            assert_eq!(OrpoConfig::from_yaml_str(&back, "x").unwrap(), c);
        }
        assert_eq!(OrpoConfig::default().save_dtype, None);
        let err = OrpoConfig::from_yaml_str("save_dtype: f64\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yaml") && err.contains("save_dtype"),
            "{err}"
        );
    }

    #[test]
    fn trl_names_act() {
        let c = OrpoConfig::from_yaml_str(
            "dataset_name: trl-lib/ultrafeedback_binarized\noptim: adamw_torch\n\
             eval_strategy: steps\nsave_strategy: epoch\nreport_to: none\n\
             model_revision: 0123abcd\nresume_from_checkpoint: true\ndtype: bfloat16\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(
            c.dataset.as_deref(),
            Some("trl-lib/ultrafeedback_binarized")
        );
        assert_eq!(c.eval_strategy, Some(IntervalStrategy::Steps));
        assert_eq!(c.save_strategy, IntervalStrategy::Epoch);
        assert_eq!(c.model_revision.as_deref(), Some("0123abcd"));
        assert_eq!(c.resume_from_checkpoint, Some(ResumeFrom::Latest(true)));
        assert!(c.bf16 && !c.fp16);
        // report_to acts (tensorboard); `none` writes no event file and warns of nothing.
        assert!(c.provenance.ignored_keys.is_empty(), "{:?}", c.provenance);
        assert!(!c.report_to.tensorboard() && c.warnings().is_empty());
        let c = OrpoConfig::from_yaml_str(
            "revision: v1\nresume_from_checkpoint: runs/x/checkpoint-20\n",
            "c.yaml",
        )
        .unwrap();
        assert_eq!(c.model_revision.as_deref(), Some("v1"));
        assert_eq!(
            c.resume_from_checkpoint,
            Some(ResumeFrom::Path("runs/x/checkpoint-20".into()))
        );
        // Two names of one key with different values, and dtype against bf16, conflict.
        for (yaml, key) in [
            ("dataset_name: a/b\ndataset: c/d\n", "dataset_name"),
            ("dtype: bfloat16\nbf16: false\n", "dtype"),
            ("dtype: int8\n", "dtype"),
            ("eval_strategy: sometimes\n", "eval_strategy"),
        ] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{yaml}: {err}");
        }
        // null is TRL's None: the default.
        let c = OrpoConfig::from_yaml_str("bf16: null\noutput_dir: null\n", "c.yaml").unwrap();
        assert_eq!(c, OrpoConfig::default());
    }

    #[test]
    fn other_optimizers_and_result_changing_keys_are_refused_by_name() {
        for optim in ADAMW_OPTIMS {
            OrpoConfig::from_yaml_str(&format!("optim: {optim}\n"), "c.yaml").unwrap();
        }
        for (yaml, key) in [
            ("optim: adafactor\n", "optim"),
            ("optim: paged_adamw_8bit\n", "optim"),
            ("load_in_4bit: true\n", "load_in_4bit"),
            ("neftune_noise_alpha: 5\n", "neftune_noise_alpha"),
            ("push_to_hub: true\n", "push_to_hub"),
        ] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{yaml}: {err}");
        }
        // At TRL's default they change nothing and are only named in the warning.
        let c = OrpoConfig::from_yaml_str("load_in_4bit: false\npush_to_hub: false\n", "c.yaml")
            .unwrap();
        assert_eq!(c.provenance.ignored_keys, ["load_in_4bit", "push_to_hub"]);
    }

    #[test]
    fn unknown_keys_stay_errors_next_to_trl_keys() {
        let err = OrpoConfig::from_yaml_str("report_to: none\nlerning_rate: 1e-5\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lerning_rate"), "{err}");
    }

    #[test]
    fn ignored_keys_are_named_once_in_one_warning() {
        let c = OrpoConfig::from_yaml_str(
            "logging_first_step: true\nrun_name: x\ndataloader_num_workers: 4\n",
            "c.yaml",
        )
        .unwrap();
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].ends_with("logging_first_step, run_name, dataloader_num_workers"),
            "{warnings:?}"
        );
        // An override keeps them, without naming them twice.
        let c = c
            .apply_overrides(&["run_name=y".into(), "seed=3".into()])
            .unwrap();
        assert_eq!(
            c.provenance.ignored_keys,
            ["logging_first_step", "run_name", "dataloader_num_workers"]
        );
    }

    #[test]
    fn report_to_writes_tensorboard_and_names_other_trackers() {
        for yaml in [
            "report_to: tensorboard\n",
            "report_to: all\n",
            "report_to: [wandb, tensorboard]\n",
        ] {
            let c = OrpoConfig::from_yaml_str(yaml, "c.yaml").unwrap();
            assert!(c.report_to.tensorboard(), "{yaml}");
        }
        for yaml in [
            "report_to: none\n",
            "report_to: [none]\n",
            "report_to: null\n",
            "",
        ] {
            let c = OrpoConfig::from_yaml_str(yaml, "c.yaml").unwrap();
            assert!(!c.report_to.tensorboard(), "{yaml}");
            assert!(c.warnings().is_empty(), "{yaml}: {:?}", c.warnings());
        }
        let c = OrpoConfig::from_yaml_str("report_to: [wandb, mlflow]\n", "c.yaml").unwrap();
        assert!(!c.report_to.tensorboard());
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("report_to: wandb, mlflow not available"));
        let err = OrpoConfig::from_yaml_str("report_to: 3\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("report_to"), "{err}");
        let c =
            OrpoConfig::from_yaml_str("logging_dir: tb/x\ngenerate_during_eval: true\n", "c.yaml")
                .unwrap();
        assert_eq!(c.logging_dir.as_deref(), Some("tb/x"));
        assert!(c.generate_during_eval && c.provenance.ignored_keys.is_empty());
    }

    #[test]
    fn fractional_step_keys_are_ratios_of_the_run() {
        let c = OrpoConfig::from_yaml_str(
            "eval_steps: 0.2\nsave_steps: 0.25\nlogging_steps: 0.01\nwarmup_steps: 0.1\n",
            "c.yaml",
        )
        .unwrap();
        // transformers: ceil(ratio × max_steps), TrainerState.compute_steps.
        let mut run = c.clone();
        run.resolve_for_run(37);
        assert_eq!(
            (
                run.eval_steps,
                run.save_steps,
                run.logging_steps,
                run.warmup_steps
            ),
            (Some(8), 10, 1, 4)
        );
        assert_eq!(run.step_ratios, StepRatios::default());
        // Ratios survive overrides of other keys, and whole floats are step counts.
        let mut c = c
            .apply_overrides(&["seed=1".into(), "save_steps=30.0".into()])
            .unwrap();
        c.resolve_for_run(100);
        assert_eq!(
            (c.eval_steps, c.save_steps, c.logging_steps),
            (Some(20), 30, 1)
        );
        for yaml in ["eval_steps: 2.5\n", "save_steps: -0.5\n"] {
            let err = OrpoConfig::from_yaml_str(yaml, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(yaml.split(':').next().unwrap()), "{err}");
        }
    }

    #[test]
    fn strategies_decide_evaluation_and_checkpoints() {
        let steps = |yaml: &str, total: usize, per_epoch: usize| {
            let mut c = OrpoConfig::from_yaml_str(yaml, "c.yaml").unwrap();
            c.resolve_for_run(total);
            let due = |f: &dyn Fn(usize, bool, bool) -> bool| {
                (1..=total)
                    .filter(|&s| f(s, s % per_epoch == 0, s == total))
                    .collect::<Vec<_>>()
            };
            (
                due(&|s, e, l| c.eval_due(s, e, l)),
                due(&|s, e, l| c.save_due(s, e, l)),
            )
        };
        // Unset: every eval_steps and at the end; checkpoints every save_steps and at the end.
        assert_eq!(
            steps("eval_steps: 4\nsave_steps: 5\n", 10, 3),
            (vec![4, 8, 10], vec![5, 10])
        );
        // `steps` without eval_steps: every logging_steps, as transformers.
        assert_eq!(
            steps(
                "eval_strategy: steps\nlogging_steps: 3\nsave_strategy: no\n",
                10,
                4
            )
            .0,
            vec![3, 6, 9, 10]
        );
        assert_eq!(
            steps(
                "eval_strategy: steps\nlogging_steps: 3\nsave_strategy: no\n",
                10,
                4
            )
            .1,
            Vec::<usize>::new()
        );
        assert_eq!(
            steps("eval_strategy: epoch\nsave_strategy: epoch\n", 10, 4),
            (vec![4, 8, 10], vec![4, 8, 10])
        );
        assert_eq!(
            steps("eval_strategy: no\neval_steps: 2\n", 10, 4).0,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn max_prompt_length_follows_max_length_unless_given() {
        // TRL 1.x has no max_prompt_length: a short max_length is not refused.
        let c = OrpoConfig::from_yaml_str("max_length: 256\n", "c.yaml").unwrap();
        assert_eq!(c.max_prompt_length, 128);
        assert!(
            c.warnings()
                .iter()
                .any(|w| w.contains("max_prompt_length = 128"))
        );
        assert_eq!(
            OrpoConfig::from_yaml_str("", "c.yaml")
                .unwrap()
                .max_prompt_length,
            512
        );
        let c = OrpoConfig::from_yaml_str("max_length: 4096\n", "c.yaml").unwrap();
        assert_eq!((c.max_prompt_length, c.warnings().len()), (512, 0));
        // `--set max_length=256` on a config without max_prompt_length.
        let c = OrpoConfig::default()
            .apply_overrides(&["max_length=256".into()])
            .unwrap();
        assert_eq!(c.max_prompt_length, 128);
        let c = c.apply_overrides(&["max_length=100".into()]).unwrap();
        assert_eq!(c.max_prompt_length, 50);
        // Given explicitly it stays, and two explicit conflicting values are an error.
        let c = OrpoConfig::from_yaml_str("max_prompt_length: 200\nmax_length: 256\n", "c.yaml")
            .unwrap();
        assert_eq!(c.max_prompt_length, 200);
        let err = c
            .apply_overrides(&["max_length=128".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_prompt_length") && err.contains("max_length"),
            "{err}"
        );
        let err = OrpoConfig::from_yaml_str("max_prompt_length: 512\nmax_length: 256\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`max_prompt_length` (512)"), "{err}");
    }

    #[test]
    fn round_trips_through_yaml() {
        let c = OrpoConfig {
            seed: 7,
            eval_steps: Some(5),
            ..Default::default()
        };
        let text = serde_yaml::to_string(&c).unwrap();
        assert_eq!(OrpoConfig::from_yaml_str(&text, "x").unwrap(), c);
        // Written out, max_prompt_length is a given value from then on.
        assert!(
            OrpoConfig::from_yaml_str(&text, "x")
                .unwrap()
                .provenance
                .max_prompt_length_set
        );
    }
}
