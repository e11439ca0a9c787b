//! The store: where a campaign's live state (remaining stock, who claimed what) lives
//! and where the ONE atomic claim step runs.
//!
//! Two implementations pass the same conformance suite (`engine/tests/conformance.rs`):
//! [`redis::RedisStore`] (a Lua script per call; the claim event is `XADD`ed to the
//! campaign's stream inside the same script) and [`memory::MemoryStore`] (one critical
//! section per campaign; the event is pushed to the in-process queue inside it). In
//! both, there is no moment where stock is deducted and its claim is not yet queued.
//!
//! [`timed::TimedStore`] wraps either and records each call's time.
//!
//! The Redis store also refuses a state older than this process saw it (restored from a
//! snapshot, a failover that lost writes): see the floor in `lua/claim.lua`. Such a state
//! answers like a missing one until a rebuild. The memory store cannot come back older.
//!
//! Claims are taken in batches: one call, many claims of one campaign. The api calls
//! it with one claim today; coalescing many into one call is how the engine gets past
//! one round trip per claim.

pub mod breaker;
pub mod keys;
pub mod memory;
pub mod redis;
mod redis_buckets;
mod redis_orders;
pub mod timed;

use async_trait::async_trait;

use crate::campaign::{Campaign, LiveCounters};
use crate::claim::{Claim, ClaimOutcome, ClaimRequest};
use crate::error::Result;
use crate::order::{CancelOutcome, Expired, Order, OrderCounts, PayOutcome, Payment};
use crate::red_packet::Packet;
use crate::signin::{Month, SigninRecord};

/// What the store knows of a user's sign-in today (see `lua/signin.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigninMark {
    /// Today's award is recorded: a repeat.
    Done(SigninRecord),
    /// Another request is awarding it (or died doing so): ask the database.
    Pending,
    /// The first request: marked now.
    First,
}

/// How long the store keeps sign-in records (only today's is ever read) and bitmaps.
pub const SIGNIN_RECORD_TTL_SECS: u64 = 3 * 24 * 3600;
pub const SIGNIN_CALENDAR_TTL_SECS: u64 = 62 * 24 * 3600;

/// A user's record in a campaign: how much they hold, and their latest claim (the
/// claim an `already_claimed` reply repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub held: u64,
    pub last: Claim,
}

/// Everything the store needs to make a campaign claimable: on creation (nothing
/// claimed yet) and on a rebuild from the database (see [`crate::rebuild`]).
#[derive(Debug, Clone)]
pub struct LiveState {
    pub campaign: Campaign,
    pub counters: LiveCounters,
    /// The highest claim sequence number used so far; new claims continue after it.
    pub seq: u64,
    pub users: Vec<UserRecord>,
    /// Red packet: the packets not yet claimed, in the order they will be handed out.
    pub packets: Vec<Packet>,
    /// With a payment window: every order, in whatever state (the store answers a
    /// repeated payment or cancel from a closed one), and their counts.
    pub orders: Vec<Order>,
    pub order_counts: OrderCounts,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Replaces the campaign's live state with `state` (creation and rebuild).
    async fn load(&self, state: &LiveState) -> Result<()>;

