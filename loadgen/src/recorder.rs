//! What each worker measures, and how the workers' measurements become one summary.
//!
//! Every worker owns a [`Recorder`]: its own histogram, status counts and current second,
//! so recording a reply touches no shared memory except two relaxed counters that feed the
//! live progress line. At the end the recorders are merged into a [`Summary`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::StatusCode;

use crate::histogram::{latency_histogram, record, SecondStats, Timeline};

/// State shared by all workers of a run.
pub struct Live {
    /// When the run started: every second bucket and the duration count from here.
    pub start: Instant,
    /// Replies received so far (for the progress line only).
    pub replies: AtomicU64,
    /// Requests that got no reply so far (for the progress line only).
    pub errors: AtomicU64,
    /// The per-second buckets. A std mutex: it is held for one histogram merge, never
    /// across an await, and taken about once per worker per second.
    pub timeline: Mutex<Timeline>,
}

impl Live {
    pub fn new(start: Instant) -> Arc<Self> {
        Arc::new(Self {
            start,
            replies: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeline: Mutex::new(Timeline::default()),
        })
    }
}

/// One worker's measurements.
pub struct Recorder {
    live: Arc<Live>,
    /// Whole-run latencies, microseconds, 3 significant digits.
    latency: Histogram<u64>,
    /// Replies by status code; a flat array because indexing beats hashing per request.
    statuses: Vec<u64>,
    /// Requests that got no reply, by kind (`timeout`, `connect`, `http`).
    errors: BTreeMap<&'static str, u64>,
    /// The second of the run this worker is currently filling, and its buckets.
    second: u64,
    second_latency: Histogram<u64>,
    second_errors: u64,
    /// When the last reply or error arrived; the run's duration ends at the latest of these.
    last: Instant,
}

/// Status codes are three digits; anything else lands in the last slot.
const STATUS_SLOTS: usize = 600;

impl Recorder {
    pub fn new(live: Arc<Live>) -> Self {
        let start = live.start;
        Self {
            live,
            latency: latency_histogram(3),
            statuses: vec![0; STATUS_SLOTS],
            errors: BTreeMap::new(),
            second: 0,
            second_latency: latency_histogram(2),
            second_errors: 0,
            last: start,
        }
    }

    /// Records a reply that arrived at `now` for a request meant to go out at `sent`.
    pub fn reply(&mut self, status: StatusCode, sent: Instant, now: Instant) {
        self.roll(now);
        let micros =
            u64::try_from(now.saturating_duration_since(sent).as_micros()).unwrap_or(u64::MAX);
        record(&mut self.latency, micros);
        record(&mut self.second_latency, micros);
        let slot = usize::from(status.as_u16()).min(STATUS_SLOTS - 1);
        self.statuses[slot] += 1;
        self.live.replies.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request that got no reply (its latency is not recorded: there is none).
    pub fn error(&mut self, kind: &'static str, now: Instant) {
        self.roll(now);
        *self.errors.entry(kind).or_default() += 1;
        self.second_errors += 1;
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves on to `now`'s second, handing the finished one to the shared timeline.
    fn roll(&mut self, now: Instant) {
        self.last = self.last.max(now);
        let second = now.saturating_duration_since(self.live.start).as_secs();
        if second != self.second {
            self.flush();
            self.second = second;
        }
    }

    fn flush(&mut self) {
        if self.second_latency.is_empty() && self.second_errors == 0 {
            return;
        }
        if let Ok(mut timeline) = self.live.timeline.lock() {
            timeline.merge(self.second, &self.second_latency, self.second_errors);
        }
        self.second_latency.reset();
        self.second_errors = 0;
    }
}

/// All workers' measurements together.
pub struct Summary {
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    /// From the start to the last reply or error.
    pub duration: Duration,
    pub seconds: Vec<SecondStats>,
}

impl Summary {
    /// Merges the workers' recorders (flushing their last seconds into the timeline).
    pub fn merge(live: &Live, recorders: Vec<Recorder>) -> Self {
        let mut latency = latency_histogram(3);
        let mut statuses = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let mut last = live.start;
        for mut rec in recorders {
            rec.flush();
            // Same bounds everywhere, so `add` cannot fail.
            let _ = latency.add(&rec.latency);
            for (code, &count) in rec.statuses.iter().enumerate() {
                if count > 0 {
                    *statuses.entry(code as u16).or_default() += count;
                }
            }
            for (kind, count) in rec.errors {
                *errors.entry(kind.to_owned()).or_default() += count;
            }
            last = last.max(rec.last);
        }
        let seconds = live
            .timeline
            .lock()
            .map(|t| t.seconds())
            .unwrap_or_default();
        Self {
            latency,
            statuses,
            errors,
            duration: last.saturating_duration_since(live.start),
            seconds,
        }
    }

    /// Replies plus requests that got none.
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.error_count()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorders_count_every_reply_and_error() {
        let start = Instant::now();
        let live = Live::new(start);
        let mut a = Recorder::new(live.clone());
        let mut b = Recorder::new(live.clone());
        a.reply(StatusCode::CREATED, start, start + Duration::from_millis(2));
        a.reply(
            StatusCode::OK,
            start + Duration::from_millis(1500),
            start + Duration::from_millis(1510),
        );
        b.reply(
            StatusCode::CONFLICT,
            start,
            start + Duration::from_millis(4),
        );
        b.error("timeout", start + Duration::from_millis(2500));
        let summary = Summary::merge(&live, vec![a, b]);
        assert_eq!(summary.requests(), 4);
        assert_eq!(summary.statuses.get(&201), Some(&1));
        assert_eq!(summary.statuses.get(&409), Some(&1));
        assert_eq!(summary.errors.get("timeout"), Some(&1));
        assert_eq!(summary.latency.len(), 3);
        assert_eq!(summary.duration, Duration::from_millis(2500));
        let per_second: Vec<u64> = summary.seconds.iter().map(|s| s.requests).collect();
        assert_eq!(per_second, vec![2, 1, 0]);
        assert_eq!(summary.seconds[2].errors, 1);
    }
}
