//! The live funnel: per campaign and minute, how many users viewed (and did whatever
//! else clients report through `POST /v1/events`), got a ticket, claimed, had a claim
//! accepted and paid.
//!
//! Two sources, merged per minute ([`add_events`]):
//! - **Client events** (`view`, ...) are counted by the event writers, in the database
//!   table `event_minutes`, in the same transaction as the rows they count (see
//!   `crate::db::events`): exactly the events stored, never twice, and read without
//!   scanning the events. They show once written, a moment after they were taken.
//! - **The engine's own stages** ([`Stage`]: ticket, claim, accepted, paid) are counted
//!   here, where they happen, in each api process's memory, and flushed every
//!   [`FLUSH_EVERY`] into the shared totals: with Redis, the hash `{c:ID}:funnel` (field
//!   `<minute start, unix seconds>:<kind>`, `HINCRBY`, expiring [`RETAIN_SECS`] after its
//!   last write), which every api process adds to and reads; embedded, a map in this
//!   process. A read sees what was counted up to one flush ago.
//!
//! The stages are counted on the claim path, which must stay cheap: one read-locked map
//! lookup and two relaxed atomic operations, no allocation and no await (a campaign's
//! first count on a thread allocates its ring). Each thread counts into maps of its
//! own (`crate::striped::PerThread`), so the runtime's workers do not bounce each
//! other's cache lines; a flush takes every thread's. Each campaign has a ring of
//! [`RING`] minute slots, slot `minute % RING`, tagged with its minute; a count raises
//! the tag to its minute (`fetch_max`) and adds. The flusher swaps the slots' counts to zero and books them
//! on the tag it reads after the swap: a slot is reused only [`RING`] minutes after its
//! last count, long after every flush emptied it, so what it holds belongs to its
//! current tag.
//!
//! A flush that fails (Redis down) keeps its counts for the next one; one whose reply
//! was lost after Redis applied it may count them twice: the stages are a live view,
//! not an audit (the claims' and orders' rows are).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::redis_conn::RedisConn;
use crate::store::keys;
use crate::striped::PerThread;

/// How often each process adds its counts to the shared totals.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long a campaign's funnel is kept after its last count: 48 hours.
pub const RETAIN_SECS: i64 = 48 * 3_600;
/// The longest window a read may ask for: a day of minutes.
pub const MAX_MINUTES: u32 = 1_440;
/// Minute slots per campaign ring.
const RING: usize = 4;
/// Flushes between two prunings of the rings of campaigns no longer counted.
const PRUNE_EVERY: u64 = 60;

/// What the engine counts itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A claim ticket handed out.
    Ticket = 0,
    /// A claim request that reached the claim step.
    Claim = 1,
    /// A claim accepted (201).
    Accepted = 2,
    /// An order paid (its first successful notification).
    Paid = 3,
}

/// The stages' names, in [`Stage`] order.
pub const STAGES: [&str; 4] = ["ticket", "claim", "accepted", "paid"];

/// The kinds every minute of a reply has, zeros included: the client's `view`, then
/// the stages.
pub const KINDS: [&str; 5] = ["view", "ticket", "claim", "accepted", "paid"];

/// One minute of a campaign's funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelMinute {
    /// The minute's start, unix ms.
    pub at_ms: i64,
    /// Kind -> count: every one of [`KINDS`], and any other client type counted.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Slot {
    /// The minute (unix ms / 60,000) the counts belong to.
    minute: AtomicI64,
    counts: [AtomicU64; STAGES.len()],
}

#[derive(Default)]
struct Ring {
    slots: [Slot; RING],
}

