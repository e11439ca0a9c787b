//! The Redis store: the claim step is `lua/claim.lua`, run with EVALSHA (redis-rs
//! `Script` reloads it on NOSCRIPT, as after a failover to a replica whose script cache
//! is empty) over one multiplexed connection per node.
//!
//! The connection is a [`RedisConn`]: one Redis (a `ConnectionManager`) or a Redis
//! Cluster, where each campaign's keys live in its hash tag's slot. Requests from every
//! api task are pipelined on one socket per node; when a node goes away the connection
//! reconnects while calls fail fast. Every call is bounded by the response timeout, so a
//! slow or dead Redis turns into an error within that time, never a hang.
//!
//! Every state-changing call is safe to be re-sent by the client library (invariant 8):
//! claim batches carry a batch id whose reply the script keeps, red packets are loaded in
//! numbered chunks, and the other scripts and commands give the same result twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::{AsyncCommands, Script};

use super::keys::BucketKeys;
use super::{
    keys, LiveState, SigninMark, Store, UserRecord, SIGNIN_CALENDAR_TTL_SECS,
    SIGNIN_RECORD_TTL_SECS,
};
use crate::buckets::{home_bucket, split_state, BucketCounts, BucketPart};
use crate::campaign::{Campaign, CampaignKind, LiveCounters};
use crate::claim::{Claim, ClaimOutcome, ClaimRequest};
use crate::error::{EngineError, Result};
use crate::order::{CancelOutcome, Expired, Order, OrderCounts, OrderStatus, PayOutcome, Payment};
use crate::redis_conn::{RedisConn, RedisTarget};
use crate::signin::{Month, SigninRecord};

/// The claim script, embedded at build time.
pub const CLAIM_LUA: &str = include_str!("../../../lua/claim.lua");
/// The sign-in script, embedded at build time.
pub const SIGNIN_LUA: &str = include_str!("../../../lua/signin.lua");
/// The close script, embedded at build time.
pub const CLOSE_LUA: &str = include_str!("../../../lua/close.lua");
/// The red-packet loading script, embedded at build time.
pub const LOAD_PACKETS_LUA: &str = include_str!("../../../lua/load_packets.lua");
/// The bucket transfer scripts, embedded at build time.
pub const TRANSFER_OUT_LUA: &str = include_str!("../../../lua/transfer_out.lua");
pub const TRANSFER_IN_LUA: &str = include_str!("../../../lua/transfer_in.lua");
/// The order script (pay, cancel, expire), embedded at build time.
pub const ORDER_LUA: &str = include_str!("../../../lua/order.lua");

/// How many hash entries one command of a load carries.
const LOAD_CHUNK: usize = 10_000;
/// How many red packets one `lua/load_packets.lua` call appends (Lua's `unpack` takes
/// at most about 8,000 values).
const PACKET_CHUNK: usize = 5_000;
/// How long a claim batch's reply is kept for a re-sent call of the same batch, ms. The
/// client library's re-sends of one call end within its overall response timeout
/// (`STAMPEDE_REDIS_TIMEOUT_MS`, at most 10 s); twice that is kept. Every batch that
/// accepted a claim keeps one, a few KB: at 1,000 such batches a second, about 60 MB.
pub const BATCH_REPLY_TTL_MS: u64 = 20_000;

/// How old a bucket transfer must be before the sweeper finishes it, ms: a live
/// process finishes its own within a few round trips.
const SWEEP_AFTER_MS: i64 = 2_000;

/// Connects to one Redis at `url`; every call is bounded by `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<RedisConn> {
    RedisTarget::Single(url.to_string()).connect(timeout).await
}

/// A fresh random id (16 hex digits) for a batch or a load.
pub(super) fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The highest claim sequence number this process has seen a campaign's state reach,
/// under the gen (the load) that state was written by. Passed with every claim batch:
/// a state whose seq is below it came back older than it was (see `lua/claim.lua`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SeqFloor {
    gen: String,
    seq: u64,
}

