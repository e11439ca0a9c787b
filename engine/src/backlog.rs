//! Load shedding on the queue backlog: when more accepted claims wait unpersisted than
//! the cap allows (the database is down or slow), new claims are refused with 503
//! instead of letting the queue grow without bound. Behaviour events have a guard of
//! their own over their own queue ([`Backlogged::Events`]): a full event queue answers
//! 503, never drops an event silently, and never holds up the claims.
//!
//! The backlog is sampled by a background task a few times a second rather than read
//! per claim: a claim must not pay a queue round trip, and the cap is a safety limit,
//! not an exact one (several api instances share the queue anyway).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::queue::Queue;

/// How often the backlog is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The longest pause between samples while the queue cannot be read.
const MAX_PAUSE: Duration = Duration::from_secs(4);

/// Which queue a guard watches: it names the gauges and the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlogged {
    /// The claims' queue: `stampede_queue_backlog`, `stampede_load_shedding`.
    Claims,
    /// The behaviour events' queue: `stampede_events_backlog`, `stampede_events_shedding`.
    Events,
}

impl Backlogged {
    fn gauges(self) -> (&'static str, &'static str) {
        match self {
            Backlogged::Claims => ("stampede_queue_backlog", "stampede_load_shedding"),
            Backlogged::Events => ("stampede_events_backlog", "stampede_events_shedding"),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Backlogged::Claims => "claims",
            Backlogged::Events => "behaviour events",
        }
    }
}

pub struct BacklogGuard {
    kind: Backlogged,
    cap: u64,
    /// The last sampled backlog (accepted claim events not yet acknowledged).
    current: AtomicU64,
    /// Whether the last sample was over the cap (logs only on changes).
    over: AtomicBool,
}

impl BacklogGuard {
    pub fn new(cap: u64) -> Self {
        Self::of(Backlogged::Claims, cap)
    }

    /// A guard of `kind`'s queue.
    pub fn of(kind: Backlogged, cap: u64) -> Self {
        BacklogGuard {
            kind,
            cap,
            current: AtomicU64::new(0),
            over: AtomicBool::new(false),
        }
    }

    /// True while new claims must be refused.
    pub fn shedding(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Records a sample; logs when shedding starts or stops.
    pub fn record(&self, backlog: u64) {
        self.current.store(backlog, Ordering::Relaxed);
        let (backlog_gauge, shedding_gauge) = self.kind.gauges();
        metrics::gauge!(backlog_gauge).set(backlog as f64);
        let over = backlog > self.cap;
        metrics::gauge!(shedding_gauge).set(if over { 1.0 } else { 0.0 });
        if self.over.swap(over, Ordering::Relaxed) != over {
            let what = self.kind.what();
            if over {
                tracing::warn!(
                    backlog,
                    cap = self.cap,
                    "queue backlog of {what} over its cap: refusing new {what} (503)"
                );
            } else {
                tracing::info!(
                    backlog,
                    cap = self.cap,
                    "queue backlog of {what} under its cap again: accepting {what}"
                );
            }
        }
    }

    /// Samples the queue until the guard is dropped everywhere else. A failed sample
    /// keeps the last value (a store that is down refuses claims on its own) and doubles
    /// the pause before the next one, up to [`MAX_PAUSE`]: a dead Redis is not asked
    /// four times a second.
    pub fn spawn_sampler(self: &Arc<Self>, queue: Arc<dyn Queue>) {
        let guard = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut pause = SAMPLE_EVERY;
            loop {
                let Some(g) = guard.upgrade() else { return };
                match tokio::time::timeout(Duration::from_secs(1), queue.total_backlog()).await {
                    Ok(Ok(n)) => {
                        g.record(n);
                        pause = SAMPLE_EVERY;
                    }
                    _ => pause = (pause * 2).min(MAX_PAUSE),
                }
                drop(g);
                tokio::time::sleep(pause).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shedding_follows_the_last_sample() {
        let g = BacklogGuard::new(10);
        assert!(!g.shedding());
        g.record(11);
        assert!(g.shedding());
        g.record(10);
        assert!(!g.shedding(), "at the cap is still fine");
    }
}
