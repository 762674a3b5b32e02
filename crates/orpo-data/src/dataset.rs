//! [`PreferenceDataset`]: loading a split, validating rows, rendering and tokenizing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result, RowOrigin};
use crate::format::{PreferenceExample, TextExample, bad, example_from_row};
use crate::read::{ColumnFormat, PromptMode, ReadSpec, read_file};
use crate::source::select_split;
use crate::tokenize::{TokenizeConfig, TokenizeReport, TokenizedPair};
use crate::tokenizer::PreferenceTokenizer;

/// How a dataset is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Prompt column (default `prompt`).
    pub prompt_column: String,
    /// Chosen column (default `chosen`).
    pub chosen_column: String,
    /// Rejected column (default `rejected`).
    pub rejected_column: String,
    /// Explicit or implicit prompt (default: explicit when the column exists).
    pub prompt_mode: PromptMode,
    /// How string/list columns are interpreted (default: detect).
    pub format: ColumnFormat,
    /// Skip and count bad rows instead of failing on the first one.
    pub skip_bad_rows: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            prompt_column: "prompt".into(),
            chosen_column: "chosen".into(),
            rejected_column: "rejected".into(),
            prompt_mode: PromptMode::Auto,
            format: ColumnFormat::Auto,
            skip_bad_rows: false,
        }
    }
}

/// What loading read and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Rows read (kept + skipped).
    pub rows_read: usize,
    /// Rows kept.
    pub rows_kept: usize,
    /// Rows skipped (only with `skip_bad_rows`), by [`RowIssue::kind`](crate::RowIssue::kind).
    pub skipped: BTreeMap<String, usize>,
    /// The first few skipped rows' messages (file, row, column, problem).
    pub skipped_examples: Vec<String>,
}

impl LoadReport {
    /// Total skipped rows.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

const MAX_SKIP_EXAMPLES: usize = 10;

/// A split of a preference dataset, validated, with explicit prompts.
#[derive(Debug, Clone)]
pub struct PreferenceDataset {
    split: String,
    examples: Vec<PreferenceExample>,
    origins: Vec<(u32, u32)>,
    report: LoadReport,
    skip_bad_rows: bool,
}

struct FileRows {
    examples: Vec<(PreferenceExample, usize)>,
    rows_read: usize,
    skipped: Vec<DataError>,
}

impl PreferenceDataset {
    /// Loads one split of the dataset at `path` (file, folder of shards, or Hugging Face
    /// layout; see [`crate::source`]). `split = None` takes `train` or the only split.
    pub fn load(path: impl AsRef<Path>, split: Option<&str>, config: &DataConfig) -> Result<Self> {
        let path = path.as_ref();
        let split = select_split(path, split)?;
        let spec = ReadSpec {
            prompt: &config.prompt_column,
            chosen: &config.chosen_column,
            rejected: &config.rejected_column,
            prompt_mode: config.prompt_mode,
            format: config.format,
        };
        let per_file: Vec<Result<FileRows>> = split
            .files
            .par_iter()
            .map(|file| {
                let mut out = FileRows {
                    examples: Vec::new(),
                    rows_read: 0,
                    skipped: Vec::new(),
                };
                read_file(file, &spec, &mut |row| {
                    out.rows_read += 1;
                    let res = match row {
                        Ok(raw) => {
                            let r = raw.origin.row;
                            example_from_row(raw).map(|ex| (ex, r))
                        }
                        Err((origin, issue)) => Err(bad(&origin, "*", issue)),
                    };
                    match res {
                        Ok(x) => out.examples.push(x),
                        Err(e) if config.skip_bad_rows => out.skipped.push(e),
                        Err(e) => return Err(e),
                    }
                    Ok(())
                })?;
                Ok(out)
            })
            .collect();
        let mut report = LoadReport {
            files: split.files.iter().map(|f| f.path.clone()).collect(),
            ..Default::default()
        };
        let mut examples = Vec::new();
        let mut origins = Vec::new();
        for (fi, rows) in per_file.into_iter().enumerate() {
            let rows = rows?;
            report.rows_read += rows.rows_read;
            for e in rows.skipped {
                if let DataError::BadRow { issue, .. } = &e {
                    *report.skipped.entry(issue.kind().to_string()).or_default() += 1;
                }
                if report.skipped_examples.len() < MAX_SKIP_EXAMPLES {
                    report.skipped_examples.push(e.to_string());
                }
            }
            for (ex, row) in rows.examples {
                examples.push(ex);
                origins.push((fi as u32, row as u32));
            }
        }
        report.rows_kept = examples.len();
        Ok(PreferenceDataset {
            split: split.name,
            examples,
            origins,
            report,
            skip_bad_rows: config.skip_bad_rows,
        })
    }

    /// A dataset from examples in memory (split `train`). Bad rows are errors unless
    /// `skip_bad_rows` (used when rendering).
    pub fn from_examples(examples: Vec<PreferenceExample>, skip_bad_rows: bool) -> Self {
        let n = examples.len();
        PreferenceDataset {
            split: "train".into(),
            origins: (0..n).map(|i| (u32::MAX, i as u32)).collect(),
            examples,
            report: LoadReport {
                rows_read: n,
                rows_kept: n,
                ..Default::default()
            },
            skip_bad_rows,
        }
    }

