//! The metrics log of a run: `metrics.jsonl` (one JSON object per logging or evaluation step)
//! and `metrics.csv` (the same, one column per metric name).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One logged line: the step, the epoch, and named values (`loss`, `learning_rate`, TRL's
/// metric names, `eval_`-prefixed ones for evaluations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Optimizer step after which the values were taken.
    pub step: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Metric name → value.
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
}

/// Appends entries to `metrics.jsonl` as they come and rewrites `metrics.csv`.
pub struct MetricsWriter {
    jsonl: PathBuf,
    csv: PathBuf,
}

impl MetricsWriter {
    /// Writes into `dir`; `history` (from a resumed run) replaces what the files held, so a
    /// crash between a log line and a checkpoint leaves no duplicate lines after resuming.
    pub fn create(dir: &Path, history: &[LogEntry]) -> std::io::Result<Self> {
        let writer = Self {
            jsonl: dir.join("metrics.jsonl"),
            csv: dir.join("metrics.csv"),
        };
        let mut text = String::new();
        for entry in history {
            text.push_str(&serde_json::to_string(entry).expect("metrics serialise"));
            text.push('\n');
        }
        crate::io::write_atomic(&writer.jsonl, text.as_bytes())?;
        writer.write_csv(history)?;
        Ok(writer)
    }

    /// Appends one entry to `metrics.jsonl` (flushed at once).
    pub fn append(&self, entry: &LogEntry) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.jsonl)?;
        let mut line = serde_json::to_string(entry).expect("metrics serialise");
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.flush()
    }

    /// Rewrites `metrics.csv` from the whole history (atomically).
    pub fn write_csv(&self, history: &[LogEntry]) -> std::io::Result<()> {
        let mut columns: Vec<String> = Vec::new();
        for entry in history {
            for key in entry.values.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
        columns.sort();
        let mut text = String::from("step,epoch");
        for c in &columns {
            text.push(',');
            text.push_str(c);
        }
        text.push('\n');
        for entry in history {
            text.push_str(&format!("{},{}", entry.step, entry.epoch));
            for c in &columns {
                text.push(',');
                if let Some(v) = entry.values.get(c) {
                    text.push_str(&v.to_string());
                }
            }
            text.push('\n');
        }
        crate::io::write_atomic(&self.csv, text.as_bytes())
    }
}

/// Reads a run's `metrics.jsonl`.
/// Adds one micro-batch's metrics into the running sums of its optimizer step, so that the sums
/// are the metrics of all the step's pairs at once: the NLL weighted by the micro-batch's share
/// of the step's NLL tokens, the per-pair means by its share of the step's pairs.
pub fn add_micro_batch_metrics<K: From<&'static str> + Ord>(
    step: &mut BTreeMap<K, f64>,
    metrics: Vec<(&'static str, f64)>,
    (nll_tokens, total_tokens): (usize, usize),
    (pairs, total_pairs): (usize, usize),
) {
    let token_share = nll_tokens as f64 / total_tokens.max(1) as f64;
    let pair_share = pairs as f64 / total_pairs as f64;
    for (name, value) in metrics {
        let share = if name == "nll_loss" {
            token_share
        } else {
            pair_share
        };
        if share > 0.0 {
            *step.entry(K::from(name)).or_default() += value * share;
        }
    }
}

pub fn read_metrics(path: &Path) -> std::io::Result<Vec<LogEntry>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), i + 1),
                )
            })
        })
        .collect()
}
