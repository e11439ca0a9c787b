//! Counts kept per thread on the hot path, summed when read.
//!
//! Why: on the claim and read paths every request bumped a few shared atomics (the
//! claim outcome counter, the cache hit counters, the claim-time histogram, the
//! funnel's stage counts). On two cores each of those bounces one cache line between
//! the runtime's two workers; a profile of `benches/hot-reads.sh` put the counters,
//! the histogram and the funnel at about 600 ns of a sold-out refusal's 11.7 µs of
//! user time with two workers, and about 200 ns with one (benches/README.md). Kept per
//! thread, each count is an uncontended add to a line its own core holds.
//!
//! - [`PerThread`]: one value per thread (`thread_local`'s `ThreadLocal`), each on its
//!   own cache line, and a walk over all of them for the reader.
//! - [`StripedCounter`] and [`StripedHistogram`]: a `metrics` counter or histogram fed
//!   through per-thread cells. What they hold reaches the recorder at [`flush_metrics`],
//!   which a background thread calls every [`FLUSH_EVERY`] and `GET /metrics` calls
//!   before it renders, so a scrape sees every count made before it.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use metrics::{Counter, Histogram};
use parking_lot::Mutex;
use thread_local::ThreadLocal;

/// How often the background thread moves the per-thread counts into the recorder.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A thread's buffered histogram samples past which it records them itself (bounds the
/// buffer at 8 KiB per thread between two flushes).
const SAMPLES_BUFFERED: usize = 1_024;

/// A value on a cache line of its own (128 bytes: two lines, as adjacent-line prefetch
/// pairs them), so two threads' values never share one.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// One `T` per thread that touches it, made by `Default` on its first touch.
pub struct PerThread<T: Send> {
    cells: ThreadLocal<Padded<T>>,
}

impl<T: Send + Default> Default for PerThread<T> {
    fn default() -> Self {
        PerThread {
            cells: ThreadLocal::new(),
        }
    }
}

impl<T: Send + Default> PerThread<T> {
    /// This thread's value.
    pub fn local(&self) -> &T {
        self.cells.get_or_default()
    }
}

impl<T: Send + Sync> PerThread<T> {
    /// Every thread's value (threads that have ended included: what they counted stays).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.cells.iter().map(|p| &p.0)
    }
}

/// Something holding counts not yet in the recorder.
trait Flush: Send + Sync {
    fn flush(&self);
}

/// Every striped metric alive, for [`flush_metrics`]; dropped ones are pruned there.
static STRIPED: Mutex<Vec<Weak<dyn Flush>>> = Mutex::new(Vec::new());

/// `m`, shared, and known to [`flush_metrics`] from now on.
fn registered<M: Flush + 'static>(m: M) -> Arc<M> {
    static FLUSHER: Once = Once::new();
    FLUSHER.call_once(|| {
        std::thread::Builder::new()
            .name("metrics-flush".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush_metrics();
            })
            .map(drop)
            .unwrap_or_else(
                |e| tracing::warn!(error = %e, "no metrics flush thread; /metrics still flushes"),
            );
    });
    let m = Arc::new(m);
    let weak: Weak<dyn Flush> = Arc::downgrade(&m) as Weak<M>;
    STRIPED.lock().push(weak);
    m
}