    /// The examples at `indices` (in that order), as split `split`; files, origins and the
    /// load report's skipped rows are kept, `rows_kept` is the new length.
    pub fn select(&self, indices: &[usize], split: &str) -> Self {
        let mut report = self.report.clone();
        report.rows_kept = indices.len();
        PreferenceDataset {
            split: split.to_string(),
            examples: indices.iter().map(|&i| self.examples[i].clone()).collect(),
            origins: indices.iter().map(|&i| self.origins[i]).collect(),
            report,
            skip_bad_rows: self.skip_bad_rows,
        }
    }

    /// `parts` one after the other, as split `split` (`datasets.concatenate_datasets`): each
    /// example keeps its file and row, the load reports are summed.
    pub fn concat(parts: Vec<PreferenceDataset>, split: &str) -> Self {
        let mut out = PreferenceDataset {
            split: split.to_string(),
            examples: Vec::new(),
            origins: Vec::new(),
            report: LoadReport::default(),
            skip_bad_rows: parts.iter().any(|p| p.skip_bad_rows),
        };
        for part in parts {
            let offset = out.report.files.len() as u32;
            out.origins.extend(
                part.origins
                    .iter()
                    .map(|&(f, r)| (if f == u32::MAX { f } else { f + offset }, r)),
            );
            out.examples.extend(part.examples);
            let r = part.report;
            out.report.files.extend(r.files);
            out.report.rows_read += r.rows_read;
            out.report.rows_kept += r.rows_kept;
            for (k, n) in r.skipped {
                *out.report.skipped.entry(k).or_default() += n;
            }
            let room = MAX_SKIP_EXAMPLES.saturating_sub(out.report.skipped_examples.len());
            out.report
                .skipped_examples
                .extend(r.skipped_examples.into_iter().take(room));
        }
        out
    }

    /// Holds out `test` examples: a SplitMix64 Fisher–Yates shuffle of the indices seeded with
    /// `seed` picks them (its first `test` positions), and both parts keep the file order of
    /// their rows. Returns (`train`, `test`); an error unless `0 < test < len`.
    pub fn train_test_split(&self, test: usize, seed: u64) -> Result<(Self, Self)> {
        let n = self.len();
        if test == 0 || test >= n {
            return Err(DataError::Config(format!(
                "a held-out part of {test} examples from the {n} of split `{}` leaves no \
                 training or no test example",
                self.split
            )));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        crate::batch::SplitMix(seed).shuffle(&mut idx);
        let mut held = idx[..test].to_vec();
        let mut kept = idx[test..].to_vec();
        held.sort_unstable();
        kept.sort_unstable();
        Ok((self.select(&kept, &self.split), self.select(&held, "test")))
    }

    /// The split name.
    pub fn split(&self) -> &str {
        &self.split
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The examples.
    pub fn examples(&self) -> &[PreferenceExample] {
        &self.examples
    }

    /// What loading read and skipped.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// File and row of example `i`.
    pub fn origin(&self, i: usize) -> RowOrigin {
        let (f, row) = self.origins[i];
        let file = self
            .report
            .files
            .get(f as usize)
            .cloned()
            .unwrap_or_else(|| PathBuf::from("<memory>"));
        RowOrigin {
            file,
            row: row as usize,
        }
    }

    /// Renders every example to text with the tokenizer's chat template (in parallel). A row
    /// that fails to render is an error, or `Err(kind)` in its slot with `skip_bad_rows`.
    pub fn render(
        &self,
        tok: &PreferenceTokenizer,
    ) -> Result<Vec<std::result::Result<TextExample, &'static str>>> {
        let template = tok.chat_template();
        let rendered: Vec<_> = self
            .examples
            .par_iter()
            .with_min_len(32)
            .map(|ex| ex.render(template))
            .collect();
        rendered
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Ok(t) => Ok(Ok(t)),
                Err(issue) if self.skip_bad_rows => Ok(Err(issue.kind())),
                Err(issue) => Err(bad(&self.origin(i), "*", issue)),
            })
            .collect()
    }

    /// Renders and tokenizes every example (TRL v0.25 rules, see [`crate::tokenize`]). Pairs
    /// whose completion would be empty are dropped and counted in the report.
    pub fn tokenize(
        &self,
        tok: &PreferenceTokenizer,
        config: &TokenizeConfig,
    ) -> Result<(Vec<TokenizedPair>, TokenizeReport)> {
        self.tokenize_with_progress(tok, config, &|_| {})
    }

    /// [`tokenize`](Self::tokenize), calling `on_rows(n)` as each `n` more rows are tokenized
    /// (from the worker threads; a progress bar's hook).
    pub fn tokenize_with_progress(
        &self,
        tok: &PreferenceTokenizer,
        config: &TokenizeConfig,
        on_rows: &(dyn Fn(usize) + Sync),
    ) -> Result<(Vec<TokenizedPair>, TokenizeReport)> {
        config.validate()?;
        let texts = self.render(tok)?;
        crate::tokenize::tokenize_examples_with_progress(tok, &texts, config, on_rows)
    }
}
