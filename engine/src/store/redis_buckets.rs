//! The Redis store's bucketed campaigns (see [`crate::buckets`]): a claim batch split by
//! home bucket, transfers of units between buckets so that the whole stock sells, the
//! counters summed over buckets, and the sweeper that delivers transfers a crashed
//! process left half done.
//!
//! A transfer, for a home bucket H short of stock and a donor D:
//! 1. `lua/transfer_out.lua` on D: the units leave D's `remaining` and wait in D's
//!    transfer record under a fresh id (counted as the campaign's remaining meanwhile);
//! 2. `lua/transfer_in.lua` on H: H's `remaining` grows, and H marks the id received;
//! 3. `HDEL` of the record on D.
//!
//! A crash after 1 strands the units in the record; after 2, only the record is left.
//! Either way [`RedisStore::sweep_transfers`] finishes it: step 2 again (a no-op when H
//! has the mark), then 3. Units can be sold from D's remaining or H's remaining, never
//! from a record, and step 2 adds them to H at most once, so nothing sells twice;
//! nothing stays stranded longer than the sweeper's period. Between steps 2 and 3 the
//! units are both in H's remaining and in D's record, and the buckets are read one by
//! one (they live on different nodes), so the summed counters
//! ([`RedisStore::bucketed_counters`]) read during a transfer may be off by its units
//! for that moment; they are exact whenever no transfer is under way.

use std::future::Future;

use futures::future::try_join_all;
use redis::AsyncCommands;

use super::keys::BucketKeys;
use super::redis::{random_id, RedisStore};
use crate::buckets::by_bucket;
use crate::campaign::LiveCounters;
use crate::claim::{ClaimOutcome, ClaimRequest};
use crate::error::Result;
use crate::order::OrderCounts;
use crate::redis_conn::RedisConn;

/// How many times a bucket short of stock asks the others for more (and tries its
/// claims again) before its claims hear `sold_out` even though the campaign still has
/// units somewhere: a bound for a crowd fighting over the last few, which then keeps
/// buying them on its next tries.
const REFILL_ROUNDS: usize = 32;
/// The pause before trying again when no bucket had units to give but some were still
/// travelling between buckets.
const REFILL_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
/// The fewest units a transfer asks for: a hot bucket whose users keep coming takes a
/// few at a time rather than one transfer per claim.
const TRANSFER_MIN: u64 = 16;
/// The most units one transfer moves (red packets travel as script arguments).
const TRANSFER_MAX: u64 = 1_000;
/// How long a bucket remembers a received transfer, seconds: far longer than any
/// delivery of the same transfer can come late.
const RECEIVED_TTL_SECS: u64 = 3_600;

/// A transfer record as `lua/transfer_out.lua` writes it.
struct Transfer {
    to: u64,
    units: u64,
    at_ms: i64,
    gen: String,
    packets: String,
}

impl Transfer {
    fn parse(rec: &str) -> Option<Transfer> {
        let mut f = rec.splitn(5, '|');
        Some(Transfer {
            to: f.next()?.parse().ok()?,
            units: f.next()?.parse().ok()?,
            at_ms: f.next()?.parse().ok()?,
            gen: f.next()?.to_string(),
            packets: f.next()?.to_string(),
        })
    }
}