#[derive(Clone)]
pub struct RedisStore {
    pub(super) conn: RedisConn,
    /// (Campaign id, bucket) -> the floor this process holds for it.
    floors: Arc<Mutex<HashMap<(u64, u64), SeqFloor>>>,
    /// How many buckets each campaign has (see [`crate::buckets`]).
    pub(super) buckets: Arc<BucketCounts>,
    claim: Script,
    close: Script,
    signin: Script,
    load_packets: Script,
    pub(super) transfer_out: Script,
    pub(super) transfer_in: Script,
    pub(super) order: Script,
    /// Replicas that must confirm a claim batch (`WAIT`) before it is answered, and how
    /// long to wait for them; 0: answer at once.
    wait_replicas: u32,
    wait_timeout: Duration,
}

impl RedisStore {
    pub fn new(conn: RedisConn) -> Self {
        RedisStore {
            conn,
            floors: Arc::default(),
            claim: Script::new(CLAIM_LUA),
            close: Script::new(CLOSE_LUA),
            signin: Script::new(SIGNIN_LUA),
            load_packets: Script::new(LOAD_PACKETS_LUA),
            transfer_out: Script::new(TRANSFER_OUT_LUA),
            transfer_in: Script::new(TRANSFER_IN_LUA),
            order: Script::new(ORDER_LUA),
            buckets: Arc::default(),
            wait_replicas: 0,
            wait_timeout: Duration::ZERO,
        }
    }

    /// The store's connection (tests drive scripts on it directly).
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Answers a claim batch that accepted or repeated a claim only once `replicas`
    /// replicas have its writes (`WAIT replicas timeout`). When fewer confirm within
    /// `timeout`, the batch fails (503): its claims may be lost in a failover, so none is
    /// confirmed to the client, whose retry then finds its claim (`already_claimed`) or,
    /// after a failover that lost it, claims afresh.
    pub fn with_wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait_replicas = replicas;
        self.wait_timeout = timeout;
        self
    }

    /// Waits for the replicas of the master that holds the bucket's slot.
    async fn wait_for_replicas(&self, keys: &BucketKeys) -> Result<()> {
        let confirmed = self
            .conn
            .wait_replicas(&keys.state(), self.wait_replicas, self.wait_timeout)
            .await?;
        if confirmed < self.wait_replicas {
            metrics::counter!("stampede_claims_unreplicated_total").increment(1);
            return Err(EngineError::Unreachable(format!(
                "{confirmed} of {} replicas confirmed the claim batch",
                self.wait_replicas
            )));
        }
        Ok(())
    }
}

impl RedisStore {
    /// Keeps the highest seq seen under the state's current gen; a new gen (a load by
    /// any process) replaces the floor.
    fn raise_floor(&self, at: (u64, u64), seen: SeqFloor) {
        let mut floors = self.floors.lock();
        let floor = floors.entry(at).or_default();
        if floor.gen != seen.gen || floor.seq < seen.seq {
            *floor = seen;
        }
    }

