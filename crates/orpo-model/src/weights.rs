//! Where a model's parameters come from: a Hugging Face safetensors checkpoint (single file or
//! sharded with `model.safetensors.index.json`), or a fresh random initialisation.
//!
//! Both implement [`WeightSource`], so the model is built by one code path that asks for each
//! tensor by its Hugging Face name and shape (`[out, in]` for linear layers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};

use crate::error::{ModelError, Result};

/// Supplies the tensor named `name` (Hugging Face naming) with the given shape.
pub trait WeightSource {
    /// The tensor `name`, checked against `shape`, on the source's device.
    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>>;

    /// A linear weight stored `[out, in]` (Hugging Face layout), returned as a contiguous
    /// `[in, out]` matrix: burn's row-layout `Linear` multiplies by it directly, so keeping a
    /// transposed view would make every matmul work on strided memory.
    fn linear_weight(&mut self, name: &str, d_out: usize, d_in: usize) -> Result<Tensor<2>> {
        Ok(self.tensor(name, [d_out, d_in])?.transpose())
    }
}

/// Fresh weights as transformers initialises a Llama: normal(0, std) for linear and embedding
/// weights, ones for norm weights, zeros for biases.
pub struct RandomInit {
    device: Device,
    std: f64,
}

impl RandomInit {
    /// Random weights with standard deviation `std` (`initializer_range`), seeded by the device.
    pub fn new(device: &Device, std: f64) -> Self {
        Self {
            device: device.clone(),
            std,
        }
    }
}

impl WeightSource for RandomInit {
    fn linear_weight(&mut self, _name: &str, d_out: usize, d_in: usize) -> Result<Tensor<2>> {
        // i.i.d. entries: drawing `[in, out]` directly is the same distribution.
        Ok(Tensor::random(
            [d_in, d_out],
            Distribution::Normal(0.0, self.std),
            &self.device,
        ))
    }

    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        Ok(if name.ends_with("norm.weight") {
            Tensor::ones(shape, &self.device)
        } else if name.ends_with(".bias") {
            Tensor::zeros(shape, &self.device)
        } else {
            Tensor::random(shape, Distribution::Normal(0.0, self.std), &self.device)
        })
    }
}

/// One memory-mapped `.safetensors` file with its parsed header.
struct ShardFile {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// A Hugging Face checkpoint directory: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`. Tensors in f32, bf16, f16 or f64 load into the device's
/// float type.
pub struct SafetensorsCheckpoint {
    dir: PathBuf,
    device: Device,
    shards: Vec<ShardFile>,
    /// Tensor name → index into `shards`.
    locations: BTreeMap<String, usize>,
    taken: BTreeSet<String>,
}

impl SafetensorsCheckpoint {
    /// Opens the checkpoint in `dir`.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index.exists() {
            shard_files(&index)?
        } else {
            let message = match pickle_files(&dir).as_slice() {
                [] => "no model.safetensors or model.safetensors.index.json (only safetensors \
                       checkpoints are loaded, never pickle files)"
                    .to_string(),
                found => format!(
                    "no model.safetensors or model.safetensors.index.json; found {} (PyTorch \
                     pickle), which is never loaded: pickle files can run arbitrary code. \
                     Convert it to safetensors first (transformers: `from_pretrained(DIR)` then \
                     `save_pretrained(OUT, safe_serialization=True)`)",
                    found.join(", ")
                ),
            };
            return Err(ModelError::io(
                &single,
                std::io::Error::new(std::io::ErrorKind::NotFound, message),
            ));
        };
        Self::from_files(dir, files, device)
    }

    /// Opens one safetensors file (a PEFT `adapter_model.safetensors`, say); errors name it.
    pub fn open_file(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(ModelError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        Self::from_files(path.clone(), vec![path], device)
    }

    fn from_files(dir: PathBuf, files: Vec<PathBuf>, device: &Device) -> Result<Self> {
        let mut shards = Vec::new();
        let mut locations = BTreeMap::new();
        for path in files {
            let file = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            // SAFETY: the file is opened read-only and only read through this map; a concurrent
            // truncation by another process is outside what we can guard against.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(|e| ModelError::Safetensors {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            for name in metadata.tensors().keys() {
                locations.insert(name.clone(), shards.len());
            }
            shards.push(ShardFile {
                path,
                mmap,
                header_len,
                metadata,
            });
        }
        Ok(Self {
            dir,
            device: device.clone(),
            shards,
            locations,
            taken: BTreeSet::new(),
        })
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.locations.contains_key(name)
    }

    /// Marks `name` as used without loading it (a tied `lm_head.weight`, say).
    pub fn skip(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// Errors if the checkpoint holds tensors that nothing took. Rotary `inv_freq` buffers,
    /// which old checkpoints carry, are ignored.
    pub fn finish(self) -> Result<()> {
        let left: Vec<&String> = self
            .locations
            .keys()
            .filter(|n| !self.taken.contains(*n) && !n.ends_with("rotary_emb.inv_freq"))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnexpectedTensors {
                dir: self.dir,
                names: left
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    /// The values of `name` converted to f32, with its shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let Some(&shard_index) = self.locations.get(name) else {
            return Err(ModelError::MissingTensor {
                dir: self.dir.clone(),
                name: name.to_string(),
                expected: vec![],
            });
        };
        let shard = &self.shards[shard_index];
        let info = shard
            .metadata
            .info(name)
            .expect("locations only holds names from the metadata");
        let start = 8 + shard.header_len + info.data_offsets.0;
        let end = 8 + shard.header_len + info.data_offsets.1;
        let bytes = shard
            .mmap
            .get(start..end)
            .ok_or_else(|| ModelError::Safetensors {
                path: shard.path.clone(),
                message: format!("tensor `{name}` runs past the end of the file (truncated?)"),
            })?;
        let values = to_f32(bytes, info.dtype).ok_or_else(|| ModelError::UnsupportedDtype {
            path: shard.path.clone(),
            name: name.to_string(),
            dtype: format!("{:?}", info.dtype),
        })?;
        Ok((values, info.shape.clone()))
    }
}

