//! [`TimedStore`]: any store, with the time of each call recorded in
//! `stampede_store_duration_seconds{op}`. With Redis that is the round trip (a coalesced
//! claim batch is one `claim` call); embedded, the critical section.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{LiveState, SigninMark, Store, UserRecord};
use crate::campaign::LiveCounters;
use crate::claim::{ClaimOutcome, ClaimRequest};
use crate::error::Result;
use crate::order::{CancelOutcome, Expired, Order, OrderCounts, PayOutcome, Payment};
use crate::signin::{Month, SigninRecord};
use crate::telemetry::Timings;

/// The `op` labels, one per [`Store`] method; the claim first (it is looked up most).
const OPS: &[&str] = &[
    "claim",
    "counters",
    "user_record",
    "holders",
    "load",
    "close",
    "signin_mark",
    "signin_remember",
    "signin_calendar",
    "signin_calendar_fill",
    "lock_rebuild",
    "unlock_rebuild",
    "ping",
    "sweep",
    "pay",
    "cancel",
    "expire_due",
    "order",
    "snapshot",
];

pub struct TimedStore {
    inner: Arc<dyn Store>,
    timings: Timings,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        TimedStore {
            inner,
            timings: Timings::new("stampede_store_duration_seconds", OPS),
        }
    }
}

#[async_trait]
impl Store for TimedStore {
    async fn load(&self, state: &LiveState) -> Result<()> {
        let _t = self.timings.start("load");
        self.inner.load(state).await
    }

    async fn claim_batch(
        &self,
        campaign_id: u64,
        now_ms: i64,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        let _t = self.timings.start("claim");
        self.inner.claim_batch(campaign_id, now_ms, requests).await
    }

    async fn counters(&self, campaign_id: u64) -> Result<Option<LiveCounters>> {
        let _t = self.timings.start("counters");
        self.inner.counters(campaign_id).await
    }

    async fn user_record(&self, campaign_id: u64, user_id: &str) -> Result<Option<UserRecord>> {
        let _t = self.timings.start("user_record");
        self.inner.user_record(campaign_id, user_id).await
    }

    async fn holder_count(&self, campaign_id: u64) -> Result<u64> {
        let _t = self.timings.start("holders");
        self.inner.holder_count(campaign_id).await
    }

    async fn holders(&self, campaign_id: u64) -> Result<Vec<String>> {
        let _t = self.timings.start("holders");
        self.inner.holders(campaign_id).await
    }

    async fn close(&self, campaign_id: u64, ends_at_ms: i64) -> Result<()> {
        let _t = self.timings.start("close");
        self.inner.close(campaign_id, ends_at_ms).await
    }

    async fn signin_mark(&self, user_id: &str, day: chrono::NaiveDate) -> Result<SigninMark> {
        let _t = self.timings.start("signin_mark");
        self.inner.signin_mark(user_id, day).await
    }

    async fn signin_remember(&self, user_id: &str, record: &SigninRecord) -> Result<()> {
        let _t = self.timings.start("signin_remember");
        self.inner.signin_remember(user_id, record).await
    }

    async fn signin_calendar(&self, user_id: &str, month: Month) -> Result<Option<Vec<u32>>> {
        let _t = self.timings.start("signin_calendar");
        self.inner.signin_calendar(user_id, month).await
    }

    async fn signin_calendar_fill(&self, user_id: &str, month: Month, days: &[u32]) -> Result<()> {
        let _t = self.timings.start("signin_calendar_fill");
        self.inner.signin_calendar_fill(user_id, month, days).await
    }

    async fn lock_rebuild(&self, campaign_id: u64, ttl: Duration) -> Result<bool> {
        let _t = self.timings.start("lock_rebuild");
        self.inner.lock_rebuild(campaign_id, ttl).await
    }

    async fn unlock_rebuild(&self, campaign_id: u64) -> Result<()> {
        let _t = self.timings.start("unlock_rebuild");
        self.inner.unlock_rebuild(campaign_id).await
    }

    async fn ping(&self) -> Result<()> {
        let _t = self.timings.start("ping");
        self.inner.ping().await
    }

    async fn sweep(&self, campaign_id: u64, now_ms: i64) -> Result<u64> {
        let _t = self.timings.start("sweep");
        self.inner.sweep(campaign_id, now_ms).await
    }

    async fn pay(
        &self,
        campaign_id: u64,
        now_ms: i64,
        payment: &Payment,
        price_cents: u64,
    ) -> Result<PayOutcome> {
        let _t = self.timings.start("pay");
        self.inner
            .pay(campaign_id, now_ms, payment, price_cents)
            .await
    }

    async fn cancel(
        &self,
        campaign_id: u64,
        now_ms: i64,
        claim_id: &str,
        user_id: &str,
    ) -> Result<CancelOutcome> {
        let _t = self.timings.start("cancel");
        self.inner
            .cancel(campaign_id, now_ms, claim_id, user_id)
            .await
    }

    async fn expire_due(&self, campaign_id: u64, now_ms: i64, limit: usize) -> Result<Expired> {
        let _t = self.timings.start("expire_due");
        self.inner.expire_due(campaign_id, now_ms, limit).await
    }

    async fn order(&self, campaign_id: u64, claim_id: &str) -> Result<Option<Order>> {
        let _t = self.timings.start("order");
        self.inner.order(campaign_id, claim_id).await
    }

    async fn snapshot(&self, campaign_id: u64) -> Result<Option<(LiveCounters, OrderCounts)>> {
        let _t = self.timings.start("snapshot");
        self.inner.snapshot(campaign_id).await
    }
}
