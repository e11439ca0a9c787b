//! Bucketed hot campaigns: one campaign's live state spread over N buckets, each under a
//! hash tag of its own, so that one hot campaign uses N cluster shards (README,
//! "Bucketed hot campaigns").
//!
//! - **Tags.** Cut the slot ring into N equal arcs, `[a * 16384 / N, (a + 1) * 16384 / N)`
//!   (`redis-cli --cluster create` gives M masters M equal arcs, so buckets in different
//!   arcs land on different masters while N <= M, and spread evenly beyond). Bucket 0 is
//!   the campaign's own tag `{c:ID}` (an unbucketed campaign is a campaign of one bucket),
//!   in whatever arc its slot falls, A. Bucket b > 0 is `{c:ID:bB-K}`, with the smallest K
//!   whose slot lies in the middle half of arc `(A + b) mod N`. Computed, never stored:
//!   every process finds the same tags.
//! - **Home bucket.** A user claims in `fnv1a(user id) mod N`, always the same bucket, so
//!   the per-user limit stays exact inside one slot.
//! - **Claim ids** of a bucketed campaign carry the bucket, `c17-b2-0000000005`: each
//!   bucket numbers its own claims.
//! - **Transfers.** When a user's home bucket cannot serve a claim but others hold stock,
//!   units (or red packets) move to it: out of the donor in one script that records the
//!   transfer under an id, into the home bucket in another that remembers the id (a
//!   re-sent or late delivery adds nothing twice), then the donor forgets it. A crash in
//!   between strands the units in the donor's transfer record, counted as remaining,
//!   never sold twice; the sweeper delivers them (see `store::redis_buckets`).
//!
//! The embedded store accepts `buckets` and behaves the same (one lock for the whole
//! campaign, so it needs no transfers).

use std::collections::HashMap;

use parking_lot::Mutex;
use redis::cluster_routing::Slot;

use crate::claim::claim_seq;
use crate::error::Result;
use crate::order::{Order, OrderCounts};
use crate::red_packet::Packet;
use crate::redis_conn::RedisConn;
use crate::store::{keys, LiveState, UserRecord};

/// The most buckets a campaign may have.
pub const MAX_BUCKETS: u64 = 64;
/// Redis Cluster's slot count.
const SLOTS: u32 = 16_384;

/// The bucket a user claims in: FNV-1a (64 bit) of the user id, modulo `buckets`.
/// Stable across processes, platforms and versions: it decides where a user's claims
/// live, in the store and in a rebuild from the database.
pub fn home_bucket(user_id: &str, buckets: u64) -> u64 {
    if buckets <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % buckets
}

/// The hash tag of bucket `bucket` of `buckets` of the campaign (see the module's note).
pub fn tag(campaign_id: u64, bucket: u64, buckets: u64) -> String {
    let base = format!("{{c:{campaign_id}}}");
    if bucket == 0 || buckets <= 1 {
        return base;
    }
    let n = buckets as u32;
    let arc_of = |slot: u32| slot * n / SLOTS;
    let target = (arc_of(u32::from(slot_of(&base))) + bucket as u32) % n;
    // The middle half of the target arc: clear of its neighbours' edges.
    let (lo, hi) = (target * SLOTS / n, (target + 1) * SLOTS / n);
    let quarter = (hi - lo) / 4;
    (0u64..)
        .map(|k| format!("{{c:{campaign_id}:b{bucket}-{k}}}"))
        .find(|t| {
            let s = u32::from(slot_of(t));
            s >= lo + quarter && s < hi - quarter
        })
        .unwrap_or(base)
}

fn slot_of(tag: &str) -> u16 {
    // Slot has no public accessor; its Debug form is `Slot(N)`.
    let s = format!("{:?}", Slot::for_key(tag));
    s.trim_start_matches("Slot(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0)
}

/// The claim id of the `seq`-th claim of bucket `bucket` (of `buckets`).
pub fn claim_id(campaign_id: u64, bucket: u64, buckets: u64, seq: u64) -> String {
    if buckets <= 1 {
        crate::claim::claim_id(campaign_id, seq)
    } else {
        format!("c{campaign_id}-b{bucket}-{seq:010}")
    }
}

/// The bucket named in a claim id (`c17-b2-...`), 0 for an unbucketed id.
pub fn bucket_of_claim(claim_id: &str) -> u64 {
    claim_id
        .split('-')
        .nth(1)
        .and_then(|b| b.strip_prefix('b'))
        .and_then(|b| b.parse().ok())
        .unwrap_or(0)
}

/// One bucket's share of a campaign's live state (see [`split_state`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketPart {
    /// Units (flash sale) or packets (red packet) the bucket starts with.
    pub remaining: u64,
    /// The highest claim sequence number of the bucket so far.
    pub seq: u64,
    /// The bucket's share of the campaign's counters: bucket 0 carries the campaign's
    /// totals from before the load, the others start at 0, so sums stay right.
    pub claims: u64,
    pub sold: u64,
    pub cents: u64,
    /// The users whose home is this bucket.
    pub users: Vec<UserRecord>,
    pub packets: Vec<Packet>,
    /// The orders of the bucket's claims (a claim id names its bucket), and their counts.
    pub orders: Vec<Order>,
    pub order_counts: OrderCounts,
}