    /// The atomic claim step for a batch of requests of one campaign, in order:
    /// time window -> per-user limit -> stock (or next packet) -> deduct -> record the
    /// user -> enqueue the claim event. One outcome per request, in request order.
    async fn claim_batch(
        &self,
        campaign_id: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>>;

    /// The live counters, or `None` when the store holds no state for the campaign.
    async fn counters(&self, campaign_id: u64) -> Result<Option<LiveCounters>>;

    /// The user's record in the campaign, if they have claimed.
    async fn user_record(&self, campaign_id: u64, user_id: &str) -> Result<Option<UserRecord>>;

    /// How many users hold a claim in the campaign.
    async fn holder_count(&self, campaign_id: u64) -> Result<u64>;

    /// The users who hold a claim in the campaign (for the sold-out flag, see
    /// [`crate::sold_out`]).
    async fn holders(&self, campaign_id: u64) -> Result<Vec<String>>;

    /// Moves the campaign's end to `ends_at_ms` (closing it); later claims get `Ended`.
    async fn close(&self, campaign_id: u64, ends_at_ms: i64) -> Result<()>;

    /// The sign-in fast path for `user_id` on `day` (one atomic step).
    async fn signin_mark(&self, user_id: &str, day: chrono::NaiveDate) -> Result<SigninMark>;

    /// Records the day's award, so later repeats are answered from the store.
    async fn signin_remember(&self, user_id: &str, record: &SigninRecord) -> Result<()>;

    /// The days of `month` in the user's bitmap; `None` when the store has no bitmap
    /// known to be complete (none, or one the sign-in step created without the earlier
    /// days, as after a store loss).
    async fn signin_calendar(&self, user_id: &str, month: Month) -> Result<Option<Vec<u32>>>;

    /// Writes the user's bitmap for `month` from the database's days, and marks it complete.
    async fn signin_calendar_fill(&self, user_id: &str, month: Month, days: &[u32]) -> Result<()>;

    /// Takes the campaign's rebuild lock for at most `ttl`; false when another rebuild
    /// holds it. Two rebuilds must never interleave their loads.
    async fn lock_rebuild(&self, campaign_id: u64, ttl: std::time::Duration) -> Result<bool>;

    async fn unlock_rebuild(&self, campaign_id: u64) -> Result<()>;

    /// A payment of an order, decided in one atomic step with cancel and expiry (see
    /// [`crate::order`]): pays a pending order within its window; a payment that comes
    /// after the order ended (or after another payment paid it) is recorded for refund.
    /// `price_cents` is the campaign's unit price. `StateMissing` when the store holds
    /// no live state for the campaign.
    async fn pay(
        &self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
    ) -> Result<PayOutcome>;

    /// The user cancels their pending order: its units go back to stock, their hold is
    /// released, at once. A cancel past `pay_by` finds the order expired (and expires it).
    async fn cancel(
        &self,
        campaign_id: u64,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
    ) -> Result<CancelOutcome>;

    /// Expires up to `limit` of the campaign's orders unpaid at `now_ms`, each once
    /// whoever runs it and however often.
    async fn expire_due(&self, campaign_id: u64, now_ms: i64, limit: usize) -> Result<Expired>;

    /// The order of a claim, if its campaign has a payment window.
    async fn order(&self, campaign_id: u64, claim_id: &str) -> Result<Option<Order>>;

    /// The campaign's live counters and its orders by state, read together (one read of
    /// each bucket): units sold = paid + pending units holds within one snapshot.
    /// `None` when the store holds no state for the campaign.
    async fn snapshot(&self, campaign_id: u64) -> Result<Option<(LiveCounters, OrderCounts)>>;

    /// The campaign's orders by state (zero without a payment window or live state).
    async fn order_counts(&self, campaign_id: u64) -> Result<OrderCounts> {
        Ok(self
            .snapshot(campaign_id)
            .await?
            .map(|(_, o)| o)
            .unwrap_or_default())
    }

    /// Answers when the store is reachable (`/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Finishes what a dead process left half done in the campaign's live state (a
    /// transfer between the buckets of a bucketed campaign, see [`crate::buckets`]);
    /// returns how many it finished. Any process may run it, at any time.
    async fn sweep(&self, _campaign_id: u64, _now_ms: i64) -> Result<u64> {
        Ok(0)
    }

    /// One claim; a batch of one.
    async fn claim(
        &self,
        campaign_id: u64,
        now_ms: i64,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome> {
        let mut out = self.claim_batch(campaign_id, now_ms, &[request]).await?;
        Ok(out.pop().unwrap_or(ClaimOutcome::Missing))
    }
}
