//! The blocklist (contract: `POST/DELETE /v1/admin/blocklist`): users and addresses
//! refused on the claim and sign-in routes, each until lifted or for a TTL.
//!
//! The database holds the list: it is the one store every api instance shares that
//! survives both a Redis restart and an embedded engine's restart (a blocklist that
//! silently empties is a hole). The claim path never reads it: every process answers
//! from its own copy ([`Blocklist`]), refreshed from the database every
//! [`REFRESH_EVERY`] and at once when another instance announces a change over the
//! store's pub/sub ([`crate::signals::Signal::BlocklistChanged`]). A change made by
//! this instance applies to it at once. Expiry is checked on every lookup, so a TTL
//! ends on time whatever the refresh does. While the database is down the last copy
//! stays in force.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::auth::valid_user_id;
use crate::db::Database;
use crate::error::{EngineError, Result};

/// How often each process reads the list again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The most blocks a process holds (and an admin listing shows).
pub const MAX_ENTRIES: i64 = 1_000_000;
/// The longest TTL a block may have: a year.
pub const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// What is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(String),
    Ip(IpAddr),
}

impl Subject {
    /// A user id per the contract's charset.
    pub fn user(id: &str) -> Result<Subject> {
        if valid_user_id(id) {
            Ok(Subject::User(id.to_string()))
        } else {
            Err(EngineError::Invalid(
                "user_id must be 1 to 64 characters of A-Z, a-z, 0-9, _, . and -".into(),
            ))
        }
    }

    /// An IPv4 or IPv6 address, exactly (no surrounding blanks: the OpenAPI document's
    /// `ipv4` / `ipv6` formats take none); an IPv4-mapped IPv6 address is its IPv4 address.
    pub fn ip(addr: &str) -> Result<Subject> {
        addr.parse::<IpAddr>()
            .map(|ip| Subject::Ip(ip.to_canonical()))
            .map_err(|_| EngineError::Invalid("ip must be an IPv4 or IPv6 address".into()))
    }

    /// The database key: `user:<id>` or `ip:<address>`.
    pub fn key(&self) -> String {
        match self {
            Subject::User(u) => format!("user:{u}"),
            Subject::Ip(ip) => format!("ip:{ip}"),
        }
    }

    pub fn parse_key(key: &str) -> Option<Subject> {
        match key.split_once(':')? {
            ("user", u) => Subject::user(u).ok(),
            ("ip", ip) => Subject::ip(ip).ok(),
            _ => None,
        }
    }
}

/// One block in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub subject: Subject,
    /// `None`: until lifted.
    pub expires_at_ms: Option<i64>,
}

/// One process's copy of the list.
#[derive(Default)]
struct Snapshot {
    users: HashMap<String, Option<i64>, foldhash::fast::RandomState>,
    ips: HashMap<IpAddr, Option<i64>, foldhash::fast::RandomState>,
}

impl Snapshot {
    fn set(&mut self, subject: &Subject, expires: Option<Option<i64>>) {
        match (subject, expires) {
            (Subject::User(u), Some(e)) => {
                self.users.insert(u.clone(), e);
            }
            (Subject::User(u), None) => {
                self.users.remove(u);
            }
            (Subject::Ip(ip), Some(e)) => {
                self.ips.insert(*ip, e);
            }
            (Subject::Ip(ip), None) => {
                self.ips.remove(ip);
            }
        }
    }
}

fn in_force(expires: Option<&Option<i64>>, now_ms: i64) -> bool {
    matches!(expires, Some(None)) || matches!(expires, Some(Some(e)) if *e > now_ms)
}

/// The in-process copy of the blocklist, and the changes to it.
pub struct Blocklist {
    db: Database,
    snapshot: RwLock<Snapshot>,
    /// True while the copy holds no block: the common case costs the claim path one
    /// plain atomic load, no lock.
    empty: AtomicBool,
    /// Bumped by every local change; a refresh that raced one is read again, so it
    /// cannot put back a list from before the change.
    changes: AtomicU64,
    /// Wakes the refresher (another instance changed the list).
    wake: Arc<tokio::sync::Notify>,
}

