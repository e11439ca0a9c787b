//! Orders in the Redis store: `lua/order.lua` on the bucket that holds the claim (a
//! claim id names its bucket, see [`crate::buckets`]), so pay, cancel and expire of one
//! order run in one slot, beside the stock they give back, on one Redis or a cluster.

use futures::future::try_join_all;
use redis::AsyncCommands;

use super::keys::BucketKeys;
use super::redis::RedisStore;
use crate::buckets::bucket_of_claim;
use crate::error::{EngineError, Result};
use crate::order::{CancelOutcome, Expired, Order, OrderStatus, PayOutcome, Payment, RefundReason};

impl RedisStore {
    /// The keys of the bucket that holds `claim_id`, or `None` when the id names a bucket
    /// the campaign does not have.
    async fn bucket_of(&self, campaign_id: u64, claim_id: &str) -> Result<Option<BucketKeys>> {
        let n = self.buckets.of(&self.conn, campaign_id).await?;
        let b = bucket_of_claim(claim_id);
        Ok((b < n).then(|| BucketKeys::new(campaign_id, b, n)))
    }

    fn order_call(
        &self,
        bk: &BucketKeys,
        op: &str,
        now_ms: i64,
        campaign_id: u64,
    ) -> redis::ScriptInvocation<'_> {
        let mut inv = self.order.prepare_invoke();
        inv.key(bk.state())
            .key(bk.users())
            .key(bk.orders())
            .key(bk.deadlines())
            .key(bk.stream())
            .key(bk.refunds())
            .arg(op)
            .arg(now_ms)
            .arg(campaign_id);
        inv
    }

    fn parse_order(campaign_id: u64, claim_id: &str, rec: Option<&String>) -> Result<Order> {
        rec.and_then(|r| Order::from_record(campaign_id, claim_id, r))
            .ok_or_else(|| {
                EngineError::Store(format!("order script answered a bad record {rec:?}"))
            })
    }

    pub(super) async fn pay_order(
        &self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
    ) -> Result<PayOutcome> {
        let Some(bk) = self.bucket_of(campaign_id, &payment.claim_id).await? else {
            return Ok(PayOutcome::Unknown);
        };
        let mut inv = self.order_call(&bk, "pay", now_ms, campaign_id);
        inv.arg(&payment.claim_id)
            .arg(&payment.payment_id)
            .arg(payment.amount_cents)
            .arg(price_cents);
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        let order = || Self::parse_order(campaign_id, &payment.claim_id, reply.get(1));
        Ok(match reply.first().map(String::as_str) {
            Some("M") => return Err(EngineError::StateMissing(campaign_id)),
            Some("U") => PayOutcome::Unknown,
            Some("I") => {
                PayOutcome::WrongAmount(reply.get(1).and_then(|a| a.parse().ok()).unwrap_or(0))
            }
            Some("P") => PayOutcome::Paid(order()?),
            Some("D") => PayOutcome::Lost(order()?, RefundReason::AlreadyPaid),
            Some("X") => PayOutcome::Lost(order()?, RefundReason::OrderExpired),
            Some("C") => PayOutcome::Lost(order()?, RefundReason::OrderCancelled),
            other => {
                return Err(EngineError::Store(format!(
                    "order script answered {other:?}"
                )))
            }
        })
    }

    pub(super) async fn cancel_order(
        &self,
        campaign_id: u64,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
    ) -> Result<CancelOutcome> {
        let Some(bk) = self.bucket_of(campaign_id, claim_id).await? else {
            return Ok(CancelOutcome::Unknown);
        };
        let mut inv = self.order_call(&bk, "cancel", now_ms, campaign_id);
        inv.arg(claim_id).arg(user_id);
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(match reply.first().map(String::as_str) {
            Some("M") => return Err(EngineError::StateMissing(campaign_id)),
            Some("U") => CancelOutcome::Unknown,
            Some(code) if OrderStatus::from_code(code).is_some() => {
                CancelOutcome::Order(Self::parse_order(campaign_id, claim_id, reply.get(1))?)
            }
            other => {
                return Err(EngineError::Store(format!(
                    "order script answered {other:?}"
                )))
            }
        })
    }

    /// Every bucket at once; a bucket without live state expires nothing.
    pub(super) async fn expire_orders(
        &self,
        campaign_id: u64,
        now_ms: i64,
        limit: usize,
    ) -> Result<Expired> {
        let n = self.buckets.of(&self.conn, campaign_id).await?;
        let calls = (0..n).map(|b| {
            let bk = BucketKeys::new(campaign_id, b, n);
            let mut inv = self.order_call(&bk, "expire", now_ms, campaign_id);
            inv.arg(limit);
            let mut conn = self.conn.clone();
            async move { inv.invoke_async::<redis::Value>(&mut conn).await }
        });
        let mut out = Expired::default();
        for reply in try_join_all(calls).await? {
            let v: Vec<redis::Value> = match reply {
                redis::Value::Array(v) => v,
                _ => continue,
            };
            let num = |i: usize| match v.get(i) {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 0,
            };
            out.orders += num(0);
            out.restocked |= num(1) == 1;
        }
        Ok(out)
    }

    pub(super) async fn order_of(&self, campaign_id: u64, claim_id: &str) -> Result<Option<Order>> {
        let Some(bk) = self.bucket_of(campaign_id, claim_id).await? else {
            return Ok(None);
        };
        let rec: Option<String> = self.conn.clone().hget(bk.orders(), claim_id).await?;
        Ok(rec.and_then(|r| Order::from_record(campaign_id, claim_id, &r)))
    }
}
