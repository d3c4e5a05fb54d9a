//! The bench chart: `target/bench/report.svg`, drawn with `plotters`' SVG backend.
//!
//! Owns: two panels from a [`Report`]: ours against JS per workload as horizontal ratio
//! bars ("how many times better": ours/JS for throughput, JS/ours for bytes, seconds and
//! memory; a log scale when the ratios span more than 10x; a line at 1x), and peak RSS
//! per workload, ours and JS side by side.
//!
//! Must not: need a font library. Text is written as SVG `<text>` elements (plotters
//! without its `ttf` / `ab_glyph` features only estimates text widths), so the viewer
//! renders it. Must not run or judge workloads (`super::report` judges). Used by `cargo
//! xtask bench` and its tests.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{Report, ReportError, Verdict};

/// One bar of the ratio panel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatioBar {
    pub label: String,
    /// > 1: ours better than JS by that factor.
    pub advantage: f64,
    pub verdict: Verdict,
}

/// The ratio panel's bars: every row with a JS number.
pub(crate) fn ratio_bars(report: &Report) -> Vec<RatioBar> {
    let mut bars = Vec::new();
    for r in &report.throughput {
        if let Some(advantage) = r.ratio().filter(|a| a.is_finite() && *a > 0.0) {
            let label = if r.durability == "flush" {
                format!("{} ({})", r.workload, r.layer)
            } else {
                format!("{} ({}, {})", r.workload, r.layer, r.durability)
            };
            bars.push(RatioBar {
                label,
                advantage,
                verdict: r.verdict(),
            });
        }
    }
    for r in &report.footprint {
        if let Some(advantage) = r.advantage().filter(|a| a.is_finite() && *a > 0.0) {
            bars.push(RatioBar {
                label: format!("{}: {}", r.workload, r.measure),
                advantage,
                verdict: r.verdict(),
            });
        }
    }
    bars
}

/// Whether the ratio axis is logarithmic: the bars span more than 10x (1x included).
pub(crate) fn wants_log_scale(bars: &[RatioBar]) -> bool {
    let (lo, hi) = bars.iter().fold((1.0f64, 1.0f64), |(lo, hi), b| {
        (lo.min(b.advantage), hi.max(b.advantage))
    });
    hi / lo > 10.0
}

const WIDTH: u32 = 1100;
const ROW_PX: u32 = 22;
const PANEL_EXTRA_PX: u32 = 90;
const LABEL_PX: i32 = 330;
const FONT: &str = "sans-serif";

const OURS: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const JS: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const MEETS: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const MISSES: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const INFO: RGBColor = RGBColor(0x99, 0x99, 0x99);

fn chart_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// The chart as an SVG document.
pub(crate) fn svg(report: &Report) -> Result<String, ReportError> {
    let bars = ratio_bars(report);
    let ratio_h = PANEL_EXTRA_PX + ROW_PX * bars.len().max(1) as u32;
    let rss_h = PANEL_EXTRA_PX + 2 * ROW_PX * report.rss.len().max(1) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, ratio_h + rss_h)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let (top, bottom) = root.split_vertically(ratio_h as i32);
        ratio_panel(&root, &top, &bars, &report.meta.date)?;
        rss_panel(&root, &bottom, report)?;
        root.present().map_err(chart_err)?;
    }
    Ok(out)
}

/// Writes `report.svg` into `dir` (created if missing) and returns its path.
pub(crate) fn write_svg(report: &Report, dir: &Path) -> Result<PathBuf, ReportError> {
    let path = dir.join("report.svg");
    let text = svg(report)?;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Category labels right-aligned in the label area, at the pixel rows of `ys`.
fn draw_labels(root: &Area<'_>, labels: &[(String, (i32, i32))]) -> Result<(), ReportError> {
    let style = TextStyle::from((FONT, 14).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (text, (x, y)) in labels {
        root.draw(&Text::new(text.clone(), (*x - 6, *y), style.clone()))
            .map_err(chart_err)?;
    }
    Ok(())
}

fn ratio_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    bars: &[RatioBar],
    date: &str,
) -> Result<(), ReportError> {
    let log = wants_log_scale(bars);
    // In log mode the x axis holds log10(advantage); bars grow from 1x either way.
    let to_x = |a: f64| if log { a.log10() } else { a };
    let (lo, hi) = bars.iter().fold((to_x(1.0), to_x(1.0)), |(lo, hi), b| {
        (lo.min(to_x(b.advantage)), hi.max(to_x(b.advantage)))
    });
    let (x_lo, x_hi) = if log {
        (lo - 0.25, hi + 0.35)
    } else {
        (0.0, hi * 1.18)
    };
    let n = bars.len().max(1) as f64;
    let caption = format!(
        "ours vs JS, times better (ours/JS ops/s; JS/ours for bytes, seconds, RSS){}, {date}",
        if log { ", log scale" } else { "" }
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(LABEL_PX)
        .build_cartesian_2d(x_lo..x_hi, -0.5f64..(n - 0.5))
        .map_err(chart_err)?;
    let fmt_x = move |v: &f64| {
        let a = if log { 10f64.powf(*v) } else { *v };
        if a >= 10.0 {
            format!("{a:.0}x")
        } else if a >= 1.0 {
            format!("{a:.1}x")
        } else {
            format!("{a:.2}x")
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&fmt_x)
        .draw()
        .map_err(chart_err)?;
    let base = to_x(1.0);
    let value_style = TextStyle::from((FONT, 13).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut labels = Vec::new();
    for (i, b) in bars.iter().enumerate() {
        // Top to bottom in report order.
        let y = n - 1.0 - i as f64;
        let color = match b.verdict {
            Verdict::Meets => MEETS,
            Verdict::Misses => MISSES,
            Verdict::Informational(_) => INFO,
        };
        let v = to_x(b.advantage);
        let (a, z) = if v >= base { (base, v) } else { (v, base) };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y - 0.35), (z, y + 0.35)],
                color.filled(),
            )))
            .map_err(chart_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{:.2}x", b.advantage),
                (v.max(base) + (x_hi - x_lo) * 0.005, y),
                value_style.clone(),
            )))
            .map_err(chart_err)?;
        labels.push((b.label.clone(), chart.backend_coord(&(x_lo, y))));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(base, -0.5), (base, n - 0.5)],
            BLACK.stroke_width(2),
        )))
        .map_err(chart_err)?;
    draw_labels(root, &labels)
}

