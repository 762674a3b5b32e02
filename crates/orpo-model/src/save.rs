//! Saving a model as a Hugging Face directory that `AutoModelForCausalLM.from_pretrained`
//! loads unchanged: `config.json` and `model.safetensors` (tied weights omitted, as
//! transformers writes them).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use safetensors::{Dtype, tensor::TensorView};

use crate::error::{ModelError, Result};
use crate::model::LlamaForCausalLM;

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

impl LlamaForCausalLM {
    /// The float type the loaded checkpoint was stored in, as its `config.json` says (`dtype`,
    /// which transformers 5 writes, else `torch_dtype`); `None` when it says nothing this crate
    /// can write, and for a model made by [`init`](Self::init), whose weights were never stored.
    pub fn stored_dtype(&self) -> Option<SaveDtype> {
        ["dtype", "torch_dtype"]
            .iter()
            .find_map(|key| self.config.raw.get(*key)?.as_str())
            .and_then(SaveDtype::from_name)
    }

    /// Every parameter, named and laid out as transformers names and lays them out.
    pub fn hf_tensors(&self) -> Result<Vec<HostTensor>> {
        let mut out = Vec::new();
        let mut push = |name: String, tensor: HostInput| -> Result<()> {
            out.push(tensor.read(name)?);
            Ok(())
        };
        push(
            "model.embed_tokens.weight".into(),
            HostInput::D2(self.embed_tokens.weight.val()),
        )?;
        let quirks = &self.config.quirks;
        for (index, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{index}");
            let attn = &layer.self_attn;
            let mlp = &layer.mlp;
            if quirks.fused_projections {
                // Phi-3: rows [q; k; v] and [gate; up], as transformers stores them.
                let join = |parts: &[&burn::nn::Linear]| {
                    Tensor::cat(
                        parts.iter().map(|l| l.weight.val().transpose()).collect(),
                        0,
                    )
                };
                push(
                    format!("{p}.self_attn.qkv_proj.weight"),
                    HostInput::D2(join(&[&attn.q_proj, &attn.k_proj, &attn.v_proj])),
                )?;
                push(
                    format!("{p}.mlp.gate_up_proj.weight"),
                    HostInput::D2(join(&[&mlp.gate_proj, &mlp.up_proj])),
                )?;
            }
            let separate: &[(&str, &burn::nn::Linear)] = if quirks.fused_projections {
                &[
                    ("self_attn.o_proj", &attn.o_proj),
                    ("mlp.down_proj", &mlp.down_proj),
                ]
            } else {
                &[
                    ("self_attn.q_proj", &attn.q_proj),
                    ("self_attn.k_proj", &attn.k_proj),
                    ("self_attn.v_proj", &attn.v_proj),
                    ("self_attn.o_proj", &attn.o_proj),
                    ("mlp.gate_proj", &mlp.gate_proj),
                    ("mlp.up_proj", &mlp.up_proj),
                    ("mlp.down_proj", &mlp.down_proj),
                ]
            };
            for &(name, linear) in separate {
                push(
                    format!("{p}.{name}.weight"),
                    HostInput::D2(linear.weight.val().transpose()),
                )?;
                if let Some(bias) = &linear.bias {
                    push(format!("{p}.{name}.bias"), HostInput::D1(bias.val()))?;
                }
            }
            // Gemma's sandwich: our pre-MLP norm is its `pre_feedforward_layernorm`, its
            // `post_attention_layernorm` norms the attention output.
            let mut norms = vec![("input_layernorm", &layer.input_layernorm)];
            match (&layer.attn_out_norm, &layer.mlp_out_norm) {
                (Some(attn_out), Some(mlp_out)) => norms.extend([
                    ("post_attention_layernorm", attn_out),
                    ("pre_feedforward_layernorm", &layer.post_attention_layernorm),
                    ("post_feedforward_layernorm", mlp_out),
                ]),
                _ => norms.push(("post_attention_layernorm", &layer.post_attention_layernorm)),
            }
            if let (Some(q), Some(k)) = (&attn.q_norm, &attn.k_norm) {
                norms.extend([("self_attn.q_norm", q), ("self_attn.k_norm", k)]);
            }
            for (name, norm) in norms {
                push(
                    format!("{p}.{name}.weight"),
                    HostInput::D1(norm.gamma.val()),
                )?;
            }
        }
        push(
            "model.norm.weight".into(),
            HostInput::D1(self.norm.gamma.val()),
        )?;
        if let Some(head) = &self.lm_head {
            push(
                "lm_head.weight".into(),
                HostInput::D2(head.weight.val().transpose()),
            )?;
        }
        Ok(out)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed). LoRA
    /// adapters, when attached, are merged into the weights written (`W + scale·A·B`).
    ///
    /// Each file is written to a temporary name in `dir`, synced, then renamed, so an
    /// interrupted save never leaves a half-written file under the final name.
    ///
    /// Weights over 5 GB are sharded ([`save_pretrained_sharded`](Self::save_pretrained_sharded)
    /// with [`DEFAULT_MAX_SHARD_SIZE`](crate::shard::DEFAULT_MAX_SHARD_SIZE)).
    pub fn save_pretrained(&self, dir: impl AsRef<Path>, dtype: SaveDtype) -> Result<()> {
        self.save_pretrained_sharded(dir, dtype, crate::shard::DEFAULT_MAX_SHARD_SIZE)
    }

    /// [`save_pretrained`](Self::save_pretrained) with the weights split into shards of at most
    /// `max_shard_size` bytes (a single tensor larger than that gets a shard of its own) and
    /// `model.safetensors.index.json`, as transformers' `save_pretrained(max_shard_size=...)`
    /// writes them ([`crate::shard`]); one `model.safetensors` when they fit.
    pub fn save_pretrained_sharded(
        &self,
        dir: impl AsRef<Path>,
        dtype: SaveDtype,
        max_shard_size: u64,
    ) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        crate::shard::write_sharded(dir, self.hf_tensors()?, dtype, metadata, max_shard_size)?;

        let mut config = self.config.to_json();
        if let Some(map) = config.as_object_mut() {
            map.insert("torch_dtype".into(), dtype.torch_name().into());
            map.insert("dtype".into(), dtype.torch_name().into());
        }
        let text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
        let config_path = dir.join("config.json");
        write_atomic(&config_path, text.as_bytes()).map_err(|e| ModelError::io(&config_path, e))
    }
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
