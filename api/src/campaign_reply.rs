//! The reply of `GET /v1/campaigns/{id}`, rendered once per change of what it shows
//! rather than once per request.
//!
//! A flash crowd reads the same campaign thousands of times a second, and between two
//! changes of its counters every one of those replies is the same bytes. So the JSON
//! and its ETag are kept per campaign with the values they were rendered from (the
//! remaining stock, the live end, the status); a read whose values are the same gets
//! the kept bytes (a reference count), any other renders and replaces them. The status
//! depends on the clock too (scheduled, then active, then ended), so it is part of the
//! key: the reply turns at the same instant it would if rendered every time.
//!
//! The kept replies are per thread (each runtime worker renders a change once for
//! itself): a reply shared by all threads meant a shared lock word and three shared
//! reference counts (the entry's, the body's and the tag's), each written by both cores
//! on every read; a profile of `benches/hot-reads.sh` showed those lines bouncing
//! between the two workers (`crate::striped` in the engine says why that costs).

use std::cell::RefCell;
use std::hash::{Hash, Hasher};

use axum::http::HeaderValue;
use bytes::Bytes;
use stampede_engine::campaign::{Campaign, CampaignStatus, LiveCounters};
use stampede_engine::striped::PerThread;

use crate::error::ApiError;
use crate::views;

/// Campaigns whose reply each thread keeps; past it the least recently read are
/// rendered again.
const CAMPAIGNS_KEPT: usize = 10_000;

/// What a campaign's reply shows beyond its row, which does not change (a close moves
/// the live end, which is here).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Shown {
    remaining: u64,
    ends_at_ms: i64,
    status: CampaignStatus,
}

/// One rendered reply: the JSON bytes and their strong ETag.
#[derive(Clone)]
pub struct Rendered {
    shown: Shown,
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Rendered {
    /// Whether an `If-None-Match` header value names this reply's tag (or is `*`).
    pub fn matches(&self, if_none_match: &str) -> bool {
        let tag = self.etag.as_bytes();
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|t| t.as_bytes() == tag || t == "*")
    }
}

/// One thread's kept replies, by campaign id (only its own thread touches it).
struct Kept(RefCell<quick_cache::unsync::Cache<u64, Rendered>>);

impl Default for Kept {
    fn default() -> Self {
        Kept(RefCell::new(quick_cache::unsync::Cache::new(
            CAMPAIGNS_KEPT,
        )))
    }
}

/// The kept replies, per thread.
#[derive(Default)]
pub struct CampaignReplies {
    kept: PerThread<Kept>,
}

impl CampaignReplies {
    /// The reply for campaign `c` with counters `k` at `now_ms`: the kept one when it
    /// shows the same, else a new one (kept for the next reads).
    pub fn reply(&self, c: &Campaign, k: &LiveCounters, now_ms: i64) -> Result<Rendered, ApiError> {
        let shown = Shown {
            remaining: k.remaining,
            ends_at_ms: c.live_ends_at_ms(k),
            status: c.live_status(now_ms, k),
        };
        // Never borrowed twice (nothing here calls back), but a failed borrow would only
        // mean rendering this one reply afresh.
        let kept = &self.kept.local().0;
        if let Some(r) = kept.try_borrow().ok().and_then(|k| k.get(&c.id).cloned()) {
            if r.shown == shown {
                return Ok(r);
            }
        }
        let body = serde_json::to_vec(&views::campaign_at(c, k, now_ms))
            .map_err(|_| ApiError::Unavailable("Try again."))?;
        let etag =
            HeaderValue::from_str(&etag(&body)).map_err(|_| ApiError::Unavailable("Try again."))?;
        let r = Rendered {
            shown,
            body: Bytes::from(body),
            etag,
        };
        if let Ok(mut k) = kept.try_borrow_mut() {
            k.insert(c.id, r.clone());
        }
        Ok(r)
    }
}

/// A strong ETag over the exact bytes of the reply: equal bytes, equal tag.
fn etag(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_engine::campaign::CampaignKind;

    fn campaign() -> Campaign {
        Campaign {
            id: 7,
            kind: CampaignKind::FlashSale,
            name: "Phone".into(),
            total: 10,
            per_user_limit: 1,
            price_cents: 100,
            total_cents: 0,
            min_cents: 0,
            split_seed: 0,
            starts_at_ms: 1_000,
            ends_at_ms: 10_000,
            created_at_ms: 0,
            ticket_required: false,
            ticket_lead_secs: 5,
            buckets: 1,
            payment_window_secs: None,
        }
    }

    fn counters(remaining: u64) -> LiveCounters {
        LiveCounters {
            remaining,
            claims: 10 - remaining,
            sold: 10 - remaining,
            cents: 0,
            ends_at_ms: 10_000,
        }
    }

    /// Whatever is kept, the reply is the bytes a fresh render gives.
    fn fresh(c: &Campaign, k: &LiveCounters, now_ms: i64) -> Vec<u8> {
        serde_json::to_vec(&views::campaign_at(c, k, now_ms)).expect("json")
    }

    #[test]
    fn the_same_values_give_the_kept_reply_and_a_change_renders_anew() {
        let replies = CampaignReplies::default();
        let c = campaign();
        let first = replies.reply(&c, &counters(5), 2_000).expect("reply");
        let again = replies.reply(&c, &counters(5), 2_500).expect("reply");
        let same = |a: &Rendered, b: &Rendered| a.body.as_ptr() == b.body.as_ptr();
        assert!(
            same(&first, &again),
            "nothing shown changed: the kept bytes"
        );
        let sold = replies.reply(&c, &counters(4), 2_500).expect("reply");
        assert!(!same(&first, &sold));
        assert_eq!(sold.body, fresh(&c, &counters(4), 2_500));
        assert_ne!(sold.etag, first.etag);
    }

    #[test]
    fn the_reply_turns_with_the_clock() {
        let replies = CampaignReplies::default();
        let c = campaign();
        let scheduled = replies.reply(&c, &counters(10), 500).expect("reply");
        let active = replies.reply(&c, &counters(10), 1_000).expect("reply");
        let ended = replies.reply(&c, &counters(10), 10_000).expect("reply");
        for (r, now) in [(&scheduled, 500), (&active, 1_000), (&ended, 10_000)] {
            assert_eq!(r.body, fresh(&c, &counters(10), now));
        }
        assert_ne!(scheduled.etag, active.etag);
        assert_ne!(active.etag, ended.etag);
        // A close moves the live end: a new reply.
        let mut closed = counters(10);
        closed.ends_at_ms = 5_000;
        let r = replies.reply(&c, &closed, 2_000).expect("reply");
        assert_eq!(r.body, fresh(&c, &closed, 2_000));
    }

    #[test]
    fn if_none_match_names_the_tag_among_others_or_star() {
        let replies = CampaignReplies::default();
        let r = replies
            .reply(&campaign(), &counters(3), 2_000)
            .expect("reply");
        let tag = r.etag.to_str().expect("ascii").to_string();
        assert!(r.matches(&tag));
        assert!(r.matches(&format!("\"other\", {tag}")));
        assert!(r.matches("*"));
        assert!(!r.matches("\"other\""));
    }
}
