//! The hot read cache: each campaign's live counters, kept in this process for a short
//! TTL, so the reads of a flash crowd cost no store round trip.
//!
//! - **At most one store read per campaign per TTL** in this process, however many
//!   readers come: the first reader past the TTL refreshes (holding the campaign's
//!   refresh lock); the others are answered with the value they would have had a
//!   moment ago, without waiting. Only a campaign never read yet makes its readers wait
//!   for the one read in flight.
//! - **Stale on failure**: when the store cannot be reached, readers get the last value
//!   read, marked [`Freshness::Stale`], and the next attempt waits for the next TTL (a
//!   dead store is not asked once per reader).
//! - **Bounded**: quick_cache (a sharded, size-bounded map with CLOCK-Pro eviction)
//!   holds at most `capacity` campaigns; its sharding keeps readers of different
//!   campaigns off each other's locks. Each entry's own small lock covers the value.

use std::future::Future;
use std::sync::Arc;

use crate::campaign::LiveCounters;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Read from the store within the TTL (or just now).
    Fresh,
    /// The store could not be reached: the last value read, however old.
    Stale,
}

pub struct LiveCache {
    ttl_ms: i64,
    slots: quick_cache::sync::Cache<u64, Arc<Slot>>,
}

#[derive(Default)]
struct Slot {
    state: parking_lot::Mutex<SlotState>,
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct SlotState {
    known: Known,
    /// When the store was last asked (successfully or not), in ms; `i64::MIN`: due now.
    checked_ms: i64,
    /// The last attempt could not reach the store.
    failing: bool,
}

#[derive(Default, Clone, Copy)]
enum Known {
    #[default]
    Nothing,
    Counters(LiveCounters),
    /// The store holds no live state for the campaign.
    Missing,
}

/// What the cache answers: the counters (`None`: the store has no state for the
/// campaign) and how fresh they are.
pub type Cached = Option<(LiveCounters, Freshness)>;

impl SlotState {
    fn answer(&self) -> Option<Cached> {
        match self.known {
            Known::Nothing => None,
            Known::Missing => Some(None),
            Known::Counters(k) => Some(Some((
                k,
                if self.failing {
                    Freshness::Stale
                } else {
                    Freshness::Fresh
                },
            ))),
        }
    }

