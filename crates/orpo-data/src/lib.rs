//! # orpo-data
//!
//! Preference data for ORPO training, usable on its own (no burn dependency):
//!
//! - [`source`]: Parquet files, folders of shards, the Hugging Face dataset layout
//!   (`data/<split>-00000-of-00002.parquet`), JSONL; splits listed and chosen by name.
//! - [`read`]: the rows of a Parquet or JSONL file, cell by cell ([`message`]: text or chat
//!   messages).
//! - [`format`](mod@format): standard (strings) and conversational (lists of `{role, content}`, or the same
//!   as JSON strings) examples, explicit or implicit prompt (TRL's `maybe_extract_prompt`).
//! - [`template`]: Jinja chat templates from `tokenizer_config.json` with Hugging Face's
//!   conventions (minijinja); ChatML when the tokenizer has none.
//! - [`tokenize`]: TRL v0.25 `ORPOTrainer.tokenize_row` (BOS/EOS handling, `max_length`,
//!   `max_prompt_length`, `truncation_mode`), in parallel.
//! - [`batch`]: the collator (`[2B, T]` chosen-then-rejected rows) and length-grouped batching.
//! - [`summary`]: length percentiles, truncation/drop rates, duplicates.
//!
//! Bad rows (nulls, wrong types, empty text, chosen == rejected, broken JSON lines) are errors
//! naming the file, row and column, or are skipped and counted with
//! [`DataConfig::skip_bad_rows`].
//!
//! ```
//! use orpo_data::{Collator, DataConfig, PreferenceDataset, PreferenceTokenizer, TokenizeConfig};
//!
//! let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/arith-prefs");
//! let tokenizer = PreferenceTokenizer::from_dir(format!("{root}/tokenizer"))?;
//! let test = PreferenceDataset::load(root, Some("test"), &DataConfig::default())?;
//! let (pairs, report) = test.tokenize(&tokenizer, &TokenizeConfig::default())?;
//! assert_eq!(report.rows_out, pairs.len());
//! let batch = Collator::new(tokenizer.padding_id()).collate(&pairs[..4]);
//! assert_eq!(batch.shape()[0], 8); // 4 chosen rows, then 4 rejected rows
//! println!("{}", orpo_data::summarize(&test, &pairs, &report));
//! # Ok::<(), orpo_data::DataError>(())
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod dataset;
pub mod error;
pub mod format;
mod guard;
pub mod message;
pub mod pretokenize;
mod prompt_prefix;
pub mod read;
pub mod source;
pub mod summary;
pub mod template;
pub mod tokenize;
pub mod tokenizer;

pub use batch::{Batch, BatchOrder, Collator, batch_indices};
pub use dataset::{DataConfig, LoadReport, PreferenceDataset};
pub use error::{DataError, Result, RowIssue, RowOrigin};
pub use format::{PreferenceExample, TextExample, extract_prompt};
pub use message::{Content, Message};
pub use prompt_prefix::EncodedPrompt;
pub use read::{ColumnFormat, PromptMode};
pub use source::{DataFile, FileKind, Split, list_splits, select_split};
pub use summary::{DataSummary, Lengths, summarize};
pub use template::{CHATML_TEMPLATE, ChatTemplate, NAMED_TEMPLATES, template_source};
pub use tokenize::{
    CompletionBudget, RowOutcome, TokenizeConfig, TokenizeReport, TokenizedPair, TruncationMode,
    tokenize_example, tokenize_examples,
};
pub use tokenizer::PreferenceTokenizer;
