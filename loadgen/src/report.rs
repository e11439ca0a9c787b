//! The run report: one JSON object (`--json`) or a readable table.
//!
//! The JSON field names are part of the contract (`docs/api.md`, "The load generator"):
//! `requests`, `duration_secs`, `throughput_rps`, `latency_ms`, `statuses` and, for the
//! audited scenarios, `audit`. Scripts read them, so they only ever gain fields. A crowd
//! that reported behaviour events first adds `events`; the top-level measurements stay
//! the claims'.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::audit::{ClaimsAudit, SigninAudit};
use crate::client::ClientKind;
use crate::driver::{Arrival, RunConfig};
use crate::histogram::{Percentiles, SecondStats};
use crate::recorder::Summary;

/// A finished run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// `burst`, `closed` or `open`.
    pub mode: String,
    pub concurrency: usize,
    /// `lean` or `hyper`.
    pub client: ClientKind,
    /// The open loop's intended rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    /// Requests sent: replies plus requests that got none.
    pub requests: u64,
    pub duration_secs: f64,
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
    /// Replies by status code ("201" -> count).
    pub statuses: BTreeMap<String, u64>,
    /// Requests that got no reply.
    pub errors: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,
    /// A flash sale with a payment window: the first wave's payment burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_phase: Option<PayPhase>,
    /// A flash sale with a payment window: the users who claimed the units that came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_wave: Option<SecondWave>,
    /// `events` and `flash --with-events`: the behaviour events the crowd reported before
    /// claiming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsPhase>,
    /// Per-second throughput and latency (what `--plot` draws).
    pub per_second: Vec<SecondStats>,
}

/// The payment notifications the first wave's winners sent at once (late payments and
/// the second wave's are not part of it).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PayPhase {
    /// Notifications sent in the burst, repeats and second payments included.
    pub notifications: u64,
    /// Of them, answered `200 paid`.
    pub paid: u64,
    /// From the first notification sent to the last reply.
    pub duration_secs: f64,
    /// Notifications answered per second over that span.
    pub notifications_per_sec: f64,
    /// `200 paid` replies per second over that span: the pay phase's throughput.
    pub paid_per_sec: f64,
    pub latency_ms: Percentiles,
}

/// The second wave: fresh users claiming while units come back from cancels and expiries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SecondWave {
    /// Users available to it (`--second-wave`), and claims it sent (one per user).
    pub users: u64,
    pub claims: u64,
    /// Claims answered 201.
    pub accepted: u64,
    /// From the end of the first wave until every window had passed.
    pub duration_secs: f64,
}

/// The behaviour events the crowd reported before it claimed (`POST /v1/events`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventsPhase {
    /// Users who reported, each `per_user` events in batches of at most `batch`.
    pub users: u64,
    pub per_user: u64,
    pub batch: u64,
    /// Requests (batches) sent.
    pub requests: u64,
    /// Events sent.
    pub sent: u64,
    /// Events in batches answered `202`: stored.
    pub accepted: u64,
    /// Status -> events in batches refused with it (`429`, `503`, ...): not stored.
    pub refused: BTreeMap<String, u64>,
    /// Events in batches that got no reply: stored or not, unknown.
    pub unanswered: u64,
    /// `202` replies whose `accepted` was not the batch's size (a contract breach).
    pub malformed: u64,
    /// Batches by reply status.
    pub statuses: BTreeMap<String, u64>,
    /// Type -> its events: sent, accepted, refused, unanswered.
    pub per_type: BTreeMap<String, EventTypeCounts>,
    pub duration_secs: f64,
    /// Batches per second.
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
}

/// One event type's events in the events phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventTypeCounts {
    pub sent: u64,
    pub accepted: u64,
    pub refused: u64,
    pub unanswered: u64,
}

/// The audit of whichever scenario ran.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
// One per report, built once after the run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Audit {
    Claims(ClaimsAudit),
    Signin(SigninAudit),
}

impl Audit {
    pub fn passed(&self) -> bool {
        match self {
            Audit::Claims(a) => a.passed,
            Audit::Signin(a) => a.passed,
        }
    }

    pub fn violations(&self) -> &[String] {
        match self {
            Audit::Claims(a) => &a.violations,
            Audit::Signin(a) => &a.violations,
        }
    }
}

