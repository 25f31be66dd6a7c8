//! The chart, drawn as plain SVG so the benchmark needs no plotting tool: records per second
//! per scenario on a log scale (Python and Rust differ by orders of magnitude), and hop latency
//! p50/p99 on a linear one.

use crate::report::Report;
use std::fmt::Write;

const WIDTH: f64 = 920.0;
const LABEL_W: f64 = 270.0;
const BAR_H: f64 = 22.0;
const GAP: f64 = 8.0;
const PLOT_W: f64 = WIDTH - LABEL_W - 110.0;

/// The chart for `report`.
pub fn chart(report: &Report) -> String {
    let mut body = String::new();
    let mut y = 20.0;
    y = throughput_panel(report, &mut body, y);
    y = latency_panel(report, &mut body, y + 30.0);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" \
         viewBox=\"0 0 {WIDTH} {h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        h = y + 10.0
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn title(out: &mut String, y: f64, text: &str) {
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"{y}\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(text)
    );
}

fn bar(out: &mut String, y: f64, width: f64, height: f64, color: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{color}\"/>",
        width.max(1.0)
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, text: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{}</text>",
        escape(text)
    );
}

fn color(index: usize) -> &'static str {
    ["#6b7280", "#2563eb", "#16a34a", "#dc2626", "#f59e0b"][index % 5]
}

/// Records/s, log10 axis from 100 up to the next power of ten above the fastest.
fn throughput_panel(report: &Report, out: &mut String, y: f64) -> f64 {
    title(
        out,
        y,
        &format!(
            "Throughput, records/s (log scale; {} records, Python {})",
            report.records, report.python_sample
        ),
    );
    let max = report
        .scenarios
        .iter()
        .map(|r| r.throughput.records_per_second)
        .fold(1.0, f64::max);
    let (lo, hi) = (2.0, max.log10().ceil().max(3.0));
    let scale = |v: f64| ((v.max(1.0).log10() - lo) / (hi - lo)).clamp(0.0, 1.0) * PLOT_W;
    let mut y = y + 14.0;
    for (i, r) in report.scenarios.iter().enumerate() {
        let v = r.throughput.records_per_second;
        let w = scale(v);
        bar(out, y, w, BAR_H, color(i));
        text(out, LABEL_W - 8.0, y + 16.0, "end", &r.label);
        text(
            out,
            LABEL_W + w + 6.0,
            y + 16.0,
            "start",
            &format!("{v:.0}"),
        );
        y += BAR_H + GAP;
    }
    for decade in lo as i32..=hi as i32 {
        let x = LABEL_W + scale(10f64.powi(decade));
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
            y + 5.0
        );
        text(out, x, y + 18.0, "middle", &format!("1e{decade}"));
    }
    y + 24.0
}

/// p50 and p99 hop latency, ms, for the scenarios where it was measured.
fn latency_panel(report: &Report, out: &mut String, y: f64) -> f64 {
    let measured: Vec<_> = report
        .scenarios
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.latency.as_ref().map(|l| (i, r, l)))
        .collect();
    let rate = measured.first().map(|(_, _, l)| l.rate).unwrap_or_default();
    title(
        out,
        y,
        &format!("Hop latency at {rate} records/s, ms (dark: p50, light: p99)"),
    );
    let max = measured
        .iter()
        .map(|(_, _, l)| l.p99_ms)
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let mut y = y + 14.0;
    for (i, r, l) in measured {
        let w99 = l.p99_ms / max * PLOT_W;
        let w50 = l.p50_ms / max * PLOT_W;
        let _ = writeln!(
            out,
            "<g opacity=\"0.45\"><rect x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/></g>",
            w99.max(1.0),
            BAR_H,
            color(i)
        );
        bar(out, y + BAR_H / 2.0, w50, BAR_H / 2.0, color(i));
        text(out, LABEL_W - 8.0, y + 16.0, "end", &r.label);
        text(
            out,
            LABEL_W + w99 + 6.0,
            y + 16.0,
            "start",
            &format!("p50 {:.1} / p99 {:.1}", l.p50_ms, l.p99_ms),
        );
        y += BAR_H + GAP;
    }
    y
}
