//! `--plot FILE.svg`: latency percentiles and throughput per second, as a self-contained
//! SVG written by hand (no plotting crate, no fonts or system libraries needed).
//!
//! Two panels sharing the time axis: on top p50 / p90 / p99 / max latency in milliseconds
//! (lines), below replies per second (bars) with requests that got no reply stacked in red.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::histogram::SecondStats;
use crate::report::Report;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 50.0;
const GAP: f64 = 60.0;

/// Latency series: label, colour, how to read it from a second.
type Series = (&'static str, &'static str, fn(&SecondStats) -> f64);

const LATENCY: [Series; 4] = [
    ("p50", "#1f77b4", |s| s.p50_ms),
    ("p90", "#2ca02c", |s| s.p90_ms),
    ("p99", "#ff7f0e", |s| s.p99_ms),
    ("max", "#9467bd", |s| s.max_ms),
];

/// Writes the chart of `report` to `path`.
pub fn write(report: &Report, path: &Path) -> Result<()> {
    std::fs::write(path, svg(report)).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The chart as SVG text.
pub fn svg(report: &Report) -> String {
    let seconds = &report.per_second;
    let height = TOP + PANEL + GAP + PANEL + 50.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let n = seconds.len().max(1) as f64;
    let x_of = |i: f64| LEFT + plot_w * (i + 0.5) / n;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "stampede-loadgen {} — {} — {} requests in {:.1} s, {:.0} req/s, p99 {:.2} ms",
        report.scenario,
        report.target,
        report.requests,
        report.duration_secs,
        report.throughput_rps,
        report.latency_ms.p99
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="14" font-weight="bold">{}</text>"#,
        escape(&title)
    );

    // Latency panel.
    let lat_top = TOP;
    let lat_max = nice_ceiling(
        seconds
            .iter()
            .flat_map(|s| LATENCY.iter().map(move |(_, _, f)| f(s)))
            .fold(0.0, f64::max),
    );
    axes(&mut out, lat_top, lat_max, "latency (ms)", seconds.len());
    for (k, (label, colour, read)) in LATENCY.iter().enumerate() {
        let points: Vec<String> = seconds
            .iter()
            .enumerate()
            .filter(|(_, s)| s.requests > 0)
            .map(|(i, s)| {
                let y = lat_top + PANEL - PANEL * read(s) / lat_max;
                format!("{:.1},{:.1}", x_of(i as f64), y)
            })
            .collect();
        if points.len() == 1 {
            if let Some((x, y)) = points[0].split_once(',') {
                let _ = writeln!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
            }
        } else if !points.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                points.join(" ")
            );
        }
        legend(&mut out, lat_top + 14.0 + 18.0 * k as f64, colour, label);
    }

    // Throughput panel.
    let tp_top = TOP + PANEL + GAP;
    let tp_max = nice_ceiling(
        seconds
            .iter()
            .map(|s| (s.requests + s.errors) as f64)
            .fold(0.0, f64::max),
    );
    axes(&mut out, tp_top, tp_max, "requests / s", seconds.len());
    let bar_w = (plot_w / n * 0.8).max(1.0);
    for (i, s) in seconds.iter().enumerate() {
        let x = x_of(i as f64) - bar_w / 2.0;
        let ok_h = PANEL * s.requests as f64 / tp_max;
        let err_h = PANEL * s.errors as f64 / tp_max;
        let base = tp_top + PANEL;
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{ok_h:.1}" fill="#1f77b4"/>"##,
            base - ok_h
        );
        if s.errors > 0 {
            let _ = writeln!(
                out,
                r##"<rect x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{err_h:.1}" fill="#d62728"/>"##,
                base - ok_h - err_h
            );
        }
    }
    legend(&mut out, tp_top + 14.0, "#1f77b4", "replies");
    legend(&mut out, tp_top + 32.0, "#d62728", "no reply");
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since start</text>"#,
        LEFT + plot_w / 2.0,
        tp_top + PANEL + 38.0
    );
    out.push_str("</svg>\n");
    out
}

/// Frame, horizontal grid with value labels, and second ticks along the bottom.
fn axes(out: &mut String, top: f64, max: f64, label: &str, seconds: usize) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#333"/>"##
    );
    for k in 0..=4 {
        let value = max * f64::from(k) / 4.0;
        let y = top + PANEL - PANEL * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            short(value)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{label}</text>"#,
        top + PANEL / 2.0,
        top + PANEL / 2.0
    );
    let n = seconds.max(1);
    let step = nice_ceiling(n as f64 / 10.0).max(1.0) as usize;
    for i in (0..n).step_by(step) {
        let x = LEFT + plot_w * (i as f64 + 0.5) / n as f64;
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{i}</text>"#,
            top + PANEL + 16.0
        );
    }
}

fn legend(out: &mut String, y: f64, colour: &str, label: &str) {
    let x = WIDTH - RIGHT + 16.0;
    let _ = writeln!(
        out,
        r#"<rect x="{x}" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
        y - 4.0,
        x + 20.0,
        y + 1.0
    );
}

/// The smallest 1, 2, 4, 5 or 8 × 10^k at or above `v` (1 for nothing), so that the four
/// grid steps fall on round values without wasting half the panel.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 4.0, 5.0, 8.0, 10.0] {
        if m * magnitude >= v * (1.0 - 1e-9) {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

/// Axis label: `12k`, `1.5M`, `0.25`.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Percentiles;
    use std::collections::BTreeMap;

    fn report(seconds: usize) -> Report {
        Report {
            scenario: "http".into(),
            target: "http://127.0.0.1:1/<x>".into(),
            mode: "closed".into(),
            concurrency: 1,
            client: crate::client::ClientKind::Lean,
            rate_rps: None,
            requests: 10,
            duration_secs: seconds as f64,
            throughput_rps: 10.0,
            latency_ms: Percentiles::default(),
            statuses: BTreeMap::new(),
            errors: 0,
            error_kinds: BTreeMap::new(),
            campaign_id: None,
            audit: None,
            pay_phase: None,
            second_wave: None,
            events: None,
            per_second: (0..seconds)
                .map(|i| SecondStats {
                    second: i as u64,
                    requests: 100 + i as u64,
                    errors: i as u64 % 2,
                    p50_ms: 1.0,
                    p90_ms: 2.0,
                    p99_ms: 3.0 + i as f64,
                    max_ms: 9.0,
                })
                .collect(),
        }
    }

    #[test]
    fn the_chart_has_a_line_per_percentile_and_a_bar_per_second() {
        let svg = svg(&report(5));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.matches(r##"fill="#1f77b4"/>"##).count() >= 5);
        assert!(svg.contains("&lt;x&gt;"), "title is escaped");
    }

    #[test]
    fn a_single_second_still_draws_points() {
        let svg = svg(&report(1));
        assert_eq!(svg.matches("<circle").count(), 4);
        let empty = svg_of_nothing();
        assert!(empty.contains("</svg>"));
    }

    fn svg_of_nothing() -> String {
        svg(&report(0))
    }

    #[test]
    fn nice_ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 8.0);
        assert_eq!(nice_ceiling(20.6), 40.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(45_000.0), 50_000.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }
}
