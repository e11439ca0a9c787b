//! Behaviour events: what a client reports a user did (`view`, `share`, ...) around a
//! campaign, taken by `POST /v1/events`, queued beside (never in) the claim queue, and
//! written by the workers to the events table, partitioned by UTC day (`crate::db::events`).
//!
//! An event gets its id at ingest (16 random hex digits): the queue is at-least-once,
//! the id is part of the row's key, so a redelivered event is written once.
//! The rules (contract, "Behaviour events and the funnel"): `type` is 1 to 32 of
//! `[a-z_]`, and not one of the engine's own funnel stages ([`RESERVED_TYPES`]); `props`, when given, a JSON object of at most [`MAX_PROPS_BYTES`]
//! serialized; `at` within [now - [`MAX_AGE_MS`], now + [`MAX_AHEAD_MS`]].

use serde::{Deserialize, Serialize};

/// The most events one request carries.
pub const MAX_EVENTS: usize = 100;
/// The longest `type`.
pub const MAX_TYPE_LEN: usize = 32;
/// The most bytes `props` may take, serialized as JSON (compact).
pub const MAX_PROPS_BYTES: usize = 1024;
/// How old an event's `at` may be: a client that buffered events offline for a day.
pub const MAX_AGE_MS: i64 = 24 * 3_600 * 1_000;
/// How far ahead an event's `at` may be: a client clock running a little fast.
pub const MAX_AHEAD_MS: i64 = 5 * 60 * 1_000;

/// The types a client may not report: the funnel's stages the engine counts itself
/// (`crate::funnel::STAGES`), which a client's events would otherwise add to.
pub const RESERVED_TYPES: [&str; 4] = crate::funnel::STAGES;

/// One behaviour event as queued and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BehaviourEvent {
    /// 16 lowercase hex digits, given at ingest.
    pub id: String,
    pub campaign_id: u64,
    pub user_id: String,
    /// The event's type (`view`, ...), see [`valid_type`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (the client's `at`, or the ingest time), unix ms.
    pub at_ms: i64,
    /// The client's `props` object, serialized compactly; `None` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub props: Option<String>,
    /// When the api took it, unix ms.
    pub received_at_ms: i64,
}

/// Why an event was refused; the message names the field (the api's 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Whether `t` is a valid event type: 1 to [`MAX_TYPE_LEN`] characters of `[a-z_]`.
pub fn valid_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TYPE_LEN
        && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// A fresh event id: 16 random hex digits.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl BehaviourEvent {
    /// Validates one event of a request (the `index`th, for the messages) taken at
    /// `now_ms`, and gives it its id.
    pub fn new(
        index: usize,
        user_id: &str,
        kind: &str,
        campaign_id: u64,
        at_ms: Option<i64>,
        props: Option<&serde_json::Map<String, serde_json::Value>>,
        now_ms: i64,
    ) -> Result<BehaviourEvent, Invalid> {
        if !valid_type(kind) {
            return Err(Invalid(format!(
                "events[{index}].type must be 1 to {MAX_TYPE_LEN} characters of a-z and _."
            )));
        }
        if RESERVED_TYPES.contains(&kind) {
            return Err(Invalid(format!(
                "events[{index}].type must not be one of the engine's own funnel stages ({}).",
                RESERVED_TYPES.join(", ")
            )));
        }
        let at_ms = at_ms.unwrap_or(now_ms);
        if at_ms < now_ms - MAX_AGE_MS || at_ms > now_ms + MAX_AHEAD_MS {
            return Err(Invalid(format!(
                "events[{index}].at must be within the last 24 hours (and at most 5 minutes ahead)."
            )));
        }
        let props = match props {
            None => None,
            Some(p) => {
                // Serializing a map of JSON values cannot fail.
                let text = serde_json::to_string(p).unwrap_or_default();
                if text.len() > MAX_PROPS_BYTES {
                    return Err(Invalid(format!(
                        "events[{index}].props must be at most {MAX_PROPS_BYTES} bytes of JSON."
                    )));
                }
                Some(text)
            }
        };
        Ok(BehaviourEvent {
            id: new_id(),
            campaign_id,
            user_id: user_id.to_string(),
            kind: kind.to_string(),
            at_ms,
            props,
            received_at_ms: now_ms,
        })
    }

    /// The queue's text of the event: `b` then its JSON.
    pub fn encode(&self) -> String {
        // A struct of strings and integers always serializes.
        format!("b{}", serde_json::to_string(self).unwrap_or_default())
    }

    /// The event from [`BehaviourEvent::encode`]'s text.
    pub fn decode(s: &str) -> Option<BehaviourEvent> {
        let e: BehaviourEvent = serde_json::from_str(s.strip_prefix('b')?).ok()?;
        (e.id.len() == 16 && valid_type(&e.kind)).then_some(e)
    }

    /// The UTC day of `at_ms` as `YYYYMMDD` (its PostgreSQL partition's suffix).
    pub fn day(&self) -> String {
        day_of(self.at_ms)
    }

    /// [`BehaviourEvent::day`] as the integer of the `day` column.
    pub fn day_number(&self) -> i32 {
        self.day().parse().unwrap_or(0)
    }
}