impl RedisStore {
    /// Runs `f` on every bucket of the campaign at once; results in bucket order.
    pub(super) async fn each_bucket<T, F, Fut>(&self, campaign_id: u64, f: F) -> Result<Vec<T>>
    where
        F: Fn(RedisConn, BucketKeys) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let n = self.buckets.of(&self.conn, campaign_id).await?;
        let calls = (0..n).map(|b| f(self.conn.clone(), BucketKeys::new(campaign_id, b, n)));
        Ok(try_join_all(calls).await?)
    }

    /// A claim batch of a campaign of `buckets` buckets: each request in its user's home
    /// bucket, all buckets at once; outcomes in request order.
    pub(super) async fn claim_bucketed(
        &self,
        campaign_id: u64,
        buckets: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        let groups = by_bucket(requests.iter().map(|r| r.user_id.as_str()), buckets);
        let calls = groups
            .iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(b, idx)| {
                let reqs: Vec<ClaimRequest> = idx.iter().map(|&i| requests[i].clone()).collect();
                async move {
                    let outcomes = self
                        .claim_with_refill(campaign_id, (b as u64, buckets), now_ms, &reqs)
                        .await?;
                    Ok::<_, crate::error::EngineError>((idx, outcomes))
                }
            });
        let mut out = vec![ClaimOutcome::Missing; requests.len()];
        for (idx, outcomes) in try_join_all(calls).await? {
            for (&i, o) in idx.iter().zip(outcomes) {
                out[i] = o;
            }
        }
        Ok(out)
    }

    /// The claim step in one bucket; the claims it turns away for stock are tried again
    /// after units moved in from the other buckets, until no bucket has any to give.
    async fn claim_with_refill(
        &self,
        campaign_id: u64,
        at: (u64, u64),
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        let mut outcomes = self
            .claim_in(campaign_id, at, now_ms, requests, &random_id())
            .await?;
        for _ in 0..REFILL_ROUNDS {
            let short: Vec<usize> = (0..outcomes.len())
                .filter(|&i| outcomes[i] == ClaimOutcome::SoldOut)
                .collect();
            if short.is_empty() {
                break;
            }
            let want: u64 = short.iter().map(|&i| requests[i].quantity).sum();
            if self.refill(campaign_id, at, want, now_ms).await? == 0 {
                // Nothing to take right now. Units may still be on their way between
                // buckets, or just landed here: `sold_out` only once the campaign has
                // none left anywhere.
                let left = self
                    .bucketed_counters(campaign_id, at.1)
                    .await?
                    .map_or(0, |k| k.remaining);
                if left == 0 {
                    break;
                }
                tokio::time::sleep(REFILL_PAUSE).await;
            }
            let retry: Vec<ClaimRequest> = short.iter().map(|&i| requests[i].clone()).collect();
            let again = self
                .claim_in(campaign_id, at, now_ms, &retry, &random_id())
                .await?;
            for (i, o) in short.into_iter().zip(again) {
                outcomes[i] = o;
            }
        }
        Ok(outcomes)
    }

    /// Moves at least `want` units (when there are) into bucket `home` from the buckets
    /// that hold the most; returns how many arrived.
    async fn refill(
        &self,
        campaign_id: u64,
        (home, buckets): (u64, u64),
        want: u64,
        now_ms: i64,
    ) -> Result<u64> {
        let remaining = self
            .each_bucket(campaign_id, |mut conn, bk| async move {
                conn.hget::<_, _, Option<u64>>(bk.state(), "remaining")
                    .await
            })
            .await?;
        let mut donors: Vec<(u64, u64)> = remaining
            .into_iter()
            .enumerate()
            .filter_map(|(b, r)| Some((b as u64, r?)))
            .filter(|&(b, r)| b != home && r > 0)
            .collect();
        donors.sort_by_key(|&(_, r)| std::cmp::Reverse(r));
        let mut moved = 0;
        for (donor, _) in donors {
            if moved >= want {
                break;
            }
            let ask = (want - moved).clamp(TRANSFER_MIN, TRANSFER_MAX);
            let from = BucketKeys::new(campaign_id, donor, buckets);
            let id = random_id();
            let (units, gen, packets): (u64, String, String) = self
                .transfer_out
                .key(from.state())
                .key(from.packets())
                .key(from.transfers())
                .arg(&id)
                .arg(home)
                .arg(ask)
                .arg(now_ms)
                .invoke_async(&mut self.conn.clone())
                .await?;
            if units == 0 {
                continue;
            }
            let transfer = Transfer {
                to: home,
                units,
                at_ms: now_ms,
                gen,
                packets,
            };
            if self
                .deliver(campaign_id, buckets, &from, &id, &transfer)
                .await?
            {
                moved += units;
            }
        }
        Ok(moved)
    }

    /// Steps 2 and 3 of a transfer (see the module's note); true when the units are (or
    /// already were) in the receiving bucket, false when they are void (it was rebuilt).
    async fn deliver(
        &self,
        campaign_id: u64,
        buckets: u64,
        from: &BucketKeys,
        id: &str,
        t: &Transfer,
    ) -> Result<bool> {
        let to = BucketKeys::new(campaign_id, t.to, buckets);
        let received: i64 = self
            .transfer_in
            .key(to.state())
            .key(to.packets())
            .key(to.received(id))
            .arg(t.units)
            .arg(&t.gen)
            .arg(&t.packets)
            .arg(RECEIVED_TTL_SECS)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let _: i64 = self.conn.clone().hdel(from.transfers(), id).await?;
        Ok(received >= 0)
    }

    /// Finishes the campaign's transfers started before `now_ms - older_than_ms` whose
    /// process died half way (see the module's note); returns how many it finished.
    pub async fn sweep_transfers(
        &self,
        campaign_id: u64,
        now_ms: i64,
        older_than_ms: i64,
    ) -> Result<u64> {
        let buckets = self.buckets.of(&self.conn, campaign_id).await?;
        if buckets <= 1 {
            return Ok(0);
        }
        let records = self
            .each_bucket(campaign_id, |mut conn, bk| async move {
                conn.hgetall::<_, Vec<(String, String)>>(bk.transfers())
                    .await
            })
            .await?;
        let mut finished = 0;
        for (donor, recs) in records.into_iter().enumerate() {
            let from = BucketKeys::new(campaign_id, donor as u64, buckets);
            for (id, rec) in recs {
                let Some(t) = Transfer::parse(&rec) else {
                    tracing::error!(
                        campaign = campaign_id,
                        id,
                        rec,
                        "unreadable bucket transfer"
                    );
                    continue;
                };
                if t.at_ms > now_ms - older_than_ms {
                    continue;
                }
                tracing::warn!(
                    campaign = campaign_id,
                    donor,
                    to = t.to,
                    units = t.units,
                    "finishing a bucket transfer a process left half done"
                );
                self.deliver(campaign_id, buckets, &from, &id, &t).await?;
                finished += 1;
            }
        }
        Ok(finished)
    }

    /// A bucketed campaign's counters: the sums over its buckets, with units waiting in
    /// transfer records counted as remaining; `None` when any bucket has no live state.
    pub(super) async fn bucketed_counters(
        &self,
        campaign_id: u64,
        buckets: u64,
    ) -> Result<Option<LiveCounters>> {
        Ok(self
            .bucketed_sums(campaign_id, buckets, false)
            .await?
            .map(|(k, _)| k))
    }

    /// [`RedisStore::bucketed_counters`] with the order counts, each bucket read once.
    pub(super) async fn bucketed_snapshot(
        &self,
        campaign_id: u64,
        buckets: u64,
    ) -> Result<Option<(LiveCounters, OrderCounts)>> {
        self.bucketed_sums(campaign_id, buckets, true).await
    }

    async fn bucketed_sums(
        &self,
        campaign_id: u64,
        buckets: u64,
        orders: bool,
    ) -> Result<Option<(LiveCounters, OrderCounts)>> {
        let parts = try_join_all((0..buckets).map(|b| async move {
            let bk = BucketKeys::new(campaign_id, b, buckets);
            let snapshot = self.snapshot_of(&bk, orders).await?;
            let pending: Vec<String> = self.conn.clone().hvals(bk.transfers()).await?;
            let in_transit: u64 = pending
                .iter()
                .filter_map(|r| Transfer::parse(r))
                .map(|t| t.units)
                .sum();
            Ok::<_, crate::error::EngineError>(snapshot.map(|s| (s, in_transit)))
        }))
        .await?;
        let mut total = LiveCounters {
            ends_at_ms: i64::MAX,
            ..LiveCounters::default()
        };
        let mut counts = OrderCounts::default();
        for part in parts {
            let Some(((k, o), in_transit)) = part else {
                return Ok(None);
            };
            total.remaining += k.remaining + in_transit;
            total.claims += k.claims;
            total.sold += k.sold;
            total.cents += k.cents;
            total.ends_at_ms = total.ends_at_ms.min(k.ends_at_ms);
            counts.add(&o);
        }
        Ok(Some((total, counts)))
    }
}
