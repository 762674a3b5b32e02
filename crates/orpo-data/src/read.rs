//! Reading rows from Parquet and JSONL files: the three text cells of each row, as
//! [`Content`] (text or messages) or the [`RowIssue`] that makes the cell unusable.
//!
//! Parquet files are read record batch by record batch (streaming through the row groups), only
//! the needed columns being decoded. The files themselves are found by [`crate::source`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result, RowIssue, RowOrigin};
use crate::guard;
use crate::message::{Content, Message};
use crate::source::{DataFile, FileKind};

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
