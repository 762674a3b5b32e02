//! Errors of the model crate: every variant names the file, key or tensor at fault.

use std::path::PathBuf;

/// Everything that can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or misses a required key.
    #[error("{path}: invalid model config: {message}")]
    Config {
        /// The config file (or `<in memory>`).
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The config names an architecture or option this crate does not implement.
    #[error("{path}: unsupported {what} `{found}`; supported: {supported}")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// Which key (`model_type`, `hidden_act`, `rope_scaling.rope_type`, ...).
        what: &'static str,
        /// The value found.
        found: String,
        /// The values this crate supports, comma separated.
        supported: &'static str,
    },
    /// A safetensors file is malformed or truncated.
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("{dir}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The Hugging Face tensor name.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
    },
    /// The checkpoint holds tensors the model has no place for.
    #[error("{dir}: unexpected tensor(s) in checkpoint: {names}")]
    UnexpectedTensors {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The names, comma separated.
        names: String,
    },
    /// A tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The file holding the tensor.
        path: PathBuf,
        /// The Hugging Face tensor name.
        name: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape the config implies.
        expected: Vec<usize>,
    },
    /// A tensor is stored in a dtype this crate cannot convert.
    #[error(
        "{path}: tensor `{name}` has unsupported dtype {dtype} (supported: F32, BF16, F16, F64)"
    )]
    UnsupportedDtype {
        /// The file holding the tensor.
        path: PathBuf,
        /// The Hugging Face tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A LoRA configuration or PEFT adapter directory is invalid or unsupported.
    #[error("{path}: LoRA: {message}")]
    Lora {
        /// The adapter file or directory (or `LoRA config`).
        path: PathBuf,
        /// What is wrong, naming the key or tensor.
        message: String,
    },
    /// A GGUF file cannot be written or read as asked.
    #[error("{path}: GGUF: {message}")]
    Gguf {
        /// The GGUF file, or the tokenizer file its metadata comes from.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading a tensor back from the device failed.
    #[error("reading tensor `{name}` from the device: {message}")]
    Device {
        /// The tensor being read.
        name: String,
        /// The backend's message.
        message: String,
    },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
