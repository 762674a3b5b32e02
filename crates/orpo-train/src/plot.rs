//! The plots of a run, drawn with plotters as PNG and SVG: loss, reward accuracy, chosen versus
//! rejected log-probabilities and reward margins over optimizer steps, train and eval.
//!
//! The figure users know from the ORPO paper is chosen versus rejected log-probabilities over
//! training: under SFT both rise together; under ORPO the rejected one falls away.
//!
//! Text is drawn with a bundled subset of DejaVu Sans (`assets/`, its licence beside it), so the
//! PNGs need no system fonts. Tick labels are round numbers printed with the decimals their
//! spacing needs; legends sit in a column right of the plotting area, never over a curve.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::LogEntry;

/// DejaVu Sans, subset to Latin-1 and a few symbols (assets/DejaVuSans-LICENSE.txt).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// Width and height of one chart, in pixels.
pub const CHART_SIZE: (u32, u32) = (960, 540);
/// Width and height of the 2 × 2 overview (`training.png` / `.svg`).
pub const OVERVIEW_SIZE: (u32, u32) = (1600, 1000);
/// Width of the legend column right of each plotting area.
const LEGEND_WIDTH: u32 = 200;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("the bundled font assets/DejaVuSans-subset.ttf does not parse");
        }
    });
}

/// One line of a chart.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub color: RGBColor,
    /// Eval series are drawn with a marker on every point (they are sparse).
    pub markers: bool,
    /// (step, value) points in order; non-finite values are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, a y-axis label, an optional fixed y range, and its lines.
pub struct Chart {
    /// File stem (`loss` → `loss.png`, `loss.svg`).
    pub file: &'static str,
    /// Caption above the plotting area.
    pub title: &'static str,
    /// The y axis label.
    pub y_label: &'static str,
    /// A fixed y range (reward accuracy: 0 to 1); `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// The lines; empty ones are left out.
    pub series: Vec<Series>,
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(90, 90, 90);

/// The values of `key` over training steps (entries that carry it, finite values only).
fn series_of(history: &[LogEntry], key: &str, label: &str, color: RGBColor) -> Series {
    Series {
        label: label.into(),
        color,
        markers: key.starts_with("eval_"),
        points: history
            .iter()
            .filter_map(|e| e.values.get(key).map(|v| (e.step as f64, *v)))
            .filter(|p| p.1.is_finite())
            .collect(),
    }
}

/// The standard charts of a run's `history` (series without points are dropped, charts without
/// series too).
pub fn run_charts(history: &[LogEntry]) -> Vec<Chart> {
    let charts = vec![
        Chart {
            file: "loss",
            title: "Loss",
            y_label: "loss",
            y_range: None,
            series: vec![
                series_of(history, "loss", "train loss", BLUE),
                series_of(history, "nll_loss", "train NLL", GREEN),
                series_of(history, "eval_loss", "eval loss", RED),
                series_of(history, "eval_nll_loss", "eval NLL", ORANGE),
            ],
        },
        Chart {
            file: "rewards_accuracy",
            title: "Reward accuracy (chosen beats rejected)",
            y_label: "accuracy",
            y_range: Some((0.0, 1.0)),
            series: vec![
                series_of(history, "rewards/accuracies", "train", BLUE),
                series_of(history, "eval_rewards/accuracies", "eval", RED),
            ],
        },
        Chart {
            file: "logps",
            title: "Log-probability of chosen vs rejected completions",
            y_label: "mean log-probability per token",
            y_range: None,
            series: vec![
                series_of(history, "logps/chosen", "chosen (train)", BLUE),
                series_of(history, "logps/rejected", "rejected (train)", RED),
                series_of(history, "eval_logps/chosen", "chosen (eval)", PURPLE),
                series_of(history, "eval_logps/rejected", "rejected (eval)", ORANGE),
            ],
        },
        Chart {
            file: "rewards_margins",
            title: "Reward margin (chosen minus rejected)",
            y_label: "margin",
            y_range: None,
            series: vec![
                series_of(history, "rewards/margins", "train", BLUE),
                series_of(history, "eval_rewards/margins", "eval", RED),
            ],
        },
    ];
    charts
        .into_iter()
        .map(|mut c| {
            c.series.retain(|s| !s.points.is_empty());
            c
        })
        .filter(|c| !c.series.is_empty())
        .collect()
}

/// The spacing of round tick values plotters picks for `range` with at most `max` ticks: a
/// power of ten times 1, 0.5 or 0.2 (its `compute_f64_key_points`).
fn tick_step(range: f64, max: usize) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    // 10^k computed so that negative powers are exact decimals (1 / 100, not 10^-2 in floats).
    let power = |k: i32| {
        if k >= 0 {
            10f64.powi(k)
        } else {
            1.0 / 10f64.powi(-k)
        }
    };
    let mut k = range.log10().floor() as i32 + 1;
    let mut best = power(k);
    loop {
        for mantissa in [5.0, 2.0, 1.0] {
            let step = if k > 0 {
                mantissa * power(k - 1)
            } else {
                mantissa / power(1 - k)
            };
            if (range / step).floor() as usize + 1 > max {
                return best;
            }
            best = step;
        }
        k -= 1;
    }
}