    /// Writes one bucket's share of a load.
    async fn load_bucket(
        &self,
        c: &Campaign,
        (bucket, buckets): (u64, u64),
        part: &BucketPart,
        ends_at_ms: i64,
        gen: &str,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        let bk = BucketKeys::new(c.id, bucket, buckets);
        let (state_key, users_key, packets_key, stream_key) =
            (bk.state(), bk.users(), bk.packets(), bk.stream());
        // The state hash goes first and last: deleting it makes the bucket unclaimable
        // ("missing") while the users and packets are rewritten; writing it makes it live.
        let _: () = redis::pipe()
            .del(&state_key)
            .del(&users_key)
            .del(&packets_key)
            .del(bk.transfers())
            .del(bk.orders())
            .del(bk.deadlines())
            .del(bk.refunds())
            .query_async(&mut conn)
            .await?;
        // Numbered chunks under a fresh load id: a chunk re-sent after a lost reply is
        // not appended twice (lua/load_packets.lua).
        let load_id = random_id();
        for (n, chunk) in part.packets.chunks(PACKET_CHUNK).enumerate() {
            let mut inv = self.load_packets.key(&packets_key);
            inv.key(bk.loading()).arg(&load_id).arg(n + 1);
            for p in chunk {
                inv.arg(format!("{}:{}", p.idx, p.amount_cents));
            }
            let _: i64 = inv.invoke_async(&mut conn).await?;
        }
        for chunk in part.users.chunks(LOAD_CHUNK) {
            let items: Vec<(String, String)> = chunk
                .iter()
                .map(|u| (u.last.user_id.clone(), format_record(u)))
                .collect();
            let _: () = conn.hset_multiple(&users_key, &items).await?;
        }
        for chunk in part.orders.chunks(LOAD_CHUNK) {
            let items: Vec<(String, String)> = chunk
                .iter()
                .map(|o| (o.claim_id.clone(), o.record()))
                .collect();
            let _: () = conn.hset_multiple(bk.orders(), &items).await?;
            let due: Vec<(i64, &str)> = chunk
                .iter()
                .filter(|o| o.status == OrderStatus::Pending)
                .map(|o| (o.pay_by_ms, o.claim_id.as_str()))
                .collect();
            if !due.is_empty() {
                let _: () = conn.zadd_multiple(bk.deadlines(), &due).await?;
            }
        }
        let created: redis::RedisResult<()> = conn
            .xgroup_create_mkstream(&stream_key, keys::GROUP, "0")
            .await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(e.into());
            }
        }
        let _: () = conn.sadd(keys::STREAMS, &stream_key).await?;
        let kind = match c.kind {
            CampaignKind::FlashSale => "f",
            CampaignKind::RedPacket => "r",
        };
        let o = &part.order_counts;
        let fields: [(&str, String); 17] = [
            ("gen", gen.to_string()),
            ("kind", kind.to_string()),
            ("limit", c.per_user_limit.to_string()),
            ("starts", c.starts_at_ms.to_string()),
            ("ends", ends_at_ms.to_string()),
            ("remaining", part.remaining.to_string()),
            ("seq", part.seq.to_string()),
            ("claims", part.claims.to_string()),
            ("sold", part.sold.to_string()),
            ("cents", part.cents.to_string()),
            ("buckets", buckets.to_string()),
            ("window", c.payment_window_ms().to_string()),
            ("pending", o.pending_orders.to_string()),
            ("paid", o.paid_orders.to_string()),
            ("expired", o.expired_orders.to_string()),
            ("cancelled", o.cancelled_orders.to_string()),
            ("refunds", o.refunds_required.to_string()),
        ];
        let _: () = conn.hset_multiple(&state_key, &fields).await?;
        Ok(())
    }

    /// One bucket's counters, `None` when it has no live state (or a rolled-back one).
    pub(super) async fn counters_of(&self, bk: &BucketKeys) -> Result<Option<LiveCounters>> {
        Ok(self.snapshot_of(bk, false).await?.map(|(k, _)| k))
    }

    /// One bucket's counters and, with `orders`, its order counts, in one read.
    pub(super) async fn snapshot_of(
        &self,
        bk: &BucketKeys,
        orders: bool,
    ) -> Result<Option<(LiveCounters, OrderCounts)>> {
        let mut conn = self.conn.clone();
        let mut fields = vec![
            "remaining",
            "claims",
            "sold",
            "cents",
            "ends",
            "rolled_back",
        ];
        if orders {
            fields.extend(["pending", "paid", "expired", "cancelled", "refunds"]);
        }
        let v: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(bk.state())
            .arg(&fields)
            .query_async(&mut conn)
            .await?;
        // A rolled-back state is as good as lost: it answers like a missing one, so reads
        // get 503 and the rebuild may replace it.
        let [Some(remaining), Some(claims), Some(sold), Some(cents), Some(ends), None, ..] = v[..]
        else {
            return Ok(None);
        };
        let n = |i: usize| v.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
        Ok(Some((
            LiveCounters {
                remaining: remaining as u64,
                claims: claims as u64,
                sold: sold.max(0) as u64,
                cents: cents as u64,
                ends_at_ms: ends,
            },
            OrderCounts {
                pending_orders: n(6),
                paid_orders: n(7),
                expired_orders: n(8),
                cancelled_orders: n(9),
                refunds_required: n(10),
            },
        )))
    }

    /// Whether Redis (every master of a cluster) keeps an append-only file (`INFO
    /// persistence`), `None` when it does not say within a second (managed services may
    /// restrict INFO).
    pub async fn append_only(&self) -> Option<bool> {
        let infos = tokio::time::timeout(
            Duration::from_secs(1),
            self.conn.info_of_masters("persistence"),
        )
        .await
        .ok()?
        .ok()?;
        let mut all = true;
        for info in &infos {
            let on = info
                .lines()
                .find_map(|l| l.trim().strip_prefix("aof_enabled:"))
                .map(|v| v == "1")?;
            all &= on;
        }
        Some(all && !infos.is_empty())
    }

    /// The claim step for `requests` as the batch `batch_id`, on an unbucketed campaign:
    /// a call with a batch id already run answers that run's reply again and decides
    /// nothing (invariant 8). [`Store::claim_batch`] gives every call a fresh id; tests
    /// pass one twice on purpose.
    pub async fn claim_batch_as(
        &self,
        campaign_id: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
        batch_id: &str,
    ) -> Result<Vec<ClaimOutcome>> {
        self.claim_in(campaign_id, (0, 1), now_ms, requests, batch_id)
            .await
    }

    /// The claim step for `requests` in bucket `bucket.0` of `bucket.1` of the campaign.
    pub(super) async fn claim_in(
        &self,
        campaign_id: u64,
        (bucket, buckets): (u64, u64),
        now_ms: i64,
        requests: &[ClaimRequest],
        batch_id: &str,
    ) -> Result<Vec<ClaimOutcome>> {
        let bk = BucketKeys::new(campaign_id, bucket, buckets);
        let mut inv = self.claim.prepare_invoke();
        inv.key(bk.state())
            .key(bk.users())
            .key(bk.packets())
            .key(bk.stream())
            .key(bk.batch(batch_id))
            .key(bk.orders())
            .key(bk.deadlines())
            .arg(now_ms)
            .arg(campaign_id);
        let floor = self
            .floors
            .lock()
            .get(&(campaign_id, bucket))
            .cloned()
            .unwrap_or_default();
        let prefix = match buckets {
            0 | 1 => format!("c{campaign_id}-"),
            _ => format!("c{campaign_id}-b{bucket}-"),
        };
        inv.arg(&floor.gen)
            .arg(floor.seq)
            .arg(batch_id)
            .arg(BATCH_REPLY_TTL_MS)
            .arg(prefix);
        for r in requests {
            inv.arg(&r.user_id)
                .arg(r.quantity)
                .arg(r.request_id.as_ref().map_or("", |id| id.as_str()));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = inv.invoke_async(&mut conn).await?;
        match reply.first().map(String::as_str) {
            Some("M") => return Ok(vec![ClaimOutcome::Missing; requests.len()]),
            Some("R") => {
                metrics::counter!("stampede_store_rollbacks_total").increment(1);
                tracing::error!(
                    campaign = campaign_id,
                    bucket,
                    floor = floor.seq,
                    "the store's live state is older than claims this process saw it accept \
                     (restored from a snapshot, or a failover lost writes); claims are refused \
                     until POST /v1/admin/campaigns/{{id}}/rebuild reloads it from the database"
                );
                return Ok(vec![ClaimOutcome::Missing; requests.len()]);
            }
            _ => {}
        }
        if reply.len() != 2 + 2 * requests.len() {
            return Err(EngineError::Store(format!(
                "claim script returned {} values",
                reply.len()
            )));
        }
        let seen = SeqFloor {
            gen: reply[0].clone(),
            seq: reply[1]
                .parse()
                .map_err(|_| EngineError::Store(format!("claim script seq {:?}", reply[1])))?,
        };
        let reply = &reply[2..];
        let holds_claims = reply.chunks(2).any(|p| p[0] == "A" || p[0] == "D");
        if self.wait_replicas > 0 && holds_claims {
            self.wait_for_replicas(&bk).await?;
        }
        // Only what the replicas confirmed raises the floor: a failover to a replica that
        // missed an unconfirmed batch (answered 503) is not a rollback of anything answered.
        self.raise_floor((campaign_id, bucket), seen);
        requests
            .iter()
            .zip(reply.chunks(2))
            .map(|(r, pair)| {
                Ok(match pair[0].as_str() {
                    "A" => ClaimOutcome::Accepted(
                        parse_record(campaign_id, &r.user_id, &pair[1])?.last,
                    ),
                    "D" => ClaimOutcome::AlreadyClaimed(
                        parse_record(campaign_id, &r.user_id, &pair[1])?.last,
                    ),
                    "L" => ClaimOutcome::OverLimit {
                        may_take: pair[1].parse().unwrap_or(0),
                    },
                    "S" => ClaimOutcome::SoldOut,
                    "N" => ClaimOutcome::NotStarted,
                    "E" => ClaimOutcome::Ended,
                    other => {
                        return Err(EngineError::Store(format!(
                            "claim script answered {other:?}"
                        )))
                    }
                })
            })
            .collect()
    }
}

