//! Finding data files and splits, and reading rows from Parquet and JSONL.
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
//! is the dataset root or `data`), else `train`.
//!
//! Parquet files are read record batch by record batch (streaming through the row groups), only
//! the needed columns being decoded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result, RowIssue, RowOrigin};
use crate::format::{Content, Message};
use crate::guard;

/// How a text column is interpreted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnFormat {
    /// Lists of messages are conversational; a string that parses as a JSON list of
    /// `{role, content}` objects is conversational too; any other string is standard.
    #[default]
    Auto,
    /// Strings are always plain text (a JSON-looking string is not parsed).
    Standard,
    /// Values must be message lists (or JSON strings holding one).
    Conversational,
}

/// Whether a prompt column is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptMode {
    /// Use the prompt column when the file has it, else take the prompt implicitly from the
    /// shared prefix of `chosen` and `rejected` (as TRL's `maybe_extract_prompt`).
    #[default]
    Auto,
    /// The prompt column is required.
    Explicit,
    /// Ignore any prompt column: the prompt is always the shared prefix.
    Implicit,
}

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

/// A value read from one cell, before validation.
pub(crate) type Cell = std::result::Result<Content, RowIssue>;

/// One row as read from a file: the three cells (the prompt is `None` when there is no prompt
/// column for this row), or a whole-row failure.
#[derive(Debug)]
pub(crate) struct RawRow {
    pub origin: RowOrigin,
    pub prompt: Option<Cell>,
    pub chosen: Cell,
    pub rejected: Cell,
}

/// Column names and interpretation used by the readers.
#[derive(Debug, Clone)]
pub(crate) struct ReadSpec<'a> {
    pub prompt: &'a str,
    pub chosen: &'a str,
    pub rejected: &'a str,
    pub prompt_mode: PromptMode,
    pub format: ColumnFormat,
}

/// What the reader hands back for each row: a row or a whole-row error (broken JSONL line).
pub(crate) type RowResult = std::result::Result<RawRow, (RowOrigin, RowIssue)>;

/// Reads a whole file, calling `sink` for each row in order.
pub(crate) fn read_file(
    file: &DataFile,
    spec: &ReadSpec<'_>,
    sink: &mut dyn FnMut(RowResult) -> Result<()>,
) -> Result<()> {
    match file.kind {
        FileKind::Parquet => read_parquet(&file.path, spec, sink),
        FileKind::Jsonl => read_jsonl(&file.path, spec, sink),
    }
}

/// Runs a call into the Parquet decoder, turning a panic of the decoder into an error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    guard::catch_panic(f)
        .map_err(|panic| parquet_err(path, format!("malformed file (decoder failed: {panic})")))
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_parquet(
    path: &Path,
    spec: &ReadSpec<'_>,
    sink: &mut dyn FnMut(RowResult) -> Result<()>,
) -> Result<()> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    // Untrusted bytes: check the footer before `parquet` sizes anything from it, and turn a
    // panic of the decoder into an error (crate::guard). The embedded Arrow schema is not
    // decoded (the column types come from the Parquet schema; every string and list
    // representation is accepted below).
    guard::check_parquet_footer(path).map_err(|e| parquet_err(path, e))?;
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = guarded(path, || {
        ParquetRecordBatchReaderBuilder::try_new_with_options(f, options)
    })?
    .map_err(|e| parquet_err(path, e))?;
    let schema = builder.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let find = |col: &str| names.iter().position(|n| *n == col);
    let missing = |col: &str| DataError::MissingColumn {
        path: path.to_path_buf(),
        column: col.to_string(),
        available: names.join(", "),
    };
    let chosen_idx = find(spec.chosen).ok_or_else(|| missing(spec.chosen))?;
    let rejected_idx = find(spec.rejected).ok_or_else(|| missing(spec.rejected))?;
    let prompt_idx = match spec.prompt_mode {
        PromptMode::Implicit => None,
        PromptMode::Auto => find(spec.prompt),
        PromptMode::Explicit => Some(find(spec.prompt).ok_or_else(|| missing(spec.prompt))?),
    };
    let mut roots = vec![chosen_idx, rejected_idx];
    roots.extend(prompt_idx);
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let mut reader = guarded(path, || {
        builder.with_projection(mask).with_batch_size(1024).build()
    })?
    .map_err(|e| parquet_err(path, e))?;
    let mut row0 = 0usize;
    while let Some(batch) = guarded(path, || reader.next())? {
        let batch: RecordBatch = batch.map_err(|e| parquet_err(path, e))?;
        let col = |name: &str| batch.column_by_name(name).cloned();
        let chosen = col(spec.chosen).ok_or_else(|| missing(spec.chosen))?;
        let rejected = col(spec.rejected).ok_or_else(|| missing(spec.rejected))?;
        let prompt = prompt_idx.and_then(|_| col(spec.prompt));
        for i in 0..batch.num_rows() {
            let origin = RowOrigin {
                file: path.to_path_buf(),
                row: row0 + i,
            };
            let row = RawRow {
                origin,
                prompt: prompt
                    .as_ref()
                    .map(|a| arrow_cell(a.as_ref(), i, spec.format)),
                chosen: arrow_cell(chosen.as_ref(), i, spec.format),
                rejected: arrow_cell(rejected.as_ref(), i, spec.format),
            };
            sink(Ok(row))?;
        }
        row0 += batch.num_rows();
    }
    Ok(())
}

