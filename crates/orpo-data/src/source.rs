//! Finding data files and splits.
//!
//! A dataset path is one of:
//! - a single `.parquet`, `.jsonl` or `.json` (JSON lines) file;
//! - a folder of `.parquet`/`.jsonl` files (shards), searched recursively (hidden entries
//!   skipped; only its `data/` subfolder when it has one);
//! - a Hugging Face dataset directory, e.g. `data/train_prefs-00000-of-00002.parquet`.
//!
//! Each file belongs to a split: the `<split>` of a Hugging Face shard name
//! (`<split>-NNNNN-of-NNNNN[-hash].parquet`), else a file stem that is a usual split name (`train`,
//! `test`, `validation`, `valid`, `dev`, `eval`), else the name of the folder holding it (unless it
//! is the dataset root or `data`), else `train`. A path naming one file is the split it is asked
//! for, whatever its name says. Reading the rows of a file is [`crate::read`]'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{DataError, Result};

/// One file of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFile {
    /// Path of the file.
    pub path: PathBuf,
    /// Its kind.
    pub kind: FileKind,
}

/// A supported file kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Apache Parquet.
    Parquet,
    /// JSON lines (one object per line).
    Jsonl,
}

/// A split and its files, in file-name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Split name (`train`, `test_prefs`, …).
    pub name: String,
    /// Its files, sorted by path.
    pub files: Vec<DataFile>,
}

const KNOWN_SPLITS: &[&str] = &["train", "test", "validation", "valid", "dev", "eval"];

fn file_kind(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".parquet") {
        Some(FileKind::Parquet)
    } else if name.ends_with(".jsonl") || name.ends_with(".json") {
        Some(FileKind::Jsonl)
    } else {
        None
    }
}

fn file_stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    for ext in [".parquet", ".jsonl", ".json"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name.to_string()
}

/// The split encoded in a Hugging Face shard stem `<split>-NNNNN-of-NNNNN[-suffix]`.
fn hf_split_name(stem: &str) -> Option<String> {
    let bytes = stem.as_bytes();
    // find the last "-of-" with digits on both sides
    let mut search_end = stem.len();
    while let Some(pos) = stem[..search_end].rfind("-of-") {
        let before = &stem[..pos];
        let after = &stem[pos + 4..];
        let digits_after = after.bytes().take_while(u8::is_ascii_digit).count();
        let digits_before = before.bytes().rev().take_while(u8::is_ascii_digit).count();
        if digits_after > 0 && digits_before > 0 {
            let split_end = pos - digits_before;
            if split_end >= 2 && bytes[split_end - 1] == b'-' {
                return Some(stem[..split_end - 1].to_string());
            }
        }
        search_end = pos;
    }
    None
}

fn split_of(root: &Path, path: &Path) -> String {
    let stem = file_stem(path);
    if let Some(s) = hf_split_name(&stem) {
        return s;
    }
    if KNOWN_SPLITS.contains(&stem.as_str()) {
        return stem;
    }
    if let Some(parent) = path.parent()
        && parent != root
        && let Some(name) = parent.file_name().and_then(|n| n.to_str())
        && name != "data"
    {
        return name.to_string();
    }
    "train".to_string()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let hidden = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(file_kind(&path), Some(FileKind::Parquet))
            || path.extension().is_some_and(|e| e == "jsonl")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Lists the splits of a dataset path (file or directory), sorted by name.
pub fn list_splits(path: &Path) -> Result<Vec<Split>> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    let mut files = Vec::new();
    let root;
    if meta.is_dir() {
        root = path.to_path_buf();
        // Hugging Face layout: the data files live under `data/` (tokenizer files and the like
        // beside it are not data).
        let data = path.join("data");
        collect_files(if data.is_dir() { &data } else { path }, &mut files)?;
    } else {
        root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if file_kind(path).is_none() {
            // an explicitly named file of unknown extension: try Parquet
            let split = split_of(&root, path);
            return Ok(vec![Split {
                name: split,
                files: vec![DataFile {
                    path: path.to_path_buf(),
                    kind: FileKind::Parquet,
                }],
            }]);
        }
        files.push(path.to_path_buf());
    }
    if files.is_empty() {
        return Err(DataError::NoFiles {
            path: path.to_path_buf(),
        });
    }
    files.sort();
    let mut splits: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    for f in files {
        let kind = file_kind(&f).expect("filtered");
        splits
            .entry(split_of(&root, &f))
            .or_default()
            .push(DataFile { path: f, kind });
    }
    Ok(splits
        .into_iter()
        .map(|(name, files)| Split { name, files })
        .collect())
}

/// Chooses a split by name. With `None`: `train` if present, else the only split.
///
/// A path naming a single file is the split it is asked for, whatever its name says
/// (`orpo eval --dataset held_out/eval.parquet` evaluates that file): a file named on purpose is
/// used, as `datasets.load_dataset("parquet", data_files=FILE, split=...)` would.
pub fn select_split(path: &Path, split: Option<&str>) -> Result<Split> {
    let splits = list_splits(path)?;
    let available = splits
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match split {
        Some(name) => {
            if path.is_file() {
                let mut s = splits.into_iter().next().expect("one file");
                s.name = name.to_string();
                return Ok(s);
            }
            splits
                .into_iter()
                .find(|s| s.name == name)
                .ok_or_else(|| DataError::UnknownSplit {
                    path: path.to_path_buf(),
                    split: name.to_string(),
                    available,
                })
        }
        None => {
            if splits.len() == 1 {
                return Ok(splits.into_iter().next().expect("one split"));
            }
            splits
                .into_iter()
                .find(|s| s.name == "train")
                .ok_or_else(|| DataError::AmbiguousSplit {
                    path: path.to_path_buf(),
                    available,
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names() {
        assert_eq!(
            hf_split_name("train_prefs-00000-of-00002").as_deref(),
            Some("train_prefs")
        );
        assert_eq!(
            hf_split_name("test-00001-of-00002-7f2b3c").as_deref(),
            Some("test")
        );
        assert_eq!(hf_split_name("part-0"), None);
        assert_eq!(hf_split_name("data"), None);
    }

    #[test]
    fn a_single_file_is_the_split_asked_for() {
        let dir = std::env::temp_dir().join(format!("orpo-data-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let row = "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n";
        for name in ["eval.jsonl", "train-00000-of-00001.jsonl", "pairs.jsonl"] {
            let file = dir.join(name);
            std::fs::write(&file, row).unwrap();
            for split in ["test", "train", "validation"] {
                let chosen = select_split(&file, Some(split)).unwrap();
                assert_eq!(
                    (chosen.name.as_str(), chosen.files[0].path.as_path()),
                    (split, file.as_path())
                );
            }
        }
        // In a folder, the names still decide.
        let err = select_split(&dir, Some("test")).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("test"), "{err}");
    }
}
