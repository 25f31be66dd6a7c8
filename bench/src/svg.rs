//! The chart, drawn as plain SVG so the benchmark needs no plotting tool: records per second
//! per scenario on a log scale (Python and Rust differ by orders of magnitude) with Kafka's own
//! perf tests as the reference, hop latency p50/p99/p99.9 at the fixed rate and at half each
//! scenario's maximum (log scale: the tail is orders of magnitude above the median), and the
//! replicas curve.

use crate::latency::Latency;
use crate::replicas::Implementation;
use crate::report::{Report, ScenarioResult};
use std::fmt::Write;

const FONT_SIZE: f64 = 13.0;
/// A generous mean advance of a 13 px sans-serif character (DejaVu Sans, the widest common
/// fallback, averages about 0.6 em over these labels), so the longest label fits.
const CHAR_W: f64 = 8.0;
const BAR_H: f64 = 22.0;
const GAP: f64 = 8.0;
const PLOT_W: f64 = 480.0;
const MARGIN: f64 = 10.0;

/// One horizontal bar row: a label, then bars drawn over each other (the widest first).
struct Row {
    label: String,
    color: &'static str,
    /// Values, each with its opacity, drawn in order.
    bars: Vec<(f64, f64)>,
    /// Text after the longest bar.
    note: String,
}

#[derive(Clone, Copy)]
enum Scale {
    /// log10, from 10^lo to 10^hi.
    Log { lo: i32, hi: i32 },
    /// 0 to max.
    Linear { max: f64 },
}

impl Scale {
    fn log_for(values: impl Iterator<Item = f64>) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, 0.0f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            return Scale::Log { lo: 0, hi: 1 };
        }
        let lo = min.log10().floor() as i32;
        let hi = (max.log10().ceil() as i32).max(lo + 1);
        Scale::Log { lo, hi }
    }

    /// Width of `v` in the plot, 0..=PLOT_W.
    fn width(self, v: f64) -> f64 {
        let fraction = match self {
            Scale::Log { lo, hi } => {
                if v <= 0.0 || !v.is_finite() {
                    0.0
                } else {
                    (v.log10() - f64::from(lo)) / f64::from(hi - lo)
                }
            }
            Scale::Linear { max } => v / max.max(f64::MIN_POSITIVE),
        };
        fraction.clamp(0.0, 1.0) * PLOT_W
    }
}

struct Panel {
    title: String,
    rows: Vec<Row>,
    scale: Scale,
    /// Tick labels' unit suffix.
    unit: &'static str,
}

/// The chart for `report`.
pub fn chart(report: &Report) -> String {
    let panels: Vec<Panel> = [
        Some(throughput_panel(report)),
        latency_panel(report, false),
        latency_panel(report, true),
        replicas_panel(report),
    ]
    .into_iter()
    .flatten()
    .collect();
    let label_w = panels
        .iter()
        .flat_map(|p| p.rows.iter())
        .map(|r| text_width(&r.label))
        .fold(0.0, f64::max)
        + 2.0 * MARGIN;
    let note_w = panels
        .iter()
        .flat_map(|p| p.rows.iter())
        .map(|r| text_width(&r.note))
        .fold(0.0, f64::max)
        + 2.0 * MARGIN;
    let title_w = panels
        .iter()
        .map(|p| text_width(&p.title) * 15.0 / FONT_SIZE)
        .fold(0.0, f64::max)
        + 2.0 * MARGIN;
    let width = (label_w + PLOT_W + note_w).max(title_w).ceil();
    let mut body = String::new();
    let mut y = 20.0;
    for panel in &panels {
        y = draw(&mut body, panel, label_w, y) + 30.0;
    }
    let height = (y - 20.0).ceil();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"{FONT_SIZE}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

/// An upper bound of `text`'s width at the chart's font size.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, text: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{}</text>",
        escape(text)
    );
}

fn color(index: usize) -> &'static str {
    [
        "#6b7280", "#2563eb", "#7c3aed", "#16a34a", "#dc2626", "#f59e0b", "#0891b2", "#db2777",
    ][index % 8]
}

const REFERENCE_COLOR: &str = "#9ca3af";

/// Draws `panel` at `y` with bars starting at `x0`; returns the y below it.
fn draw(out: &mut String, panel: &Panel, x0: f64, y: f64) -> f64 {
    let _ = writeln!(
        out,
        "<text x=\"{MARGIN}\" y=\"{y}\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(&panel.title)
    );
    let mut y = y + 14.0;
    for row in &panel.rows {
        for &(value, opacity) in &row.bars {
            let _ = writeln!(
                out,
                "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_H}\" fill=\"{}\" fill-opacity=\"{opacity}\"/>",
                panel.scale.width(value).max(1.0),
                row.color
            );
        }
        let widest = row
            .bars
            .iter()
            .map(|&(v, _)| panel.scale.width(v))
            .fold(0.0, f64::max);
        text(out, x0 - 8.0, y + 16.0, "end", &row.label);
        text(
            out,
            x0 + widest.max(1.0) + 6.0,
            y + 16.0,
            "start",
            &row.note,
        );
        y += BAR_H + GAP;
    }
    let ticks: Vec<(f64, String)> = match panel.scale {
        Scale::Log { lo, hi } => (lo..=hi)
            .map(|d| (10f64.powi(d), format_tick(10f64.powi(d), panel.unit)))
            .collect(),
        Scale::Linear { max } => (0..=4)
            .map(|i| {
                let v = max * f64::from(i) / 4.0;
                (v, format_tick(v, panel.unit))
            })
            .collect(),
    };
    for (value, label) in ticks {
        let x = x0 + panel.scale.width(value);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
            y + 5.0
        );
        text(out, x, y + 18.0, "middle", &label);
    }
    y + 24.0
}