impl Ring {
    fn add(&self, minute: i64, stage: Stage) {
        let slot = &self.slots[minute.rem_euclid(RING as i64) as usize];
        slot.minute.fetch_max(minute, Ordering::Relaxed);
        slot.counts[stage as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the flushed counts go.
enum Totals {
    /// The campaigns' `{c:ID}:funnel` hashes.
    Redis(RedisConn),
    /// Campaign id -> (minute, kind) -> count, pruned past [`RETAIN_SECS`].
    Memory(Mutex<Deltas>),
}

/// Counts by campaign: campaign -> (minute, kind) -> count.
type Deltas = HashMap<u64, BTreeMap<(i64, String), u64>>;

pub struct Funnel {
    /// Campaign id -> its ring of the engine's stages.
    /// Kept per thread (each its own map of rings), so that two threads counting the
    /// same campaign do not write the same cache lines (`crate::striped`); a flush
    /// takes every thread's.
    rings: PerThread<RwLock<HashMap<u64, Ring, foldhash::fast::RandomState>>>,
    /// The counts of a failed flush, for the next one.
    pending: Mutex<Deltas>,
    totals: Totals,
    flushes: AtomicU64,
}

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

impl Funnel {
    /// A funnel whose totals live in this process (the embedded engine).
    pub fn in_memory() -> Self {
        Self::with_totals(Totals::Memory(Mutex::new(HashMap::new())))
    }

    /// A funnel whose totals every api process shares in Redis.
    pub fn redis(conn: RedisConn) -> Self {
        Self::with_totals(Totals::Redis(conn))
    }

    fn with_totals(totals: Totals) -> Self {
        Funnel {
            rings: PerThread::default(),
            pending: Mutex::new(HashMap::new()),
            totals,
            flushes: AtomicU64::new(0),
        }
    }

    /// Counts one stage of the campaign, now. Cheap: see the module's note.
    pub fn count(&self, campaign_id: u64, stage: Stage) {
        self.count_at(campaign_id, stage, crate::clock::now_ms());
    }

    /// [`Funnel::count`] at `now_ms`.
    pub fn count_at(&self, campaign_id: u64, stage: Stage, now_ms: i64) {
        let minute = minute_of(now_ms);
        let rings = self.rings.local();
        if let Some(ring) = rings.read().get(&campaign_id) {
            ring.add(minute, stage);
            return;
        }
        rings
            .write()
            .entry(campaign_id)
            .or_default()
            .add(minute, stage);
    }

    /// Takes every count not yet flushed.
    fn take(&self, now_ms: i64) -> Deltas {
        let mut out = std::mem::take(&mut *self.pending.lock());
        let prune = self
            .flushes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY);
        for rings in self.rings.iter() {
            let mut idle = Vec::new();
            for (id, ring) in rings.read().iter() {
                let mut used = false;
                for slot in &ring.slots {
                    let counts: [u64; STAGES.len()] =
                        std::array::from_fn(|i| slot.counts[i].swap(0, Ordering::Relaxed));
                    let minute = slot.minute.load(Ordering::Relaxed);
                    used |= minute >= minute_of(now_ms) - RING as i64;
                    for (i, n) in counts.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                        *out.entry(*id)
                            .or_default()
                            .entry((minute, STAGES[i].to_string()))
                            .or_default() += n;
                    }
                }
                if prune && !used {
                    idle.push(*id);
                }
            }
            if !idle.is_empty() {
                let mut rings = rings.write();
                for id in idle {
                    // Counted since the read above: flushed next time, not pruned.
                    if let Some(ring) = rings.get(&id) {
                        let quiet = ring.slots.iter().all(|s| {
                            s.counts.iter().all(|c| c.load(Ordering::Relaxed) == 0)
                                && s.minute.load(Ordering::Relaxed)
                                    < minute_of(now_ms) - RING as i64
                        });
                        if quiet {
                            rings.remove(&id);
                        }
                    }
                }
            }
        }
        out
    }

    /// Adds every count not yet flushed to the shared totals. On failure they are kept
    /// for the next flush.
    pub async fn flush(&self) -> Result<()> {
        let now = crate::clock::now_ms();
        let deltas = self.take(now);
        if deltas.is_empty() {
            return Ok(());
        }
        match &self.totals {
            Totals::Memory(totals) => {
                let mut totals = totals.lock();
                let oldest = minute_of(now - RETAIN_SECS * 1_000);
                for (id, counts) in deltas {
                    let t = totals.entry(id).or_default();
                    for (k, n) in counts {
                        *t.entry(k).or_default() += n;
                    }
                    t.retain(|(minute, _), _| *minute >= oldest);
                }
                Ok(())
            }
            Totals::Redis(conn) => {
                let pipe_of = |id: u64, counts: &BTreeMap<(i64, String), u64>| {
                    let key = keys::funnel(id);
                    let mut pipe = redis::pipe();
                    for ((minute, kind), n) in counts {
                        pipe.hincr(&key, format!("{}:{kind}", minute * 60), *n)
                            .ignore();
                    }
                    pipe.expire(&key, RETAIN_SECS).ignore();
                    pipe
                };
                let sent = if conn.is_cluster() {
                    futures::future::try_join_all(deltas.iter().map(|(id, counts)| {
                        let (pipe, mut conn) = (pipe_of(*id, counts), conn.clone());
                        async move { pipe.query_async::<()>(&mut conn).await }
                    }))
                    .await
                    .map(|_| ())
                } else {
                    let mut all = redis::pipe();
                    for (id, counts) in &deltas {
                        for ((minute, kind), n) in counts {
                            all.hincr(keys::funnel(*id), format!("{}:{kind}", minute * 60), *n)
                                .ignore();
                        }
                        all.expire(keys::funnel(*id), RETAIN_SECS).ignore();
                    }
                    all.query_async::<()>(&mut conn.clone()).await
                };
                if let Err(e) = sent {
                    let mut pending = self.pending.lock();
                    for (id, counts) in deltas {
                        let p = pending.entry(id).or_default();
                        for (k, n) in counts {
                            *p.entry(k).or_default() += n;
                        }
                    }
                    return Err(e.into());
                }
                Ok(())
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `shutdown`, then once more.
    pub fn spawn_flusher(self: &Arc<Self>, shutdown: CancellationToken) {
        let funnel = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = shutdown.cancelled() => true,
                    _ = tick.tick() => false,
                };
                if let Err(e) = funnel.flush().await {
                    tracing::debug!(error = %e, "funnel: flush failed; kept for the next");
                }
                if stopping {
                    return;
                }
            }
        });
    }

