//! Logs (tracing with `RUST_LOG`-style filters, as text or JSON lines) and the
//! process-wide Prometheus recorder behind `/metrics`.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use stampede_engine::striped::{StripedCounter, StripedHistogram};

use crate::config::LogFormat;

/// Claim latency buckets in seconds: sub-millisecond to the 1 s failure bound.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Installs the log subscriber: `RUST_LOG` filters (default `info,sqlx=warn`), lines
/// in `format`. JSON lines carry the event's fields at the top level and the spans it
/// happened in (the `request` span holds the request id).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

/// Worker batch sizes (claims per transaction), up to the largest allowed batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// The process's metrics recorder, installed on first use (tests start many apps in one
/// process; they share it). Call it before building the engine: the engine's metric
/// handles bind to the recorder installed when they are made.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("stampede_worker_batch_size".into()),
                        BATCH_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            // Present from the start (at 0), so that dashboards and alerts find them.
            for scope in ["user", "ip"] {
                rate_limited(scope).increment(0);
            }
            metrics::counter!("stampede_store_rollbacks_total").increment(0);
            for action in ["refuse", "flag"] {
                for rule in crate::risk::RULES {
                    risk_refusal_counter(rule, action).increment(0);
                }
            }
            for rule in ["blocklist", "ticket"] {
                risk_refusal_counter(rule, "refuse").increment(0);
            }
            // Histograms need periodic upkeep to bound their memory.
            let upkeep = handle.clone();
            std::thread::spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            });
            handle
        })
        .clone()
}

/// This process's metrics as Prometheus text, with every count made before the call:
/// the hot path's per-thread counts (`stampede_engine::striped`) are moved into the
/// recorder first.
pub fn render(handle: &PrometheusHandle) -> String {
    stampede_engine::striped::flush_metrics();
    handle.render()
}

/// The claim path's metric handles, registered once: looking a labelled series up in
/// the registry on every claim costs a hash of its key and labels.
pub struct ClaimMetrics {
    /// Counted per thread, as is the histogram (see `stampede_engine::striped`).
    outcomes: Vec<(&'static str, Arc<StripedCounter>)>,
    duration: Arc<StripedHistogram>,
}

/// Every `outcome` label of `stampede_claims_total` (contract: "Administration and operations").
pub const CLAIM_OUTCOMES: [&str; 8] = [
    "accepted",
    "already_claimed",
    "sold_out",
    "not_started",
    "ended",
    "rate_limited",
    "rejected",
    "unavailable",
];

impl ClaimMetrics {
    pub fn record(&self, outcome: &str, elapsed: std::time::Duration) {
        if let Some((_, c)) = self.outcomes.iter().find(|(o, _)| *o == outcome) {
            c.increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// The claim metrics, registered on first use (after the recorder is installed).
pub fn claim_metrics() -> &'static ClaimMetrics {
    static METRICS: OnceLock<ClaimMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        metrics_handle();
        ClaimMetrics {
            outcomes: CLAIM_OUTCOMES
                .iter()
                .map(|&o| {
                    (
                        o,
                        StripedCounter::new(
                            metrics::counter!("stampede_claims_total", "outcome" => o),
                        ),
                    )
                })
                .collect(),
            duration: StripedHistogram::new(metrics::histogram!("stampede_claim_duration_seconds")),
        }
    })
}

/// HELP texts of the series this process exports.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "stampede_claims_total",
        "Claim requests answered, by outcome."
    );
    describe_histogram!(
        "stampede_claim_duration_seconds",
        Unit::Seconds,
        "Time to answer a claim request."
    );
    describe_gauge!(
        "stampede_queue_backlog",
        "Accepted claims queued and not yet persisted (sampled)."
    );
    describe_counter!(
        "stampede_worker_persisted_total",
        "Claims the workers wrote to the database (redeliveries not counted); its rate is the persist rate."
    );
    describe_histogram!(
        "stampede_worker_batch_size",
        "Claims per worker transaction."
    );
    describe_counter!("stampede_signins_total", "Sign-in requests, by outcome.");
    describe_histogram!(
        "stampede_store_duration_seconds",
        Unit::Seconds,
        "Time of each store call (Redis round trip, or the in-process step), by operation."
    );
    describe_histogram!(
        "stampede_db_duration_seconds",
        Unit::Seconds,
        "Time of each database query, by operation."
    );
    describe_counter!(
        "stampede_cache_requests_total",
        "In-process cache lookups by cache (campaign, points, token) and result (hit, miss)."
    );
    describe_counter!(
        "stampede_rate_limited_total",
        "Requests refused by a rate limit, by scope (user, ip)."
    );
    describe_counter!(
        "stampede_store_rollbacks_total",
        "Claim batches refused because the store's state was older than this process had \
         seen it (restored from a snapshot, or a failover that lost writes); alert on any."
    );
    describe_gauge!(
        "stampede_dead_letters",
        "Claim events set aside because the database kept refusing them (or they could not \
         be read), not yet replayed, over every campaign (sampled at each scrape); alert on any."
    );
    describe_gauge!(
        "stampede_load_shedding",
        "1 while the queue backlog is over STAMPEDE_BACKLOG_CAP and new claims get 503, else 0."
    );
    describe_gauge!(
        "stampede_breaker_open",
        "1 while the circuit breaker in front of a dependency (store) is open, else 0."
    );
    describe_gauge!(
        "stampede_ready",
        "1 when the store and the database both answered the last readiness check (each \
         /readyz and each scrape), else 0."
    );
    describe_counter!(
        "stampede_risk_refusals_total",
        "Claims a risk rule fired on, by rule (blocklist, ticket, device_users, ip_users, \
         account_age, ticket_too_fast) and action (refuse, flag)."
    );
}

/// The `stampede_rate_limited_total` series of a scope (`user` or `ip`).
pub fn rate_limited(scope: &'static str) -> metrics::Counter {
    metrics::counter!("stampede_rate_limited_total", "scope" => scope)
}

/// The `stampede_risk_refusals_total` series of a rule and an action (`refuse`, `flag`).
pub fn risk_refusal_counter(rule: &'static str, action: &'static str) -> metrics::Counter {
    metrics::counter!("stampede_risk_refusals_total", "rule" => rule, "action" => action)
}

/// Counts a request refused by the risk rule `rule` with `action` (such as `refuse`)
/// in `stampede_risk_refusals_total`. Refusals are rare, so the series is looked up
/// on each call.
pub fn risk_refusal(rule: &'static str, action: &'static str) {
    risk_refusal_counter(rule, action).increment(1);
}