impl Report {
    /// The common part of every report, from a run's measurements.
    pub fn new(scenario: &str, config: &RunConfig, summary: &Summary) -> Self {
        let requests = summary.requests();
        let secs = summary.duration.as_secs_f64();
        Self {
            scenario: scenario.to_owned(),
            target: config
                .targets
                .iter()
                .map(|t| t.url.as_str())
                .collect::<Vec<_>>()
                .join(","),
            mode: config.arrival.name().to_owned(),
            concurrency: config.concurrency,
            client: config.client,
            rate_rps: match config.arrival {
                Arrival::Open { rate, .. } => Some(rate),
                _ => None,
            },
            requests,
            duration_secs: secs,
            throughput_rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&summary.latency),
            statuses: summary
                .statuses
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            errors: summary.error_count(),
            error_kinds: summary.errors.clone(),
            campaign_id: None,
            audit: None,
            pay_phase: None,
            second_wave: None,
            events: None,
            per_second: summary.seconds.clone(),
        }
    }

    /// False only when an audit ran and failed.
    pub fn passed(&self) -> bool {
        self.audit.as_ref().is_none_or(Audit::passed)
    }

    /// The one-line JSON report.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, "  {k:<18} {v}");
        };
        row("scenario", self.scenario.clone());
        row("target", self.target.clone());
        let mode = match self.rate_rps {
            Some(rate) => format!("{} at {rate} req/s", self.mode),
            None => self.mode.clone(),
        };
        row(
            "mode",
            format!(
                "{mode}, {} connections ({} client)",
                self.concurrency,
                self.client.name()
            ),
        );
        if let Some(id) = self.campaign_id {
            row("campaign", id.to_string());
        }
        row("requests", self.requests.to_string());
        row("duration", format!("{:.3} s", self.duration_secs));
        row("throughput", format!("{:.0} req/s", self.throughput_rps));
        let l = &self.latency_ms;
        row(
            "latency (ms)",
            format!(
                "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                l.p50, l.p90, l.p99, l.p999, l.max
            ),
        );
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        row("statuses", statuses.join(", "));
        if self.errors > 0 {
            let kinds: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            row(
                "no reply",
                format!("{} ({})", self.errors, kinds.join(", ")),
            );
        }
        if let Some(p) = &self.pay_phase {
            row(
                "pay phase",
                format!(
                    "{} notifications, {} paid in {:.3} s: {:.0} paid/s ({:.0} notifications/s)",
                    p.notifications,
                    p.paid,
                    p.duration_secs,
                    p.paid_per_sec,
                    p.notifications_per_sec
                ),
            );
            let l = &p.latency_ms;
            row(
                "  latency (ms)",
                format!(
                    "p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
                    l.p50, l.p90, l.p99, l.max
                ),
            );
        }
        if let Some(e) = &self.events {
            let refused: Vec<String> = e
                .refused
                .iter()
                .map(|(code, n)| format!("{n} with {code}"))
                .collect();
            row(
                "events",
                format!(
                    "{} sent in {} requests over {:.3} s ({:.0} req/s): {} accepted, {} refused{}, {} unanswered",
                    e.sent,
                    e.requests,
                    e.duration_secs,
                    e.throughput_rps,
                    e.accepted,
                    e.refused.values().sum::<u64>(),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", refused.join(", "))
                    },
                    e.unanswered
                ),
            );
            let types: Vec<String> = e
                .per_type
                .iter()
                .map(|(t, c)| format!("{t} {} of {}", c.accepted, c.sent))
                .collect();
            row("  accepted", types.join(", "));
            let l = &e.latency_ms;
            row(
                "  latency (ms)",
                format!(
                    "p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
                    l.p50, l.p90, l.p99, l.max
                ),
            );
        }
        if let Some(w) = &self.second_wave {
            row(
                "second wave",
                format!(
                    "{} claims from {} users, {} accepted, over {:.1} s",
                    w.claims, w.users, w.accepted, w.duration_secs
                ),
            );
        }
        match &self.audit {
            Some(Audit::Claims(a)) => {
                row(
                    "audit",
                    if a.passed { "PASSED" } else { "FAILED" }.to_owned(),
                );
                row(
                    "  accepted",
                    format!("{} (engine counts {})", a.accepted, a.stats.accepted_claims),
                );
                row("  persisted", a.persisted.to_string());
                row("  taken / limit", format!("{} / {}", a.taken, a.limit));
                row("  oversold", a.oversold.to_string());
                row("  over limit", a.over_limit.to_string());
                row("  lost", a.lost.to_string());
                row("  duplicates", a.duplicates.to_string());
                if let (Some(sum), Some(total)) = (a.sum_cents, a.total_cents) {
                    row("  cents", format!("{sum} of {total}"));
                }
                if let Some(below) = a.below_min {
                    row("  below minimum", below.to_string());
                }
                if let Some(o) = &a.orders {
                    row(
                        "  orders",
                        format!(
                            "paid {}, expired {}, cancelled {}, pending {}",
                            o.paid, o.expired, o.cancelled, o.pending
                        ),
                    );
                    row(
                        "  notifications",
                        format!(
                            "{} ({} paid, {} refused, {} late, {} unanswered)",
                            o.notifications,
                            o.paid_replies,
                            o.refused_replies,
                            o.late_notifications,
                            o.unanswered_notifications
                        ),
                    );
                    row(
                        "  cancels",
                        format!(
                            "{} ({} cancelled, {} refused)",
                            o.cancels, o.cancelled_replies, o.cancel_refused
                        ),
                    );
                    row(
                        "  refunds",
                        format!(
                            "{} listed, {} expected, {} missing, {} unexpected",
                            o.refunds, o.refunds_expected, o.refunds_missing, o.refunds_unexpected
                        ),
                    );
                    row(
                        "  stats samples",
                        format!(
                            "{} ({} broke the arithmetic, {} failed calls)",
                            o.samples, o.failed_samples, o.sample_errors
                        ),
                    );
                }
                if let Some(f) = &a.funnel {
                    let keys: Vec<String> = f
                        .keys
                        .iter()
                        .map(|(k, v)| match v.at_most {
                            Some(max) => format!("{k} {} of {}..{max}", v.seen, v.expected),
                            None => format!("{k} {} of {}", v.seen, v.expected),
                        })
                        .collect();
                    row(
                        "  funnel",
                        format!(
                            "{} after {} reads: {}",
                            if f.passed { "passed" } else { "FAILED" },
                            f.polls,
                            keys.join(", ")
                        ),
                    );
                }
            }
            Some(Audit::Signin(a)) => {
                row(
                    "audit",
                    if a.passed { "PASSED" } else { "FAILED" }.to_owned(),
                );
                row("  users", a.users.to_string());
                row("  201 signed in", a.accepted.to_string());
                row("  200 already", a.already_signed_in.to_string());
                row("  awarded once", a.awarded_once.to_string());
                row("  awarded twice", a.over_limit.to_string());
                row("  not awarded", a.without_award.to_string());
            }
            None => {}
        }
        if let Some(audit) = &self.audit {
            for v in audit.violations() {
                let _ = writeln!(out, "  VIOLATION: {v}");
            }
            if let Audit::Claims(a) = audit {
                for v in &a.order_violations {
                    let _ = writeln!(out, "  ORDER VIOLATION: {v}");
                }
                for v in a.funnel.iter().flat_map(|f| &f.violations) {
                    let _ = writeln!(out, "  FUNNEL VIOLATION: {v}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::audit_signin;

    fn sample() -> Report {
        Report {
            scenario: "signin".into(),
            target: "http://127.0.0.1:8080".into(),
            mode: "burst".into(),
            concurrency: 8,
            client: ClientKind::Lean,
            rate_rps: None,
            requests: 3,
            duration_secs: 0.5,
            throughput_rps: 6.0,
            latency_ms: Percentiles {
                p50: 1.0,
                p90: 2.0,
                p99: 3.0,
                p999: 4.0,
                max: 5.0,
                mean: 1.5,
            },
            statuses: BTreeMap::from([("200".into(), 1), ("201".into(), 2)]),
            errors: 0,
            error_kinds: BTreeMap::new(),
            campaign_id: None,
            audit: Some(Audit::Signin(audit_signin(&[1, 1], 1, 0))),
            pay_phase: None,
            second_wave: None,
            events: None,
            per_second: vec![],
        }
    }

    #[test]
    fn the_json_report_has_the_contracts_fields() {
        let json: serde_json::Value =
            serde_json::from_str(&sample().to_json()).expect("valid JSON");
        for key in [
            "requests",
            "duration_secs",
            "throughput_rps",
            "latency_ms",
            "statuses",
            "audit",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                json["latency_ms"].get(key).is_some(),
                "missing latency {key}"
            );
        }
        assert_eq!(json["statuses"]["201"], 2);
        assert_eq!(json["audit"]["passed"], true);
    }

    #[test]
    fn the_table_names_the_verdict_and_the_violations() {
        let mut report = sample();
        assert!(report.table().contains("PASSED"));
        report.audit = Some(Audit::Signin(audit_signin(&[2], 0, 0)));
        let table = report.table();
        assert!(table.contains("FAILED"), "{table}");
        assert!(table.contains("VIOLATION"), "{table}");
        assert!(!report.passed());
    }
}
