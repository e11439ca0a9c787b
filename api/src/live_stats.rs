//! Per-campaign claim figures for the dashboard: claims by outcome and the latency
//! distribution since the last look, kept in this process.
//!
//! The claim route records into the window of its campaign; the dashboard's sampler
//! [`LiveStats::take`]s every window each tick (the counts since the previous tick and
//! their p50/p99), which resets it. Only the campaigns the sampler [`LiveStats::track`]s
//! have a window (the active ones it shows, at most a few dozen), so memory is bounded
//! whatever ids requests name, and while nobody watches the dashboard there are none
//! and a claim costs one lookup in an empty map. The map is an `ArcSwap` (replaced
//! whole by [`LiveStats::track`], which changes it only when the tracked set does): a
//! claim's lookup writes nothing that another core reads, where a `RwLock`'s read count
//! bounced between the runtime's workers on every claim.
//!
//! Latency goes into an HDR histogram of microseconds (1 µs to 60 s, two significant
//! digits: about 20 KiB a window), behind a mutex held only to record one value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::telemetry::CLAIM_OUTCOMES;

/// Latencies above this many microseconds are recorded as this.
const MAX_MICROS: u64 = 60_000_000;

struct Window {
    /// Claims per outcome since the last take, in [`CLAIM_OUTCOMES`] order.
    counts: [AtomicU64; CLAIM_OUTCOMES.len()],
    latency: Mutex<Histogram<u64>>,
    /// When the window was last taken (or made).
    since: Mutex<Instant>,
}

/// A window's figures: counts per outcome over `elapsed`, and latency percentiles.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFigures {
    pub counts: [u64; CLAIM_OUTCOMES.len()],
    pub elapsed: Duration,
    /// Claim latency percentiles in milliseconds; `None` when no claim was recorded.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

type Windows = HashMap<u64, Arc<Window>, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct LiveStats {
    windows: ArcSwap<Windows>,
}

impl LiveStats {
    /// Records one answered claim of a tracked campaign; anything else is ignored.
    pub fn record(&self, campaign_id: u64, outcome: &str, elapsed: Duration) {
        let windows = self.windows.load();
        let Some(w) = windows.get(&campaign_id) else {
            return;
        };
        if let Some(i) = CLAIM_OUTCOMES.iter().position(|o| *o == outcome) {
            w.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_MICROS);
        // Within bounds by the clamp; a failure could only drop this one sample.
        let _ = w.latency.lock().record(micros);
    }

    /// Keeps a window for exactly these campaigns: new ones start empty, others go.
    pub fn track(&self, campaign_ids: &[u64]) {
        let current = self.windows.load();
        if current.len() == campaign_ids.len()
            && campaign_ids.iter().all(|id| current.contains_key(id))
        {
            return;
        }
        // The sampler is the one caller: no other writer to race with.
        let mut windows = Windows::clone(&current);
        drop(current);
        windows.retain(|id, _| campaign_ids.contains(id));
        for &id in campaign_ids {
            if windows.contains_key(&id) {
                continue;
            }
            // Two significant digits over 1 µs..60 s: valid bounds, so this cannot fail.
            let Ok(latency) = Histogram::new_with_bounds(1, MAX_MICROS, 2) else {
                continue;
            };
            windows.insert(
                id,
                Arc::new(Window {
                    counts: Default::default(),
                    latency: Mutex::new(latency),
                    since: Mutex::new(Instant::now()),
                }),
            );
        }
        self.windows.store(Arc::new(windows));
    }

    /// The figures of the campaign's window since the last take, and resets it.
    pub fn take(&self, campaign_id: u64) -> Option<WindowFigures> {
        let w = self.windows.load().get(&campaign_id).cloned()?;
        let counts = std::array::from_fn(|i| w.counts[i].swap(0, Ordering::Relaxed));
        let elapsed = {
            let mut since = w.since.lock();
            let now = Instant::now();
            std::mem::replace(&mut *since, now).elapsed()
        };
        let (p50_ms, p99_ms) = {
            let mut h = w.latency.lock();
            let q = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1_000.0);
            let p = (q(0.5), q(0.99));
            h.reset();
            p
        };
        Some(WindowFigures {
            counts,
            elapsed,
            p50_ms,
            p99_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tracked_campaigns_are_counted_and_a_take_resets_the_window() {
        let stats = LiveStats::default();
        stats.record(1, "accepted", Duration::from_millis(1));
        stats.track(&[1]);
        for ms in 1..=100 {
            stats.record(1, "accepted", Duration::from_millis(ms));
        }
        stats.record(1, "sold_out", Duration::from_millis(5));
        stats.record(2, "accepted", Duration::from_millis(5));
        let f = stats.take(1).expect("tracked");
        assert_eq!(f.counts[0], 100);
        assert_eq!(f.counts[2], 1, "sold_out");
        let p50 = f.p50_ms.expect("p50");
        let p99 = f.p99_ms.expect("p99");
        assert!((45.0..=55.0).contains(&p50), "{p50}");
        assert!((95.0..=101.0).contains(&p99), "{p99}");
        assert_eq!(stats.take(2), None, "untracked");
        let empty = stats.take(1).expect("tracked");
        assert_eq!(empty.counts, [0; CLAIM_OUTCOMES.len()]);
        assert_eq!((empty.p50_ms, empty.p99_ms), (None, None));
        stats.track(&[3]);
        assert_eq!(stats.take(1), None, "no longer tracked");
    }
}