/// Splits a campaign's live state over its buckets: users to their home bucket (their
/// claims were made there, so its sequence continues after theirs), the remaining stock
/// spread evenly, unclaimed red packets dealt round-robin. One part for an unbucketed
/// campaign.
pub fn split_state(state: &LiveState) -> Vec<BucketPart> {
    let n = state.campaign.buckets.max(1);
    let mut parts = vec![BucketPart::default(); n as usize];
    for u in &state.users {
        let b = home_bucket(&u.last.user_id, n) as usize;
        parts[b].seq = parts[b].seq.max(claim_seq(&u.last.id).unwrap_or(0));
        parts[b].users.push(u.clone());
    }
    if n == 1 {
        parts[0].seq = parts[0].seq.max(state.seq);
    }
    let k = &state.counters;
    (parts[0].claims, parts[0].sold, parts[0].cents) = (k.claims, k.sold, k.cents);
    if !state.orders.is_empty() && n > 1 {
        // Expiries and cancels give units back (and take them off `sold`) in the
        // order's own bucket: each bucket's `sold` must be what its users hold, or it
        // would go below zero there.
        for part in &mut parts {
            part.sold = part.users.iter().map(|u| u.held).sum();
        }
    }
    for o in &state.orders {
        let b = (bucket_of_claim(&o.claim_id) as usize).min(parts.len() - 1);
        parts[b].order_counts.count(o.status);
        parts[b].orders.push(o.clone());
    }
    parts[0].order_counts.refunds_required = state.order_counts.refunds_required;
    if state.packets.is_empty() {
        for (b, part) in parts.iter_mut().enumerate() {
            part.remaining = k.remaining / n + u64::from((b as u64) < k.remaining % n);
        }
    } else {
        for (i, p) in state.packets.iter().enumerate() {
            parts[i % n as usize].packets.push(*p);
        }
        for part in &mut parts {
            part.remaining = part.packets.len() as u64;
        }
    }
    parts
}

/// How many buckets each campaign has, as this process learned it: from its own loads,
/// or once from the store (bucket 0's state holds `buckets`). A campaign's count never
/// changes, so it is kept for good; a campaign the store has no state for is not kept.
#[derive(Default)]
pub struct BucketCounts {
    known: Mutex<HashMap<u64, u64>>,
}

impl BucketCounts {
    pub fn remember(&self, campaign_id: u64, buckets: u64) {
        self.known.lock().insert(campaign_id, buckets.max(1));
    }

    /// The campaign's bucket count; 1 when the store has no state for it.
    pub async fn of(&self, conn: &RedisConn, campaign_id: u64) -> Result<u64> {
        if let Some(n) = self.known.lock().get(&campaign_id) {
            return Ok(*n);
        }
        let v: (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(keys::state(campaign_id))
            .arg("kind")
            .arg("buckets")
            .query_async(&mut conn.clone())
            .await?;
        match v {
            (None, _) => Ok(1),
            (Some(_), n) => {
                let n = n.unwrap_or(1).max(1);
                self.remember(campaign_id, n);
                Ok(n)
            }
        }
    }
}

/// The bucket of each of `users`, of `buckets`, with each user's position in the input.
pub fn by_bucket<'a>(users: impl Iterator<Item = &'a str>, buckets: u64) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); buckets.max(1) as usize];
    for (i, u) in users.enumerate() {
        out[home_bucket(u, buckets) as usize].push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_buckets_are_stable_and_spread() {
        assert_eq!(home_bucket("anyone", 1), 0);
        assert_eq!(home_bucket("u1", 8), home_bucket("u1", 8));
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(home_bucket("a", 1 << 32), 0x8601ec8c);
        let mut seen = [0u32; 8];
        for u in 0..8_000 {
            seen[home_bucket(&format!("user{u}"), 8) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn bucket_tags_sit_in_arcs_of_their_own() {
        for id in [1u64, 17, 9_999, 123_456] {
            for n in [2u64, 3, 8, 64] {
                let arcs: std::collections::HashSet<u32> = (0..n)
                    .map(|b| {
                        let t = tag(id, b, n);
                        assert!(t.starts_with(&format!("{{c:{id}")) && t.ends_with('}'));
                        u32::from(slot_of(&t)) * n as u32 / SLOTS
                    })
                    .collect();
                assert_eq!(
                    arcs.len(),
                    n as usize,
                    "{n} buckets of campaign {id} in {n} arcs"
                );
            }
        }
        // Three buckets on the three masters of an evenly split cluster.
        for id in 1..200u64 {
            let masters: std::collections::HashSet<u32> = (0..3)
                .map(|b| match slot_of(&tag(id, b, 3)) {
                    0..=5460 => 0,
                    5461..=10922 => 1,
                    _ => 2,
                })
                .collect();
            assert_eq!(masters.len(), 3, "campaign {id}");
        }
        assert_eq!(tag(5, 0, 3), "{c:5}");
        assert_eq!(tag(5, 2, 1), "{c:5}");
    }

    #[test]
    fn claim_ids_name_their_bucket() {
        assert_eq!(claim_id(17, 2, 3, 5), "c17-b2-0000000005");
        assert_eq!(bucket_of_claim("c17-b2-0000000005"), 2);
        assert_eq!(claim_id(17, 0, 1, 5), "c17-0000000005");
        assert_eq!(bucket_of_claim("c17-0000000005"), 0);
        assert_eq!(crate::claim::claim_seq("c17-b2-0000000005"), Some(5));
    }
}