impl Blocklist {
    pub fn new(db: Database) -> Self {
        Blocklist {
            db,
            snapshot: RwLock::new(Snapshot::default()),
            empty: AtomicBool::new(true),
            changes: AtomicU64::new(0),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// True when the user or the address is blocked at `now_ms`. No I/O: the claim
    /// path calls it.
    pub fn refuses(&self, user_id: &str, ip: Option<IpAddr>, now_ms: i64) -> bool {
        if self.empty.load(Ordering::Acquire) {
            return false;
        }
        let snap = self.snapshot.read();
        in_force(snap.users.get(user_id), now_ms)
            || ip.is_some_and(|ip| in_force(snap.ips.get(&ip.to_canonical()), now_ms))
    }

    fn apply(&self, subject: &Subject, expires: Option<Option<i64>>) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.snapshot.write();
        guard.set(subject, expires);
        self.empty.store(
            guard.users.is_empty() && guard.ips.is_empty(),
            Ordering::Release,
        );
    }

    /// Blocks `subject` for `ttl_secs` (`None`: until lifted) from `now_ms`; in force
    /// in this process at once, in the others within a refresh.
    pub async fn block(
        &self,
        subject: &Subject,
        ttl_secs: Option<u64>,
        now_ms: i64,
    ) -> Result<Block> {
        let expires_at_ms = match ttl_secs {
            None => None,
            Some(t) if (1..=MAX_TTL_SECS).contains(&t) => Some(now_ms + t as i64 * 1_000),
            Some(_) => {
                return Err(EngineError::Invalid(format!(
                    "ttl_secs must be between 1 and {MAX_TTL_SECS}"
                )))
            }
        };
        self.db.block(&subject.key(), expires_at_ms, now_ms).await?;
        self.apply(subject, Some(expires_at_ms));
        Ok(Block {
            subject: subject.clone(),
            expires_at_ms,
        })
    }

    /// Lifts the block of `subject`; false when it was not blocked.
    pub async fn unblock(&self, subject: &Subject) -> Result<bool> {
        let removed = self.db.unblock(&subject.key()).await?;
        self.apply(subject, None);
        Ok(removed)
    }

    /// The blocks in force, from the database.
    pub async fn entries(&self, now_ms: i64) -> Result<Vec<Block>> {
        let rows = self.db.blocklist(now_ms, MAX_ENTRIES).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, expires_at_ms)| {
                Subject::parse_key(&key).map(|subject| Block {
                    subject,
                    expires_at_ms,
                })
            })
            .collect())
    }

    /// Reads the list from the database into this process's copy.
    pub async fn refresh(&self, now_ms: i64) -> Result<()> {
        loop {
            let before = self.changes.load(Ordering::SeqCst);
            let entries = self.entries(now_ms).await?;
            let mut next = Snapshot::default();
            for b in &entries {
                next.set(&b.subject, Some(b.expires_at_ms));
            }
            let mut guard = self.snapshot.write();
            if self.changes.load(Ordering::SeqCst) == before {
                self.empty.store(
                    next.users.is_empty() && next.ips.is_empty(),
                    Ordering::Release,
                );
                *guard = next;
                return Ok(());
            }
        }
    }

    /// Another instance changed the list: refresh now rather than at the next tick.
    pub fn changed_elsewhere(&self) {
        self.wake.notify_one();
    }

    /// Refreshes every [`REFRESH_EVERY`] (and when woken) until `list` is dropped.
    pub fn spawn_refresher(list: &Arc<Blocklist>) {
        let weak = Arc::downgrade(list);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let Some(list) = weak.upgrade() else { return };
                match list.refresh(crate::clock::now_ms()).await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot refresh the blocklist; keeping the last copy");
                    }
                    Err(_) => {}
                }
                let wake = list.wake.clone();
                drop(list);
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = wake.notified() => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_and_bad_ones_are_refused() {
        for s in [
            Subject::user("u-1.x_").expect("valid"),
            Subject::ip("203.0.113.9").expect("valid"),
            Subject::ip("2001:db8::1").expect("valid"),
        ] {
            assert_eq!(Subject::parse_key(&s.key()), Some(s.clone()));
        }
        assert_eq!(
            Subject::ip("::ffff:203.0.113.9").expect("valid"),
            Subject::ip("203.0.113.9").expect("valid")
        );
        assert!(Subject::user("").is_err());
        assert!(Subject::user("a b").is_err());
        assert!(Subject::ip("203.0.113").is_err());
        assert!(Subject::ip("203.0.113.0/24").is_err());
        assert_eq!(Subject::parse_key("other:x"), None);
    }

    #[test]
    fn expiry_is_checked_on_lookup() {
        assert!(in_force(Some(&None), 5));
        assert!(in_force(Some(&Some(6)), 5));
        assert!(!in_force(Some(&Some(5)), 5));
        assert!(!in_force(None, 5));
    }
}
