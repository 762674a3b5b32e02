//! Safetensors files written whole or not at all: the host-side tensor, the float type it is
//! written in, and the synced temporary file renamed into place that every writer of this
//! crate (a model, its shards, a LoRA adapter, a GGUF file) goes through.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use safetensors::{Dtype, tensor::TensorView};

use crate::error::{ModelError, Result};

/// The float type of a saved checkpoint (the `save_dtype` key of a training config, `orpo export
/// --dtype`): `f32`, `bf16` or `f16`, or transformers' names `float32`, `bfloat16`, `float16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SaveDtype {
    /// 32-bit floats (lossless for f32 training).
    #[default]
    #[serde(rename = "f32", alias = "float32")]
    F32,
    /// bfloat16, half the size; what most published checkpoints use.
    #[serde(rename = "bf16", alias = "bfloat16")]
    Bf16,
    /// IEEE half precision (values beyond ±65504 become infinite).
    #[serde(rename = "f16", alias = "float16", alias = "fp16")]
    F16,
}

impl SaveDtype {
    /// The name transformers writes as `torch_dtype` / `dtype` in `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            SaveDtype::F32 => "float32",
            SaveDtype::Bf16 => "bfloat16",
            SaveDtype::F16 => "float16",
        }
    }

    /// Reads `f32`, `bf16`, `f16` or transformers' `float32`, `bfloat16`, `float16`
    /// (`None` for anything else).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "f32" | "float32" => Some(SaveDtype::F32),
            "bf16" | "bfloat16" => Some(SaveDtype::Bf16),
            "f16" | "fp16" | "float16" => Some(SaveDtype::F16),
            _ => None,
        }
    }
}

impl std::str::FromStr for SaveDtype {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        Self::from_name(name)
            .ok_or_else(|| format!("`{name}` is not a weight dtype: expected f32, bf16 or f16"))
    }
}

/// A tensor read back to the host in Hugging Face layout.
pub struct HostTensor {
    /// The Hugging Face name.
    pub name: String,
    /// Shape in Hugging Face layout (`[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Writes `tensors` as one safetensors file in `dtype`, through a synced temporary file renamed
/// into place.
pub fn write_tensors(
    path: &Path,
    tensors: Vec<HostTensor>,
    dtype: SaveDtype,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|t| {
            let bytes = match dtype {
                SaveDtype::F32 => t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                SaveDtype::Bf16 => t
                    .values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                SaveDtype::F16 => t
                    .values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (t.name, t.shape, bytes)
        })
        .collect();
    let st_dtype = match dtype {
        SaveDtype::F32 => Dtype::F32,
        SaveDtype::Bf16 => Dtype::BF16,
        SaveDtype::F16 => Dtype::F16,
    };
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(st_dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| ModelError::Safetensors {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let tmp = temp_path(path);
    safetensors::serialize_to_file(views, Some(metadata), &tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        match e {
            // A failed write (a full disk, say) is an I/O error on the file, not a bad file.
            safetensors::SafeTensorError::IoError(source) => ModelError::io(path, source),
            e => ModelError::Safetensors {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
        }
    })?;
    commit_temp(&tmp, path).map_err(|e| ModelError::io(path, e))
}

/// A parameter of any rank, before it is read back to the host.
pub(crate) enum HostInput {
    D1(Tensor<1>),
    D2(Tensor<2>),
}

impl HostInput {
    pub(crate) fn read(self, name: String) -> Result<HostTensor> {
        let data = match self {
            HostInput::D1(t) => t.into_data(),
            HostInput::D2(t) => t.into_data(),
        };
        let shape = data.shape().to_vec();
        let values =
            data.convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| ModelError::Device {
                    name: name.clone(),
                    message: format!("{e:?}"),
                })?;
        Ok(HostTensor {
            name,
            shape,
            values,
        })
    }
}

/// A sibling temporary name for `path`, unique to this process.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Syncs a fully written temporary file and renames it over `path` (removing it on failure).
pub fn commit_temp(tmp: &Path, path: &Path) -> std::io::Result<()> {
    let result = std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Writes `bytes` to `path` through a synced temporary file and a rename: readers see the old
/// file or the new one, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    commit_temp(&tmp, path)
}
