//! Errors of the crate.
//!
//! Every error about the data names the file and, where there is one, the row (0-based, counted
//! across the whole file) and the column. Row-level problems carry a [`RowIssue`] so that, with
//! [`DataConfig::skip_bad_rows`](crate::DataConfig::skip_bad_rows), they can be skipped and
//! counted by kind instead.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Where a row comes from: a file and the row index in it (0-based; for JSONL, the line index).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RowOrigin {
    /// The file the row was read from.
    pub file: PathBuf,
    /// 0-based row index in the file (for JSONL: the 0-based line number).
    pub row: usize,
}

impl fmt::Display for RowOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: row {}", self.file.display(), self.row)
    }
}

/// What is wrong with one row. The `Display` form is the message; [`RowIssue::kind`] is a short
/// stable key used for counting skipped rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RowIssue {
    /// The value is null (or the key is absent in a JSONL object).
    Null,
    /// The value has a type that is neither a string nor a list of `{role, content}` messages.
    WrongType {
        /// What was found.
        found: String,
    },
    /// The text (or the message list) is empty.
    Empty,
    /// A message lacks `role` or `content`, or they are not strings.
    BadMessage {
        /// Index of the message in its list.
        index: usize,
        /// Explanation.
        detail: String,
    },
    /// A string column holds text that starts like a JSON message list but does not parse.
    BadJson {
        /// Parser message.
        detail: String,
    },
    /// `chosen` and `rejected` are identical.
    IdenticalPair,
    /// Implicit prompt: `chosen` and `rejected` share no prefix, or one contains the other.
    NoSharedPrompt,
    /// Columns mix formats in a way that cannot be reconciled (e.g. a conversational prompt with
    /// standard completions).
    MixedFormats,
    /// The prompt ends with a role other than `user` or `assistant` (TRL rejects it too).
    BadLastPromptRole {
        /// The role found.
        role: String,
    },
    /// The chat template failed to render.
    Template {
        /// Renderer message.
        detail: String,
    },
    /// The line of a JSONL file is not a JSON object.
    BrokenJsonLine {
        /// Parser message.
        detail: String,
    },
}

impl RowIssue {
    /// A short stable key (`null`, `wrong_type`, …) for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            RowIssue::Null => "null",
            RowIssue::WrongType { .. } => "wrong_type",
            RowIssue::Empty => "empty",
            RowIssue::BadMessage { .. } => "bad_message",
            RowIssue::BadJson { .. } => "bad_json",
            RowIssue::IdenticalPair => "identical_pair",
            RowIssue::NoSharedPrompt => "no_shared_prompt",
            RowIssue::MixedFormats => "mixed_formats",
            RowIssue::BadLastPromptRole { .. } => "bad_last_prompt_role",
            RowIssue::Template { .. } => "template",
            RowIssue::BrokenJsonLine { .. } => "broken_json_line",
        }
    }
}

impl fmt::Display for RowIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowIssue::Null => write!(f, "value is null or missing"),
            RowIssue::WrongType { found } => write!(
                f,
                "wrong type {found}: expected a string or a list of {{role, content}} messages"
            ),
            RowIssue::Empty => write!(f, "empty text"),
            RowIssue::BadMessage { index, detail } => write!(f, "message {index}: {detail}"),
            RowIssue::BadJson { detail } => write!(f, "invalid JSON message list: {detail}"),
            RowIssue::IdenticalPair => write!(f, "chosen is identical to rejected"),
            RowIssue::NoSharedPrompt => write!(
                f,
                "implicit prompt: chosen and rejected share no prefix (or one is a prefix of the other)"
            ),
            RowIssue::MixedFormats => write!(
                f,
                "mixed formats: prompt is a message list but chosen/rejected are strings (or chosen and rejected differ)"
            ),
            RowIssue::BadLastPromptRole { role } => write!(
                f,
                "the last prompt message has role `{role}` (expected `user` or `assistant`)"
            ),
            RowIssue::Template { detail } => write!(f, "chat template failed: {detail}"),
            RowIssue::BrokenJsonLine { detail } => write!(f, "not a JSON object: {detail}"),
        }
    }
}

/// Errors of `orpo-data`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a readable Parquet file (corrupt, truncated, or another format).
    #[error("{}: not a readable Parquet file: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said.
        message: String,
    },
    /// A required column is absent from a file.
    #[error("{}: missing column `{column}` (columns present: {available})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column looked for.
        column: String,
        /// The columns the file has, comma-separated.
        available: String,
    },
    /// A row is bad (see [`RowIssue`]).
    #[error("{origin}: column `{column}`: {issue}")]
    BadRow {
        /// File and row.
        origin: RowOrigin,
        /// The column at fault (`chosen`, `rejected`, `prompt`, or `*` for the whole row).
        column: String,
        /// What is wrong.
        issue: RowIssue,
    },
    /// No data files were found.
    #[error("{}: no Parquet or JSONL files found", path.display())]
    NoFiles {
        /// The path searched.
        path: PathBuf,
    },
    /// The requested split does not exist.
    #[error("{}: no split `{split}` (available: {available})", path.display())]
    UnknownSplit {
        /// The dataset path.
        path: PathBuf,
        /// The split asked for.
        split: String,
        /// The splits found, comma-separated.
        available: String,
    },
    /// No split was named and the dataset has several, none called `train`.
    #[error("{}: several splits ({available}) and none named `train`: choose one", path.display())]
    AmbiguousSplit {
        /// The dataset path.
        path: PathBuf,
        /// The splits found, comma-separated.
        available: String,
    },
    /// The tokenizer files could not be loaded or a text could not be encoded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template does not compile.
    #[error("chat template: {0}")]
    Template(String),
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