/// Digits after the point that ticks spaced `step` apart need (0 for whole numbers).
fn tick_decimals(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10() - 1e-9).ceil().clamp(0.0, 9.0) as usize
    }
}

/// `value` with `decimals` digits, `-0` printed as `0`.
fn tick_label(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

const X_TICKS: usize = 10;
const Y_TICKS: usize = 10;

/// The x and y ranges of `chart`: the data's, padded 5% in y; a single point gets a unit range.
fn ranges(chart: &Chart) -> (Range<f64>, Range<f64>) {
    let points = chart.series.iter().flat_map(|s| s.points.iter());
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
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if let Some((lo, hi)) = chart.y_range {
        y0 = y0.min(lo);
        y1 = y1.max(hi);
    } else if y1 - y0 < 1e-12 {
        let half = (y0.abs() * 0.05).max(0.5);
        y0 -= half;
        y1 += half;
    }
    let pad = (y1 - y0) * 0.04;
    (x0..x1, (y0 - pad)..(y1 + pad))
}

type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws `chart` into `area`: the plotting area with axes, round ticks and a light grid on the
/// left, the legend in a column on the right.
fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> DrawResult<(), DB> {
    let (width, _) = area.dim_in_pixel();
    let (plot_area, legend_area) = area.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
    let (xr, yr) = ranges(chart);
    let x_dec = tick_decimals(tick_step(xr.end - xr.start, X_TICKS)).min(2);
    let y_dec = tick_decimals(tick_step(yr.end - yr.start, Y_TICKS));
    let x_fmt = move |v: &f64| tick_label(*v, x_dec);
    let y_fmt = move |v: &f64| tick_label(*v, y_dec);
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(chart.title, (FAMILY, 22).into_font())
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(xr, yr)?;
    ctx.configure_mesh()
        .x_labels(X_TICKS)
        .y_labels(Y_TICKS)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("step")
        .y_desc(chart.y_label)
        .label_style((FAMILY, 14).into_font())
        .axis_desc_style((FAMILY, 16).into_font())
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .axis_style(GREY)
        .draw()?;
    for s in &chart.series {
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        ctx.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
        if s.markers || s.points.len() == 1 {
            ctx.draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, 4, ShapeStyle::from(&s.color).filled())),
            )?;
        }
    }
    // The legend: a swatch and the label per series, top-aligned with the plotting area.
    let text = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
    for (i, s) in chart.series.iter().enumerate() {
        let y = 56 + 26 * i as i32;
        let style = ShapeStyle::from(&s.color).stroke_width(3);
        legend_area.draw(&PathElement::new(vec![(4, y), (34, y)], style))?;
        if s.markers {
            legend_area.draw(&Circle::new(
                (19, y),
                4,
                ShapeStyle::from(&s.color).filled(),
            ))?;
        }
        legend_area.draw(&Text::new(s.label.clone(), (42, y - 8), text.clone()))?;
    }
    Ok(())
}

fn draw_all<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    charts: &[&Chart],
) -> DrawResult<(), DB> {
    root.fill(&WHITE)?;
    if let [chart] = charts {
        return draw_chart(root, chart);
    }
    let rows = charts.len().div_ceil(2);
    for (area, chart) in root.split_evenly((rows, 2)).iter().zip(charts) {
        draw_chart(area, chart)?;
    }
    Ok(())
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("drawing a plot: {e}"))
}

/// `charts` as an SVG document of `size` (one chart, or a grid two charts wide).
pub fn render_svg(charts: &[&Chart], size: (u32, u32)) -> std::io::Result<String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_all(&root, charts).map_err(io_error)?;
        root.present().map_err(io_error)?;
    }
    Ok(svg)
}

/// `charts` as a PNG file's bytes (RGB, 8 bits) of `size`.
pub fn render_png(charts: &[&Chart], size: (u32, u32)) -> std::io::Result<Vec<u8>> {
    register_font();
    let (w, h) = size;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw_all(&root, charts).map_err(io_error)?;
        root.present().map_err(io_error)?;
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(io_error)?;
        writer.write_image_data(&rgb).map_err(io_error)?;
        writer.finish().map_err(io_error)?;
    }
    Ok(bytes)
}