fn rss_panel(root: &Area<'_>, area: &Area<'_>, report: &Report) -> Result<(), ReportError> {
    let n = report.rss.len().max(1) as f64;
    let hi = report
        .rss
        .iter()
        .flat_map(|p| [Some(p.ours_mib), p.js_mib])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("peak RSS per workload, MiB (ours and JS)", (FONT, 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(LABEL_PX)
        .build_cartesian_2d(0f64..hi * 1.15, -0.5f64..(n - 0.5))
        .map_err(chart_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&|v: &f64| format!("{v:.0}"))
        .draw()
        .map_err(chart_err)?;
    let value_style = TextStyle::from((FONT, 12).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut labels = Vec::new();
    let mut ours = Vec::new();
    let mut js = Vec::new();
    let mut values = Vec::new();
    for (i, p) in report.rss.iter().enumerate() {
        let y = n - 1.0 - i as f64;
        if p.ours_mib.is_finite() {
            ours.push(Rectangle::new(
                [(0.0, y + 0.02), (p.ours_mib, y + 0.38)],
                OURS.filled(),
            ));
            values.push(Text::new(
                format!("{:.1}", p.ours_mib),
                (p.ours_mib + hi * 0.005, y + 0.2),
                value_style.clone(),
            ));
        }
        if let Some(j) = p.js_mib.filter(|j| j.is_finite()) {
            js.push(Rectangle::new(
                [(0.0, y - 0.38), (j, y - 0.02)],
                JS.filled(),
            ));
            values.push(Text::new(
                format!("{j:.1}"),
                (j + hi * 0.005, y - 0.2),
                value_style.clone(),
            ));
        }
        labels.push((p.label.clone(), chart.backend_coord(&(0.0, y))));
    }
    chart
        .draw_series(ours)
        .map_err(chart_err)?
        .label("ours")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], OURS.filled()));
    chart
        .draw_series(js)
        .map_err(chart_err)?
        .label("JS")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], JS.filled()));
    chart.draw_series(values).map_err(chart_err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(chart_err)?;
    draw_labels(root, &labels)
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample;
    use super::*;

    #[test]
    fn bars_take_every_row_with_a_js_number() {
        let bars = ratio_bars(&sample());
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "append_batch (core)",
                "read_warm (core)",
                "append_single (core, fsync-per-batch)",
                "disk_usage: 128 B entries: allocated bytes / payload",
                "many_logs: peak RSS MiB",
            ]
        );
        // Lower-is-better rows are drawn as JS/ours.
        assert!((bars[3].advantage - 2.0 / 1.9).abs() < 1e-9);
        assert!((bars[4].advantage - 0.5).abs() < 1e-9);
    }

    #[test]
    fn log_scale_only_when_ratios_span_more_than_ten() {
        let bar = |advantage| RatioBar {
            label: String::new(),
            advantage,
            verdict: Verdict::Meets,
        };
        assert!(!wants_log_scale(&[bar(1.5), bar(8.0)]));
        assert!(wants_log_scale(&[bar(0.9), bar(24.0)]));
        assert!(wants_log_scale(&[bar(0.05), bar(1.0)]));
        // The sample spans 0.5x .. 8x: 16x, so logarithmic.
        assert!(wants_log_scale(&ratio_bars(&sample())));
    }

    #[test]
    fn svg_is_a_document_with_every_workload_and_both_panels() -> Result<(), ReportError> {
        let svg = svg(&sample())?;
        if let Some(out) = std::env::var_os("BENCH_CHART_SAMPLE") {
            let _ = std::fs::write(out, &svg);
        }
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for needle in [
            "append_batch (core)",
            "read_warm (core)",
            "disk_usage: 128 B entries: allocated bytes / payload",
            "many_logs: peak RSS MiB",
            "peak RSS per workload, MiB (ours and JS)",
            "8.00x",
            "117.0",
            "\nours\n",
            "\nJS\n",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        // Text is SVG text (no glyph outlines, no font library), and every element closes.
        assert!(svg.matches("<text").count() >= 10);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        Ok(())
    }

    #[test]
    fn a_linear_panel_draws_too() -> Result<(), ReportError> {
        let mut report = sample();
        report.throughput.truncate(1);
        report.footprint.truncate(1);
        assert!(!wants_log_scale(&ratio_bars(&report)));
        let svg = svg(&report)?;
        assert!(svg.contains("append_batch (core)"));
        assert!(svg.trim_end().ends_with("</svg>"));
        Ok(())
    }

    #[test]
    fn write_svg_writes_report_svg() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = write_svg(&sample(), dir.path())?;
        assert!(path.ends_with("report.svg"));
        assert!(std::fs::read_to_string(path)?.contains("append_batch (core)"));
        Ok(())
    }
}