    /// The five [`KINDS`] only (`view` at zero: [`add_events`] fills it), over the
    /// `minutes` minutes up to the one of `now_ms` (the dashboard's chart, read every
    /// tick): with Redis one `HMGET` of exactly those fields, not the whole hash.
    pub async fn recent(
        &self,
        campaign_id: u64,
        minutes: u32,
        now_ms: i64,
    ) -> Result<Vec<FunnelMinute>> {
        let Totals::Redis(conn) = &self.totals else {
            let mut all = self.minutes(campaign_id, minutes, now_ms).await?;
            for m in &mut all {
                m.counts.retain(|k, _| KINDS.contains(&k.as_str()));
            }
            return Ok(all);
        };
        let last = minute_of(now_ms);
        let first = last - minutes.clamp(1, MAX_MINUTES) as i64 + 1;
        let fields: Vec<String> = (first..=last)
            .flat_map(|m| KINDS.iter().map(move |k| format!("{}:{k}", m * 60)))
            .collect();
        let values: Vec<Option<u64>> = redis::cmd("HMGET")
            .arg(keys::funnel(campaign_id))
            .arg(&fields)
            .query_async(&mut conn.clone())
            .await?;
        Ok((first..=last)
            .enumerate()
            .map(|(i, m)| FunnelMinute {
                at_ms: m * 60_000,
                counts: KINDS
                    .iter()
                    .enumerate()
                    .map(|(j, k)| {
                        let n = values.get(i * KINDS.len() + j).copied().flatten();
                        (k.to_string(), n.unwrap_or(0))
                    })
                    .collect(),
            })
            .collect())
    }

    /// The campaign's stages over the `minutes` minutes up to the one of `now_ms`
    /// (oldest first, that minute last), zeros included, `view` at zero ([`add_events`]
    /// adds the client events).
    pub async fn minutes(
        &self,
        campaign_id: u64,
        minutes: u32,
        now_ms: i64,
    ) -> Result<Vec<FunnelMinute>> {
        let last = minute_of(now_ms);
        let first = last - minutes.clamp(1, MAX_MINUTES) as i64 + 1;
        let counted: Vec<((i64, String), u64)> = match &self.totals {
            Totals::Memory(totals) => totals
                .lock()
                .get(&campaign_id)
                .map(|t| {
                    t.range((first, String::new())..)
                        .map(|(k, n)| (k.clone(), *n))
                        .collect()
                })
                .unwrap_or_default(),
            Totals::Redis(conn) => {
                let all: HashMap<String, u64> =
                    conn.clone().hgetall(keys::funnel(campaign_id)).await?;
                all.into_iter()
                    .filter_map(|(field, n)| {
                        let (secs, kind) = field.split_once(':')?;
                        let secs: i64 = secs.parse().ok()?;
                        Some(((secs.div_euclid(60), kind.to_string()), n))
                    })
                    .collect()
            }
        };
        let mut out: Vec<FunnelMinute> = (first..=last)
            .map(|m| FunnelMinute {
                at_ms: m * 60_000,
                counts: KINDS.iter().map(|k| (k.to_string(), 0)).collect(),
            })
            .collect();
        for ((minute, kind), n) in counted {
            if (first..=last).contains(&minute) {
                *out[(minute - first) as usize]
                    .counts
                    .entry(kind)
                    .or_default() += n;
            }
        }
        Ok(out)
    }
}