/// The UTC day of a unix-ms instant as `YYYYMMDD`.
pub fn day_of(ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y%m%d").to_string(),
        None => String::from("19700101"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_720_000_000; // 2025-12-03T00:00:00Z

    #[test]
    fn types_are_one_to_thirty_two_of_lowercase_and_underscore() {
        assert!(valid_type("view"));
        assert!(valid_type("add_to_cart"));
        assert!(valid_type(&"a".repeat(32)));
        for bad in ["", "View", "view-1", "vi ew", "é", &"a".repeat(33)] {
            assert!(!valid_type(bad), "{bad:?}");
        }
        for stage in ["ticket", "claim", "accepted", "paid"] {
            let err = BehaviourEvent::new(1, "u1", stage, 1, None, None, NOW).expect_err(stage);
            assert!(err.0.contains("funnel stages"), "{err}");
        }
    }

    #[test]
    fn at_must_be_within_a_day_back_and_five_minutes_ahead() {
        let ok = |at| BehaviourEvent::new(0, "u1", "view", 1, Some(at), None, NOW).is_ok();
        assert!(ok(NOW - MAX_AGE_MS));
        assert!(ok(NOW + MAX_AHEAD_MS));
        assert!(!ok(NOW - MAX_AGE_MS - 1));
        assert!(!ok(NOW + MAX_AHEAD_MS + 1));
        let e = BehaviourEvent::new(3, "u1", "view", 1, None, None, NOW).expect("valid");
        assert_eq!((e.at_ms, e.received_at_ms), (NOW, NOW));
    }

    #[test]
    fn props_are_at_most_one_kib_serialized() {
        let props = |n: usize| {
            let mut m = serde_json::Map::new();
            // {"k":"..."} is 8 bytes plus the string.
            m.insert("k".into(), serde_json::Value::String("x".repeat(n)));
            m
        };
        assert!(BehaviourEvent::new(0, "u", "view", 1, None, Some(&props(1016)), NOW).is_ok());
        let err = BehaviourEvent::new(2, "u", "view", 1, None, Some(&props(1017)), NOW)
            .expect_err("too big");
        assert!(err.0.starts_with("events[2].props"), "{err}");
    }

    #[test]
    fn events_round_trip_through_the_queue_text_with_fresh_ids() {
        let mut props = serde_json::Map::new();
        props.insert("ref".into(), "home".into());
        let e = BehaviourEvent::new(0, "u1", "view", 17, Some(NOW - 5), Some(&props), NOW)
            .expect("valid");
        assert_eq!(e.id.len(), 16);
        assert!(e.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(BehaviourEvent::decode(&e.encode()), Some(e.clone()));
        let other = BehaviourEvent::new(0, "u1", "view", 17, None, None, NOW).expect("valid");
        assert_ne!(e.id, other.id);
        assert_eq!(BehaviourEvent::decode("17|c17-1"), None);
        assert_eq!(e.day(), "20251202");
        assert_eq!(day_of(NOW), "20251203");
    }
}
