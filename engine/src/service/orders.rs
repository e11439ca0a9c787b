//! The [`Engine`]'s order operations (see [`crate::order`]): pay, cancel, the expiry
//! sweep, and the orders that go with the claims users and admins read.

use std::collections::HashMap;
use std::sync::Arc;

use super::Engine;
use crate::campaign::{Campaign, CampaignKind};
use crate::claim::{campaign_of, Claim};
use crate::clock::now_ms;
use crate::error::{EngineError, Result};
use crate::order::{CancelOutcome, Order, OrderStatus, PayOutcome, Payment, Refund, RefundReason};
use crate::signals::Signal;

/// The most orders one expiry call takes per bucket; a sweep calls again while full.
const EXPIRE_BATCH: usize = 1_000;
/// How far back (ms) the sweep looks for campaigns that ended: an order may come due up
/// to the longest payment window after its campaign's end.
const SWEEP_ENDED_WITHIN_MS: i64 = crate::campaign::MAX_PAYMENT_WINDOW_SECS * 1_000 + 60_000;
/// The most campaigns one sweep looks at (the newest that have not ended long ago).
const SWEEP_CAMPAIGNS: i64 = 10_000;

/// What one sweep finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Bucket transfers that dead processes left half done.
    pub transfers: u64,
    /// Orders that came due unpaid.
    pub expired: u64,
}

/// The claim an order is, rebuilt from the order and its campaign (a flash sale: no
/// packet; accepted exactly one window before it is due).
pub fn claim_of(c: &Campaign, o: &Order) -> Claim {
    Claim {
        id: o.claim_id.clone(),
        campaign_id: o.campaign_id,
        user_id: o.user_id.clone(),
        quantity: o.quantity,
        amount_cents: 0,
        packet_idx: -1,
        accepted_at_ms: o.pay_by_ms - c.payment_window_ms(),
    }
}

impl Engine {
    /// The campaign of an order's claim id: `NotFound` unless it is a flash sale with a
    /// payment window.
    async fn order_campaign(&self, claim_id: &str) -> Result<Arc<Campaign>> {
        let id = campaign_of(claim_id).ok_or(EngineError::NotFound)?;
        let c = self.campaign(id).await?;
        if c.kind != CampaignKind::FlashSale || c.payment_window_secs.is_none() {
            return Err(EngineError::NotFound);
        }
        Ok(c)
    }

    /// A payment notification whose signature checked out: the store decides, in one
    /// step with cancel and expiry (see [`crate::store::Store::pay`]).
    pub async fn pay(&self, payment: &Payment) -> Result<(PayOutcome, Arc<Campaign>)> {
        let c = self.order_campaign(&payment.claim_id).await?;
        let now = now_ms();
        let outcome = self.store.pay(c.id, now, payment, c.price_cents).await?;
        match &outcome {
            PayOutcome::Paid(o) if o.closed_at_ms == Some(now) => {
                metrics::counter!("stampede_orders_total", "outcome" => "paid").increment(1);
                self.funnel.count(c.id, crate::funnel::Stage::Paid);
            }
            PayOutcome::Lost(o, reason) => {
                if *reason == RefundReason::OrderExpired && o.closed_at_ms == Some(now) {
                    // This payment found the order past due and expired it.
                    self.restocked(c.id, true).await;
                    metrics::counter!("stampede_orders_total", "outcome" => "expired").increment(1);
                }
                metrics::counter!("stampede_orders_total", "outcome" => "refund_required")
                    .increment(1);
            }
            _ => {}
        }
        Ok((outcome, c))
    }

    /// The user cancels their order (see [`crate::store::Store::cancel`]).
    pub async fn cancel_order(
        &self,
        claim_id: &str,
        user_id: &str,
    ) -> Result<(CancelOutcome, Arc<Campaign>)> {
        let c = self.order_campaign(claim_id).await?;
        let now = now_ms();
        let outcome = self.store.cancel(c.id, now, claim_id, user_id).await?;
        if let CancelOutcome::Order(o) = &outcome {
            if o.closed_at_ms == Some(now) && o.status.restocks() {
                self.restocked(c.id, true).await;
                let label = if o.status == OrderStatus::Cancelled {
                    "cancelled"
                } else {
                    "expired"
                };
                metrics::counter!("stampede_orders_total", "outcome" => label).increment(1);
            }
        }
        Ok((outcome, c))
    }