/// Moves every count made so far into the recorder.
pub fn flush_metrics() {
    let live: Vec<Arc<dyn Flush>> = {
        let mut all = STRIPED.lock();
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for m in live {
        m.flush();
    }
}

/// A counter counted per thread; see the module's note.
pub struct StripedCounter {
    cells: PerThread<AtomicU64>,
    sink: Counter,
}

impl StripedCounter {
    pub fn new(sink: Counter) -> Arc<Self> {
        registered(StripedCounter {
            cells: PerThread::default(),
            sink,
        })
    }

    pub fn increment(&self, n: u64) {
        self.cells.local().fetch_add(n, Ordering::Relaxed);
    }
}

impl Flush for StripedCounter {
    fn flush(&self) {
        let n: u64 = self
            .cells
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .sum();
        // Also when 0: the series exists from its first flush, as a counter registered
        // with `increment(0)` would.
        self.sink.increment(n);
    }
}

/// A histogram whose samples are buffered per thread; see the module's note.
pub struct StripedHistogram {
    cells: PerThread<Mutex<Vec<f64>>>,
    sink: Histogram,
}

impl StripedHistogram {
    pub fn new(sink: Histogram) -> Arc<Self> {
        registered(StripedHistogram {
            cells: PerThread::default(),
            sink,
        })
    }

    pub fn record(&self, value: f64) {
        // This thread's own lock: uncontended but for a flush passing by.
        let mut buf = self.cells.local().lock();
        if buf.capacity() == 0 {
            buf.reserve_exact(SAMPLES_BUFFERED);
        }
        buf.push(value);
        if buf.len() >= SAMPLES_BUFFERED {
            // Recorded from the buffer, which keeps its room: a buffer given away here
            // was grown again from nothing (eight reallocations and copies per 1,024
            // samples, and fresh pages faulted in under a crowd).
            self.record_all(&buf);
            buf.clear();
        }
    }

    fn record_all(&self, samples: &[f64]) {
        for &v in samples {
            self.sink.record(v);
        }
    }
}

impl Flush for StripedHistogram {
    fn flush(&self) {
        for cell in self.cells.iter() {
            // Swapped for an empty buffer of full size, so the thread is held only for
            // the swap, not while its samples are recorded.
            let samples = {
                let mut buf = cell.lock();
                if buf.is_empty() {
                    continue;
                }
                std::mem::replace(&mut *buf, Vec::with_capacity(SAMPLES_BUFFERED))
            };
            self.record_all(&samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn per_thread_values_are_each_threads_own_and_all_are_walked() {
        let cells: Arc<PerThread<AtomicU64>> = Arc::new(PerThread::default());
        let threads: Vec<_> = (1..=4u64)
            .map(|n| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    for _ in 0..n * 1_000 {
                        cells.local().fetch_add(1, Ordering::Relaxed);
                    }
                    cells.local().load(Ordering::Relaxed)
                })
            })
            .collect();
        let own: Vec<u64> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        // Each thread saw only its own counts (thread ids may be reused, so a later
        // thread can start from an ended one's cell: at least its own, then).
        assert!(own.iter().zip(1..=4u64).all(|(&seen, n)| seen >= n * 1_000));
        let total: u64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 10_000);
    }

    #[test]
    fn every_count_and_sample_reaches_the_recorder_at_a_flush() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let (counter, histogram) = metrics::with_local_recorder(&recorder, || {
            (
                StripedCounter::new(metrics::counter!("test_striped_total")),
                StripedHistogram::new(metrics::histogram!("test_striped_seconds")),
            )
        });
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (c, h) = (counter.clone(), histogram.clone());
                std::thread::spawn(move || {
                    // Past the buffer's bound twice (a buffer used again after it was
                    // recorded), so both of its paths are taken.
                    for i in 0..(2 * SAMPLES_BUFFERED + 10) {
                        c.increment(2);
                        h.record(i as f64);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        flush_metrics();
        let snapshot = snapshotter.snapshot().into_vec();
        let value = |name: &str| {
            snapshot
                .iter()
                .find(|(k, _, _, _)| k.key().name() == name)
                .map(|(_, _, _, v)| v)
        };
        let per_thread = 2 * SAMPLES_BUFFERED + 10;
        assert_eq!(
            value("test_striped_total"),
            Some(&DebugValue::Counter(3 * 2 * per_thread as u64))
        );
        match value("test_striped_seconds") {
            Some(DebugValue::Histogram(samples)) => {
                // Each sample once: none lost, none recorded twice.
                let mut got: Vec<f64> = samples.iter().map(|v| v.into_inner()).collect();
                got.sort_by(f64::total_cmp);
                let mut want: Vec<f64> = (0..3)
                    .flat_map(|_| (0..per_thread).map(|i| i as f64))
                    .collect();
                want.sort_by(f64::total_cmp);
                assert_eq!(got, want);
            }
            other => panic!("no histogram: {other:?}"),
        }
    }
}
