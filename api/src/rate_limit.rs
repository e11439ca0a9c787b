//! Per-user and per-address rate limits on the claim and sign-in routes (contract:
//! `STAMPEDE_USER_RATE`, default 20 per second with a burst of twice that, and
//! `STAMPEDE_IP_RATE`, off by default because many users share an address).
//!
//! governor's keyed GCRA limiters: one small state per key, kept in a concurrent map.
//! Memory stays bounded because a housekeeping task drops, every few seconds, every key
//! whose state is back to "fresh" (it has not been used for a full burst period).
//!
//! Refusals are counted in `stampede_rate_limited_total{scope="user"|"ip"}`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// How often idle keys are dropped.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

pub struct RateLimits {
    user: Option<DefaultKeyedRateLimiter<String>>,
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// `stampede_rate_limited_total{scope="user"}` and `{scope="ip"}`.
    refused_user: metrics::Counter,
    refused_ip: metrics::Counter,
}

/// `per_second` requests a second with a burst of twice that; `None` when 0 (off).
fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    pub fn new(user_per_second: u32, ip_per_second: u32) -> Self {
        RateLimits {
            user: limiter(user_per_second),
            ip: limiter(ip_per_second),
            clock: DefaultClock::default(),
            refused_user: crate::telemetry::rate_limited("user"),
            refused_ip: crate::telemetry::rate_limited("ip"),
        }
    }

    /// `Err(seconds to wait)` when the user or the address is over its rate.
    pub fn check(&self, user_id: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let wait = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if let Some(l) = &self.user {
            l.check_key(&user_id.to_string()).map_err(|n| {
                self.refused_user.increment(1);
                wait(n.wait_time_from(self.clock.now()))
            })?;
        }
        if let (Some(l), Some(ip)) = (&self.ip, ip) {
            l.check_key(&ip).map_err(|n| {
                self.refused_ip.increment(1);
                wait(n.wait_time_from(self.clock.now()))
            })?;
        }
        Ok(())
    }

    /// Drops idle keys forever (until the runtime stops).
    pub fn spawn_housekeeping(self: &Arc<Self>) {
        let limits = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOUSEKEEPING_EVERY).await;
                let Some(l) = limits.upgrade() else { return };
                if let Some(u) = &l.user {
                    u.retain_recent();
                    u.shrink_to_fit();
                }
                if let Some(i) = &l.ip {
                    i.retain_recent();
                    i.shrink_to_fit();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_the_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(5, 0);
        let allowed = (0..50)
            .filter(|_| limits.check("busy", None).is_ok())
            .count();
        assert_eq!(allowed, 10, "a burst of twice the rate");
        assert!(matches!(limits.check("busy", None), Err(s) if s >= 1));
        assert!(limits.check("calm", None).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::new(0, 0);
        assert!((0..1_000).all(|_| limits
            .check("u", Some(IpAddr::from([127, 0, 0, 1])))
            .is_ok()));
    }

    #[test]
    fn an_address_limit_applies_across_users() {
        let limits = RateLimits::new(0, 2);
        let ip = Some(IpAddr::from([203, 0, 113, 9]));
        let allowed = (0..20)
            .filter(|u| limits.check(&format!("u{u}"), ip).is_ok())
            .count();
        assert_eq!(allowed, 4);
        assert!(limits
            .check("u", Some(IpAddr::from([203, 0, 113, 10])))
            .is_ok());
    }
}