    fn due(&self, now_ms: i64, ttl_ms: i64) -> bool {
        now_ms.saturating_sub(self.checked_ms) >= ttl_ms
    }
}

impl LiveCache {
    pub fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        LiveCache {
            ttl_ms: ttl.as_millis() as i64,
            slots: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    fn slot(&self, id: u64) -> Arc<Slot> {
        let created = self.slots.get_or_insert_with(&id, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot {
                state: parking_lot::Mutex::new(SlotState {
                    checked_ms: i64::MIN,
                    ..Default::default()
                }),
                ..Default::default()
            }))
        });
        match created {
            Ok(slot) => slot,
            Err(never) => match never {},
        }
    }

    /// The campaign's counters: cached, or read with `fetch` (see the module doc).
    /// A store error is returned only when there is no earlier value to fall back on,
    /// or when it is not a failure to reach the store.
    pub async fn get<F, Fut>(&self, id: u64, now_ms: i64, fetch: F) -> Result<Cached>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<LiveCounters>>>,
    {
        let slot = self.slot(id);
        {
            let s = slot.state.lock();
            if !s.due(now_ms, self.ttl_ms) {
                if let Some(a) = s.answer() {
                    return Ok(a);
                }
            }
        }
        let _refreshing = match slot.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another reader is refreshing: answer with what we have, if anything.
                if let Some(a) = slot.state.lock().answer() {
                    return Ok(a);
                }
                let guard = slot.refresh.lock().await;
                let s = slot.state.lock();
                if !s.due(now_ms, self.ttl_ms) {
                    if let Some(a) = s.answer() {
                        return Ok(a);
                    }
                }
                drop(s);
                guard
            }
        };
        let result = fetch().await;
        let mut s = slot.state.lock();
        match result {
            Ok(counters) => {
                s.known = counters.map_or(Known::Missing, Known::Counters);
                s.failing = false;
                s.checked_ms = now_ms;
            }
            Err(e) if e.is_unreachable() => {
                s.failing = true;
                s.checked_ms = now_ms;
                if let Some(a) = s.answer() {
                    tracing::debug!(
                        campaign = id,
                        "store unreachable: serving the last counters read"
                    );
                    return Ok(a);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        Ok(s.answer().unwrap_or(None))
    }

    /// Makes the next read of the campaign go to the store (after a claim this process
    /// accepted, a close, a rebuild).
    pub fn invalidate(&self, id: u64) {
        if let Some(slot) = self.slots.get(&id) {
            slot.state.lock().checked_ms = i64::MIN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn counters(remaining: u64) -> LiveCounters {
        LiveCounters {
            remaining,
            claims: 0,
            sold: 0,
            cents: 0,
            ends_at_ms: i64::MAX,
        }
    }

    #[tokio::test]
    async fn one_store_read_per_ttl_then_a_refresh() {
        let cache = LiveCache::new(Duration::from_millis(100), 16);
        let calls = AtomicU32::new(0);
        let fetch = |n: u64| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Some(counters(n)))
            }
        };
        for t in 0..100 {
            let got = cache.get(7, t, fetch(5)).await.expect("read");
            assert_eq!(got, Some((counters(5), Freshness::Fresh)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "within the TTL: one read");
        let got = cache.get(7, 100, fetch(4)).await.expect("read");
        assert_eq!(got, Some((counters(4), Freshness::Fresh)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        cache.invalidate(7);
        cache.get(7, 101, fetch(3)).await.expect("read");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "invalidated: read again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_readers_share_one_store_read() {
        let cache = Arc::new(LiveCache::new(Duration::from_secs(60), 16));
        let calls = Arc::new(AtomicU32::new(0));
        let readers: Vec<_> = (0..64)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get(1, 0, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(Some(counters(9)))
                        })
                        .await
                })
            })
            .collect();
        for r in readers {
            let got = r.await.expect("join").expect("read");
            assert_eq!(got, Some((counters(9), Freshness::Fresh)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_store_serves_the_last_value_as_stale_and_is_not_hammered() {
        let cache = LiveCache::new(Duration::from_millis(100), 16);
        let calls = AtomicU32::new(0);
        let down = || {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<Option<LiveCounters>, _>(EngineError::Unreachable("cut".into()))
            }
        };
        let err = cache
            .get(1, 0, down())
            .await
            .expect_err("nothing to fall back on");
        assert!(err.is_unreachable());
        cache
            .get(1, 1_000, || async { Ok(Some(counters(8))) })
            .await
            .expect("read");
        for t in 1_100..1_199 {
            let got = cache.get(1, t, down()).await.expect("stale");
            assert_eq!(got, Some((counters(8), Freshness::Stale)));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one failed attempt per TTL"
        );
        let got = cache
            .get(1, 1_300, || async { Ok(Some(counters(7))) })
            .await
            .expect("back");
        assert_eq!(got, Some((counters(7), Freshness::Fresh)));
    }

    #[tokio::test]
    async fn a_missing_state_is_cached_and_other_errors_pass_through() {
        let cache = LiveCache::new(Duration::from_millis(100), 16);
        assert_eq!(
            cache.get(1, 0, || async { Ok(None) }).await.expect("read"),
            None
        );
        let err = cache
            .get(2, 0, || async {
                Err::<Option<LiveCounters>, _>(EngineError::Store("script error".into()))
            })
            .await
            .expect_err("not a reachability failure");
        assert!(!err.is_unreachable());
    }

    #[test]
    fn memory_is_bounded() {
        let cache = LiveCache::new(Duration::from_millis(100), 100);
        for id in 0..10_000 {
            cache.slot(id);
        }
        assert!(cache.slots.len() <= 200, "{}", cache.slots.len());
    }
}
