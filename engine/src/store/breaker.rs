//! [`BreakerStore`]: any store behind a [`CircuitBreaker`]. Every call asks the breaker
//! first; a call that cannot reach the store counts against it, and while it is open
//! calls fail at once with [`EngineError::CircuitOpen`] (the api's 503), so a dead
//! Redis costs neither waiting nor reconnect storms. A call that reached the store
//! closes it, whatever the store answered.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::{LiveState, SigninMark, Store, UserRecord};
use crate::campaign::LiveCounters;
use crate::circuit_breaker::{Admission, CircuitBreaker};
use crate::claim::{ClaimOutcome, ClaimRequest};
use crate::clock::now_ms;
use crate::error::{EngineError, Result};
use crate::order::{CancelOutcome, Expired, Order, OrderCounts, PayOutcome, Payment};
use crate::signin::{Month, SigninRecord};

pub struct BreakerStore {
    inner: Arc<dyn Store>,
    breaker: CircuitBreaker,
}

impl BreakerStore {
    pub fn new(inner: Arc<dyn Store>, breaker: CircuitBreaker) -> Self {
        BreakerStore { inner, breaker }
    }

    async fn guard<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let admission = self.breaker.admit(now_ms());
        if admission == Admission::Refuse {
            return Err(EngineError::CircuitOpen);
        }
        let result = call.await;
        match &result {
            Err(e) if e.is_unreachable() => self.breaker.failure(admission, now_ms()),
            _ => self.breaker.success(),
        }
        result
    }
}

#[async_trait]
impl Store for BreakerStore {
    async fn load(&self, state: &LiveState) -> Result<()> {
        self.guard(self.inner.load(state)).await
    }

    async fn claim_batch(
        &self,
        campaign_id: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        self.guard(self.inner.claim_batch(campaign_id, now_ms, requests))
            .await
    }

    async fn counters(&self, campaign_id: u64) -> Result<Option<LiveCounters>> {
        self.guard(self.inner.counters(campaign_id)).await
    }

    async fn user_record(&self, campaign_id: u64, user_id: &str) -> Result<Option<UserRecord>> {
        self.guard(self.inner.user_record(campaign_id, user_id))
            .await
    }

    async fn holder_count(&self, campaign_id: u64) -> Result<u64> {
        self.guard(self.inner.holder_count(campaign_id)).await
    }

    async fn holders(&self, campaign_id: u64) -> Result<Vec<String>> {
        self.guard(self.inner.holders(campaign_id)).await
    }

    async fn close(&self, campaign_id: u64, ends_at_ms: i64) -> Result<()> {
        self.guard(self.inner.close(campaign_id, ends_at_ms)).await
    }

    async fn signin_mark(&self, user_id: &str, day: chrono::NaiveDate) -> Result<SigninMark> {
        self.guard(self.inner.signin_mark(user_id, day)).await
    }

    async fn signin_remember(&self, user_id: &str, record: &SigninRecord) -> Result<()> {
        self.guard(self.inner.signin_remember(user_id, record))
            .await
    }

    async fn signin_calendar(&self, user_id: &str, month: Month) -> Result<Option<Vec<u32>>> {
        self.guard(self.inner.signin_calendar(user_id, month)).await
    }

    async fn signin_calendar_fill(&self, user_id: &str, month: Month, days: &[u32]) -> Result<()> {
        self.guard(self.inner.signin_calendar_fill(user_id, month, days))
            .await
    }

    async fn lock_rebuild(&self, campaign_id: u64, ttl: std::time::Duration) -> Result<bool> {
        self.guard(self.inner.lock_rebuild(campaign_id, ttl)).await
    }

    async fn unlock_rebuild(&self, campaign_id: u64) -> Result<()> {
        self.guard(self.inner.unlock_rebuild(campaign_id)).await
    }

    async fn ping(&self) -> Result<()> {
        self.guard(self.inner.ping()).await
    }

    async fn sweep(&self, campaign_id: u64, now_ms: i64) -> Result<u64> {
        self.guard(self.inner.sweep(campaign_id, now_ms)).await
    }

    async fn pay(
        &self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
    ) -> Result<PayOutcome> {
        self.guard(self.inner.pay(campaign_id, now_ms, payment, price_cents))
            .await
    }

    async fn cancel(
        &self,
        campaign_id: u64,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
    ) -> Result<CancelOutcome> {
        self.guard(self.inner.cancel(campaign_id, now_ms, claim_id, user_id))
            .await
    }

    async fn expire_due(&self, campaign_id: u64, now_ms: i64, limit: usize) -> Result<Expired> {
        self.guard(self.inner.expire_due(campaign_id, now_ms, limit))
            .await
    }

    async fn order(&self, campaign_id: u64, claim_id: &str) -> Result<Option<Order>> {
        self.guard(self.inner.order(campaign_id, claim_id)).await
    }

    async fn snapshot(&self, campaign_id: u64) -> Result<Option<(LiveCounters, OrderCounts)>> {
        self.guard(self.inner.snapshot(campaign_id)).await
    }
}