/// Parses a user record `held|claim id|quantity|amount|accepted ms|packet idx`.
pub(super) fn parse_record(campaign_id: u64, user_id: &str, rec: &str) -> Result<UserRecord> {
    let bad = || EngineError::Store(format!("malformed user record {rec:?}"));
    let mut f = rec.split('|');
    let num = |f: Option<&str>| f.and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad);
    let held = num(f.next())? as u64;
    let id = f.next().ok_or_else(bad)?.to_string();
    let quantity = num(f.next())? as u64;
    let amount_cents = num(f.next())? as u64;
    let accepted_at_ms = num(f.next())?;
    let packet_idx = num(f.next())?;
    Ok(UserRecord {
        held,
        last: Claim {
            id,
            campaign_id,
            user_id: user_id.to_string(),
            quantity,
            amount_cents,
            packet_idx,
            accepted_at_ms,
        },
    })
}

fn format_record(u: &UserRecord) -> String {
    let c = &u.last;
    format!(
        "{}|{}|{}|{}|{}|{}",
        u.held, c.id, c.quantity, c.amount_cents, c.accepted_at_ms, c.packet_idx
    )
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self, state: &LiveState) -> Result<()> {
        let c = &state.campaign;
        let n = c.buckets.max(1);
        // A new gen for every load: floors seen under an older state do not apply, and
        // units given away under an older load are void (lua/transfer_in.lua).
        let gen = random_id();
        let parts = split_state(state);
        // Bucket 0 last: its state (which tells other processes the bucket count) goes
        // live once every other bucket is.
        for b in (0..n).rev() {
            self.load_bucket(
                c,
                (b, n),
                &parts[b as usize],
                state.counters.ends_at_ms,
                &gen,
            )
            .await?;
        }
        self.buckets.remember(c.id, n);
        self.floors.lock().retain(|(id, _), _| *id != c.id);
        Ok(())
    }

    async fn claim_batch(
        &self,
        campaign_id: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        match self.buckets.of(&self.conn, campaign_id).await? {
            1 => {
                self.claim_batch_as(campaign_id, now_ms, requests, &random_id())
                    .await
            }
            n => self.claim_bucketed(campaign_id, n, now_ms, requests).await,
        }
    }

    async fn counters(&self, campaign_id: u64) -> Result<Option<LiveCounters>> {
        match self.buckets.of(&self.conn, campaign_id).await? {
            1 => self.counters_of(&BucketKeys::campaign(campaign_id)).await,
            n => self.bucketed_counters(campaign_id, n).await,
        }
    }

    async fn user_record(&self, campaign_id: u64, user_id: &str) -> Result<Option<UserRecord>> {
        let n = self.buckets.of(&self.conn, campaign_id).await?;
        let bk = BucketKeys::new(campaign_id, home_bucket(user_id, n), n);
        let mut conn = self.conn.clone();
        let rec: Option<String> = conn.hget(bk.users(), user_id).await?;
        rec.map(|r| parse_record(campaign_id, user_id, &r))
            .transpose()
    }

    async fn holder_count(&self, campaign_id: u64) -> Result<u64> {
        let lens = self
            .each_bucket(campaign_id, |mut conn, bk| async move {
                conn.hlen::<_, u64>(bk.users()).await
            })
            .await?;
        Ok(lens.iter().sum())
    }

    async fn holders(&self, campaign_id: u64) -> Result<Vec<String>> {
        let lists = self
            .each_bucket(campaign_id, |mut conn, bk| async move {
                conn.hkeys::<_, Vec<String>>(bk.users()).await
            })
            .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn close(&self, campaign_id: u64, ends_at_ms: i64) -> Result<()> {
        let close = &self.close;
        self.each_bucket(campaign_id, |mut conn, bk| async move {
            close
                .key(bk.state())
                .arg(ends_at_ms)
                .invoke_async::<i64>(&mut conn)
                .await
        })
        .await?;
        Ok(())
    }

    async fn signin_mark(&self, user_id: &str, day: chrono::NaiveDate) -> Result<SigninMark> {
        use chrono::Datelike;
        let mut conn = self.conn.clone();
        let day_key = day.format("%Y-%m-%d").to_string();
        let reply: Vec<String> = self
            .signin
            .key(keys::signin_days(user_id))
            .key(keys::signin_month(user_id, &Month::of(day).to_string()))
            .arg(&day_key)
            .arg(day.day())
            .arg(SIGNIN_RECORD_TTL_SECS)
            .arg(SIGNIN_CALENDAR_TTL_SECS)
            .invoke_async(&mut conn)
            .await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("D"), Some(rec)) => SigninRecord::decode(day, rec)
                .map(SigninMark::Done)
                .ok_or_else(|| EngineError::Store(format!("malformed sign-in record {rec:?}"))),
            (Some("P"), _) => Ok(SigninMark::Pending),
            (Some("F"), _) => Ok(SigninMark::First),
            _ => Err(EngineError::Store(format!(
                "sign-in script answered {reply:?}"
            ))),
        }
    }

    async fn signin_remember(&self, user_id: &str, record: &SigninRecord) -> Result<()> {
        let mut conn = self.conn.clone();
        let key = keys::signin_days(user_id);
        let _: () = redis::pipe()
            .hset(
                &key,
                record.day.format("%Y-%m-%d").to_string(),
                record.encode(),
            )
            .expire(&key, SIGNIN_RECORD_TTL_SECS as i64)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn signin_calendar(&self, user_id: &str, month: Month) -> Result<Option<Vec<u32>>> {
        let mut conn = self.conn.clone();
        let bits: Option<Vec<u8>> = conn
            .get(keys::signin_month(user_id, &month.to_string()))
            .await?;
        // Redis numbers bits from the most significant bit of the first byte; bit 0
        // marks a bitmap known to be complete.
        let set = |bytes: &[u8], d: u32| {
            bytes
                .get(d as usize / 8)
                .is_some_and(|b| b & (0x80 >> (d % 8)) != 0)
        };
        Ok(bits
            .filter(|bytes| set(bytes, 0))
            .map(|bytes| (1..=31u32).filter(|&d| set(&bytes, d)).collect()))
    }

    async fn signin_calendar_fill(&self, user_id: &str, month: Month, days: &[u32]) -> Result<()> {
        let mut conn = self.conn.clone();
        let key = keys::signin_month(user_id, &month.to_string());
        let mut pipe = redis::pipe();
        for &d in days.iter().chain(&[0]) {
            pipe.setbit(&key, d as usize, true).ignore();
        }
        pipe.expire(&key, SIGNIN_CALENDAR_TTL_SECS as i64).ignore();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn lock_rebuild(&self, campaign_id: u64, ttl: Duration) -> Result<bool> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::rebuild_lock(campaign_id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    async fn unlock_rebuild(&self, campaign_id: u64) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(keys::rebuild_lock(campaign_id)).await?;
        Ok(())
    }

    async fn pay(
        &self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
    ) -> Result<PayOutcome> {
        self.pay_order(campaign_id, now_ms, payment, price_cents)
            .await
    }

    async fn cancel(
        &self,
        campaign_id: u64,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
    ) -> Result<CancelOutcome> {
        self.cancel_order(campaign_id, now_ms, claim_id, user_id)
            .await
    }

    async fn expire_due(&self, campaign_id: u64, now_ms: i64, limit: usize) -> Result<Expired> {
        self.expire_orders(campaign_id, now_ms, limit).await
    }

    async fn order(&self, campaign_id: u64, claim_id: &str) -> Result<Option<Order>> {
        self.order_of(campaign_id, claim_id).await
    }

    async fn snapshot(&self, campaign_id: u64) -> Result<Option<(LiveCounters, OrderCounts)>> {
        match self.buckets.of(&self.conn, campaign_id).await? {
            1 => {
                self.snapshot_of(&BucketKeys::campaign(campaign_id), true)
                    .await
            }
            n => self.bucketed_snapshot(campaign_id, n).await,
        }
    }

    async fn sweep(&self, campaign_id: u64, now_ms: i64) -> Result<u64> {
        self.sweep_transfers(campaign_id, now_ms, SWEEP_AFTER_MS)
            .await
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let u = UserRecord {
            held: 2,
            last: Claim {
                id: "c3-0000000007".into(),
                campaign_id: 3,
                user_id: "u1".into(),
                quantity: 1,
                amount_cents: 0,
                packet_idx: -1,
                accepted_at_ms: 1_700_000_000_000,
            },
        };
        assert_eq!(parse_record(3, "u1", &format_record(&u)).ok(), Some(u));
        assert!(parse_record(3, "u1", "garbage").is_err());
    }
}
