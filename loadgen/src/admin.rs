//! The admin calls around a run: create the campaign, wait for the queue to drain, page
//! through the export. None of this is on the measured path.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::client::{bearer, Client, Prepared, Reply, Target};
use crate::error::{Error, Result};
use crate::wire::{Campaign, Claim, ErrorReply, ExportPage, Stats};

/// Export page size: the contract's `limit`; large pages keep a 100k-claim audit quick.
pub const EXPORT_PAGE: usize = 1000;

/// How often the drain wait polls the stats.
pub const DRAIN_POLL: Duration = Duration::from_millis(200);

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
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats(campaign).await?;
            if stats.drained() {
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
    fn cursors_are_percent_encoded() {
        assert_eq!(percent_encode("c17-00a_b.~"), "c17-00a_b.~");
        assert_eq!(percent_encode("c1:2/3 4"), "c1%3A2%2F3%204");
    }
}
