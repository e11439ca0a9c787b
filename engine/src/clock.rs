//! Wall-clock time in unix milliseconds, the one unit the engine passes around for
//! instants (scripts, events and database rows all use it, so no time-zone handling
//! is needed anywhere on the claim path).

use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds since the unix epoch, now. Read straight from the system clock: it runs
/// several times a request, and chrono's `Utc::now` builds a calendar date each time.
pub fn now_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        // A clock set before 1970.
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// RFC 3339 in UTC with millisecond precision, the contract's time format.
pub fn to_rfc3339(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// A source of "now", injectable so tests can walk through days (the sign-in day and
/// streak depend on it).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(ms))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_what_chrono_says() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = super::now_ms();
        let after = chrono::Utc::now().timestamp_millis();
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }
}
