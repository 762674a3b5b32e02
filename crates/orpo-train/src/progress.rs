//! Where a run reports its progress: the one seam between the trainer and the terminal.
//!
//! The trainer (and [`crate::evaluate_pairs`], and tokenization in [`crate::OrpoTrainer::new`])
//! call a [`Progress`]; they know nothing of terminals. Two implementations:
//!
//! - [`LineProgress`]: the run's log lines (`step 2/4 | epoch … | ETA …` at every logging step,
//!   `eval @ step …` after every evaluation) as `tracing` events at INFO level (target
//!   `orpo_train::progress`), so an application routes or silences them with its subscriber.
//!   The default, and what the `orpo` binary uses off a terminal.
//! - [`BarProgress`]: the same lines, and indicatif progress bars on stderr for tokenization
//!   (rows), training (steps: loss, accuracy, s/step, ETA) and evaluation (batches). The `orpo`
//!   binary installs it when stderr is a terminal ([`set_global`]); its log writer goes through
//!   [`StderrAboveBars`] so that log lines print above the bars instead of through them.
//!
//! [`Silent`] reports nothing (`OrpoTrainer::quiet(true)`).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orpo_data::{
    PreferenceDataset, PreferenceTokenizer, TokenizeConfig, TokenizeReport, TokenizedPair,
};

use crate::metrics::LogEntry;

/// What the trainer tells about its progress. Every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// A task of `total` items begins: `what` names it ("tokenizing train", "evaluating"),
    /// `unit` its items ("rows", "batches").
    fn task_begin(&self, what: &str, unit: &'static str, total: u64) {
        let _ = (what, unit, total);
    }

    /// `n` more items of the current task are done (callable from several threads).
    fn task_advance(&self, n: u64) {
        let _ = n;
    }

    /// The current task is done.
    fn task_end(&self) {}

    /// The training loop starts at optimizer step `first_step` (0, or a resumed run's step) of
    /// `total_steps`.
    fn train_begin(&self, first_step: usize, total_steps: usize) {
        let _ = (first_step, total_steps);
    }

    /// Optimizer step `step` (1-based) is done, with its loss and reward accuracy.
    fn train_step(&self, step: usize, loss: f64, accuracy: Option<f64>) {
        let _ = (step, loss, accuracy);
    }

    /// A logging step's averaged metrics (what `metrics.jsonl` gets).
    fn logged(&self, entry: &LogEntry) {
        let _ = entry;
    }

    /// An evaluation after step `step`: the `eval_` metrics.
    fn evaluated(&self, step: usize, metrics: &BTreeMap<String, f64>) {
        let _ = (step, metrics);
    }

    /// The training loop is over.
    fn train_end(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}

/// The run's log lines as `tracing` INFO events (see the module docs).
#[derive(Debug, Default)]
pub struct LineProgress {
    clock: Mutex<Option<TrainClock>>,
}

#[derive(Debug, Clone, Copy)]
struct TrainClock {
    started: Instant,
    first_step: usize,
    total_steps: usize,
}

impl TrainClock {
    /// Seconds per step since the loop started, and the estimated time left after `step`.
    fn rate(&self, step: usize) -> (f64, f64) {
        let done = step.saturating_sub(self.first_step).max(1);
        let per_step = self.started.elapsed().as_secs_f64() / done as f64;
        (
            per_step,
            per_step * self.total_steps.saturating_sub(step) as f64,
        )
    }
}

impl LineProgress {
    fn clock(&self) -> Option<TrainClock> {
        *self.clock.lock().expect("progress clock")
    }
}

impl Progress for LineProgress {
    fn train_begin(&self, first_step: usize, total_steps: usize) {
        *self.clock.lock().expect("progress clock") = Some(TrainClock {
            started: Instant::now(),
            first_step,
            total_steps,
        });
    }

    fn logged(&self, entry: &LogEntry) {
        let Some(clock) = self.clock() else { return };
        tracing::info!(target: "orpo_train::progress", "{}", step_line(entry, &clock));
    }

