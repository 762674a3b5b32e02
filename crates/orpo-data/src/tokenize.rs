//! Tokenization and truncation as TRL v0.25 `ORPOTrainer.tokenize_row` (decoder-only models).
//!
//! For each text example:
//! 1. `enc(prompt)`, `enc(prompt + chosen)`, `enc(prompt + rejected)` with no special tokens;
//!    each completion is the tail of the joint encoding after the prompt's tokens (one token
//!    earlier when the last prompt token merged with the completion: TRL's
//!    `build_tokenized_answer`). Chosen and rejected may thus have prompts that differ in length
//!    by one token (TRL raises an error there; here each keeps its own prompt length).
//! 2. BOS is prepended to each prompt if the tokenizer has one and the prompt does not start
//!    with it (a template that writes `{{ bos_token }}` is not given a second one).
//! 3. EOS is appended to each completion unless it already ends with EOS.
//! 4. Optional extension: completions are cut to `max_completion_length`.
//! 5. If `prompt + longer completion > max_length`, the prompt is cut to `max_prompt_length`
//!    (keeping its end, or its start with [`TruncationMode::KeepStart`]); if still too long the
//!    completions are cut to the [`CompletionBudget`] (TRL v0.25: `max_length −
//!    max_prompt_length`; default here: `max_length − prompt_len`, which keeps more of a
//!    completion when the prompt is short, and equals TRL's whenever the prompt was truncated).
//! 6. A row whose chosen or rejected completion ends up empty is dropped and counted.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::format::TextExample;
use crate::tokenizer::PreferenceTokenizer;

/// Which end of a too-long prompt is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncationMode {
    /// Keep the last `max_prompt_length` tokens (TRL's default).
    #[default]
    KeepEnd,
    /// Keep the first `max_prompt_length` tokens.
    KeepStart,
}

/// How many completion tokens are kept when `prompt + completion` is still too long after the
/// prompt was truncated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionBudget {
    /// `max_length − prompt_len`: sequences are filled up to `max_length`.
    #[default]
    Remaining,
    /// `max_length − max_prompt_length`, exactly as TRL v0.25 (shorter when the prompt is
    /// shorter than `max_prompt_length`).
    TrlV025,
}

/// Tokenization limits (TRL's `ORPOConfig` names and defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizeConfig {
    /// Maximum tokens of prompt + completion (`None`: no limit). Default 1024.
    pub max_length: Option<usize>,
    /// Prompt budget applied when a sequence is too long. Default 512.
    pub max_prompt_length: usize,
    /// Optional cap on completion tokens (EOS included), applied before `max_length`.
    pub max_completion_length: Option<usize>,
    /// Which end of a long prompt is kept.
    pub truncation_mode: TruncationMode,
    /// Completion budget rule (see [`CompletionBudget`]).
    pub completion_budget: CompletionBudget,
}

impl Default for TokenizeConfig {
    fn default() -> Self {
        TokenizeConfig {
            max_length: Some(1024),
            max_prompt_length: 512,
            max_completion_length: None,
            truncation_mode: TruncationMode::KeepEnd,
            completion_budget: CompletionBudget::Remaining,
        }
    }
}

impl TokenizeConfig {
    /// Checks the limits: `max_prompt_length <= max_length`.
    pub fn validate(&self) -> Result<()> {
        if let Some(max) = self.max_length {
            if max == 0 {
                return Err(DataError::Config("max_length must be positive".into()));
            }
            if self.max_prompt_length > max {
                return Err(DataError::Config(format!(
                    "max_prompt_length ({}) exceeds max_length ({max})",
                    self.max_prompt_length
                )));
            }
        }
        Ok(())
    }
}

/// One tokenized preference pair: the full sequences `prompt + completion` (with BOS/EOS), and
/// the prompt length of each (label masks are `0..prompt_len` masked, the rest trained).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizedPair {
    /// Index of the example in its dataset.
    pub index: usize,
    /// `prompt + chosen` token ids.
    pub chosen_ids: Vec<u32>,
    /// Number of prompt tokens at the start of `chosen_ids`.
    pub chosen_prompt_len: usize,
    /// `prompt + rejected` token ids.
    pub rejected_ids: Vec<u32>,
    /// Number of prompt tokens at the start of `rejected_ids`.
    pub rejected_prompt_len: usize,
}

