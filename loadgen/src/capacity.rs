//! `stampede-loadgen capacity`: how many requests per second the day's peak brings, and
//! how many instances that takes.
//!
//! The classic estimate:
//! - average QPS = DAU × page views per user × share of traffic in the peak window
//!   / (peak window in hours × 3600 s);
//! - peak QPS = average QPS × peak factor (the busiest second against the window's mean);
//! - instances = ⌈QPS / what one instance holds⌉, at the average and at the peak.
//!
//! What one instance holds is either given (`--instance-qps`) or measured (`--probe URL`:
//! a short closed-loop `http` run against a running instance, counting 2xx replies only).

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::client::ClientKind;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenario::http::{load, HttpLoad};
use crate::scenario::DEFAULT_HTTP_CONCURRENCY;

#[derive(Args, Clone, Debug)]
pub struct CapacityArgs {
    /// Daily active users.
    #[arg(long)]
    pub dau: f64,

    /// Requests (page views) per user per day.
    #[arg(long)]
    pub pv_per_user: f64,

    /// Share of the day's requests that fall in the peak window (0..=1, e.g. 0.8).
    #[arg(long)]
    pub peak_share: f64,

    /// Length of the peak window, in hours.
    #[arg(long)]
    pub peak_hours: f64,

    /// Busiest moment against the window's average (e.g. 3).
    #[arg(long)]
    pub peak_factor: f64,

    /// Requests per second one instance holds.
    #[arg(long, required_unless_present = "probe", conflicts_with = "probe")]
    pub instance_qps: Option<f64>,

    /// Measure what one instance holds by loading this URL instead.
    #[arg(long, value_name = "URL")]
    pub probe: Option<String>,

    /// How long the probe runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub probe_duration: Duration,

    /// Connections the probe uses.
    #[arg(long, default_value_t = DEFAULT_HTTP_CONCURRENCY)]
    pub concurrency: usize,

    /// Runtime worker threads for the probe (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Print one JSON object instead of the arithmetic.
    #[arg(long)]
    pub json: bool,

    /// No live progress line during the probe.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The inputs of the estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Inputs {
    pub dau: f64,
    pub pv_per_user: f64,
    pub peak_share: f64,
    pub peak_hours: f64,
    pub peak_factor: f64,
    pub instance_qps: f64,
}

/// The estimate, with its arithmetic spelled out.
#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    #[serde(flatten)]
    pub inputs: Inputs,
    /// `given` or `probe`.
    pub instance_qps_source: String,
    pub average_qps: f64,
    pub peak_qps: f64,
    pub instances_average: u64,
    pub instances_peak: u64,
    /// The lines the table prints.
    pub arithmetic: Vec<String>,
    /// The probe run, when the instance QPS was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Report>,
}

/// The pure arithmetic.
pub fn estimate(inputs: Inputs) -> Result<Estimate> {
    let Inputs {
        dau,
        pv_per_user,
        peak_share,
        peak_hours,
        peak_factor,
        instance_qps,
    } = inputs;
    let positive = |v: f64, name: &str| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Error::Config(format!("{name} must be a positive number")))
        }
    };
    positive(dau, "--dau")?;
    positive(pv_per_user, "--pv-per-user")?;
    positive(peak_share, "--peak-share")?;
    positive(peak_hours, "--peak-hours")?;
    positive(peak_factor, "--peak-factor")?;
    positive(instance_qps, "--instance-qps")?;
    if peak_share > 1.0 {
        return Err(Error::Config(
            "--peak-share is a fraction: at most 1".into(),
        ));
    }
    if peak_hours > 24.0 {
        return Err(Error::Config("--peak-hours cannot exceed a day".into()));
    }

    let window_secs = peak_hours * 3600.0;
    let peak_requests = dau * pv_per_user * peak_share;
    let average_qps = peak_requests / window_secs;
    let peak_qps = average_qps * peak_factor;
    let instances_average = instances(average_qps, instance_qps);
    let instances_peak = instances(peak_qps, instance_qps);

    let arithmetic = vec![
        "average QPS = DAU × PV per user × peak share / (peak hours × 3600 s)".to_owned(),
        format!(
            "            = {} × {} × {} / ({} × 3600) = {} / {} = {} ({})",
            num(dau, 2),
            num(pv_per_user, 2),
            num(peak_share, 4),
            num(peak_hours, 4),
            num(peak_requests, 2),
            num(window_secs, 2),
            num(average_qps.round(), 0),
            num(average_qps, 2),
        ),
        format!(
            "peak QPS    = average × peak factor = {} × {} = {} ({})",
            num(average_qps, 2),
            num(peak_factor, 4),
            num(peak_qps.round(), 0),
            num(peak_qps, 2),
        ),
        format!(
            "instances at average = ⌈{} / {}⌉ = ⌈{}⌉ = {instances_average}",
            num(average_qps, 2),
            num(instance_qps, 2),
            num(average_qps / instance_qps, 2),
        ),
        format!(
            "instances at peak    = ⌈{} / {}⌉ = ⌈{}⌉ = {instances_peak}",
            num(peak_qps, 2),
            num(instance_qps, 2),
            num(peak_qps / instance_qps, 2),
        ),
    ];
    Ok(Estimate {
        inputs,
        instance_qps_source: "given".to_owned(),
        average_qps,
        peak_qps,
        instances_average,
        instances_peak,
        arithmetic,
        probe: None,
    })
}