impl WeightSource for SafetensorsCheckpoint {
    fn linear_weight(&mut self, name: &str, d_out: usize, d_in: usize) -> Result<Tensor<2>> {
        let (values, found) = self.checked_values(name, &[d_out, d_in])?;
        debug_assert_eq!(found, [d_out, d_in]);
        let mut transposed = vec![0.0f32; values.len()];
        for (o, row) in values.chunks_exact(d_in).enumerate() {
            for (i, v) in row.iter().enumerate() {
                transposed[i * d_out + o] = *v;
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(transposed, [d_in, d_out]),
            &self.device,
        ))
    }

    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let (values, _) = self.checked_values(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }
}

impl SafetensorsCheckpoint {
    /// The f32 values of `name` after checking it exists with `shape`; marks it taken.
    fn checked_values(&mut self, name: &str, shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        if !self.contains(name) {
            return Err(ModelError::MissingTensor {
                dir: self.dir.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
            });
        }
        let (values, found) = self.read_f32(name)?;
        if found != shape {
            let shard = &self.shards[self.locations[name]];
            return Err(ModelError::ShapeMismatch {
                path: shard.path.clone(),
                name: name.to_string(),
                found,
                expected: shape.to_vec(),
            });
        }
        self.taken.insert(name.to_string());
        Ok((values, found))
    }
}

/// Names of PyTorch pickle checkpoints in `dir` (`pytorch_model.bin`, `*.pt`, ...), sorted.
fn pickle_files(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            [".bin", ".pt", ".pth", ".ckpt", ".pkl"]
                .iter()
                .any(|x| n.ends_with(x))
        })
        .collect();
    found.sort();
    found
}

/// The distinct shard files of an index, in order of first appearance.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::Safetensors {
            path: index.to_path_buf(),
            message: e.to_string(),
        })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Safetensors {
            path: index.to_path_buf(),
            message: "no `weight_map` object".into(),
        })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut seen = HashMap::new();
    let mut files = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::Safetensors {
            path: index.to_path_buf(),
            message: format!("weight_map[`{tensor}`] is not a file name"),
        })?;
        if seen.insert(file.to_string(), ()).is_none() {
            files.push(dir.join(file));
        }
    }
    files.sort();
    Ok(files)
}

/// Little-endian bytes of `dtype` → f32 values; `None` for dtypes we do not convert.
fn to_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect(),
        _ => return None,
    })
}
