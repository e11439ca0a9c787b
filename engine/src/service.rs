//! [`Engine`]: the operations the api and the binary perform, over a store, a queue
//! and a database. It holds no request state; many api instances can share one store
//! and one database.

mod orders;

use std::sync::Arc;

use rand::RngCore;

pub use orders::{claim_of, Swept};

use crate::backlog::BacklogGuard;
use crate::behaviour::BehaviourEvent;
use crate::blocklist::{Block, Blocklist, Subject};
use crate::campaign::{Campaign, CampaignKind, LiveCounters, NewCampaign};
use crate::claim::{Claim, ClaimEvent, ClaimOutcome, ClaimRequest};
use crate::claim_lists::{ClaimLists, FIRST_PAGE};
use crate::clock::now_ms;
use crate::coalescer::Coalescer;
use crate::db::Database;
use crate::error::{EngineError, Result};
use crate::funnel::{Funnel, FunnelMinute, Stage};
use crate::live_cache::{Freshness, LiveCache};
use crate::order::{Order, OrderCounts};
use crate::queue::memory::MemoryQueue;
use crate::queue::{DeadLetter, EventLog, Queue};
use crate::rebuild;
use crate::reconcile::{Reconciliation, Totals};
use crate::request_id::RequestId;
use crate::signals::{RedisSignals, Signal, SignalSink};
use crate::signin::{current_streak, Month, Points, SigninConfig, SigninRecord};
use crate::sold_out::SoldOut;
use crate::store::timed::TimedStore;
use crate::store::{SigninMark, Store};
use crate::telemetry::CacheStats;

/// How long a balance read may be served from this process's cache. An award made by
/// this process refreshes it at once; one made by another api instance shows within this.
const POINTS_CACHE_MS: i64 = 1_000;
/// Users whose balance this process remembers.
const POINTS_CACHE_USERS: usize = 100_000;

/// How long reading a campaign's row may take before the request answers 503.
const CAMPAIGN_READ: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a claim reply waits for the database to say whether the claim is persisted.
const PERSISTED_LOOKUP: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a rebuild may hold its lock before another may take over.
const REBUILD_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(120);
/// The most dead letters a reconciliation reads to sum their units and cents.
const RECONCILE_DEAD_LETTERS: usize = 100_000;
/// A campaign with more holders than this gets no sold-out flag (its holders would
/// take too much memory in every api process); its refusals keep asking the store.
const SOLD_OUT_MAX_HOLDERS: u64 = 200_000;
/// How many claims the rebuild reads per query.
const REBUILD_PAGE: i64 = 10_000;
/// How long a campaign's live counters are served from this process's cache by
/// default (the contract: reads lag the truth by at most the hot-cache TTL, <= 1 s).
pub const LIVE_CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(500);
/// Campaign rows this process keeps at most.
const CAMPAIGN_ROWS: usize = 100_000;
/// Campaigns whose counters this process keeps at most.
const LIVE_CACHE_CAMPAIGNS: usize = 100_000;

/// The admin stats of a campaign (contract: `GET /v1/admin/campaigns/{id}/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CampaignStats {
    pub campaign_id: u64,
    pub accepted_claims: u64,
    pub accepted_quantity: u64,
    pub persisted_claims: u64,
    pub remaining: u64,
    pub queue_backlog: u64,
    pub dead_letters: u64,
    pub claimed_cents: u64,
    /// Orders by state and payments to refund (zero without a payment window).
    #[serde(flatten)]
    pub orders: OrderCounts,
}

