//! The engine's metric handles, registered once and kept: looking a labelled series up
//! in the recorder on every call costs a hash of its name and labels, and the store and
//! cache calls below are on the claim path.
//!
//! Handles bind to the recorder installed when they are created (a no-op one before
//! that), so the binary installs its Prometheus recorder before it builds the engine.
//!
//! - [`Timings`]: a latency histogram per operation, such as
//!   `stampede_store_duration_seconds{op}` and `stampede_db_duration_seconds{op}`.
//! - [`CacheStats`]: `stampede_cache_requests_total{cache, result="hit"|"miss"}`, whose
//!   ratio is the cache's hit ratio. Counted per thread ([`crate::striped`]): a cache
//!   lookup is on every claim and read.

use std::sync::Arc;
use std::time::Instant;

use metrics::Histogram;

use crate::striped::StripedCounter;

/// One histogram series per operation of a component.
pub struct Timings {
    /// (op label, its histogram); a short list, searched in order, so the hottest
    /// operation goes first.
    ops: Vec<(&'static str, Histogram)>,
}

impl Timings {
    pub fn new(name: &'static str, ops: &[&'static str]) -> Self {
        Timings {
            ops: ops
                .iter()
                .map(|&op| (op, metrics::histogram!(name, "op" => op)))
                .collect(),
        }
    }

    /// Starts timing `op`; the time is recorded when the guard drops, also when the
    /// operation failed or its caller gave up on it.
    pub fn start(&self, op: &'static str) -> Timed<'_> {
        Timed {
            histogram: self.ops.iter().find(|(o, _)| *o == op).map(|(_, h)| h),
            started: Instant::now(),
        }
    }
}

/// Records the time since it was made into its histogram on drop.
pub struct Timed<'a> {
    histogram: Option<&'a Histogram>,
    started: Instant,
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.histogram {
            h.record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Hits and misses of one in-process cache.
pub struct CacheStats {
    hit: Arc<StripedCounter>,
    miss: Arc<StripedCounter>,
}

impl CacheStats {
    /// The counters of the cache named `cache` (the `cache` label).
    pub fn new(cache: &'static str) -> Self {
        const NAME: &str = "stampede_cache_requests_total";
        CacheStats {
            hit: StripedCounter::new(metrics::counter!(NAME, "cache" => cache, "result" => "hit")),
            miss: StripedCounter::new(
                metrics::counter!(NAME, "cache" => cache, "result" => "miss"),
            ),
        }
    }

    pub fn record(&self, hit: bool) {
        if hit {
            self.hit.increment(1);
        } else {
            self.miss.increment(1);
        }
    }
}
