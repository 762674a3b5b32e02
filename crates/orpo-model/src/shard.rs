//! Sharded safetensors checkpoints as transformers' `save_pretrained(max_shard_size=...)` writes
//! them: `model-00001-of-0000N.safetensors` files and `model.safetensors.index.json`, or one
//! `model.safetensors` when everything fits in one shard.
//!
//! The split is huggingface_hub's `split_state_dict_into_shards_factory`: tensors are taken in
//! the state dict's order, which transformers 5 hands over sorted by name (byte order: `layers.10`
//! before `layers.2`; tests/fixtures/shard holds what transformers 5.25 wrote); a tensor that would push the open shard past the limit closes it and
//! starts the next; a tensor larger than the limit by itself gets a shard of its own (placed
//! before the open shard, as that function does). Sizes are the stored bytes (elements × the
//! saved dtype's width).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::tensor_file::{HostTensor, SaveDtype, write_atomic, write_tensors};

/// The index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The default `max_shard_size`: 5 GB (huggingface_hub's `MAX_SHARD_SIZE`; transformers 4.x's
/// `save_pretrained` default; transformers 5 defaults to 50 GB).
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;

/// A `max_shard_size` in bytes, read from a config as transformers takes it: an integer of
/// bytes or a string such as `"5GB"` / `"500MB"` ([`parse_shard_size`]); written back as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ShardSize(pub u64);

impl Default for ShardSize {
    fn default() -> Self {
        ShardSize(DEFAULT_MAX_SHARD_SIZE)
    }
}

impl<'de> serde::Deserialize<'de> for ShardSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(bytes) => Ok(ShardSize(bytes)),
            Raw::Text(text) => parse_shard_size(&text)
                .map(ShardSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl std::str::FromStr for ShardSize {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        parse_shard_size(text).map(ShardSize)
    }
}

/// Parses a shard size as huggingface_hub's `parse_size_to_int` does: digits (a decimal point
/// allowed) followed by `KB`, `MB`, `GB` or `TB` in powers of 1000, case-insensitive (`"5GB"`,
/// `"500MB"`, `"1.5gb"`), or a plain number of bytes (transformers takes an `int`).
pub fn parse_shard_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    if let Ok(bytes) = text.parse::<u64>() {
        return Ok(bytes);
    }
    let bad = || {
        format!(
            "`{text}` is not a shard size: expected bytes (an integer) or a number with KB, MB, GB or TB, such as \"5GB\" or \"500MB\""
        )
    };
    if text.len() < 2 || !text.is_char_boundary(text.len() - 2) {
        return Err(bad());
    }
    let (number, unit) = text.split_at(text.len() - 2);
    let multiplier: f64 = match unit.to_ascii_uppercase().as_str() {
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(bad()),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    // Python's int(value * multiplier) truncates.
    Ok((value * multiplier) as u64)
}