    fn evaluated(&self, step: usize, metrics: &BTreeMap<String, f64>) {
        tracing::info!(target: "orpo_train::progress", "{}", eval_line(step, metrics));
    }
}

/// `step 2/4 | epoch 0.50 | loss 0.6931 | nll 0.6000 | acc 0.500 | lr 1.00e-05 | 0.12 s/step |
/// ETA 0m01s`: the line of a logging step (the CLI's tests read it).
fn step_line(entry: &LogEntry, clock: &TrainClock) -> String {
    let get = |k: &str| entry.values.get(k).copied().unwrap_or(f64::NAN);
    let (per_step, eta) = clock.rate(entry.step);
    format!(
        "step {}/{} | epoch {:.2} | loss {:.4} | nll {:.4} | acc {:.3} | lr {:.2e} | {:.2} s/step | ETA {}",
        entry.step,
        clock.total_steps,
        entry.epoch,
        get("loss"),
        get("nll_loss"),
        get("rewards/accuracies"),
        get("learning_rate"),
        per_step,
        format_duration(eta)
    )
}

/// `eval @ step 4 | eval_loss … | eval_rewards/accuracies … | eval_logps chosen … rejected …`.
fn eval_line(step: usize, eval: &BTreeMap<String, f64>) -> String {
    let get = |k: &str| eval.get(k).copied().unwrap_or(f64::NAN);
    format!(
        "eval @ step {step} | eval_loss {:.4} | eval_rewards/accuracies {:.3} | eval_logps chosen {:.3} rejected {:.3}",
        get("eval_loss"),
        get("eval_rewards/accuracies"),
        get("eval_logps/chosen"),
        get("eval_logps/rejected"),
    )
}

/// `1m05s`, `2h03m`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Tokenizes `dataset` as [`PreferenceDataset::tokenize`] does, reporting its rows to
/// `progress` as the task `what` ("tokenizing train").
pub fn tokenize_reporting(
    dataset: &PreferenceDataset,
    tokenizer: &PreferenceTokenizer,
    config: &TokenizeConfig,
    progress: &dyn Progress,
    what: &str,
) -> orpo_data::Result<(Vec<TokenizedPair>, TokenizeReport)> {
    progress.task_begin(what, "rows", dataset.len() as u64);
    let out =
        dataset.tokenize_with_progress(tokenizer, config, &|n| progress.task_advance(n as u64));
    progress.task_end();
    if let Ok((_, report)) = &out {
        tracing::debug!(
            "{what}: {} pairs of {} rows ({} truncated, {} dropped)",
            report.rows_out,
            report.rows_in,
            report.truncated,
            report.dropped_total()
        );
    }
    out
}

/// The bars of this process, all drawn on stderr by one [`MultiProgress`].
static BARS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));

/// indicatif bars on stderr, and the lines of [`LineProgress`] above them.
#[derive(Debug, Default)]
pub struct BarProgress {
    lines: LineProgress,
    task: Mutex<Option<ProgressBar>>,
    train: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("=> ")
    }
}

impl Progress for BarProgress {
    fn task_begin(&self, what: &str, unit: &'static str, total: u64) {
        let bar = BARS.add(ProgressBar::new(total));
        bar.set_style(Self::style(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}}, ETA {{eta}})"
        )));
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.task.lock().expect("task bar").replace(bar) {
            old.finish_and_clear();
            BARS.remove(&old);
        }
    }

    fn task_advance(&self, n: u64) {
        if let Some(bar) = &*self.task.lock().expect("task bar") {
            bar.inc(n);
        }
    }

    fn task_end(&self) {
        if let Some(bar) = self.task.lock().expect("task bar").take() {
            bar.finish_and_clear();
            BARS.remove(&bar);
        }
    }

    fn train_begin(&self, first_step: usize, total_steps: usize) {
        self.lines.train_begin(first_step, total_steps);
        let bar = BARS.add(ProgressBar::new(total_steps as u64));
        bar.set_style(Self::style(
            "training [{bar:30}] {pos}/{len} steps | {msg} ({elapsed})",
        ));
        bar.set_position(first_step as u64);
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.train.lock().expect("train bar").replace(bar) {
            old.finish_and_clear();
            BARS.remove(&old);
        }
    }

    fn train_step(&self, step: usize, loss: f64, accuracy: Option<f64>) {
        let Some(clock) = self.lines.clock() else {
            return;
        };
        if let Some(bar) = &*self.train.lock().expect("train bar") {
            let (per_step, eta) = clock.rate(step);
            let acc = accuracy.map_or(String::new(), |a| format!(" | acc {a:.3}"));
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {loss:.4}{acc} | {per_step:.2} s/step | ETA {}",
                format_duration(eta)
            ));
        }
    }

    fn logged(&self, entry: &LogEntry) {
        self.lines.logged(entry);
    }

    fn evaluated(&self, step: usize, metrics: &BTreeMap<String, f64>) {
        self.lines.evaluated(step, metrics);
    }

    fn train_end(&self) {
        self.task_end();
        if let Some(bar) = self.train.lock().expect("train bar").take() {
            bar.finish_and_clear();
            BARS.remove(&bar);
        }
    }
}

