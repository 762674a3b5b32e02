//! Dataset inspection: counts, token length percentiles, truncation and drop rates, duplicates.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dataset::PreferenceDataset;
use crate::tokenize::{TokenizeReport, TokenizedPair};

/// Length distribution (nearest-rank percentiles), in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Lengths {
    /// Median.
    pub p50: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Maximum.
    pub max: usize,
    /// Mean.
    pub mean: f64,
}

impl Lengths {
    /// Distribution of `values` (all zero when empty).
    pub fn of(mut values: Vec<usize>) -> Self {
        if values.is_empty() {
            return Lengths::default();
        }
        values.sort_unstable();
        let n = values.len();
        let pct = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Lengths {
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: values[n - 1],
            mean: values.iter().sum::<usize>() as f64 / n as f64,
        }
    }
}

/// Summary of a tokenized split. Serializable (the CLI prints it as JSON) and printable as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Split name.
    pub split: String,
    /// Rows read from the files.
    pub rows_read: usize,
    /// Rows skipped at load (bad rows, with `skip_bad_rows`), by kind.
    pub skipped: BTreeMap<String, usize>,
    /// Valid examples.
    pub examples: usize,
    /// Conversational examples (message lists) among them.
    pub conversational: usize,
    /// Pairs after tokenization.
    pub pairs: usize,
    /// Prompt tokens (after truncation; BOS included).
    pub prompt_tokens: Lengths,
    /// Completion tokens, chosen and rejected together (after truncation; EOS included).
    pub completion_tokens: Lengths,
    /// Chosen completion tokens.
    pub chosen_tokens: Lengths,
    /// Rejected completion tokens.
    pub rejected_tokens: Lengths,
    /// Full sequence lengths (longer of the two per pair).
    pub sequence_tokens: Lengths,
    /// Pairs with a truncated prompt.
    pub prompt_truncated: usize,
    /// Pairs with a truncated completion.
    pub completion_truncated: usize,
    /// Fraction of examples truncated (any part).
    pub truncation_rate: f64,
    /// Rows dropped at tokenization, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Fraction of examples dropped at tokenization.
    pub drop_rate: f64,
    /// Examples identical (prompt, chosen, rejected) to an earlier one.
    pub duplicate_pairs: usize,
    /// Rows skipped at load because chosen == rejected.
    pub identical_pairs: usize,
    /// Pairs whose chosen and rejected token sequences became identical after truncation
    /// (their difference was cut off: they teach nothing).
    pub identical_after_truncation: usize,
}

/// Summarizes a dataset and its tokenization.
pub fn summarize(
    dataset: &PreferenceDataset,
    pairs: &[TokenizedPair],
    report: &TokenizeReport,
) -> DataSummary {
    let load = dataset.load_report();
    let mut seen = HashSet::new();
    let mut duplicate_pairs = 0;
    for ex in dataset.examples() {
        if !seen.insert(ex) {
            duplicate_pairs += 1;
        }
    }
    let conversational = dataset
        .examples()
        .iter()
        .filter(|e| e.chosen.is_conversational())
        .count();
    let prompt: Vec<usize> = pairs.iter().map(TokenizedPair::prompt_len).collect();
    let chosen: Vec<usize> = pairs.iter().map(|p| p.chosen_completion().len()).collect();
    let rejected: Vec<usize> = pairs
        .iter()
        .map(|p| p.rejected_completion().len())
        .collect();
    let both: Vec<usize> = chosen.iter().chain(&rejected).copied().collect();
    let seq: Vec<usize> = pairs.iter().map(TokenizedPair::max_len).collect();
    let n = report.rows_in.max(1) as f64;
    DataSummary {
        split: dataset.split().to_string(),
        rows_read: load.rows_read,
        skipped: load.skipped.clone(),
        examples: dataset.len(),
        conversational,
        pairs: pairs.len(),
        prompt_tokens: Lengths::of(prompt),
        completion_tokens: Lengths::of(both),
        chosen_tokens: Lengths::of(chosen),
        rejected_tokens: Lengths::of(rejected),
        sequence_tokens: Lengths::of(seq),
        prompt_truncated: report.prompt_truncated,
        completion_truncated: report.completion_truncated,
        truncation_rate: report.truncated as f64 / n,
        dropped: report.dropped.clone(),
        drop_rate: report.dropped_total() as f64 / n,
        duplicate_pairs,
        identical_pairs: load.skipped.get("identical_pair").copied().unwrap_or(0),
        identical_after_truncation: pairs
            .iter()
            .filter(|p| p.chosen_ids == p.rejected_ids)
            .count(),
    }
}

impl fmt::Display for Lengths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:>5}  p90 {:>5}  p99 {:>5}  max {:>5}  mean {:>8.1}",
            self.p50, self.p90, self.p99, self.max, self.mean
        )
    }
}

impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(f, "split `{}`", self.split)?;
        writeln!(f, "  rows read            {}", self.rows_read)?;
        writeln!(f, "  skipped at load      {}", map(&self.skipped))?;
        writeln!(
            f,
            "  examples             {} ({} conversational)",
            self.examples, self.conversational
        )?;
        writeln!(f, "  pairs tokenized      {}", self.pairs)?;
        writeln!(f, "  prompt tokens        {}", self.prompt_tokens)?;
        writeln!(f, "  completion tokens    {}", self.completion_tokens)?;
        writeln!(f, "  chosen tokens        {}", self.chosen_tokens)?;
        writeln!(f, "  rejected tokens      {}", self.rejected_tokens)?;
        writeln!(f, "  sequence tokens      {}", self.sequence_tokens)?;
        writeln!(
            f,
            "  truncated            {:.2}% (prompt {}, completion {})",
            100.0 * self.truncation_rate,
            self.prompt_truncated,
            self.completion_truncated
        )?;
        writeln!(
            f,
            "  dropped              {:.2}% ({})",
            100.0 * self.drop_rate,
            map(&self.dropped)
        )?;
        writeln!(f, "  duplicate pairs      {}", self.duplicate_pairs)?;
        writeln!(f, "  identical pairs      {}", self.identical_pairs)?;
        write!(
            f,
            "  identical after truncation {}",
            self.identical_after_truncation
        )
    }
}
