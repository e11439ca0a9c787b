//! The first page of each user's claims (`GET /v1/me/claims`, 40 newest), cached in
//! Redis so the page a user reloads costs no database query.
//!
//! - A read that finds no page reads it from the database and fills the cache
//!   (`lua/claim_list_fill.lua`), kept for [`PAGE_TTL_SECS`].
//! - The worker refreshes it: after a batch commits, each user's new claims are added to
//!   their page if one is cached (`lua/claim_list_push.lua`), keeping the newest 40.
//! - Later pages (`before=`) and pages larger than 40 come from the database.
//!
//! A sorted set per user: score = accepted ms, member = `claim id|claim event`, so ties
//! order by claim id as the database's `ORDER BY accepted_at_ms DESC, claim_id DESC`
//! does (bytewise). The member `~` with score +inf marks a page as complete.
//!
//! Limits: a claim that persists between a read's database query and its fill is missing
//! from that page until the page expires or the user's next claim persists; Redis
//! unreachable means the database answers.

use std::collections::BTreeMap;

use redis::{AsyncCommands, Script};

use crate::claim::{Claim, ClaimEvent};
use crate::error::Result;
use crate::redis_conn::RedisConn;
use crate::store::keys;

/// Claims the cached page holds: the contract's default page size.
pub const FIRST_PAGE: usize = 40;
/// How long a cached page lives without being read again.
pub const PAGE_TTL_SECS: u64 = 3_600;
const MARKER: &str = "~";

pub const FILL_LUA: &str = include_str!("../../lua/claim_list_fill.lua");
pub const PUSH_LUA: &str = include_str!("../../lua/claim_list_push.lua");

#[derive(Clone)]
pub struct ClaimLists {
    conn: RedisConn,
    fill: Script,
    push: Script,
}

impl std::fmt::Debug for ClaimLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimLists")
    }
}

fn member(c: &Claim) -> String {
    let event = ClaimEvent {
        claim: c.clone(),
        request_id: None,
        pay_by_ms: None,
    };
    format!("{}|{}", c.id, event.encode())
}

fn parse_member(m: &str) -> Option<Claim> {
    let (_, event) = m.split_once('|')?;
    ClaimEvent::decode(event).map(|e| e.claim)
}

impl ClaimLists {
    pub fn new(conn: RedisConn) -> Self {
        ClaimLists {
            conn,
            fill: Script::new(FILL_LUA),
            push: Script::new(PUSH_LUA),
        }
    }

    /// The user's cached first page, newest first; `None` when none is cached.
    pub async fn first_page(&self, user_id: &str) -> Result<Option<Vec<Claim>>> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn
            .zrevrange(keys::user_claims(user_id), 0, FIRST_PAGE as isize)
            .await?;
        if members.first().map(String::as_str) != Some(MARKER) {
            return Ok(None);
        }
        Ok(Some(
            members[1..]
                .iter()
                .filter_map(|m| parse_member(m))
                .collect(),
        ))
    }

    /// Caches `page` (the database's first page) as the user's first page.
    pub async fn fill(&self, user_id: &str, page: &[Claim]) -> Result<()> {
        let mut inv = self.fill.key(keys::user_claims(user_id));
        inv.arg(PAGE_TTL_SECS);
        for c in page.iter().take(FIRST_PAGE) {
            inv.arg(c.accepted_at_ms).arg(member(c));
        }
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Adds persisted claims to their users' cached pages (the worker, after a commit):
    /// on one Redis, one pipeline asking which users have a cached page, then one
    /// pipeline pushing to those (none when no page is cached); on a cluster, where
    /// users' pages live in different slots, one script call per user, all at once.
    pub async fn push(&self, claims: &[Claim]) -> Result<()> {
        let mut by_user: BTreeMap<&str, Vec<&Claim>> = BTreeMap::new();
        for c in claims {
            by_user.entry(&c.user_id).or_default().push(c);
        }
        if self.conn.is_cluster() {
            let calls = by_user.iter().map(|(user, claims)| {
                let mut inv = self.push.key(keys::user_claims(user));
                inv.arg(FIRST_PAGE);
                for c in claims {
                    inv.arg(c.accepted_at_ms).arg(member(c));
                }
                let mut conn = self.conn.clone();
                async move { inv.invoke_async::<i64>(&mut conn).await }
            });
            futures::future::try_join_all(calls).await?;
            return Ok(());
        }
        // Most winners have no cached page (they never asked for their claims), so ask
        // first, with one cheap ZSCORE per user in one round trip, and send claims only
        // for the pages that exist. A page filled after the ask from a database read made
        // before the commit misses the claim: the window the module's limits describe,
        // the same as for a page filled after the push.
        let mut ask = redis::pipe();
        for user in by_user.keys() {
            ask.zscore(keys::user_claims(user), MARKER);
        }
        let mut conn = self.conn.clone();
        let cached: Vec<Option<f64>> = ask.query_async(&mut conn).await?;
        let pages: Vec<_> = by_user
            .iter()
            .zip(&cached)
            .filter_map(|(page, marker)| marker.map(|_| page))
            .collect();
        if pages.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        // EVALSHA in a pipeline is not retried on NOSCRIPT: load the script first.
        pipe.load_script(&self.push).ignore();
        for (user, claims) in pages {
            let mut inv = self.push.key(keys::user_claims(user));
            inv.arg(FIRST_PAGE);
            for c in claims {
                inv.arg(c.accepted_at_ms).arg(member(c));
            }
            pipe.invoke_script(&inv).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_sort_by_claim_id() {
        let c = Claim {
            id: "c7-0000000012".into(),
            campaign_id: 7,
            user_id: "u.1".into(),
            quantity: 2,
            amount_cents: 0,
            packet_idx: -1,
            accepted_at_ms: 1_800_000_000_000,
        };
        assert_eq!(parse_member(&member(&c)), Some(c.clone()));
        let later = Claim {
            id: "c7-0000000013".into(),
            ..c.clone()
        };
        assert!(member(&later) > member(&c));
        assert!(
            MARKER > member(&later).as_str(),
            "the marker is never a claim"
        );
    }
}
