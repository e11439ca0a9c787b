//! A circuit breaker for the store: after `threshold` consecutive calls that could not
//! reach it, calls fail at once for `cool_down` (the circuit is open) instead of each
//! waiting for its timeout and piling reconnects onto a dead server. After the
//! cool-down one call at a time goes through as a probe (half-open): its success closes
//! the circuit, its failure opens it for another cool-down.
//!
//! `stampede_breaker_open{dependency="store"}` is 1 from the moment it opens until a call
//! closes it again (open and half-open alike), else 0, so an alert can page on it.
//!
//! Lock-free (three atomics), because every claim asks it. Hand-written rather than a
//! crate: the general-purpose ones wrap each call in their own future types and
//! failure policies, where this needs two loads on the hot path and the engine's own
//! notion of "unreachable" ([`crate::EngineError::is_unreachable`]).

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

pub struct CircuitBreaker {
    threshold: u32,
    cool_down_ms: i64,
    /// Consecutive unreachable calls while closed.
    failures: AtomicU32,
    /// 0 while closed; else when the open circuit lets a probe through (ms).
    open_until_ms: AtomicI64,
    /// When the current probe started (ms); a probe that never reports back (its
    /// caller gave up) is replaced after a cool-down.
    probe_ms: AtomicI64,
    /// `stampede_breaker_open`: set only when the circuit opens or closes, never per call.
    open_gauge: metrics::Gauge,
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Call,
    /// Half-open: go ahead; this call decides whether the circuit closes.
    Probe,
    /// Open: fail at once.
    Refuse,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: std::time::Duration) -> Self {
        let open_gauge = metrics::gauge!("stampede_breaker_open", "dependency" => "store");
        // Present (closed) from the start, so that an alert on it sees the series.
        open_gauge.set(0.0);
        CircuitBreaker {
            threshold: threshold.max(1),
            cool_down_ms: cool_down.as_millis() as i64,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
            probe_ms: AtomicI64::new(0),
            open_gauge,
        }
    }

    pub fn admit(&self, now_ms: i64) -> Admission {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Call;
        }
        if now_ms < until {
            return Admission::Refuse;
        }
        let probe = self.probe_ms.load(Ordering::Acquire);
        let free = probe == 0 || now_ms - probe >= self.cool_down_ms;
        if free
            && self
                .probe_ms
                .compare_exchange(probe, now_ms.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Refuse
        }
    }

    /// A call reached the store (whatever it answered).
    pub fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until_ms.load(Ordering::Relaxed) != 0 {
            self.open_until_ms.store(0, Ordering::Release);
            self.probe_ms.store(0, Ordering::Release);
            self.publish();
            tracing::info!("store reachable again: circuit closed");
        }
    }

    /// A call could not reach the store.
    pub fn failure(&self, admission: Admission, now_ms: i64) {
        let open = |why: &str| {
            self.open_until_ms
                .store(now_ms + self.cool_down_ms, Ordering::Release);
            self.probe_ms.store(0, Ordering::Release);
            self.publish();
            tracing::warn!(
                cool_down_ms = self.cool_down_ms,
                "store unreachable: circuit open ({why})"
            );
        };
        if admission == Admission::Probe {
            open("the probe failed");
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold && self.open_until_ms.load(Ordering::Acquire) == 0 {
            open("consecutive failures");
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }

    /// Sets `stampede_breaker_open` from the state, and again if an open and a close
    /// raced while it did: whichever sets it last then leaves it matching the state.
    fn publish(&self) {
        let gauge = |open: bool| self.open_gauge.set(if open { 1.0 } else { 0.0 });
        let open = self.is_open();
        gauge(open);
        if self.is_open() != open {
            gauge(!open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn opens_after_consecutive_failures_and_probes_one_at_a_time() {
        let b = CircuitBreaker::new(3, Duration::from_millis(1_000));
        for _ in 0..2 {
            assert_eq!(b.admit(0), Admission::Call);
            b.failure(Admission::Call, 0);
        }
        assert_eq!(b.admit(0), Admission::Call, "two failures do not open it");
        b.failure(Admission::Call, 10);
        assert!(b.is_open());
        assert_eq!(b.admit(500), Admission::Refuse, "open: refused at once");
        assert_eq!(b.admit(1_009), Admission::Refuse);
        assert_eq!(
            b.admit(1_010),
            Admission::Probe,
            "after the cool-down, a probe"
        );
        assert_eq!(
            b.admit(1_011),
            Admission::Refuse,
            "only one probe at a time"
        );
        b.failure(Admission::Probe, 1_020);
        assert_eq!(
            b.admit(1_500),
            Admission::Refuse,
            "a failed probe reopens it"
        );
        assert_eq!(b.admit(2_020), Admission::Probe);
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.admit(2_021), Admission::Call, "a good probe closes it");
        b.failure(Admission::Call, 2_030);
        assert_eq!(b.admit(2_031), Admission::Call, "the count starts over");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = CircuitBreaker::new(2, Duration::from_millis(100));
        b.failure(Admission::Call, 0);
        b.success();
        b.failure(Admission::Call, 0);
        assert_eq!(b.admit(1), Admission::Call);
    }

    #[test]
    fn an_abandoned_probe_is_replaced_after_a_cool_down() {
        let b = CircuitBreaker::new(1, Duration::from_millis(100));
        b.failure(Admission::Call, 0);
        assert_eq!(b.admit(100), Admission::Probe);
        // That caller never reports back.
        assert_eq!(b.admit(150), Admission::Refuse);
        assert_eq!(b.admit(200), Admission::Probe);
    }
}