    /// Units came back to the campaign: readers here see them at once, and the sold-out
    /// flags (here and, announced, on every other instance) clear. `maybe_empty`: the
    /// campaign may have been sold out before (the caller cannot tell).
    async fn restocked(&self, campaign_id: u64, maybe_empty: bool) {
        self.live.invalidate(campaign_id);
        if !maybe_empty {
            return;
        }
        match &self.sold_out {
            Some(s) => s.restocked(campaign_id).await,
            None => self.announce(Signal::Restocked(campaign_id)).await,
        }
    }

    /// One sweep over the campaigns that may need one: bucket transfers of bucketed
    /// campaigns that have not ended, and due orders of campaigns with a payment window
    /// (up to the longest window after their end). Any number of processes may sweep at
    /// once: every step is atomic in the store and idempotent.
    pub async fn sweep(&self) -> Result<Swept> {
        let now = now_ms();
        let mut swept = Swept::default();
        let mut failed = None;
        for c in self
            .db
            .campaigns(now - SWEEP_ENDED_WITHIN_MS, SWEEP_CAMPAIGNS)
            .await?
        {
            // One campaign's failure (its cluster node is down) must not hold up the others.
            let done = async {
                let mut done = Swept::default();
                if c.buckets > 1 && c.ends_at_ms > now {
                    done.transfers = self.store.sweep(c.id, now).await?;
                }
                if c.payment_window_secs.is_some() {
                    done.expired = self.expire_due(c.id, now).await?;
                }
                Ok::<_, EngineError>(done)
            };
            match done.await {
                Ok(d) => {
                    swept.transfers += d.transfers;
                    swept.expired += d.expired;
                }
                Err(e) => {
                    tracing::debug!(error = %e, campaign = c.id, "sweep of one campaign failed; next round");
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) if swept == Swept::default() => Err(e),
            _ => Ok(swept),
        }
    }

    /// Expires the campaign's orders due at `now`; how many.
    async fn expire_due(&self, campaign_id: u64, now: i64) -> Result<u64> {
        let mut total = 0;
        let mut restocked = false;
        loop {
            let done = self
                .store
                .expire_due(campaign_id, now, EXPIRE_BATCH)
                .await?;
            total += done.orders;
            restocked |= done.restocked;
            if done.orders < EXPIRE_BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            metrics::counter!("stampede_orders_total", "outcome" => "expired").increment(total);
            self.restocked(campaign_id, restocked).await;
        }
        Ok(total)
    }

    /// The orders of `claims` of campaign `c` as the store holds them now (a claim the
    /// store has no order for, as after losing its state, has none here).
    pub async fn live_orders(
        &self,
        c: &Campaign,
        claims: &[Claim],
    ) -> Result<HashMap<String, Order>> {
        let mut out = HashMap::new();
        if c.payment_window_secs.is_none() {
            return Ok(out);
        }
        for claim in claims {
            if let Some(o) = self.store.order(c.id, &claim.id).await? {
                out.insert(claim.id.clone(), o);
            }
        }
        Ok(out)
    }

    /// The persisted orders of a page of the campaign's claims (the admin export). A claim
    /// whose order row is not written yet is pending, due one window after it was accepted.
    pub async fn persisted_orders(
        &self,
        c: &Campaign,
        claims: &[Claim],
    ) -> Result<HashMap<String, Order>> {
        let (Some(first), Some(last)) = (claims.first(), claims.last()) else {
            return Ok(HashMap::new());
        };
        if c.payment_window_secs.is_none() {
            return Ok(HashMap::new());
        }
        let mut orders = self
            .replica
            .orders_between(c.id, &first.id, &last.id)
            .await?;
        for claim in claims {
            orders.entry(claim.id.clone()).or_insert_with(|| {
                Order::pending(claim, claim.accepted_at_ms + c.payment_window_ms())
            });
        }
        Ok(orders)
    }

    /// Payments recorded for refund, in payment-id order after `after`.
    pub async fn refunds(&self, after: &str, limit: i64) -> Result<Vec<Refund>> {
        self.db.refunds(after, limit).await
    }
}
