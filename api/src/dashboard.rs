//! The dashboard's data: a sampler that, while anyone watches, builds a snapshot of
//! every active campaign every [`TICK`] and publishes it to the watchers (the SSE route
//! in `routes/dashboard.rs`).
//!
//! A snapshot (JSON) holds, per campaign not yet ended (newest first, at most
//! [`CAMPAIGNS_SHOWN`]): its status, total and remaining stock, accepted claims, queue
//! backlog, dead letters and persisted claims, and since the previous tick: claims per
//! second by outcome (this api process's, from [`LiveStats`]), persisted per second,
//! and the p50 and p99 claim latency in milliseconds.
//!
//! "Persisted" is accepted minus backlog minus dead letters: the store's counters and
//! the queue's lengths are cheap to read every tick, a `COUNT(*)` over the claims table
//! is not. The figures of claims per second cover the claims this process answered;
//! with many api instances, each dashboard shows its own instance's share.
//!
//! Each campaign also carries its funnel over the last [`FUNNEL_MINUTES`] minutes (see
//! `stampede_engine::funnel`: every api process's counts, up to a second old), one
//! entry per minute, oldest first.
//!
//! While nobody watches, the sampler reads nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use stampede_engine::clock::now_ms;
use stampede_engine::order::OrderCounts;
use stampede_engine::service::Engine;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dashboard_session::DashboardSession;
use crate::live_stats::LiveStats;
use crate::telemetry::CLAIM_OUTCOMES;

/// How often a snapshot is taken (the contract asks for at least once a second).
pub const TICK: Duration = Duration::from_millis(500);
/// The most campaigns a snapshot shows.
pub const CAMPAIGNS_SHOWN: i64 = 24;
/// The minutes of funnel each campaign's snapshot carries.
pub const FUNNEL_MINUTES: u32 = 30;
/// The longest one snapshot may take before the tick is skipped.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the dashboard routes share: the login check, the per-campaign claim figures
/// the claim route records, and the latest snapshot.
pub struct Dashboard {
    pub session: DashboardSession,
    pub live: LiveStats,
    /// The latest snapshot as JSON; empty until the first. Watchers subscribe to it.
    snapshots: watch::Sender<Arc<str>>,
    /// Cancelled at shutdown: the sampler stops and event streams end, so they do
    /// not hold the graceful shutdown open.
    pub shutdown: CancellationToken,
}

#[derive(Serialize)]
struct Snapshot {
    /// When it was taken, unix milliseconds.
    at_ms: i64,
    campaigns: Vec<CampaignFigures>,
    /// Set when this tick's figures could not be read (the page keeps the last ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Serialize)]
struct CampaignFigures {
    id: u64,
    name: String,
    kind: &'static str,
    status: &'static str,
    total: u64,
    remaining: u64,
    accepted: u64,
    backlog: u64,
    dead_letters: u64,
    persisted: u64,
    /// Outcome -> claims per second answered by this process since the last tick.
    claims_per_sec: HashMap<&'static str, f64>,
    persisted_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// A flash sale with a payment window: its orders by state.
    #[serde(skip_serializing_if = "Option::is_none")]
    orders: Option<OrderCounts>,
    /// The last [`FUNNEL_MINUTES`] minutes of its funnel, oldest first.
    funnel: Vec<FunnelFigures>,
}

/// One minute of a campaign's funnel.
#[derive(Serialize)]
struct FunnelFigures {
    /// The minute's start, unix ms.
    at_ms: i64,
    view: u64,
    ticket: u64,
    claim: u64,
    accepted: u64,
    paid: u64,
}

impl Dashboard {
    pub fn new(admin_token: &str, shutdown: CancellationToken) -> Self {
        Dashboard {
            session: DashboardSession::new(admin_token),
            live: LiveStats::default(),
            snapshots: watch::Sender::new(Arc::from("")),
            shutdown,
        }
    }

    /// A receiver of the snapshots; the next one taken arrives within a [`TICK`].
    pub fn subscribe(&self) -> watch::Receiver<Arc<str>> {
        self.snapshots.subscribe()
    }