impl TokenizedPair {
    /// Prompt length (the shorter of the two; they differ only when a merge at the boundary
    /// moved a token).
    pub fn prompt_len(&self) -> usize {
        self.chosen_prompt_len.min(self.rejected_prompt_len)
    }
    /// Chosen completion tokens.
    pub fn chosen_completion(&self) -> &[u32] {
        &self.chosen_ids[self.chosen_prompt_len..]
    }
    /// Rejected completion tokens.
    pub fn rejected_completion(&self) -> &[u32] {
        &self.rejected_ids[self.rejected_prompt_len..]
    }
    /// Length of the longer sequence.
    pub fn max_len(&self) -> usize {
        self.chosen_ids.len().max(self.rejected_ids.len())
    }
}

/// What tokenization did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizeReport {
    /// Examples given.
    pub rows_in: usize,
    /// Pairs produced.
    pub rows_out: usize,
    /// Rows whose prompt was truncated.
    pub prompt_truncated: usize,
    /// Rows with a completion truncated.
    pub completion_truncated: usize,
    /// Rows with anything truncated.
    pub truncated: usize,
    /// Rows dropped, by reason (`empty_completion`, or a skipped bad row's kind such as
    /// `template`).
    pub dropped: BTreeMap<String, usize>,
}

impl TokenizeReport {
    /// Total dropped rows.
    pub fn dropped_total(&self) -> usize {
        self.dropped.values().sum()
    }
}

/// Outcome of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Kept, with truncation flags `(prompt_truncated, completion_truncated)`.
    Kept(TokenizedPair, bool, bool),
    /// Dropped because a completion would be empty.
    EmptyCompletion,
}

fn split_answer(prompt_ids: &[u32], full: Vec<u32>) -> (Vec<u32>, Vec<u32>) {
    let mut start = prompt_ids.len().min(full.len());
    if full.len() < prompt_ids.len() || prompt_ids != &full[..prompt_ids.len()] {
        start = prompt_ids.len().saturating_sub(1).min(full.len());
    }
    let mut prompt = full;
    let answer = prompt.split_off(start);
    (prompt, answer)
}

fn truncate_prompt(p: &mut Vec<u32>, keep: usize, mode: TruncationMode) -> bool {
    if p.len() <= keep {
        return false;
    }
    match mode {
        TruncationMode::KeepStart => p.truncate(keep),
        TruncationMode::KeepEnd => {
            p.drain(..p.len() - keep);
        }
    }
    true
}