/// The process-wide [`Progress`] (tokenization in `OrpoTrainer::new`, `evaluate_pairs`, and
/// trainers not given their own): [`LineProgress`] unless [`set_global`] replaced it.
static GLOBAL: RwLock<Option<Arc<dyn Progress>>> = RwLock::new(None);

/// Replaces the process-wide [`Progress`] (the `orpo` binary: [`BarProgress`] on a terminal).
pub fn set_global(progress: Arc<dyn Progress>) {
    *GLOBAL.write().expect("global progress") = Some(progress);
}

/// The process-wide [`Progress`].
pub fn global() -> Arc<dyn Progress> {
    if let Some(p) = &*GLOBAL.read().expect("global progress") {
        return p.clone();
    }
    static DEFAULT: LazyLock<Arc<dyn Progress>> =
        LazyLock::new(|| Arc::new(LineProgress::default()));
    DEFAULT.clone()
}

/// stderr, written with the bars of [`BarProgress`] lifted for the write: a log writer for
/// `tracing-subscriber` (`.with_writer(|| StderrAboveBars)`) that keeps lines and bars apart.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrAboveBars;

impl Write for StderrAboveBars {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        BARS.suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_cli_format() {
        let entry = LogEntry {
            step: 2,
            epoch: 0.5,
            values: [
                ("loss".to_string(), 0.693_12),
                ("nll_loss".to_string(), 0.6),
                ("rewards/accuracies".to_string(), 0.5),
                ("learning_rate".to_string(), 1e-5),
            ]
            .into(),
        };
        let clock = TrainClock {
            started: Instant::now(),
            first_step: 0,
            total_steps: 4,
        };
        let line = step_line(&entry, &clock);
        assert!(
            line.starts_with(
                "step 2/4 | epoch 0.50 | loss 0.6931 | nll 0.6000 | acc 0.500 | lr 1.00e-5 | "
            ),
            "{line}"
        );
        assert!(line.contains(" s/step | ETA 0m0"), "{line}");
        let eval: BTreeMap<String, f64> = [
            ("eval_loss".to_string(), 1.0),
            ("eval_rewards/accuracies".to_string(), 0.75),
        ]
        .into();
        assert_eq!(
            eval_line(4, &eval),
            "eval @ step 4 | eval_loss 1.0000 | eval_rewards/accuracies 0.750 | eval_logps \
             chosen NaN rejected NaN"
        );
        assert_eq!(format_duration(65.0), "1m05s");
        assert_eq!(format_duration(7380.0), "2h03m");
    }

    #[test]
    fn bars_off_a_terminal_draw_nothing_and_keep_state() {
        // Under `cargo test` stderr is captured or a pipe: the bars are hidden, the calls still
        // work in any order.
        let p = BarProgress::default();
        p.task_advance(1);
        p.task_begin("tokenizing train", "rows", 10);
        p.task_advance(4);
        p.task_end();
        p.train_step(1, 0.5, None);
        p.train_begin(0, 3);
        p.train_step(1, 0.5, Some(0.25));
        p.train_end();
        p.train_end();
    }
}
