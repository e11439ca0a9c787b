//! The embedded, in-process store: the same semantics as the Redis script, with one
//! `parking_lot::Mutex` per campaign as the critical section.
//!
//! Why a blocking mutex: the claim step never awaits (it only touches memory and pushes
//! to an unbounded channel), so a short synchronous lock is cheaper than an async one,
//! and claims on different campaigns never contend. The campaign map itself is behind
//! an `RwLock` that is written only when a campaign is loaded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};

use super::{LiveState, SigninMark, Store, UserRecord};
use crate::campaign::{CampaignKind, LiveCounters};
use crate::claim::{Claim, ClaimEvent, ClaimOutcome, ClaimRequest};
use crate::error::Result;
use crate::queue::memory::MemoryQueue;
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
        queue.push(ClaimEvent {
            claim: claim.clone(),
            request_id: req.request_id,
        });
        ClaimOutcome::Accepted(claim)
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
}