fn format_tick(v: f64, unit: &str) -> String {
    let number = if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    };
    format!("{number}{unit}")
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Records/s per scenario, and Kafka's perf tests as the reference.
fn throughput_panel(report: &Report) -> Panel {
    let mut rows: Vec<Row> = report
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = r.throughput.records_per_second;
            Row {
                label: r.label.clone(),
                color: color(i),
                bars: vec![(v, 1.0)],
                note: format!("{v:.0}"),
            }
        })
        .collect();
    if let Some(b) = &report.broker_reference {
        for (label, v) in [
            (
                "Kafka producer-perf-test (reference)",
                b.producer.records_per_second,
            ),
            (
                "Kafka consumer-perf-test (reference)",
                b.consumer.fetch_records_per_second,
            ),
        ] {
            rows.push(Row {
                label: label.into(),
                color: REFERENCE_COLOR,
                bars: vec![(v, 1.0)],
                note: format!("{v:.0}"),
            });
        }
    }
    let scale = Scale::log_for(rows.iter().flat_map(|r| r.bars.iter().map(|b| b.0)));
    Panel {
        title: format!(
            "Throughput, records/s (log scale; {} records, Python {}; {})",
            report.records, report.python_sample, report.broker
        ),
        rows,
        scale,
        unit: "",
    }
}

/// p50, p99 and p99.9 hop latency, ms, at the fixed rate or at half of each scenario's max.
fn latency_panel(report: &Report, half_max: bool) -> Option<Panel> {
    let pick = |r: &ScenarioResult| -> Option<Latency> {
        if half_max {
            r.latency_half_max.clone()
        } else {
            r.latency.clone()
        }
    };
    let rows: Vec<Row> = report
        .scenarios
        .iter()
        .enumerate()
        .filter_map(|(i, r)| pick(r).map(|l| (i, r, l)))
        .map(|(i, r, l)| Row {
            label: r.label.clone(),
            color: color(i),
            bars: vec![(l.p999_ms, 0.25), (l.p99_ms, 0.5), (l.p50_ms, 1.0)],
            note: if half_max {
                format!(
                    "{}/s: {:.1} / {:.1} / {:.1}",
                    l.rate, l.p50_ms, l.p99_ms, l.p999_ms
                )
            } else {
                format!("{:.1} / {:.1} / {:.1}", l.p50_ms, l.p99_ms, l.p999_ms)
            },
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let scale = Scale::log_for(rows.iter().flat_map(|r| r.bars.iter().map(|b| b.0)));
    let title = if half_max {
        "Hop latency at half of each scenario's max, ms (log scale; p50 / p99 / p99.9)".to_string()
    } else {
        let rate = report
            .scenarios
            .iter()
            .find_map(|r| r.latency.as_ref().map(|l| l.rate))
            .unwrap_or_default();
        format!("Hop latency at {rate} records/s, ms (log scale; p50 / p99 / p99.9)")
    };
    Some(Panel {
        title,
        rows,
        scale,
        unit: " ms",
    })
}

/// Records/s by replica count (linear).
fn replicas_panel(report: &Report) -> Option<Panel> {
    let mut rows = Vec::new();
    for (i, implementation) in [Implementation::StageHost, Implementation::KafkaStreams]
        .into_iter()
        .enumerate()
    {
        for r in report.replica_runs(implementation) {
            let v = r.throughput.records_per_second;
            rows.push(Row {
                label: implementation.label(r.count),
                color: color(if i == 0 { 1 } else { 4 }),
                bars: vec![(v, 1.0)],
                note: format!("{v:.0}"),
            });
        }
    }
    if rows.is_empty() {
        return None;
    }
    let max = rows
        .iter()
        .map(|r| r.bars[0].0)
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    Some(Panel {
        title: format!(
            "Replicas, records/s ({} records, 4 partitions)",
            report.records
        ),
        rows,
        scale: Scale::Linear {
            max: nice_ceiling(max),
        },
        unit: "",
    })
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_spans_whole_decades() {
        let Scale::Log { lo, hi } = Scale::log_for([3_000.0, 150_000.0].into_iter()) else {
            panic!("log")
        };
        assert_eq!((lo, hi), (3, 6));
        let s = Scale::Log { lo: 3, hi: 6 };
        assert_eq!(s.width(1_000.0), 0.0);
        assert_eq!(s.width(1_000_000.0), PLOT_W);
        assert!((s.width(10_000.0) - PLOT_W / 3.0).abs() < 1e-9);
        assert_eq!(s.width(0.0), 0.0);
        assert_eq!(s.width(f64::NAN), 0.0);
    }

    #[test]
    fn ticks_and_ceilings() {
        assert_eq!(format_tick(100_000.0, ""), "100k");
        assert_eq!(format_tick(2_500_000.0, ""), "2.5M");
        assert_eq!(format_tick(0.1, " ms"), "0.1 ms");
        assert_eq!(nice_ceiling(180_000.0), 200_000.0);
        assert_eq!(nice_ceiling(210_000.0), 250_000.0);
        assert_eq!(nice_ceiling(100_000.0), 100_000.0);
    }
}
