//! The admin calls around a run: create the campaign, wait for the queue to drain, page
//! through the export and the refunds, read the funnel. None of this is on the measured
//! path.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::audit::funnel::{sum_minutes, FunnelRead};
use crate::client::{bearer, Client, Prepared, Reply, Target};
use crate::error::{Error, Result};
use crate::wire::{
    Campaign, Claim, ErrorReply, ExportPage, FunnelReply, Refund, RefundPage, Stats,
};

/// Export page size: the contract's `limit`; large pages keep a 100k-claim audit quick.
pub const EXPORT_PAGE: usize = 1000;

/// Refunds page size: the contract's example `limit=100`.
pub const REFUNDS_PAGE: usize = 100;

/// How often the drain wait polls the stats.
pub const DRAIN_POLL: Duration = Duration::from_millis(200);

/// The funnel route's longest window (`docs/api.md`: `minutes` 1 to 1,440).
pub const MAX_FUNNEL_MINUTES: u32 = 1_440;

/// The funnel window that covers a run which began `elapsed` ago: every minute it
/// touched (at most `elapsed / 60 + 2` of them, the current one included), and one more
/// for a clock that differs from the engine's. The campaign is the run's own, so the
/// minutes before it count nothing.
pub fn funnel_window(elapsed: Duration) -> u32 {
    let minutes = elapsed.as_secs() / 60 + 3;
    u32::try_from(minutes).map_or(MAX_FUNNEL_MINUTES, |m| m.min(MAX_FUNNEL_MINUTES))
}

/// An admin session against one target.
pub struct Admin {
    client: Client,
    auth: HeaderValue,
}

impl Admin {
    pub fn new(target: Target, admin_token: &str, timeout: Duration) -> Result<Self> {
        if admin_token.is_empty() {
            return Err(Error::Config(
                "an admin token is required: pass --admin-token or set STAMPEDE_ADMIN_TOKEN".into(),
            ));
        }
        Ok(Self {
            client: Client::new(target, timeout),
            auth: bearer(admin_token)?,
        })
    }

    async fn call(&mut self, method: Method, path: &str, body: Bytes) -> Result<Reply> {
        let prepared = Prepared {
            method,
            uri: self.client.target().uri(path)?,
            auth: Some(self.auth.clone()),
            headers: Vec::new(),
            body,
        };
        self.client.request(&prepared).await
    }

    /// `POST /v1/campaigns` with `body`; expects 201 and the Campaign object.
    pub async fn create_campaign(&mut self, body: &serde_json::Value) -> Result<Campaign> {
        let bytes = Bytes::from(body.to_string());
        let reply = self.call(Method::POST, "/v1/campaigns", bytes).await?;
        expect(&reply, StatusCode::CREATED, "create campaign")?;
        parse(&reply.body, "create campaign")
    }

    /// `GET /v1/admin/campaigns/{id}/stats`.
    pub async fn stats(&mut self, campaign: u64) -> Result<Stats> {
        let path = format!("/v1/admin/campaigns/{campaign}/stats");
        let reply = self.call(Method::GET, &path, Bytes::new()).await?;
        expect(&reply, StatusCode::OK, "campaign stats")?;
        parse(&reply.body, "campaign stats")
    }

    /// Polls the stats until the queue is empty and every accepted claim is persisted,
    /// or `timeout` passes. Returns the last stats and whether it drained.
    pub async fn wait_for_drain(
        &mut self,
        campaign: u64,
        timeout: Duration,
    ) -> Result<(Stats, bool)> {
        self.wait_until(campaign, timeout, Stats::drained).await
    }

    /// Polls the stats until `settled` holds for them or `timeout` passes. Returns the last
    /// stats and whether they settled.
    pub async fn wait_until(
        &mut self,
        campaign: u64,
        timeout: Duration,
        settled: impl Fn(&Stats) -> bool,
    ) -> Result<(Stats, bool)> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats(campaign).await?;
            if settled(&stats) {
                return Ok((stats, true));
            }
            if Instant::now() + DRAIN_POLL > deadline {
                return Ok((stats, false));
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Every persisted claim of the campaign, following `next` until it is null.
    pub async fn export(&mut self, campaign: u64) -> Result<Vec<Claim>> {
        let mut claims = Vec::new();
        let mut after: Option<String> = None;
        // A cursor seen twice would page forever; that is an engine bug worth stopping on.
        let mut cursors = HashSet::new();
        loop {
            let mut path = format!("/v1/admin/campaigns/{campaign}/claims?limit={EXPORT_PAGE}");
            if let Some(cursor) = &after {
                path.push_str("&after=");
                path.push_str(&percent_encode(cursor));
            }
            let reply = self.call(Method::GET, &path, Bytes::new()).await?;
            expect(&reply, StatusCode::OK, "claims export")?;
            let page: ExportPage = parse(&reply.body, "claims export")?;
            let empty = page.claims.is_empty();
            claims.extend(page.claims);
            match page.next {
                Some(next) if !empty => {
                    if !cursors.insert(next.clone()) {
                        return Err(Error::Status {
                            step: "claims export",
                            status: StatusCode::OK,
                            body: format!("the export cursor {next:?} came back twice"),
                        });
                    }
                    after = Some(next);
                }
                _ => return Ok(claims),
            }
        }
    }
}

impl Admin {
    /// `GET /v1/admin/campaigns/{id}/funnel?minutes=N`, summed over the minutes: key ->
    /// count.
    pub async fn funnel(&mut self, campaign: u64, minutes: u32) -> Result<BTreeMap<String, u64>> {
        let path = format!("/v1/admin/campaigns/{campaign}/funnel?minutes={minutes}");
        let reply = self.call(Method::GET, &path, Bytes::new()).await?;
        expect(&reply, StatusCode::OK, "campaign funnel")?;
        let funnel: FunnelReply = parse(&reply.body, "campaign funnel")?;
        if funnel.campaign_id != campaign {
            return Err(Error::Status {
                step: "campaign funnel",
                status: StatusCode::OK,
                body: format!("asked for campaign {campaign}, got {}", funnel.campaign_id),
            });
        }
        Ok(sum_minutes(&funnel.minutes))
    }

