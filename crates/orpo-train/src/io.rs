//! Small file helpers: atomic writes (shared with `orpo-model`) and f32 safetensors for
//! optimizer state.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

pub use orpo_model::save::{temp_path, write_atomic};

/// Writes named f32 vectors as a safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<f32>)],
    metadata: HashMap<String, String>,
) -> std::io::Result<()> {
    // In a checkpoint the weights are written by now and this file and the trainer state are
    // not: the point where a crash leaves a half-written checkpoint directory.
    crate::checkpoint::test_pause("half written, before", path);
    let bytes: Vec<(String, Vec<u8>, usize)> = tensors
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, len)| {
            TensorView::new(Dtype::F32, vec![*len], b)
                .map(|v| (n.clone(), v))
                .map_err(std::io::Error::other)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let buffer = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    write_atomic(path, &buffer)
}

/// Named f32 vectors and the file's metadata.
pub type NamedVectors = (Vec<(String, Vec<f32>)>, HashMap<String, String>);

/// Reads what [`write_safetensors`] wrote: the vectors by name and the metadata.
pub fn read_safetensors(path: &Path) -> std::io::Result<NamedVectors> {
    let bytes = std::fs::read(path)?;
    let bad = |e: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor `{name}` is not f32")));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name, values));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}