/// ⌈qps / per_instance⌉, at least one. The quotient is nudged down by a relative 1e-12
/// first, so that 3000 / 300 computed as 10.000000000000002 still needs 10, not 11.
pub fn instances(qps: f64, per_instance: f64) -> u64 {
    let ratio = qps / per_instance;
    ((ratio * (1.0 - 1e-12)).ceil() as u64).max(1)
}

/// A number with thousands separators and at most `decimals` decimals, trailing zeros
/// dropped: 2000000 -> "2,000,000", 2777.7777 -> "2,777.78", 0.8 -> "0.8".
pub fn num(value: f64, decimals: usize) -> String {
    let fixed = format!("{:.*}", decimals, value.abs());
    let (int, frac) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let frac = frac.trim_end_matches('0');
    let sign = if value < 0.0 && fixed.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

impl Estimate {
    /// The readable form: the arithmetic, then the answer.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(probe) = &self.probe {
            out.push_str(&format!(
                "probe: {} for {:.1} s over {} connections: {} req/s answered 2xx\n\n",
                probe.target,
                probe.duration_secs,
                probe.concurrency,
                num(self.inputs.instance_qps, 0)
            ));
        }
        for line in &self.arithmetic {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!(
            "\naverage {} QPS, peak {} QPS: {} instance(s) at average, {} at peak ({} QPS each, {})\n",
            num(self.average_qps.round(), 0),
            num(self.peak_qps.round(), 0),
            self.instances_average,
            self.instances_peak,
            num(self.inputs.instance_qps, 2),
            self.instance_qps_source,
        ));
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// `stampede-loadgen capacity`: probes if asked, then estimates.
pub async fn run(args: &CapacityArgs) -> Result<Estimate> {
    let (instance_qps, probe) = match (&args.probe, args.instance_qps) {
        (Some(url), _) => {
            let report = load(&HttpLoad {
                url: url.clone(),
                concurrency: args.concurrency,
                duration: args.probe_duration,
                rate: None,
                timeout: Duration::from_secs(10),
                client: ClientKind::Lean,
                progress: !args.quiet,
            })
            .await?;
            let ok: u64 = report
                .statuses
                .iter()
                .filter(|(code, _)| code.starts_with('2'))
                .map(|(_, n)| n)
                .sum();
            if report.duration_secs <= 0.0 || ok == 0 {
                return Err(Error::Config(format!(
                    "the probe of {url} got no 2xx reply: cannot measure an instance"
                )));
            }
            (ok as f64 / report.duration_secs, Some(report))
        }
        (None, Some(qps)) => (qps, None),
        (None, None) => return Err(Error::Config("give --instance-qps or --probe URL".into())),
    };
    let mut estimate = estimate(Inputs {
        dau: args.dau,
        pv_per_user: args.pv_per_user,
        peak_share: args.peak_share,
        peak_hours: args.peak_hours,
        peak_factor: args.peak_factor,
        instance_qps,
    })?;
    if probe.is_some() {
        estimate.instance_qps_source = "probe".to_owned();
        estimate.probe = probe;
    }
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Inputs {
        Inputs {
            dau: 2_000_000.0,
            pv_per_user: 30.0,
            peak_share: 0.8,
            peak_hours: 4.8,
            peak_factor: 3.0,
            instance_qps: 300.0,
        }
    }

    #[test]
    fn the_textbook_example_needs_10_instances_on_average_and_28_at_peak() {
        let e = estimate(example()).expect("valid inputs");
        assert_eq!(num(e.average_qps.round(), 0), "2,778");
        assert_eq!(num(e.peak_qps.round(), 0), "8,333");
        assert_eq!(e.instances_average, 10);
        assert_eq!(e.instances_peak, 28);
        let table = e.table();
        assert!(
            table.contains("average 2,778 QPS, peak 8,333 QPS"),
            "{table}"
        );
        assert!(
            table.contains("2,000,000 × 30 × 0.8 / (4.8 × 3600)"),
            "{table}"
        );
        assert!(table.contains("⌈27.78⌉ = 28"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(json["instances_peak"], 28);
        assert_eq!(json["instances_average"], 10);
    }

    #[test]
    fn an_exact_quotient_does_not_round_up_an_extra_instance() {
        assert_eq!(instances(3000.0, 300.0), 10);
        assert_eq!(instances(0.3 * 3.0, 0.9), 1);
        assert_eq!(instances(3000.1, 300.0), 11);
        assert_eq!(instances(0.0, 300.0), 1);
    }

    #[test]
    fn nonsense_inputs_are_refused() {
        assert!(estimate(Inputs {
            peak_share: 1.5,
            ..example()
        })
        .is_err());
        assert!(estimate(Inputs {
            instance_qps: 0.0,
            ..example()
        })
        .is_err());
        assert!(estimate(Inputs {
            dau: f64::NAN,
            ..example()
        })
        .is_err());
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(num(2_000_000.0, 2), "2,000,000");
        assert_eq!(num(2777.7777, 2), "2,777.78");
        assert_eq!(num(0.8, 4), "0.8");
        assert_eq!(num(999.0, 0), "999");
        assert_eq!(num(-1234.5, 1), "-1,234.5");
    }
}
