//! The embedded, in-process store: the same semantics as the Redis script, with one
//! `parking_lot::Mutex` per campaign as the critical section.
//!
//! Why a blocking mutex: the claim step never awaits (it only touches memory and pushes
//! to an unbounded channel), so a short synchronous lock is cheaper than an async one,
//! and claims on different campaigns never contend. The campaign map itself is behind
//! an `RwLock` that is written only when a campaign is loaded.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};

use super::{LiveState, SigninMark, Store, UserRecord};
use crate::campaign::{CampaignKind, LiveCounters};
use crate::claim::{Claim, ClaimEvent, ClaimOutcome, ClaimRequest};
use crate::error::{EngineError, Result};
use crate::order::{
    CancelOutcome, Expired, Order, OrderCounts, OrderStatus, PayOutcome, Payment, Refund,
    RefundReason,
};
use crate::queue::memory::MemoryQueue;
use crate::queue::Event;
use crate::red_packet::Packet;
use crate::signin::{Month, SigninRecord};

/// One campaign's live state; every field changes only under its mutex.
struct Live {
    kind: CampaignKind,
    per_user_limit: u64,
    starts_at_ms: i64,
    counters: LiveCounters,
    /// How many buckets the campaign has: one stock and one lock here (nothing to
    /// spread in one process), but claim ids numbered per bucket as in Redis.
    buckets: u64,
    /// The highest claim sequence number of each bucket.
    seqs: Vec<u64>,
    users: HashMap<String, UserRecord>,
    packets: VecDeque<Packet>,
    /// The payment window, ms (0: claims are final), and the orders by claim id.
    window_ms: i64,
    orders: HashMap<String, Order>,
    /// The pending orders by when they are due: `(pay by ms, claim id)`.
    deadlines: BTreeSet<(i64, String)>,
    /// Payment ids recorded for refund, and the orders' counts.
    refunds: HashSet<String>,
    order_counts: OrderCounts,
}

/// A user's sign-in state: the day records and the month bitmaps (bit N = day N).
#[derive(Default)]
struct UserSignins {
    /// `None` while the first request of the day is awarding.
    days: HashMap<chrono::NaiveDate, Option<SigninRecord>>,
    /// Bit N = day N; bit 0 = complete (filled from the database), as in Redis.
    months: HashMap<(i32, u32), u32>,
}

pub struct MemoryStore {
    campaigns: RwLock<HashMap<u64, Arc<Mutex<Live>>>>,
    /// User id -> sign-in state; one lock for all users (each step is a few map
    /// operations). Unlike Redis, old days are not expired: the embedded engine is
    /// for small deployments, and a restart clears it.
    signins: Mutex<HashMap<String, UserSignins>>,
    /// Campaigns whose rebuild is running.
    rebuilding: Mutex<std::collections::HashSet<u64>>,
    /// Accepted claims are pushed here inside the critical section.
    queue: Arc<MemoryQueue>,
}

impl MemoryStore {
    pub fn new(queue: Arc<MemoryQueue>) -> Self {
        MemoryStore {
            campaigns: RwLock::new(HashMap::new()),
            signins: Mutex::new(HashMap::new()),
            rebuilding: Mutex::new(std::collections::HashSet::new()),
            queue,
        }
    }

    fn get(&self, campaign_id: u64) -> Option<Arc<Mutex<Live>>> {
        self.campaigns.read().get(&campaign_id).cloned()
    }
}