/// Which tensors go into which shard: indices into `sizes`, shard by shard, by huggingface_hub's
/// rule (see the module documentation). `sizes` are stored bytes in the model's order.
pub fn plan_shards(sizes: &[u64], max_shard_size: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_size = 0u64;
    for (index, &size) in sizes.iter().enumerate() {
        if size > max_shard_size {
            shards.push(vec![index]);
            continue;
        }
        if current_size + size > max_shard_size {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(index);
        current_size += size;
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// The shard file names for `count` shards: `model.safetensors` for one, else
/// `model-00001-of-0000N.safetensors`.
pub fn shard_file_names(count: usize) -> Vec<String> {
    if count <= 1 {
        return vec!["model.safetensors".to_string()];
    }
    (1..=count)
        .map(|i| format!("model-{i:05}-of-{count:05}.safetensors"))
        .collect()
}

fn dtype_width(dtype: SaveDtype) -> u64 {
    match dtype {
        SaveDtype::F32 => 4,
        SaveDtype::Bf16 | SaveDtype::F16 => 2,
    }
}

/// Writes `tensors` (in name order, as transformers 5 does) into `dir` in `dtype`, split at
/// `max_shard_size` bytes: one
/// `model.safetensors`, or shards and `model.safetensors.index.json` (`metadata.total_size`:
/// the bytes of all tensors, `metadata.total_parameters`: their elements, `weight_map`: tensor
/// name → shard file; keys sorted, two-space indent and a final newline, as transformers writes
/// it). Shard files and an index left by an earlier save in `dir` that this save does not
/// rewrite are removed, as transformers does. Returns the weight files written.
pub fn write_sharded(
    dir: &Path,
    tensors: Vec<HostTensor>,
    dtype: SaveDtype,
    metadata: HashMap<String, String>,
    max_shard_size: u64,
) -> Result<Vec<PathBuf>> {
    let mut tensors = tensors;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let width = dtype_width(dtype);
    let sizes: Vec<u64> = tensors
        .iter()
        .map(|t| t.values.len() as u64 * width)
        .collect();
    let total_size: u64 = sizes.iter().sum();
    let total_parameters: u64 = tensors.iter().map(|t| t.values.len() as u64).sum();
    let plan = plan_shards(&sizes, max_shard_size);
    let names = shard_file_names(plan.len());
    remove_stale_shards(dir, &names)?;

    let mut slots: Vec<Option<HostTensor>> = tensors.into_iter().map(Some).collect();
    let mut weight_map = BTreeMap::new();
    let mut written = Vec::with_capacity(plan.len());
    for (indices, file) in plan.iter().zip(&names) {
        let shard: Vec<HostTensor> = indices
            .iter()
            .map(|&i| slots[i].take().expect("each tensor is planned once"))
            .collect();
        for t in &shard {
            weight_map.insert(t.name.clone(), serde_json::Value::String(file.clone()));
        }
        let path = dir.join(file);
        write_tensors(&path, shard, dtype, metadata.clone())?;
        written.push(path);
    }
    let index_path = dir.join(INDEX_FILE);
    if names.len() > 1 {
        let index = serde_json::json!({
            "metadata": {"total_parameters": total_parameters, "total_size": total_size},
            "weight_map": serde_json::Value::Object(weight_map.into_iter().collect()),
        });
        let mut text = serde_json::to_string_pretty(&index).expect("JSON values serialise");
        text.push('\n');
        write_atomic(&index_path, text.as_bytes()).map_err(|e| ModelError::io(&index_path, e))?;
    }
    Ok(written)
}

/// Removes weight files of an earlier save in `dir` that `keep` does not name: shards
/// (`model-NNNNN-of-NNNNN.safetensors`), and the single file or the index when the layout
/// changes between one file and shards, so the directory never holds both.
fn remove_stale_shards(dir: &Path, keep: &[String]) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let sharded = keep.len() > 1;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_shard = name
            .strip_prefix("model-")
            .and_then(|rest| rest.strip_suffix(".safetensors"))
            .is_some_and(|mid| {
                let b = mid.as_bytes();
                b.len() == 14
                    && b[..5].iter().all(u8::is_ascii_digit)
                    && &b[5..9] == b"-of-"
                    && b[9..].iter().all(u8::is_ascii_digit)
            });
        let stale = (is_shard && !keep.contains(&name))
            || (sharded && name == "model.safetensors")
            || (!sharded && name == INDEX_FILE);
        if stale {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| ModelError::io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_huggingface_hub() {
        assert_eq!(parse_shard_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_shard_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_shard_size("1.5gb"), Ok(1_500_000_000));
        assert_eq!(parse_shard_size(" 10KB "), Ok(10_000));
        assert_eq!(parse_shard_size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_shard_size("12345"), Ok(12345));
        for bad in ["5GiB", "GB", "5 G", "-1MB", "abc", ""] {
            let err = parse_shard_size(bad).unwrap_err();
            assert!(err.contains("shard size"), "{bad}: {err}");
        }
    }

    #[test]
    fn split_follows_split_state_dict_into_shards() {
        // huggingface_hub's docstring: limit 10, sizes [6, 6, 2, 6, 2, 2] -> [6], [6+2], [6+2+2].
        assert_eq!(
            plan_shards(&[6, 6, 2, 6, 2, 2], 10),
            vec![vec![0], vec![1, 2], vec![3, 4, 5]]
        );
        // A tensor over the limit gets its own shard, before the one still open.
        assert_eq!(plan_shards(&[2, 20, 3], 10), vec![vec![1], vec![0, 2]]);
        // Exactly at the limit still fits.
        assert_eq!(plan_shards(&[5, 5, 1], 10), vec![vec![0, 1], vec![2]]);
        assert_eq!(plan_shards(&[1, 2, 3], 100), vec![vec![0, 1, 2]]);
        assert_eq!(shard_file_names(1), ["model.safetensors"]);
        assert_eq!(
            shard_file_names(3)[2],
            "model-00003-of-00003.safetensors".to_string()
        );
    }
}
