//! Small file helpers: atomic writes (shared with `orpo-model`), f32 safetensors for
//! optimizer state, and the crash tests' pause hook. The bottom of the crate: it imports
//! nothing of it.

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
    test_pause("half written, before", path);
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

/// Test hook of the crash-safety tests (`crates/orpo-cli/tests/crash.rs`): when the environment
/// variable `ORPO_TEST_PAUSE_IN_CHECKPOINT_MS` holds a number N, announce `what` on stderr and
/// sleep N ms, so that a test can kill the process at exactly this point of a save. Called with
/// a checkpoint half written (weights, no optimizer state yet) and complete but not renamed.
/// Unset (always, outside those tests) it does nothing.
pub(crate) fn test_pause(what: &str, path: &Path) {
    let Some(ms) = std::env::var_os("ORPO_TEST_PAUSE_IN_CHECKPOINT_MS")
        .and_then(|v| v.to_str().and_then(|v| v.parse::<u64>().ok()))
    else {
        return;
    };
    eprintln!("orpo-test-pause: {what}: {}", path.display());
    std::thread::sleep(std::time::Duration::from_millis(ms));
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