impl Live {
    /// The claim step for one request; runs under the campaign's lock.
    fn claim(
        &mut self,
        campaign_id: u64,
        now_ms: i64,
        req: &ClaimRequest,
        queue: &MemoryQueue,
    ) -> ClaimOutcome {
        // The end first: a campaign closed before its start has ended, not "not started".
        if now_ms >= self.counters.ends_at_ms {
            return ClaimOutcome::Ended;
        }
        if now_ms < self.starts_at_ms {
            return ClaimOutcome::NotStarted;
        }
        let held = self.users.get(&req.user_id).map_or(0, |u| u.held);
        if held >= self.per_user_limit {
            if let Some(u) = self.users.get(&req.user_id) {
                return ClaimOutcome::AlreadyClaimed(u.last.clone());
            }
        }
        if held + req.quantity > self.per_user_limit {
            return ClaimOutcome::OverLimit {
                may_take: self.per_user_limit - held,
            };
        }
        if self.counters.remaining < req.quantity {
            return ClaimOutcome::SoldOut;
        }
        let (amount_cents, packet_idx) = match self.kind {
            CampaignKind::FlashSale => (0, -1),
            CampaignKind::RedPacket => match self.packets.pop_front() {
                Some(p) => (p.amount_cents, p.idx as i64),
                // remaining > 0 with no packet left cannot happen after a correct load;
                // refusing is the safe answer.
                None => return ClaimOutcome::SoldOut,
            },
        };
        let bucket = crate::buckets::home_bucket(&req.user_id, self.buckets);
        self.seqs[bucket as usize] += 1;
        let seq = self.seqs[bucket as usize];
        self.counters.remaining -= req.quantity;
        self.counters.claims += 1;
        self.counters.sold += req.quantity;
        self.counters.cents += amount_cents;
        let claim = Claim {
            id: crate::buckets::claim_id(campaign_id, bucket, self.buckets, seq),
            campaign_id,
            user_id: req.user_id.clone(),
            quantity: req.quantity,
            amount_cents,
            packet_idx,
            accepted_at_ms: now_ms,
        };
        self.users.insert(
            req.user_id.clone(),
            UserRecord {
                held: held + req.quantity,
                last: claim.clone(),
            },
        );
        let pay_by_ms = (self.window_ms > 0).then(|| now_ms + self.window_ms);
        if let Some(by) = pay_by_ms {
            self.deadlines.insert((by, claim.id.clone()));
            self.orders
                .insert(claim.id.clone(), Order::pending(&claim, by));
            self.order_counts.count(OrderStatus::Pending);
        }
        queue.push(Event::Claim(ClaimEvent {
            claim: claim.clone(),
            request_id: req.request_id,
            pay_by_ms,
        }));
        ClaimOutcome::Accepted(claim)
    }

    /// Closes a pending order in `status` (as `lua/order.lua` does): units back and the
    /// hold released unless paid, the change queued.
    fn close_order(
        &mut self,
        claim_id: &str,
        status: OrderStatus,
        now_ms: i64,
        payment: Option<&str>,
        queue: &MemoryQueue,
    ) -> Order {
        let Some(o) = self.orders.get_mut(claim_id) else {
            unreachable!("close_order is called for a known order")
        };
        o.status = status;
        o.closed_at_ms = Some(now_ms);
        o.payment_id = payment.map(str::to_string);
        let o = o.clone();
        self.deadlines.remove(&(o.pay_by_ms, o.claim_id.clone()));
        self.order_counts.pending_orders = self.order_counts.pending_orders.saturating_sub(1);
        self.order_counts.count(status);
        if status.restocks() {
            self.counters.remaining += o.quantity;
            self.counters.sold = self.counters.sold.saturating_sub(o.quantity);
            if let Some(u) = self.users.get_mut(&o.user_id) {
                u.held = u.held.saturating_sub(o.quantity);
            }
        }
        queue.push(Event::Order(o.clone()));
        o
    }

    /// Records `payment` for refund, once per payment id.
    fn refund(
        &mut self,
        payment: &Payment,
        campaign_id: u64,
        reason: RefundReason,
        now_ms: i64,
        queue: &MemoryQueue,
    ) {
        if self.refunds.insert(payment.payment_id.clone()) {
            self.order_counts.refunds_required += 1;
            queue.push(Event::Refund(Refund {
                payment_id: payment.payment_id.clone(),
                claim_id: payment.claim_id.clone(),
                campaign_id,
                amount_cents: payment.amount_cents,
                reason,
                recorded_at_ms: now_ms,
            }));
        }
    }