/// Adds the client events' counts (minute start in unix ms, type, count: what the
/// event writers keep, `crate::db::Database::event_minutes`) to the minutes they fall
/// in; `only_kinds` keeps to the [`KINDS`] (the dashboard's `view`).
pub fn add_events(minutes: &mut [FunnelMinute], counts: &[(i64, String, u64)], only_kinds: bool) {
    let Some(first) = minutes.first().map(|m| m.at_ms) else {
        return;
    };
    for (at_ms, kind, n) in counts {
        if only_kinds && !KINDS.contains(&kind.as_str()) {
            continue;
        }
        let i = (at_ms - first).div_euclid(60_000);
        if let Some(m) = usize::try_from(i).ok().and_then(|i| minutes.get_mut(i)) {
            *m.counts.entry(kind.clone()).or_default() += n;
        }
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    /// A minute's start, ten minutes ago (the in-memory totals keep 48 hours from now).
    fn t0() -> i64 {
        let now = crate::clock::now_ms();
        now - now.rem_euclid(60_000) - 10 * 60_000
    }

    fn counts(m: &FunnelMinute) -> Vec<(&str, u64)> {
        m.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect()
    }

    #[tokio::test]
    async fn stages_and_the_writers_event_counts_merge_per_minute_with_zeros_between() {
        let T = t0();
        let f = Funnel::in_memory();
        f.count_at(1, Stage::Claim, T + 1_000);
        f.count_at(1, Stage::Claim, T + 59_999);
        f.count_at(1, Stage::Accepted, T + 2_000);
        f.count_at(2, Stage::Claim, T);
        f.flush().await.expect("flush");
        f.count_at(1, Stage::Paid, T + 120_000);
        f.count_at(1, Stage::Ticket, T + 120_001);
        f.flush().await.expect("flush");
        let mut m = f.minutes(1, 4, T + 150_000).await.expect("read");
        // The event writers' counts: two in the window, one before it.
        let events = [
            (T, "view".to_string(), 1),
            (T, "share".to_string(), 1),
            (T - 120_000, "view".to_string(), 9),
        ];
        add_events(&mut m, &events, false);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].at_ms, T - 60_000);
        assert_eq!(m[3].at_ms, T + 120_000);
        let zeros = vec![
            ("accepted", 0),
            ("claim", 0),
            ("paid", 0),
            ("ticket", 0),
            ("view", 0),
        ];
        assert_eq!(counts(&m[0]), zeros);
        assert_eq!(
            counts(&m[1]),
            vec![
                ("accepted", 1),
                ("claim", 2),
                ("paid", 0),
                ("share", 1),
                ("ticket", 0),
                ("view", 1)
            ]
        );
        assert_eq!(counts(&m[2]), zeros);
        assert_eq!(
            counts(&m[3]),
            vec![
                ("accepted", 0),
                ("claim", 0),
                ("paid", 1),
                ("ticket", 1),
                ("view", 0)
            ]
        );
        let other = f.minutes(2, 1, T + 1).await.expect("read");
        assert_eq!(other[0].counts["claim"], 1);
        // The dashboard's five kinds only.
        let mut recent = f.recent(1, 4, T + 150_000).await.expect("read");
        add_events(&mut recent, &events, true);
        assert_eq!(recent[1].counts.get("share"), None);
        assert_eq!(recent[1].counts["view"], 1);
    }

    #[tokio::test]
    async fn a_slot_reused_minutes_later_books_its_counts_on_its_new_minute() {
        let T = t0();
        let f = Funnel::in_memory();
        f.count_at(1, Stage::Claim, T);
        f.flush().await.expect("flush");
        // RING minutes later the same slot serves the new minute.
        let later = T + RING as i64 * 60_000;
        f.count_at(1, Stage::Claim, later);
        f.count_at(1, Stage::Claim, later);
        f.flush().await.expect("flush");
        let m = f.minutes(1, RING as u32 + 1, later).await.expect("read");
        assert_eq!(m[0].counts["claim"], 1);
        assert_eq!(m[RING].counts["claim"], 2);
        assert_eq!(m.iter().map(|m| m.counts["claim"]).sum::<u64>(), 3);
    }

    #[test]
    fn counts_from_many_threads_are_all_taken() {
        let T = t0();
        let f = Arc::new(Funnel::in_memory());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        f.count_at(3, Stage::Claim, T + i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let d = f.take(T);
        assert_eq!(d[&3][&(minute_of(T), "claim".to_string())], 2_000);
        assert!(f.take(T).is_empty(), "taken once");
    }

    #[test]
    fn counting_a_stage_allocates_only_for_a_new_campaign() {
        let T = t0();
        let f = Funnel::in_memory();
        f.count_at(9, Stage::Claim, T);
        let rings = || f.rings.iter().map(|r| r.read().len()).sum::<usize>();
        let before = rings();
        for i in 0..1_000 {
            f.count_at(9, Stage::Accepted, T + i);
        }
        assert_eq!(rings(), before);
        let d = f.take(T);
        assert_eq!(d[&9][&(minute_of(T), "accepted".to_string())], 1_000);
        assert_eq!(d[&9][&(minute_of(T), "claim".to_string())], 1);
    }
}