/// A claim as a user sees it, with whether its row is committed and, with a payment
/// window, its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimView {
    pub claim: Claim,
    pub persisted: bool,
    pub order: Option<Order>,
}

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    /// The behaviour events' queue (never the claims'), read by the event writers...
    pub events: Arc<dyn Queue>,
    /// ... and the side the api appends to.
    event_log: Arc<dyn EventLog>,
    /// The live funnel's counters (see [`crate::funnel`]).
    pub funnel: Arc<Funnel>,
    pub db: Database,
    /// Where reads that may lag go (a read replica, or `db` itself): the admin export,
    /// the public campaign list and users' claim pages past the cached first one. Reads
    /// that must see a write they follow (a user's own claims in a campaign, the rebuild,
    /// the stats, the cached first page the workers keep current) stay on `db`.
    pub replica: Database,
    /// Campaign rows by id. A campaign's row never changes after creation except its
    /// end (close), and the store enforces the live end, so a cached row is safe to
    /// use for the claim path; `close` refreshes this instance's copy. Bounded to
    /// [`CAMPAIGN_ROWS`], with copies per thread (see [`crate::campaign_rows`]).
    campaigns: crate::campaign_rows::CampaignRows,
    /// When set, claims go through it (batched per campaign) instead of one store call
    /// each: worth it when a store call is a network round trip.
    coalescer: Option<Coalescer>,
    /// When set, claims are refused while the queue backlog is over its cap.
    backlog: Option<Arc<BacklogGuard>>,
    /// When set, behaviour events are refused while their queue's backlog is over its cap.
    events_backlog: Option<Arc<BacklogGuard>>,
    signin: SigninConfig,
    /// User id -> (points, when read in ms): balance reads cached briefly.
    points: quick_cache::sync::Cache<String, (Points, i64)>,
    /// The public reads' live counters (see [`crate::live_cache`]).
    live: LiveCache,
    /// Hits and misses of `campaigns` and `points`.
    campaign_cache: CacheStats,
    points_cache: CacheStats,
    /// When set, claims of a sold-out campaign are refused in-process (see
    /// [`crate::sold_out`]).
    sold_out: Option<Arc<SoldOut>>,
    /// When set, users' first pages of claims are cached (see [`crate::claim_lists`]).
    pub claim_lists: Option<ClaimLists>,
    /// Users and addresses refused on the claim and sign-in routes (see
    /// [`crate::blocklist`]).
    pub blocklist: Arc<Blocklist>,
    /// When set, changes other api instances must hear of are published here.
    signals: Option<RedisSignals>,
}

