//! The local sold-out flag: once a campaign is sold out, this process refuses its
//! claims in-process, without a store call. The exception is the users who hold a claim
//! in it: their retries must still hear `already_claimed` with their claim, so they go
//! to the store as before. The flag therefore carries the campaign's holders, read from
//! the store once when the flag is set (and again only when their number changed).
//!
//! - **Set** when the store answers `sold_out` to a claim of this process and its
//!   counters show nothing left (`sold_out` also answers a quantity above what is
//!   left). Announced to every other api instance over Redis pub/sub
//!   ([`crate::signals`]); they check the same and set their own flag.
//! - **Trusted for `ttl`**. After that the next claims ask the store again, and its
//!   `sold_out` re-arms the flag. So an instance that missed an announcement (its
//!   subscription was reconnecting) is right again within `ttl` either way.
//! - **Cleared** when the campaign gets stock back (a rebuild), here at once and on the
//!   other instances by a `restocked` announcement.
//! - **Bounded**: a campaign with more than `max_holders` holders gets no flag (its
//!   refusals keep going to the store); flags of campaigns no longer refused are dropped
//!   when they are long expired.
//!
//! Ended campaigns need no flag: the campaign row's end is enough (see
//! [`crate::service::Engine::claim`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::clock::now_ms;
use crate::error::Result;
use crate::signals::{RedisSignals, Signal};
use crate::store::Store;

pub struct SoldOut {
    ttl_ms: i64,
    max_holders: u64,
    store: Arc<dyn Store>,
    signals: Option<RedisSignals>,
    /// Read on every refused claim, written once per flag TTL at most: an `ArcSwap`
    /// (copy on write), so a read writes no cache line the other cores read (a
    /// `RwLock`'s read count did, on every refusal; `crate::striped` says why that costs).
    flags: ArcSwap<Flags>,
    /// Campaigns whose flag is being (re)loaded, so one load runs at a time.
    loading: Mutex<HashSet<u64>>,
}

type Flags = HashMap<u64, Flag, foldhash::fast::RandomState>;

#[derive(Clone)]
struct Flag {
    armed_ms: i64,
    holders: Arc<HashSet<String, foldhash::fast::RandomState>>,
}

/// How many TTLs an expired flag is kept (for a cheap re-arm) before it is dropped.
const KEEP_EXPIRED_TTLS: i64 = 60;

impl SoldOut {
    pub fn new(
        store: Arc<dyn Store>,
        signals: Option<RedisSignals>,
        ttl: std::time::Duration,
        max_holders: u64,
    ) -> Self {
        SoldOut {
            ttl_ms: ttl.as_millis() as i64,
            max_holders,
            store,
            signals,
            flags: ArcSwap::from_pointee(HashMap::default()),
            loading: Mutex::new(HashSet::new()),
        }
    }

    /// Whether this claim is refused locally: the campaign's flag is armed and the user
    /// holds nothing in it.
    pub fn refuses(&self, campaign_id: u64, user_id: &str, now_ms: i64) -> bool {
        match self.flags.load().get(&campaign_id) {
            Some(f) => now_ms - f.armed_ms < self.ttl_ms && !f.holders.contains(user_id),
            None => false,
        }
    }

    fn armed(&self, campaign_id: u64, now_ms: i64) -> bool {
        self.flags
            .load()
            .get(&campaign_id)
            .is_some_and(|f| now_ms - f.armed_ms < self.ttl_ms)
    }

    /// The store answered `sold_out` to a claim of this process: arm the flag (in the
    /// background: the reply does not wait) and tell the other instances.
    pub fn observed(self: &Arc<Self>, campaign_id: u64) {
        self.spawn_arm(campaign_id, true);
    }

    /// A signal from another instance.
    pub fn heard(self: &Arc<Self>, signal: Signal) {
        match signal {
            Signal::SoldOut(id) => self.spawn_arm(id, false),
            Signal::Restocked(id) => self.clear(id),
            Signal::BlocklistChanged => {}
        }
    }

    /// The campaign got stock back here: clear the flag, and on the other instances.
    pub async fn restocked(&self, campaign_id: u64) {
        self.clear(campaign_id);
        if let Some(signals) = &self.signals {
            if let Err(e) = signals.publish(Signal::Restocked(campaign_id)).await {
                tracing::warn!(error = %e, campaign = campaign_id,
                    "could not announce the restock; other instances see it within the flag's TTL");
            }
        }
    }

    fn clear(&self, campaign_id: u64) {
        self.flags.rcu(|flags| {
            let mut flags = Flags::clone(flags);
            flags.remove(&campaign_id);
            flags
        });
    }

    fn spawn_arm(self: &Arc<Self>, campaign_id: u64, announce: bool) {
        if self.armed(campaign_id, now_ms()) || !self.loading.lock().insert(campaign_id) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match this.arm(campaign_id).await {
                Ok(true) if announce => {
                    if let Some(signals) = &this.signals {
                        if let Err(e) = signals.publish(Signal::SoldOut(campaign_id)).await {
                            tracing::debug!(error = %e, "could not announce a sold-out campaign");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, campaign = campaign_id, "sold-out flag not set")
                }
            }
            this.loading.lock().remove(&campaign_id);
        });
    }

    /// Arms the flag with the campaign's holders (the set already held when their number
    /// is unchanged, else read afresh), if nothing is left. False when something is left
    /// or it has too many holders.
    async fn arm(&self, campaign_id: u64) -> Result<bool> {
        // `sold_out` also answers a quantity above what is left; only none left counts.
        let left = self.store.counters(campaign_id).await?;
        if left.is_none_or(|k| k.remaining > 0) {
            self.clear(campaign_id);
            return Ok(false);
        }
        let count = self.store.holder_count(campaign_id).await?;
        if count > self.max_holders {
            return Ok(false);
        }
        let known = self
            .flags
            .load()
            .get(&campaign_id)
            .filter(|f| f.holders.len() as u64 == count)
            .map(|f| f.holders.clone());
        let holders = match known {
            Some(h) => h,
            None => Arc::new(self.store.holders(campaign_id).await?.into_iter().collect()),
        };
        let now = now_ms();
        self.flags.rcu(|flags| {
            let mut flags = Flags::clone(flags);
            flags.retain(|_, f| now - f.armed_ms < self.ttl_ms * KEEP_EXPIRED_TTLS);
            flags.insert(
                campaign_id,
                Flag {
                    armed_ms: now,
                    holders: holders.clone(),
                },
            );
            flags
        });
        Ok(true)
    }
}