/// Tokenizes one text example with TRL v0.25's rules (see the module docs).
pub fn tokenize_example(
    tok: &PreferenceTokenizer,
    ex: &TextExample,
    cfg: &TokenizeConfig,
    index: usize,
) -> Result<RowOutcome> {
    let prompt = tok.encode_prompt(&ex.prompt)?;
    let full_c = tok.encode_continuation(&prompt, &ex.chosen)?;
    let full_r = tok.encode_continuation(&prompt, &ex.rejected)?;
    let prompt_ids = prompt.ids;
    let (mut cp, mut ca) = split_answer(&prompt_ids, full_c);
    let (mut rp, mut ra) = split_answer(&prompt_ids, full_r);

    if let Some(bos) = tok.bos_id() {
        for p in [&mut cp, &mut rp] {
            if p.first() != Some(&bos) {
                p.insert(0, bos);
            }
        }
    }
    if let Some(eos) = tok.eos_id() {
        for a in [&mut ca, &mut ra] {
            if a.last() != Some(&eos) {
                a.push(eos);
            }
        }
    }
    let mut completion_truncated = false;
    if let Some(cap) = cfg.max_completion_length {
        for a in [&mut ca, &mut ra] {
            if a.len() > cap {
                a.truncate(cap);
                completion_truncated = true;
            }
        }
    }
    let mut prompt_truncated = false;
    if let Some(max_len) = cfg.max_length {
        let longer = ca.len().max(ra.len());
        for p in [&mut cp, &mut rp] {
            if p.len() + longer > max_len {
                prompt_truncated |= truncate_prompt(p, cfg.max_prompt_length, cfg.truncation_mode);
            }
        }
        for (p, a) in [(&cp, &mut ca), (&rp, &mut ra)] {
            if p.len() + longer > max_len {
                let budget = match cfg.completion_budget {
                    CompletionBudget::Remaining => max_len.saturating_sub(p.len()),
                    CompletionBudget::TrlV025 => max_len.saturating_sub(cfg.max_prompt_length),
                };
                if a.len() > budget {
                    a.truncate(budget);
                    completion_truncated = true;
                }
            }
        }
    }
    if ca.is_empty() || ra.is_empty() {
        return Ok(RowOutcome::EmptyCompletion);
    }
    let (chosen_prompt_len, rejected_prompt_len) = (cp.len(), rp.len());
    cp.extend_from_slice(&ca);
    rp.extend_from_slice(&ra);
    Ok(RowOutcome::Kept(
        TokenizedPair {
            index,
            chosen_ids: cp,
            chosen_prompt_len,
            rejected_ids: rp,
            rejected_prompt_len,
        },
        prompt_truncated,
        completion_truncated,
    ))
}

/// Tokenizes text examples in parallel (rayon); `index` of each pair is its position in
/// `examples`. Items that are `Err` (rows that failed to render) are dropped and counted under
/// their kind.
pub fn tokenize_examples(
    tok: &PreferenceTokenizer,
    examples: &[std::result::Result<TextExample, &'static str>],
    cfg: &TokenizeConfig,
) -> Result<(Vec<TokenizedPair>, TokenizeReport)> {
    tokenize_examples_with_progress(tok, examples, cfg, &|_| {})
}

/// [`tokenize_examples`], calling `on_rows(n)` as each `n` more examples are done (from the
/// worker threads; a progress bar's hook).
pub fn tokenize_examples_with_progress(
    tok: &PreferenceTokenizer,
    examples: &[std::result::Result<TextExample, &'static str>],
    cfg: &TokenizeConfig,
    on_rows: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<TokenizedPair>, TokenizeReport)> {
    cfg.validate()?;
    // A few contiguous blocks per thread, each with its own copy of the tokenizer: the BPE
    // model's word cache sits behind one lock, which two threads sharing a tokenizer contend for
    // on every word.
    let block = examples
        .len()
        .div_ceil(4 * rayon::current_num_threads())
        .max(64);
    let outcomes: Vec<Result<Option<RowOutcome>>> = examples
        .par_chunks(block)
        .enumerate()
        .flat_map_iter(|(b, rows)| {
            let tok = tok.clone();
            rows.iter().enumerate().map(move |(j, ex)| {
                let outcome = match ex {
                    Ok(ex) => tokenize_example(&tok, ex, cfg, b * block + j).map(Some),
                    Err(_) => Ok(None),
                };
                on_rows(1);
                outcome
            })
        })
        .collect();
    let mut report = TokenizeReport {
        rows_in: examples.len(),
        ..Default::default()
    };
    let mut pairs = Vec::with_capacity(examples.len());
    for (o, ex) in outcomes.into_iter().zip(examples) {
        match o? {
            Some(RowOutcome::Kept(pair, pt, ct)) => {
                report.prompt_truncated += pt as usize;
                report.completion_truncated += ct as usize;
                report.truncated += (pt || ct) as usize;
                pairs.push(pair);
            }
            Some(RowOutcome::EmptyCompletion) => {
                *report.dropped.entry("empty_completion".into()).or_default() += 1;
            }
            None => {
                let kind = ex.as_ref().err().copied().unwrap_or("bad_row");
                *report.dropped.entry(kind.into()).or_default() += 1;
            }
        }
    }
    report.rows_out = pairs.len();
    Ok((pairs, report))
}
