//! Latency histograms (HDR) and the per-second timeline drawn by `--plot`.
//!
//! Latencies are recorded in microseconds. The whole-run histogram keeps 3 significant
//! digits (p99.9 must be exact to 0.1 %); the per-second ones keep 2, because there is one
//! per second of run and they only feed a chart.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram holds: one hour, in microseconds. Anything above is
/// clamped (only an open-loop run that fell an hour behind could get there).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A histogram for latencies in microseconds with `sigfig` significant digits.
pub fn latency_histogram(sigfig: u8) -> Histogram<u64> {
    // Only constants reach this call (low 1, high far above 2 * low, sigfig clamped into
    // 1..=5), which hdrhistogram always accepts: no input can make it fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig.clamp(1, 5))
        .expect("constant histogram bounds are valid")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(hist: &mut Histogram<u64>, micros: u64) {
    hist.saturating_record(micros.clamp(1, MAX_LATENCY_US));
}

/// The latency summary the report prints, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Reads the percentiles out of a microsecond histogram. An empty histogram gives zeros.
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
            mean: hist.mean() / 1000.0,
        }
    }
}

/// One second of the run, as the chart and the JSON report show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecondStats {
    /// Seconds since the start of the run (0 = the first second).
    pub second: u64,
    /// Replies received in that second (errors excluded).
    pub requests: u64,
    /// Requests that got no reply in that second.
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Per-second latency buckets, shared by all workers. Each worker keeps its current second
/// to itself and merges it in here once the second is over, so the lock is taken about
/// once per worker per second, never per request.
#[derive(Default)]
pub struct Timeline {
    seconds: Vec<Bucket>,
}

struct Bucket {
    latency: Histogram<u64>,
    errors: u64,
}

impl Timeline {
    /// Adds one worker's second `second` into the timeline.
    pub fn merge(&mut self, second: u64, latency: &Histogram<u64>, errors: u64) {
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        if index >= 86_400 {
            // A day-long run is not charted second by second; ignore rather than allocate.
            return;
        }
        while self.seconds.len() <= index {
            self.seconds.push(Bucket {
                latency: latency_histogram(2),
                errors: 0,
            });
        }
        let bucket = &mut self.seconds[index];
        // Same bounds on both sides, so `add` cannot fail; a failure would only drop a
        // chart point.
        let _ = bucket.latency.add(latency);
        bucket.errors += errors;
    }

    /// The per-second rows, from second 0 to the last second that saw anything.
    pub fn seconds(&self) -> Vec<SecondStats> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let p = Percentiles::of(&b.latency);
                SecondStats {
                    second: i as u64,
                    requests: b.latency.len(),
                    errors: b.errors,
                    p50_ms: p.p50,
                    p90_ms: p.p90,
                    p99_ms: p.p99,
                    max_ms: p.max,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_in_milliseconds() {
        let mut h = latency_histogram(3);
        for us in 1..=1000 {
            record(&mut h, us * 1000); // 1 ms ..= 1000 ms
        }
        let p = Percentiles::of(&h);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p90 - 900.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn an_empty_histogram_reads_as_zeros() {
        assert_eq!(
            Percentiles::of(&latency_histogram(3)),
            Percentiles::default()
        );
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_dropped() {
        let mut h = latency_histogram(3);
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn the_timeline_merges_workers_into_the_same_second() {
        let mut t = Timeline::default();
        let mut a = latency_histogram(2);
        record(&mut a, 1000);
        let mut b = latency_histogram(2);
        record(&mut b, 3000);
        t.merge(2, &a, 0);
        t.merge(2, &b, 1);
        let rows = t.seconds();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].requests, 0);
        assert_eq!(rows[2].requests, 2);
        assert_eq!(rows[2].errors, 1);
        assert!(rows[2].max_ms >= 2.9);
    }
}