fn arrow_str(array: &dyn Array, i: usize) -> Option<Option<&str>> {
    if let Some(a) = array.as_string_opt::<i32>() {
        return Some(a.is_valid(i).then(|| a.value(i)));
    }
    if let Some(a) = array.as_string_opt::<i64>() {
        return Some(a.is_valid(i).then(|| a.value(i)));
    }
    if let Some(a) = array.as_string_view_opt() {
        return Some(a.is_valid(i).then(|| a.value(i)));
    }
    None
}

fn arrow_cell(array: &dyn Array, i: usize, format: ColumnFormat) -> Cell {
    if array.is_null(i) || matches!(array.data_type(), DataType::Null) {
        return Err(RowIssue::Null);
    }
    if let Some(s) = arrow_str(array, i) {
        let s = s.ok_or(RowIssue::Null)?;
        return text_cell(s, format);
    }
    let list_values = match array.as_list_opt::<i32>() {
        Some(l) => Some(l.value(i)),
        None => array.as_list_opt::<i64>().map(|l| l.value(i)),
    };
    match list_values {
        Some(values) => {
            if format == ColumnFormat::Standard {
                return Err(RowIssue::WrongType {
                    found: format!("{} (standard format expects strings)", array.data_type()),
                });
            }
            let Some(st) = values.as_struct_opt() else {
                return Err(RowIssue::WrongType {
                    found: array.data_type().to_string(),
                });
            };
            struct_messages(st).map(Content::Messages)
        }
        None => Err(RowIssue::WrongType {
            found: array.data_type().to_string(),
        }),
    }
}

fn struct_messages(st: &StructArray) -> std::result::Result<Vec<Message>, RowIssue> {
    let role = st.column_by_name("role");
    let content = st.column_by_name("content");
    let mut out = Vec::with_capacity(st.len());
    for j in 0..st.len() {
        let bad = |detail: &str| RowIssue::BadMessage {
            index: j,
            detail: detail.to_string(),
        };
        if st.is_null(j) {
            return Err(bad("message is null"));
        }
        let role = role.ok_or_else(|| bad("no `role` field"))?;
        let content = content.ok_or_else(|| bad("no `content` field"))?;
        let r = arrow_str(role.as_ref(), j)
            .ok_or_else(|| bad("`role` is not a string"))?
            .ok_or_else(|| bad("`role` is null"))?;
        let c = arrow_str(content.as_ref(), j)
            .ok_or_else(|| bad("`content` is not a string"))?
            .ok_or_else(|| bad("`content` is null"))?;
        out.push(Message {
            role: r.to_string(),
            content: c.to_string(),
        });
    }
    Ok(out)
}