    fn pay(
        &mut self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
        queue: &MemoryQueue,
    ) -> PayOutcome {
        let Some(o) = self.orders.get(&payment.claim_id).cloned() else {
            return PayOutcome::Unknown;
        };
        let expected = o.quantity.saturating_mul(price_cents);
        if payment.amount_cents != expected {
            return PayOutcome::WrongAmount(expected);
        }
        let pid = payment.payment_id.as_str();
        let (order, reason) = match o.status {
            OrderStatus::Pending if now_ms < o.pay_by_ms => {
                return PayOutcome::Paid(self.close_order(
                    &o.claim_id,
                    OrderStatus::Paid,
                    now_ms,
                    Some(pid),
                    queue,
                ));
            }
            OrderStatus::Pending => (
                self.close_order(&o.claim_id, OrderStatus::Expired, now_ms, None, queue),
                RefundReason::OrderExpired,
            ),
            OrderStatus::Paid if o.payment_id.as_deref() == Some(pid) => {
                return PayOutcome::Paid(o)
            }
            OrderStatus::Paid => (o, RefundReason::AlreadyPaid),
            OrderStatus::Expired => (o, RefundReason::OrderExpired),
            OrderStatus::Cancelled => (o, RefundReason::OrderCancelled),
        };
        self.refund(payment, campaign_id, reason, now_ms, queue);
        PayOutcome::Lost(order, reason)
    }

    fn cancel(
        &mut self,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
        queue: &MemoryQueue,
    ) -> CancelOutcome {
        let Some(o) = self.orders.get(claim_id).cloned() else {
            return CancelOutcome::Unknown;
        };
        if o.user_id != user_id {
            return CancelOutcome::Unknown;
        }
        if o.status != OrderStatus::Pending {
            return CancelOutcome::Order(o);
        }
        let status = if now_ms < o.pay_by_ms {
            OrderStatus::Cancelled
        } else {
            OrderStatus::Expired
        };
        CancelOutcome::Order(self.close_order(claim_id, status, now_ms, None, queue))
    }