impl Engine {
    /// An engine over `store` (whose calls are timed, see [`TimedStore`]), `queue` and `db`.
    /// Behaviour events go to an in-process queue and the funnel's totals stay in this
    /// process until [`Engine::with_behaviour_queue`] and [`Engine::with_funnel`] say
    /// otherwise.
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, db: Database) -> Self {
        let events = Arc::new(MemoryQueue::default());
        Engine {
            store: Arc::new(TimedStore::new(store)),
            queue,
            events: Arc::new(events.clone()),
            event_log: Arc::new(events),
            funnel: Arc::new(Funnel::in_memory()),
            blocklist: Arc::new(Blocklist::new(db.clone())),
            replica: db.clone(),
            db,
            campaigns: crate::campaign_rows::CampaignRows::new(CAMPAIGN_ROWS),
            coalescer: None,
            backlog: None,
            events_backlog: None,
            signin: SigninConfig::default(),
            points: quick_cache::sync::Cache::new(POINTS_CACHE_USERS),
            live: LiveCache::new(LIVE_CACHE_TTL, LIVE_CACHE_CAMPAIGNS),
            campaign_cache: CacheStats::new("campaign"),
            points_cache: CacheStats::new("points"),
            sold_out: None,
            claim_lists: None,
            signals: None,
        }
    }

    /// Publishes changes the other api instances must hear of (a blocklist change) on
    /// the store's pub/sub.
    pub fn with_signals(mut self, signals: RedisSignals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Blocks `subject` for `ttl_secs` (`None`: until lifted): at once here, and on
    /// the other instances as soon as they hear of it (at the latest their next refresh).
    pub async fn block(&self, subject: &Subject, ttl_secs: Option<u64>) -> Result<Block> {
        let block = self.blocklist.block(subject, ttl_secs, now_ms()).await?;
        self.announce(Signal::BlocklistChanged).await;
        Ok(block)
    }

    /// Lifts the block of `subject`; false when it was not blocked.
    pub async fn unblock(&self, subject: &Subject) -> Result<bool> {
        let removed = self.blocklist.unblock(subject).await?;
        self.announce(Signal::BlocklistChanged).await;
        Ok(removed)
    }

    /// Tells the other instances; they learn the same within their refresh if this fails.
    async fn announce(&self, signal: Signal) {
        if let Some(signals) = &self.signals {
            if let Err(e) = signals.publish(signal).await {
                tracing::debug!(error = %e, "could not publish a signal");
            }
        }
    }

    /// Queues behaviour events on `queue` (appending through `log`, its writing side)
    /// instead of in this process.
    pub fn with_behaviour_queue(mut self, queue: Arc<dyn Queue>, log: Arc<dyn EventLog>) -> Self {
        self.events = queue;
        self.event_log = log;
        self
    }

    /// Counts the funnel into `funnel` (shared totals in Redis).
    pub fn with_funnel(mut self, funnel: Funnel) -> Self {
        self.funnel = Arc::new(funnel);
        self
    }

    /// Queues validated behaviour events for the workers (the funnel counts them once
    /// written). Every campaign named must exist ([`EngineError::NotFound`], nothing
    /// queued); its row (cached) gives its bucket count, which shards its events.
    pub async fn ingest_events(&self, events: &[BehaviourEvent]) -> Result<()> {
        let mut buckets = std::collections::HashMap::new();
        for e in events {
            if let std::collections::hash_map::Entry::Vacant(v) = buckets.entry(e.campaign_id) {
                v.insert(self.campaign(e.campaign_id).await?.buckets);
            }
        }
        if self.events_backlog.as_ref().is_some_and(|b| b.shedding()) {
            return Err(EngineError::Shedding);
        }
        self.event_log.append(events, &buckets).await?;
        Ok(())
    }

    /// The campaign's funnel over the last `minutes` minutes (the current one last):
    /// the engine's stages, and the client events the workers have written.
    pub async fn funnel(&self, id: u64, minutes: u32) -> Result<Vec<FunnelMinute>> {
        self.campaign(id).await?;
        let mut out = self.funnel.minutes(id, minutes, now_ms()).await?;
        self.add_event_counts(id, &mut out, false).await?;
        Ok(out)
    }

    /// [`Engine::funnel`] with the five kinds of the dashboard's chart only.
    pub async fn funnel_recent(&self, id: u64, minutes: u32) -> Result<Vec<FunnelMinute>> {
        let mut out = self.funnel.recent(id, minutes, now_ms()).await?;
        self.add_event_counts(id, &mut out, true).await?;
        Ok(out)
    }

    async fn add_event_counts(
        &self,
        id: u64,
        minutes: &mut [FunnelMinute],
        only_kinds: bool,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (minutes.first(), minutes.last()) else {
            return Ok(());
        };
        let counts = self.db.event_minutes(id, first.at_ms, last.at_ms).await?;
        crate::funnel::add_events(minutes, &counts, only_kinds);
        Ok(())
    }

    /// Sends the reads that may lag (see [`Engine::replica`]) to `replica`.
    pub fn with_read_replica(mut self, replica: Database) -> Self {
        self.replica = replica;
        self
    }

    /// Caches each user's first page of claims in `lists`, refreshed by the workers.
    pub fn with_claim_lists(mut self, lists: ClaimLists) -> Self {
        self.claim_lists = Some(lists);
        self
    }

    /// The user's persisted claims, newest first, `limit` of them from after `before`
    /// (`(accepted ms, claim id)` of the last one seen). The first page comes from the
    /// cache when there is one; a store that does not answer leaves it to the database.
    pub async fn user_claims(
        &self,
        user_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Claim>> {
        let first_page = before.is_none() && limit as usize <= FIRST_PAGE;
        if let (true, Some(lists)) = (first_page, &self.claim_lists) {
            match lists.first_page(user_id).await {
                Ok(Some(mut page)) => {
                    page.truncate(limit as usize);
                    return Ok(page);
                }
                Ok(None) => {
                    // From the primary: the page is cached and kept current by the
                    // workers' pushes, which a page read from a lagging replica would miss.
                    let mut page = self
                        .db
                        .user_claims(user_id, None, FIRST_PAGE as i64)
                        .await?;
                    if let Err(e) = lists.fill(user_id, &page).await {
                        tracing::debug!(error = %e, "could not cache a claim page");
                    }
                    page.truncate(limit as usize);
                    return Ok(page);
                }
                Err(e) => tracing::debug!(error = %e, "claim page cache unavailable"),
            }
        }
        self.replica.user_claims(user_id, before, limit).await
    }

    /// A page of a campaign's persisted claims in claim-id order, after `after` (the
    /// admin export), from the read replica when there is one.
    pub async fn export_claims(&self, id: u64, after: &str, limit: i64) -> Result<Vec<Claim>> {
        self.replica.campaign_claims(id, after, limit).await
    }

    /// Refuses claims of sold-out campaigns in-process, a flag trusted for `ttl`, and
    /// (with `signals`) tells the other api instances (see [`crate::sold_out`]). Worth
    /// it when a store call is a network round trip.
    pub fn with_sold_out_flags(
        mut self,
        signals: Option<RedisSignals>,
        ttl: std::time::Duration,
    ) -> Self {
        self.sold_out = Some(Arc::new(SoldOut::new(
            self.store.clone(),
            signals,
            ttl,
            SOLD_OUT_MAX_HOLDERS,
        )));
        self
    }

    /// Serves the public reads' live counters from this process's cache for `ttl`.
    pub fn with_live_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.live = LiveCache::new(ttl, LIVE_CACHE_CAMPAIGNS);
        self
    }

    /// Refuses claims while more than `cap` accepted claims wait unpersisted, sampling
    /// the queue in the background (see [`crate::backlog`]).
    pub fn with_backlog_cap(mut self, cap: u64) -> Self {
        let guard = Arc::new(BacklogGuard::new(cap));
        guard.spawn_sampler(self.queue.clone());
        self.backlog = Some(guard);
        self
    }

    /// Refuses behaviour events (503) while more than `cap` of them wait unwritten,
    /// sampling the events' queue in the background. Call it after
    /// [`Engine::with_behaviour_queue`]: it watches the queue set then.
    pub fn with_events_backlog_cap(mut self, cap: u64) -> Self {
        let guard = Arc::new(BacklogGuard::of(crate::backlog::Backlogged::Events, cap));
        guard.spawn_sampler(self.events.clone());
        self.events_backlog = Some(guard);
        self
    }

    /// Sets the sign-in's time zone, rules and clock.
    pub fn with_signin(mut self, signin: SigninConfig) -> Self {
        self.signin = signin;
        self
    }

    /// Sends concurrent claims of a campaign to the store in batches of up to
    /// `max_batch`, with at most `max_in_flight` batches outstanding per campaign.
    /// A `max_batch` of 1 turns coalescing off: every claim is its own store call.
    /// A coalesced claim waits at most `wait` for its answer.
    pub fn with_coalescing(
        mut self,
        max_batch: usize,
        max_in_flight: usize,
        wait: std::time::Duration,
    ) -> Self {
        self.coalescer = (max_batch > 1)
            .then(|| Coalescer::new(self.store.clone(), max_batch, max_in_flight, wait));
        self
    }

    /// Validates and creates a campaign: the database row first (the source of truth),
    /// then its live state in the store.
    pub async fn create_campaign(
        &self,
        req: &NewCampaign,
    ) -> Result<(Arc<Campaign>, LiveCounters)> {
        let now = now_ms();
        let valid = req.validate(now)?;
        let seed = match valid.kind {
            CampaignKind::RedPacket => rand::rng().next_u64() >> 1,
            CampaignKind::FlashSale => 0,
        };
        let campaign = Arc::new(self.db.insert_campaign(&valid, seed, now).await?);
        let state = rebuild::live_state(&campaign, &[]);
        self.store.load(&state).await?;
        self.campaigns.insert(campaign.id, campaign.clone());
        self.live.invalidate(campaign.id);
        Ok((campaign, state.counters))
    }

    /// The campaign's row, from this instance's cache or the database.
    pub async fn campaign(&self, id: u64) -> Result<Arc<Campaign>> {
        let cached = self.campaigns.get(id);
        self.campaign_cache.record(cached.is_some());
        match cached {
            Some(c) => Ok(c),
            // Boxed: the read's future (a timer and the database call) is large, and
            // every caller's future would carry it, the claim path's on each request.
            None => Box::pin(self.campaign_from_db(id)).await,
        }
    }

    async fn campaign_from_db(&self, id: u64) -> Result<Arc<Campaign>> {
        // Bounded: this read is on the claim path (once per campaign and process).
        let row = tokio::time::timeout(CAMPAIGN_READ, self.db.campaign(id))
            .await
            .map_err(|_| EngineError::Timeout("reading the campaign row"))??;
        let c = Arc::new(row.ok_or(EngineError::NotFound)?);
        self.campaigns.insert(id, c.clone());
        Ok(c)
    }

    /// The campaign with its live counters for the public reads: from the hot cache
    /// (at most its TTL old), or, while the store cannot be reached, the last counters
    /// read, marked [`Freshness::Stale`].
    pub async fn campaign_live_cached(
        &self,
        id: u64,
    ) -> Result<(Arc<Campaign>, LiveCounters, Freshness)> {
        let c = self.campaign(id).await?;
        let cached = self
            .live
            .get(id, now_ms(), || self.store.counters(id))
            .await?;
        match cached {
            Some((k, freshness)) => Ok((c, k, freshness)),
            None => {
                let (c, k) = self.settled_or_missing(c).await?;
                Ok((c, k, Freshness::Fresh))
            }
        }
    }

    /// The campaign with its live counters, read from the store now (admin views).
    /// When the store has none: an ended campaign is settled, so its counters come from
    /// the database; any other gets `StateMissing` (the store lost it and it needs a
    /// rebuild).
    pub async fn campaign_live(&self, id: u64) -> Result<(Arc<Campaign>, LiveCounters)> {
        let c = self.campaign(id).await?;
        match self.store.counters(id).await? {
            Some(k) => Ok((c, k)),
            None => self.settled_or_missing(c).await,
        }
    }

    async fn settled_or_missing(&self, c: Arc<Campaign>) -> Result<(Arc<Campaign>, LiveCounters)> {
        if c.ends_at_ms > now_ms() {
            return Err(EngineError::StateMissing(c.id));
        }
        let k = self.db.settled_counters(&c).await?;
        Ok((c, k))
    }

    /// Campaigns newest first with their counters (from the hot cache): those not yet
    /// ended, or with `include_ended` all of them. A campaign whose live state the store
    /// lost is left out (it answers 503 on its own until rebuilt).
    pub async fn campaigns(
        &self,
        include_ended: bool,
        limit: i64,
    ) -> Result<Vec<(Arc<Campaign>, LiveCounters, Freshness)>> {
        let ends_after = if include_ended { i64::MIN } else { now_ms() };
        // A row from a lagging replica may miss a close: the store enforces the live
        // end, so the cached row is still safe for the claim path.
        let rows = self.replica.campaigns(ends_after, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for c in rows {
            if !self.campaigns.contains(c.id) {
                self.campaigns.insert(c.id, Arc::new(c.clone()));
            }
            match self.campaign_live_cached(c.id).await {
                Ok(live) => out.push(live),
                Err(EngineError::StateMissing(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Ends the campaign now: the database first, then the store.
    pub async fn close(&self, id: u64) -> Result<(Arc<Campaign>, LiveCounters)> {
        self.campaign(id).await?;
        let now = now_ms();
        self.db.close_campaign(id, now).await?;
        self.store.close(id, now).await?;
        self.campaigns.remove(id);
        self.live.invalidate(id);
        self.campaign_live(id).await
    }

    /// The atomic claim step for one user. `quantity` is `None` when the request gave
    /// none (a red packet must not give one); `request_id` travels in the claim event.
    pub async fn claim(
        &self,
        campaign_id: u64,
        user_id: &str,
        quantity: Option<u64>,
        request_id: Option<RequestId>,
    ) -> Result<ClaimOutcome> {
        let c = self.campaign(campaign_id).await?;
        self.claim_in(&c, user_id, quantity, request_id, now_ms())
            .await
    }

    /// [`Engine::claim`] on a campaign row the caller already holds (the api reads it
    /// for its gates: tickets), at `now` (unix ms) as the caller read it.
    pub async fn claim_in(
        &self,
        c: &Campaign,
        user_id: &str,
        quantity: Option<u64>,
        request_id: Option<RequestId>,
        now: i64,
    ) -> Result<ClaimOutcome> {
        let campaign_id = c.id;
        // The funnel's `claim`: an atomic increment, no allocation, no await.
        self.funnel.count_at(campaign_id, Stage::Claim, now);
        let quantity = match quantity {
            None => 1,
            Some(0) => return Err(EngineError::Invalid("quantity must be at least 1".into())),
            Some(q) => q,
        };
        // Refusals that need no store call. An ended campaign: the row's end is never
        // earlier than the store's (a close only moves it earlier), so the store would
        // say the same. A sold-out one, for a user who holds nothing there and asks for
        // no more than the limit (else the store would refuse over the limit first).
        if now >= c.ends_at_ms {
            return Ok(ClaimOutcome::Ended);
        }
        // A red packet is one per user: `quantity: 1` is what its claim is anyway, and
        // more is over that limit, as on a flash sale with a limit of 1.
        if c.kind == CampaignKind::RedPacket && quantity > 1 {
            return Ok(ClaimOutcome::OverLimit { may_take: 1 });
        }
        if quantity <= c.per_user_limit
            && self
                .sold_out
                .as_ref()
                .is_some_and(|s| s.refuses(campaign_id, user_id, now))
        {
            return Ok(ClaimOutcome::SoldOut);
        }
        if self.backlog.as_ref().is_some_and(|b| b.shedding()) {
            return Err(EngineError::Shedding);
        }
        // Boxed: the store call's future is large, and the claim route's future
        // (allocated and moved on every request, the local refusals above included)
        // would carry it.
        Box::pin(self.claim_at_store(c, user_id, quantity, request_id)).await
    }

    /// The claim step in the store, past [`Engine::claim_in`]'s local refusals.
    async fn claim_at_store(
        &self,
        c: &Campaign,
        user_id: &str,
        quantity: u64,
        request_id: Option<RequestId>,
    ) -> Result<ClaimOutcome> {
        let campaign_id = c.id;
        let request = ClaimRequest {
            user_id: user_id.to_string(),
            quantity,
            request_id,
        };
        let outcome = match &self.coalescer {
            Some(coalescer) => {
                let bucket = crate::buckets::home_bucket(user_id, c.buckets);
                coalescer.claim(campaign_id, bucket, request).await?
            }
            None => self.store.claim(campaign_id, now_ms(), request).await?,
        };
        if outcome == ClaimOutcome::Missing {
            // An ended campaign needs no live state to refuse a claim.
            if c.ends_at_ms <= now_ms() {
                return Ok(ClaimOutcome::Ended);
            }
            return Err(EngineError::StateMissing(campaign_id));
        }
        match &outcome {
            // This process's readers see its own sales at once; others within the TTL.
            ClaimOutcome::Accepted(_) => {
                self.funnel.count(campaign_id, Stage::Accepted);
                self.live.invalidate(campaign_id)
            }
            ClaimOutcome::SoldOut => {
                if let Some(s) = &self.sold_out {
                    s.observed(campaign_id);
                }
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Whether a claim's row is committed. A database that does not answer counts as
    /// "not yet": the reply must not fail because the database is down.
    pub async fn persisted(&self, claim: &Claim) -> bool {
        // Short: a stalled database must not hold up the claim reply.
        let lookup = self.db.claim_exists(claim.campaign_id, &claim.id);
        matches!(
            tokio::time::timeout(PERSISTED_LOOKUP, lookup).await,
            Ok(Ok(true))
        )
    }

    /// The user's claims in a campaign: the persisted ones, plus the latest one from
    /// the store when it is not persisted yet.
    pub async fn user_campaign_claims(
        &self,
        campaign_id: u64,
        user_id: &str,
    ) -> Result<Vec<ClaimView>> {
        let c = self.campaign(campaign_id).await?;
        let mut out: Vec<ClaimView> = self
            .db
            .user_campaign_claims(campaign_id, user_id)
            .await?
            .into_iter()
            .map(|claim| ClaimView {
                claim,
                persisted: true,
                order: None,
            })
            .collect();
        if let Some(rec) = self.store.user_record(campaign_id, user_id).await? {
            if !out.iter().any(|v| v.claim.id == rec.last.id) {
                out.push(ClaimView {
                    claim: rec.last,
                    persisted: false,
                    order: None,
                });
            }
        }
        if c.payment_window_secs.is_some() {
            let claims: Vec<Claim> = out.iter().map(|v| v.claim.clone()).collect();
            let mut orders = self.live_orders(&c, &claims).await?;
            for v in &mut out {
                v.order = orders.remove(&v.claim.id);
            }
        }
        Ok(out)
    }

    pub async fn stats(&self, id: u64) -> Result<CampaignStats> {
        // Counters and order counts from one read: units sold = paid + pending within it.
        let (k, orders) = match self.store.snapshot(id).await? {
            Some(s) => s,
            // Settled (ended, and the store let it go): the database's figures.
            None => (
                self.campaign_live(id).await?.1,
                self.db.order_counts(id).await?,
            ),
        };
        Ok(CampaignStats {
            campaign_id: id,
            accepted_claims: k.claims,
            accepted_quantity: k.sold,
            persisted_claims: self.db.persisted_count(id).await?,
            remaining: k.remaining,
            queue_backlog: self.queue.backlog(id).await?,
            dead_letters: self.queue.dead_letters(id).await?,
            claimed_cents: k.cents,
            orders,
        })
    }

    /// The campaign's dead letters, oldest first.
    pub async fn dead_letters(&self, id: u64, limit: usize) -> Result<Vec<DeadLetter>> {
        self.campaign(id).await?;
        self.queue.dead_letter_list(id, limit).await
    }

    /// Moves up to `limit` of the campaign's dead letters back into the queue.
    pub async fn replay_dead_letters(&self, id: u64, limit: usize) -> Result<u64> {
        self.campaign(id).await?;
        self.queue.replay_dead_letters(id, limit).await
    }

    /// Compares the store's counters of the campaign with the database (see
    /// [`crate::reconcile`]).
    pub async fn reconcile(&self, id: u64) -> Result<Reconciliation> {
        let c = self.campaign(id).await?;
        let store = self
            .store
            .counters(id)
            .await?
            .ok_or(EngineError::StateMissing(id))?;
        let (claims, sold, cents) = self.db.campaign_totals(id).await?;
        let backlog = self.queue.backlog(id).await?;
        let dead: Vec<Claim> = self
            .queue
            .dead_letter_list(id, RECONCILE_DEAD_LETTERS)
            .await?
            .iter()
            .filter_map(|d| ClaimEvent::decode(&d.event).map(|e| e.claim))
            .collect();
        let database = Totals {
            claims,
            sold,
            cents,
        };
        // The order changes (and refunds) the store made that the database does not hold
        // yet are queued: that much of the backlog is not claims.
        let order_changes_queued = if c.payment_window_secs.is_some() {
            let closed = |o: &OrderCounts| {
                o.paid_orders + o.expired_orders + o.cancelled_orders + o.refunds_required
            };
            let (live, persisted) = (
                self.store.order_counts(id).await?,
                self.db.order_counts(id).await?,
            );
            closed(&live).saturating_sub(closed(&persisted))
        } else {
            0
        };
        Ok(Reconciliation::compute_with_orders(
            &c,
            &store,
            database,
            backlog,
            order_changes_queued,
            &dead,
        ))
    }

    /// Reloads the campaign's live state from the database, after the store lost it.
    ///
    /// Refused (never overwriting anything) when the store still holds the live state or
    /// another rebuild of the campaign is running: loading an older state over a live one
    /// would sell its stock again. Refused (503, retry) while claim events of the
    /// campaign still wait in the queue: they are not in the database yet. The campaign
    /// row is read fresh from the database, so a close made through another api
    /// instance is kept.
    pub async fn rebuild(&self, id: u64) -> Result<(u64, u64)> {
        let c = Arc::new(self.db.campaign(id).await?.ok_or(EngineError::NotFound)?);
        self.campaigns.insert(id, c.clone());
        if !self.store.lock_rebuild(id, REBUILD_LOCK_TTL).await? {
            return Err(EngineError::RebuildRefused(format!(
                "A rebuild of campaign {id} is already running."
            )));
        }
        let result = self.rebuild_locked(&c).await;
        if let Err(e) = self.store.unlock_rebuild(id).await {
            tracing::warn!(error = %e, campaign = id, "could not release the rebuild lock; it expires on its own");
        }
        result
    }

    async fn rebuild_locked(&self, c: &Campaign) -> Result<(u64, u64)> {
        let id = c.id;
        if self.store.counters(id).await?.is_some() {
            return Err(EngineError::RebuildRefused(format!(
                "Campaign {id} still has its live state; a rebuild is only for a store that lost it."
            )));
        }
        let backlog = self.queue.backlog(id).await?;
        if backlog > 0 {
            return Err(EngineError::Queue(format!(
                "campaign {id} has {backlog} unpersisted claim events; rebuild after they drain"
            )));
        }
        let mut claims = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.db.campaign_claims(id, &after, REBUILD_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            claims.extend(page);
        }
        let (orders, refunds) = if c.payment_window_secs.is_some() {
            let orders = self.db.orders_between(id, "", "~").await?;
            (orders, self.db.order_counts(id).await?.refunds_required)
        } else {
            Default::default()
        };
        let state = rebuild::live_state_with_orders(c, &claims, &orders, refunds);
        self.store.load(&state).await?;
        self.live.invalidate(id);
        if let Some(s) = &self.sold_out {
            s.restocked(id).await;
        }
        Ok((claims.len() as u64, state.counters.remaining))
    }

    /// Runs [`Engine::sweep`] every `every` until `stop` is cancelled (the worker
    /// processes run it: any number may, at once).
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = engine.sweep().await {
                    tracing::debug!(error = %e, "sweep (bucket transfers, due orders) failed; trying again");
                }
            }
        })
    }

    /// Rebuilds every campaign that has not ended and whose live state the store lacks
    /// (the embedded engine at start-up: its in-process store starts empty).
    pub async fn restore_missing(&self) -> Result<usize> {
        let mut restored = 0;
        for c in self.db.campaigns(now_ms(), i64::MAX).await? {
            if self.store.counters(c.id).await?.is_none() {
                self.rebuild(c.id).await?;
                restored += 1;
            }
        }
        Ok(restored)
    }

    /// Today's sign-in for the user: the award and whether this request made it. The
    /// store answers repeats; anything it has no finished record for goes to the
    /// database, whose unique key awards each user and day exactly once.
    pub async fn signin(&self, user_id: &str) -> Result<(SigninRecord, bool)> {
        let day = self.signin.today();
        if let SigninMark::Done(record) = self.store.signin_mark(user_id, day).await? {
            return Ok((record, false));
        }
        let now = self.signin.clock.now_ms();
        let (record, awarded) = self
            .db
            .award_signin(user_id, day, &self.signin.rules, now)
            .await?;
        // Best effort from here: the award is committed; a store that misses these
        // writes only sends the next repeat to the database again.
        if let Err(e) = self.store.signin_remember(user_id, &record).await {
            tracing::warn!(error = %e, "could not record the sign-in in the store");
        }
        let points = Points {
            balance: record.balance,
            streak: record.streak,
            signed_in_today: true,
        };
        self.points.insert(user_id.to_string(), (points, now));
        Ok((record, awarded))
    }

    /// The user's balance and streak, cached for [`POINTS_CACHE_MS`].
    pub async fn points(&self, user_id: &str) -> Result<Points> {
        let now = self.signin.clock.now_ms();
        let today = self.signin.today();
        if let Some((p, at)) = self.points.get(user_id) {
            // A cached "signed in today" must not outlive the day it was read on.
            if now - at < POINTS_CACHE_MS && crate::signin::day_at(self.signin.tz, at) == today {
                self.points_cache.record(true);
                return Ok(p);
            }
        }
        self.points_cache.record(false);
        let (balance, latest) = self.db.points(user_id).await?;
        let p = Points {
            balance,
            streak: current_streak(today, latest),
            signed_in_today: latest.is_some_and(|(d, _)| d == today),
        };
        self.points.insert(user_id.to_string(), (p, now));
        Ok(p)
    }

    /// The days of `month` (default: this month) the user signed in on: from the store's
    /// bitmap when it is complete, else from the database (refilling the bitmap).
    pub async fn signin_calendar(
        &self,
        user_id: &str,
        month: Option<Month>,
    ) -> Result<(Month, Vec<u32>)> {
        let month = month.unwrap_or_else(|| Month::of(self.signin.today()));
        if let Some(days) = self.store.signin_calendar(user_id, month).await? {
            return Ok((month, days));
        }
        let days = self.db.signin_days(user_id, month).await?;
        if !days.is_empty() {
            self.store
                .signin_calendar_fill(user_id, month, &days)
                .await?;
        }
        Ok((month, days))
    }
}

impl SignalSink for Engine {
    /// What this process does when another instance signals (see [`crate::signals`]).
    fn on_signal(&self, signal: Signal) {
        match signal {
            Signal::Restocked(id) => self.live.invalidate(id),
            Signal::BlocklistChanged => return self.blocklist.changed_elsewhere(),
            Signal::SoldOut(_) => {}
        }
        if let Some(s) = &self.sold_out {
            s.heard(signal);
        }
    }
}