    /// Samples every [`TICK`] while anyone is subscribed, until shutdown.
    pub fn spawn_sampler(self: &Arc<Self>, engine: Arc<Engine>) {
        let dashboard = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Campaign id -> persisted claims at the previous tick.
            let mut persisted_before: HashMap<u64, u64> = HashMap::new();
            loop {
                tokio::select! {
                    _ = dashboard.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if dashboard.snapshots.receiver_count() == 0 {
                    dashboard.live.track(&[]);
                    persisted_before.clear();
                    continue;
                }
                let sample = dashboard.sample(&engine, &mut persisted_before);
                let snapshot = match tokio::time::timeout(SAMPLE_TIMEOUT, sample).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "dashboard: could not read the campaigns");
                        failed("The engine's figures could not be read.")
                    }
                    Err(_) => failed("Reading the engine's figures took too long."),
                };
                match serde_json::to_string(&snapshot) {
                    Ok(json) => {
                        dashboard.snapshots.send_replace(Arc::from(json));
                    }
                    Err(e) => tracing::warn!(error = %e, "dashboard: snapshot not serializable"),
                }
            }
        });
    }

    async fn sample(
        &self,
        engine: &Engine,
        persisted_before: &mut HashMap<u64, u64>,
    ) -> stampede_engine::Result<Snapshot> {
        let campaigns = engine.campaigns(false, CAMPAIGNS_SHOWN).await?;
        let ids: Vec<u64> = campaigns.iter().map(|(c, _, _)| c.id).collect();
        self.live.track(&ids);
        persisted_before.retain(|id, _| ids.contains(id));
        let now = now_ms();
        let mut out = Vec::with_capacity(campaigns.len());
        for (c, k, _) in campaigns {
            let backlog = engine.queue.backlog(c.id).await?;
            let dead_letters = engine.queue.dead_letters(c.id).await?;
            let persisted = k.claims.saturating_sub(backlog + dead_letters);
            let window = self.live.take(c.id);
            let secs = window
                .as_ref()
                .map_or(TICK, |w| w.elapsed)
                .as_secs_f64()
                .max(0.001);
            let claims_per_sec = CLAIM_OUTCOMES
                .iter()
                .enumerate()
                .map(|(i, o)| (*o, window.as_ref().map_or(0, |w| w.counts[i]) as f64 / secs))
                .collect();
            let before = persisted_before.insert(c.id, persisted);
            let persisted_per_sec =
                before.map_or(0.0, |b| persisted.saturating_sub(b) as f64 / secs);
            let orders = match c.payment_window_secs {
                Some(_) => Some(engine.store.order_counts(c.id).await?),
                None => None,
            };
            let funnel = engine
                .funnel_recent(c.id, FUNNEL_MINUTES)
                .await?
                .into_iter()
                .map(|m| {
                    let n = |k: &str| m.counts.get(k).copied().unwrap_or(0);
                    FunnelFigures {
                        at_ms: m.at_ms,
                        view: n("view"),
                        ticket: n("ticket"),
                        claim: n("claim"),
                        accepted: n("accepted"),
                        paid: n("paid"),
                    }
                })
                .collect();
            out.push(CampaignFigures {
                id: c.id,
                name: c.name.clone(),
                kind: c.kind.as_str(),
                status: c.live_status(now, &k).as_str(),
                total: c.total,
                remaining: k.remaining,
                accepted: k.claims,
                backlog,
                dead_letters,
                persisted,
                claims_per_sec,
                persisted_per_sec,
                p50_ms: window.as_ref().and_then(|w| w.p50_ms),
                p99_ms: window.as_ref().and_then(|w| w.p99_ms),
                orders,
                funnel,
            });
        }
        Ok(Snapshot {
            at_ms: now,
            campaigns: out,
            error: None,
        })
    }
}

fn failed(why: &'static str) -> Snapshot {
    Snapshot {
        at_ms: now_ms(),
        campaigns: Vec::new(),
        error: Some(why),
    }
}