    /// Polls the campaign's funnel, over a window covering everything since `since` (the
    /// campaign's creation), until `settled` holds for its sums, `overshot` says they can
    /// never settle, or `timeout` passes. The engine may count late (a flush a second, or
    /// only once its workers wrote the events), so one read that falls short is never
    /// the answer. Returns the last sums and how they were read.
    pub async fn wait_for_funnel(
        &mut self,
        campaign: u64,
        since: Instant,
        timeout: Duration,
        settled: impl Fn(&BTreeMap<String, u64>) -> bool,
        overshot: impl Fn(&BTreeMap<String, u64>) -> bool,
    ) -> Result<(BTreeMap<String, u64>, FunnelRead)> {
        let deadline = Instant::now() + timeout;
        let mut read = FunnelRead::default();
        loop {
            read.minutes = funnel_window(since.elapsed());
            let sums = self.funnel(campaign, read.minutes).await?;
            read.polls += 1;
            if settled(&sums) {
                read.settled = true;
                return Ok((sums, read));
            }
            if overshot(&sums) {
                read.overshot = true;
                return Ok((sums, read));
            }
            if Instant::now() + DRAIN_POLL > deadline {
                return Ok((sums, read));
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Every refund the engine recorded for `campaign`. The route lists all campaigns'
    /// refunds in payment-id order, so this pages through all of them (following `next`)
    /// and keeps the campaign's.
    pub async fn refunds(&mut self, campaign: u64) -> Result<Vec<Refund>> {
        let mut refunds = Vec::new();
        let mut after: Option<String> = None;
        let mut cursors = HashSet::new();
        loop {
            let mut path = format!("/v1/admin/refunds?limit={REFUNDS_PAGE}");
            if let Some(cursor) = &after {
                path.push_str("&after=");
                path.push_str(&percent_encode(cursor));
            }
            let reply = self.call(Method::GET, &path, Bytes::new()).await?;
            expect(&reply, StatusCode::OK, "refunds")?;
            let page: RefundPage = parse(&reply.body, "refunds")?;
            let empty = page.refunds.is_empty();
            refunds.extend(
                page.refunds
                    .into_iter()
                    .filter(|r| r.campaign_id == campaign),
            );
            match page.next {
                Some(next) if !empty => {
                    if !cursors.insert(next.clone()) {
                        return Err(Error::Status {
                            step: "refunds",
                            status: StatusCode::OK,
                            body: format!("the refunds cursor {next:?} came back twice"),
                        });
                    }
                    after = Some(next);
                }
                _ => return Ok(refunds),
            }
        }
    }
}

/// Checks the status, turning the contract's error body into a readable failure.
fn expect(reply: &Reply, want: StatusCode, step: &'static str) -> Result<()> {
    if reply.status == want {
        return Ok(());
    }
    let body = match serde_json::from_slice::<ErrorReply>(&reply.body) {
        Ok(e) => format!("{}: {}", e.error.code, e.error.message),
        Err(_) => String::from_utf8_lossy(&reply.body)
            .chars()
            .take(200)
            .collect(),
    };
    Err(Error::Status {
        step,
        status: reply.status,
        body,
    })
}

fn parse<T: DeserializeOwned>(body: &[u8], step: &'static str) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| Error::Json { step, source })
}

/// Percent-encodes a query value (claim ids are opaque: anything but unreserved
/// characters is escaped).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_funnel_window_covers_the_run_and_a_minute_more() {
        assert_eq!(funnel_window(Duration::ZERO), 3);
        assert_eq!(funnel_window(Duration::from_secs(59)), 3);
        assert_eq!(funnel_window(Duration::from_secs(61)), 4);
        assert_eq!(funnel_window(Duration::from_secs(90 * 86_400)), 1_440);
    }

    #[test]
    fn cursors_are_percent_encoded() {
        assert_eq!(percent_encode("c17-00a_b.~"), "c17-00a_b.~");
        assert_eq!(percent_encode("c1:2/3 4"), "c1%3A2%2F3%204");
    }
}