/// Interprets a string cell according to `format`.
fn text_cell(s: &str, format: ColumnFormat) -> Cell {
    match format {
        ColumnFormat::Standard => Ok(Content::Text(s.to_string())),
        ColumnFormat::Auto => {
            if looks_like_json_list(s)
                && let Ok(Some(msgs)) = parse_json_messages(s)
            {
                return Ok(Content::Messages(msgs));
            }
            Ok(Content::Text(s.to_string()))
        }
        ColumnFormat::Conversational => match parse_json_messages(s) {
            Ok(Some(m)) => Ok(Content::Messages(m)),
            Ok(None) => Err(RowIssue::BadJson {
                detail: "not a list of {role, content} objects".into(),
            }),
            Err(e) => Err(RowIssue::BadJson { detail: e }),
        },
    }
}

fn looks_like_json_list(s: &str) -> bool {
    let t = s.trim();
    t.starts_with('[') && t.ends_with(']') && t.contains("\"role\"")
}

/// `Ok(None)`: valid JSON that is not a message list.
fn parse_json_messages(s: &str) -> std::result::Result<Option<Vec<Message>>, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    match json_messages(&v) {
        Some(Ok(m)) => Ok(Some(m)),
        Some(Err(RowIssue::BadMessage { index, detail })) => {
            Err(format!("message {index}: {detail}"))
        }
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(None),
    }
}

/// `None` if `v` is not an array; an error if an element is not a `{role, content}` object.
fn json_messages(v: &serde_json::Value) -> Option<std::result::Result<Vec<Message>, RowIssue>> {
    let arr = v.as_array()?;
    let mut out = Vec::with_capacity(arr.len());
    for (index, m) in arr.iter().enumerate() {
        let bad = |detail: &str| RowIssue::BadMessage {
            index,
            detail: detail.to_string(),
        };
        let Some(obj) = m.as_object() else {
            return Some(Err(bad("not an object")));
        };
        let role = match obj.get("role") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => return Some(Err(bad("`role` is missing"))),
            Some(_) => return Some(Err(bad("`role` is not a string"))),
        };
        let content = match obj.get("content") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => {
                return Some(Err(bad("`content` is missing")));
            }
            Some(_) => return Some(Err(bad("`content` is not a string"))),
        };
        out.push(Message { role, content });
    }
    Some(Ok(out))
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn json_cell(v: Option<&serde_json::Value>, format: ColumnFormat) -> Cell {
    match v {
        None | Some(serde_json::Value::Null) => Err(RowIssue::Null),
        Some(serde_json::Value::String(s)) => text_cell(s, format),
        Some(arr @ serde_json::Value::Array(_)) => {
            if format == ColumnFormat::Standard {
                return Err(RowIssue::WrongType {
                    found: "array (standard format expects strings)".into(),
                });
            }
            json_messages(arr)
                .expect("is an array")
                .map(Content::Messages)
        }
        Some(other) => Err(RowIssue::WrongType {
            found: json_type(other).into(),
        }),
    }
}

fn read_jsonl(
    path: &Path,
    spec: &ReadSpec<'_>,
    sink: &mut dyn FnMut(RowResult) -> Result<()>,
) -> Result<()> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = BufReader::with_capacity(1 << 20, f);
    for (line_no, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let origin = RowOrigin {
            file: path.to_path_buf(),
            row: line_no,
        };
        let obj = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(other) => {
                sink(Err((
                    origin,
                    RowIssue::BrokenJsonLine {
                        detail: format!("a JSON {}", json_type(&other)),
                    },
                )))?;
                continue;
            }
            Err(e) => {
                sink(Err((
                    origin,
                    RowIssue::BrokenJsonLine {
                        detail: e.to_string(),
                    },
                )))?;
                continue;
            }
        };
        let prompt = match spec.prompt_mode {
            PromptMode::Implicit => None,
            PromptMode::Auto => obj
                .get(spec.prompt)
                .map(|v| json_cell(Some(v), spec.format)),
            PromptMode::Explicit => Some(json_cell(obj.get(spec.prompt), spec.format)),
        };
        let row = RawRow {
            origin,
            prompt,
            chosen: json_cell(obj.get(spec.chosen), spec.format),
            rejected: json_cell(obj.get(spec.rejected), spec.format),
        };
        sink(Ok(row))?;
    }
    Ok(())
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
