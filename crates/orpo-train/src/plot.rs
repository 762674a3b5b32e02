//! Line plots of a run's metrics as self-contained SVG files (no fonts or native libraries).
//!
//! The figure users know from the ORPO paper is chosen versus rejected log-probabilities over
//! training: under SFT both rise together; under ORPO the rejected one falls away.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::metrics::LogEntry;

/// One line of a plot.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub color: &'static str,
    /// (x, y) points in order.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Renders `series` as an SVG line chart.
pub fn line_chart_svg(title: &str, x_label: &str, series: &[Series]) -> String {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
    let points = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if (x1 - x0).abs() < 1e-12 {
        x1 = x0 + 1.0;
    }
    if (y1 - y0).abs() < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let sy = |y: f64| top + (y1 - y) / (y1 - y0) * (h - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    for i in 0..=5 {
        let fy = y0 + (y1 - y0) * i as f64 / 5.0;
        let fx = x0 + (x1 - x0) * i as f64 / 5.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            w - right,
            left - 6.0,
            sy(fy) + 4.0,
            tick(fy),
            y = sy(fy)
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            sx(fx),
            h - bottom + 18.0,
            tick(fx)
        );
    }
    let _ = write!(
        svg,
        r#"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        w - left - right,
        h - top - bottom
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (left + w - right) / 2.0,
        h - 18.0,
        escape(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            path.join(" ")
        );
        let ly = top + 16.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            left + 10.0,
            left + 34.0,
            s.color,
            left + 40.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn tick(v: f64) -> String {
    if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The values of `key` over training steps (entries that carry it).
fn series_of(history: &[LogEntry], key: &str, label: &str, color: &'static str) -> Series {
    Series {
        label: label.into(),
        color,
        points: history
            .iter()
            .filter_map(|e| e.values.get(key).map(|v| (e.step as f64, *v)))
            .collect(),
    }
}

/// Writes the standard plots of a run into `dir`; returns the files written.
///
/// `loss.svg` (loss and NLL), `rewards_accuracy.svg` (train and eval), `logps.svg` (chosen vs
/// rejected log-probabilities, train and eval).
pub fn write_run_plots(history: &[LogEntry], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let charts = [
        (
            "loss.svg",
            "Loss",
            vec![
                series_of(history, "loss", "loss", COLORS[0]),
                series_of(history, "nll_loss", "nll_loss", COLORS[2]),
                series_of(history, "eval_loss", "eval_loss", COLORS[1]),
            ],
        ),
        (
            "rewards_accuracy.svg",
            "Reward accuracy (chosen beats rejected)",
            vec![
                series_of(history, "rewards/accuracies", "train", COLORS[0]),
                series_of(history, "eval_rewards/accuracies", "eval", COLORS[1]),
            ],
        ),
        (
            "logps.svg",
            "Mean log-probability of chosen vs rejected completions",
            vec![
                series_of(history, "logps/chosen", "chosen (train)", COLORS[0]),
                series_of(history, "logps/rejected", "rejected (train)", COLORS[1]),
                series_of(history, "eval_logps/chosen", "chosen (eval)", COLORS[2]),
                series_of(history, "eval_logps/rejected", "rejected (eval)", COLORS[3]),
            ],
        ),
    ];
    let mut written = Vec::new();
    for (file, title, series) in charts {
        let series: Vec<Series> = series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let path = dir.join(file);
        crate::io::write_atomic(&path, line_chart_svg(title, "step", &series).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