/// Writes the plots of a run into `dir`; returns the files written.
///
/// For each chart that has data, `NAME.png` and `NAME.svg`: `loss` (train and eval loss and
/// NLL), `rewards_accuracy` (train and eval), `logps` (chosen vs rejected log-probabilities,
/// train and eval), `rewards_margins`; and `training.png` / `training.svg` with all of them.
pub fn write_run_plots(history: &[LogEntry], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let charts = run_charts(history);
    let mut written = Vec::new();
    let mut write = |name: String, bytes: &[u8]| -> std::io::Result<()> {
        let path = dir.join(name);
        crate::io::write_atomic(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    for chart in &charts {
        write(
            format!("{}.png", chart.file),
            &render_png(&[chart], CHART_SIZE)?,
        )?;
        write(
            format!("{}.svg", chart.file),
            render_svg(&[chart], CHART_SIZE)?.as_bytes(),
        )?;
    }
    if charts.len() > 1 {
        let all: Vec<&Chart> = charts.iter().collect();
        write("training.png".into(), &render_png(&all, OVERVIEW_SIZE)?)?;
        write(
            "training.svg".into(),
            render_svg(&all, OVERVIEW_SIZE)?.as_bytes(),
        )?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ticks_are_round_and_printed_with_the_decimals_they_need() {
        assert_eq!(tick_step(1.0, 7), 0.2);
        assert_eq!(tick_step(378.4, 8), 50.0);
        assert_eq!(tick_step(0.037, 7), 0.01);
        assert_eq!(tick_decimals(50.0), 0);
        assert_eq!(tick_decimals(0.2), 1);
        assert_eq!(tick_decimals(0.05), 2);
        assert_eq!(tick_label(400.0, 0), "400");
        assert_eq!(tick_label(0.6000000001, 1), "0.6");
        assert_eq!(tick_label(-0.0001, 2), "0.00");
        assert_eq!(tick_label(-1.25, 2), "-1.25");
    }

    fn history() -> Vec<LogEntry> {
        (1..=40)
            .map(|step| {
                let t = step as f64;
                let mut values = BTreeMap::from([
                    ("loss".to_string(), 2.0 / t.sqrt()),
                    ("nll_loss".to_string(), 1.8 / t.sqrt()),
                    ("rewards/accuracies".to_string(), (t / 40.0).min(1.0)),
                    ("logps/chosen".to_string(), -1.5 + t * 0.01),
                    ("logps/rejected".to_string(), -1.5 - t * 0.03),
                    ("rewards/margins".to_string(), t * 0.004),
                ]);
                if step % 10 == 0 {
                    values.insert("eval_loss".into(), 2.1 / t.sqrt());
                    values.insert("eval_rewards/accuracies".into(), t / 45.0);
                    values.insert("eval_logps/chosen".into(), -1.6 + t * 0.01);
                    values.insert("eval_logps/rejected".into(), -1.6 - t * 0.025);
                }
                LogEntry {
                    step,
                    epoch: t / 40.0,
                    values,
                }
            })
            .collect()
    }

    #[test]
    fn writes_png_and_svg_of_every_chart() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_run_plots(&history(), dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for stem in [
            "loss",
            "rewards_accuracy",
            "logps",
            "rewards_margins",
            "training",
        ] {
            assert!(names.contains(&format!("{stem}.png")), "{names:?}");
            assert!(names.contains(&format!("{stem}.svg")), "{names:?}");
        }
        // The PNGs decode, with the documented sizes.
        for (file, size) in [("logps.png", CHART_SIZE), ("training.png", OVERVIEW_SIZE)] {
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(dir.path().join(file)).unwrap(),
            ));
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), size, "{file}");
            // Not a blank page: the curves' colours are there.
            let pixels = &buf[..info.buffer_size()];
            let has = |c: RGBColor| pixels.chunks(3).any(|p| p == [c.0, c.1, c.2]);
            assert!(has(BLUE) && has(RED), "{file} lacks the series colours");
        }
        // The SVG carries the title, axis labels, legend entries and round tick labels.
        let svg = std::fs::read_to_string(dir.path().join("logps.svg")).unwrap();
        for text in [
            "Log-probability of chosen vs rejected completions",
            "step",
            "mean log-probability per token",
            "chosen (train)",
            "rejected (train)",
            "chosen (eval)",
            "rejected (eval)",
            "20",
            "40",
        ] {
            // plotters writes each text on a line of its own inside <text>.
            assert!(
                svg.contains(&format!("\n{text}\n</text>")),
                "logps.svg lacks {text}"
            );
        }
        for color in [BLUE, RED, PURPLE, ORANGE] {
            let stroke = format!("stroke=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
            assert!(
                svg.lines()
                    .any(|l| l.starts_with("<polyline") && l.contains(&stroke)),
                "logps.svg has no line in {stroke}"
            );
        }
        let acc = std::fs::read_to_string(dir.path().join("rewards_accuracy.svg")).unwrap();
        for tick in ["0.0", "0.2", "1.0"] {
            assert!(
                acc.contains(&format!("\n{tick}\n</text>")),
                "rewards_accuracy.svg lacks tick {tick}"
            );
        }
    }

    #[test]
    fn charts_without_data_are_skipped() {
        let only_loss: Vec<LogEntry> = (1..=3)
            .map(|step| LogEntry {
                step,
                epoch: 0.0,
                values: BTreeMap::from([("loss".to_string(), 1.0 / step as f64)]),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let files = write_run_plots(&only_loss, dir.path()).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(write_run_plots(&[], dir.path()).unwrap().is_empty());
    }
}