    fn expire_due(&mut self, now_ms: i64, limit: usize, queue: &MemoryQueue) -> Expired {
        let due: Vec<String> = self
            .deadlines
            .iter()
            .take_while(|(by, _)| *by <= now_ms)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let restocked = self.counters.remaining == 0 && !due.is_empty();
        for id in &due {
            self.close_order(id, OrderStatus::Expired, now_ms, None, queue);
        }
        Expired {
            orders: due.len() as u64,
            restocked,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, state: &LiveState) -> Result<()> {
        let c = &state.campaign;
        let live = Live {
            kind: c.kind,
            per_user_limit: c.per_user_limit,
            starts_at_ms: c.starts_at_ms,
            counters: state.counters,
            buckets: c.buckets.max(1),
            seqs: crate::buckets::split_state(state)
                .iter()
                .map(|p| p.seq)
                .collect(),
            users: state
                .users
                .iter()
                .map(|u| (u.last.user_id.clone(), u.clone()))
                .collect(),
            packets: state.packets.iter().copied().collect(),
            window_ms: c.payment_window_ms(),
            orders: state
                .orders
                .iter()
                .map(|o| (o.claim_id.clone(), o.clone()))
                .collect(),
            deadlines: state
                .orders
                .iter()
                .filter(|o| o.status == OrderStatus::Pending)
                .map(|o| (o.pay_by_ms, o.claim_id.clone()))
                .collect(),
            refunds: HashSet::new(),
            order_counts: state.order_counts,
        };
        self.campaigns
            .write()
            .insert(c.id, Arc::new(Mutex::new(live)));
        Ok(())
    }

    async fn claim_batch(
        &self,
        campaign_id: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        let Some(live) = self.get(campaign_id) else {
            return Ok(vec![ClaimOutcome::Missing; requests.len()]);
        };
        let mut live = live.lock();
        Ok(requests
            .iter()
            .map(|r| live.claim(campaign_id, now_ms, r, &self.queue))
            .collect())
    }

    async fn counters(&self, campaign_id: u64) -> Result<Option<LiveCounters>> {
        Ok(self.get(campaign_id).map(|l| l.lock().counters))
    }

    async fn user_record(&self, campaign_id: u64, user_id: &str) -> Result<Option<UserRecord>> {
        Ok(self
            .get(campaign_id)
            .and_then(|l| l.lock().users.get(user_id).cloned()))
    }

    async fn holder_count(&self, campaign_id: u64) -> Result<u64> {
        Ok(self
            .get(campaign_id)
            .map_or(0, |l| l.lock().users.len() as u64))
    }

    async fn holders(&self, campaign_id: u64) -> Result<Vec<String>> {
        Ok(self
            .get(campaign_id)
            .map(|l| l.lock().users.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn close(&self, campaign_id: u64, ends_at_ms: i64) -> Result<()> {
        if let Some(l) = self.get(campaign_id) {
            let mut l = l.lock();
            l.counters.ends_at_ms = l.counters.ends_at_ms.min(ends_at_ms);
        }
        Ok(())
    }

    async fn signin_mark(&self, user_id: &str, day: chrono::NaiveDate) -> Result<SigninMark> {
        use chrono::Datelike;
        let mut all = self.signins.lock();
        let user = all.entry(user_id.to_string()).or_default();
        match user.days.get(&day) {
            Some(Some(rec)) => return Ok(SigninMark::Done(*rec)),
            Some(None) => return Ok(SigninMark::Pending),
            None => {}
        }
        *user.months.entry((day.year(), day.month())).or_default() |= 1 << day.day();
        user.days.insert(day, None);
        Ok(SigninMark::First)
    }

    async fn signin_remember(&self, user_id: &str, record: &SigninRecord) -> Result<()> {
        let mut all = self.signins.lock();
        all.entry(user_id.to_string())
            .or_default()
            .days
            .insert(record.day, Some(*record));
        Ok(())
    }

    async fn signin_calendar(&self, user_id: &str, month: Month) -> Result<Option<Vec<u32>>> {
        let all = self.signins.lock();
        let bits = all
            .get(user_id)
            .and_then(|u| u.months.get(&(month.year, month.month)).copied());
        Ok(bits
            .filter(|b| b & 1 != 0)
            .map(|b| (1..=31).filter(|d| b & (1 << d) != 0).collect()))
    }

    async fn signin_calendar_fill(&self, user_id: &str, month: Month, days: &[u32]) -> Result<()> {
        let mut all = self.signins.lock();
        let bits = all
            .entry(user_id.to_string())
            .or_default()
            .months
            .entry((month.year, month.month))
            .or_default();
        for &d in days.iter().chain(&[0]) {
            *bits |= 1 << d;
        }
        Ok(())
    }

    async fn lock_rebuild(&self, campaign_id: u64, _ttl: std::time::Duration) -> Result<bool> {
        Ok(self.rebuilding.lock().insert(campaign_id))
    }

    async fn unlock_rebuild(&self, campaign_id: u64) -> Result<()> {
        self.rebuilding.lock().remove(&campaign_id);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn pay(
        &self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
    ) -> Result<PayOutcome> {
        let live = self
            .get(campaign_id)
            .ok_or(EngineError::StateMissing(campaign_id))?;
        let mut live = live.lock();
        Ok(live.pay(campaign_id, now_ms, payment, price_cents, &self.queue))
    }

    async fn cancel(
        &self,
        campaign_id: u64,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
    ) -> Result<CancelOutcome> {
        let live = self
            .get(campaign_id)
            .ok_or(EngineError::StateMissing(campaign_id))?;
        let mut live = live.lock();
        Ok(live.cancel(now_ms, claim_id, user_id, &self.queue))
    }

    async fn expire_due(&self, campaign_id: u64, now_ms: i64, limit: usize) -> Result<Expired> {
        let Some(live) = self.get(campaign_id) else {
            return Ok(Expired::default());
        };
        let mut live = live.lock();
        Ok(live.expire_due(now_ms, limit, &self.queue))
    }

    async fn order(&self, campaign_id: u64, claim_id: &str) -> Result<Option<Order>> {
        Ok(self
            .get(campaign_id)
            .and_then(|l| l.lock().orders.get(claim_id).cloned()))
    }

    async fn snapshot(&self, campaign_id: u64) -> Result<Option<(LiveCounters, OrderCounts)>> {
        Ok(self.get(campaign_id).map(|l| {
            let l = l.lock();
            (l.counters, l.order_counts)
        }))
    }
}
