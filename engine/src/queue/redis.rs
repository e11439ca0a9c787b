//! The Redis Streams queue.
//!
//! Design: the claim script `XADD`s each accepted claim to its campaign's stream
//! (`{c:ID}:claims`, in the campaign's slot). All workers share one consumer group.
//! A consumer reads new entries with `XREADGROUP ... >`: they enter the group's
//! pending-entry list (PEL) under its name and stay there until `lua/ack.lua`
//! acknowledges and deletes them, after the database transaction commits. If the
//! consumer dies, its entries stay pending; any consumer's periodic `XAUTOCLAIM` takes
//! over those idle longer than `min_idle`. Deleting acknowledged entries keeps each
//! stream's length equal to its campaign's unpersisted backlog.
//!
//! Each consumer has its own connection: `XREADGROUP BLOCK` holds a connection while
//! it waits, which would stall everything pipelined behind it on a shared one.
//! Streams are discovered from the `stampede:streams` set, re-read every second.
//! An entry that cannot be read, or that the database keeps refusing, is moved to the
//! campaign's dead-letter stream (`{c:ID}:dead`, `lua/dead_letter.lua`) so it cannot
//! block the rest; `lua/replay.lua` moves dead letters back.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Script};

use super::{Consumer, DeadLetter, Delivery, Queue};
use crate::claim::ClaimEvent;
use crate::error::Result;
use crate::store::keys;

/// The ack script, embedded at build time.
pub const ACK_LUA: &str = include_str!("../../../lua/ack.lua");
/// The dead-letter script, embedded at build time.
pub const DEAD_LETTER_LUA: &str = include_str!("../../../lua/dead_letter.lua");
/// The replay script, embedded at build time.
pub const REPLAY_LUA: &str = include_str!("../../../lua/replay.lua");

/// How often a consumer re-reads the set of streams.
const DISCOVERY_EVERY: Duration = Duration::from_secs(1);

pub struct RedisQueue {
    url: String,
    /// Bounds every call except the blocking read (which adds its block time).
    timeout: Duration,
    /// For the non-blocking calls: backlog and dead-letter counts.
    conn: ConnectionManager,
}

impl RedisQueue {
    pub fn new(url: &str, timeout: Duration, conn: ConnectionManager) -> Self {
        RedisQueue {
            url: url.to_string(),
            timeout,
            conn,
        }
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>> {
        // The blocking read waits up to its block time, so its connection allows more.
        let conn =
            crate::store::redis::connect(&self.url, self.timeout + Duration::from_secs(5)).await?;
        Ok(Box::new(RedisConsumer {
            name: name.to_string(),
            conn,
            ack: Script::new(ACK_LUA),
            dead_letter: Script::new(DEAD_LETTER_LUA),
            streams: Vec::new(),
            discovered: None,
        }))
    }

    async fn backlog(&self, campaign_id: u64) -> Result<u64> {
        let mut conn = self.conn.clone();
        Ok(conn.xlen(keys::stream(campaign_id)).await?)
    }

    async fn total_backlog(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let streams: Vec<String> = conn.smembers(keys::STREAMS).await?;
        let mut pipe = redis::pipe();
        for s in &streams {
            pipe.xlen(s);
        }
        let lens: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(lens.iter().sum())
    }

    async fn dead_letters(&self, campaign_id: u64) -> Result<u64> {
        let mut conn = self.conn.clone();
        Ok(conn.xlen(keys::dead_letters(campaign_id)).await?)
    }

    async fn dead_letter_list(&self, campaign_id: u64, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = conn
            .xrange_count(keys::dead_letters(campaign_id), "-", "+", limit)
            .await?;
        Ok(reply
            .ids
            .iter()
            .map(|entry| {
                let text = |f: &str| entry.get::<String>(f).unwrap_or_default();
                DeadLetter {
                    id: entry.id.clone(),
                    event: text("e"),
                    reason: text("reason"),
                    failed_at_ms: text("at").parse().unwrap_or(0),
                }
            })
            .collect())
    }

    async fn replay_dead_letters(&self, campaign_id: u64, limit: usize) -> Result<u64> {
        let mut conn = self.conn.clone();
        let moved: u64 = Script::new(REPLAY_LUA)
            .key(keys::dead_letters(campaign_id))
            .key(keys::stream(campaign_id))
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved)
    }
}

struct RedisConsumer {
    name: String,
    conn: ConnectionManager,
    ack: Script,
    dead_letter: Script,
    /// The stream keys this consumer reads, refreshed every [`DISCOVERY_EVERY`].
    streams: Vec<String>,
    discovered: Option<Instant>,
}

impl RedisConsumer {
    async fn discover(&mut self) -> Result<()> {
        if self
            .discovered
            .is_some_and(|t| t.elapsed() < DISCOVERY_EVERY)
        {
            return Ok(());
        }
        let mut streams: Vec<String> = self.conn.smembers(keys::STREAMS).await?;
        streams.sort();
        self.streams = streams;
        self.discovered = Some(Instant::now());
        Ok(())
    }

    /// Turns stream entries into deliveries; unreadable ones (or ones of another
    /// campaign than their stream's) go to the dead letters.
    async fn deliveries(&mut self, stream: &str, ids: Vec<StreamId>) -> Result<Vec<Delivery>> {
        let campaign_id = keys::stream_campaign(stream).unwrap_or(0);
        let mut out = Vec::with_capacity(ids.len());
        for entry in ids {
            match parse_entry(&entry) {
                Some(event) if event.claim.campaign_id == campaign_id => {
                    out.push(Delivery::new(entry.id, event))
                }
                _ => {
                    let event = entry.get::<String>("e").unwrap_or_default();
                    tracing::error!(stream, entry = %entry.id, event, "unreadable claim event moved to the dead letters");
                    self.set_aside(stream, campaign_id, &entry.id, &event, "unreadable event")
                        .await?;
                }
            }
        }
        Ok(out)
    }

    async fn set_aside(
        &mut self,
        stream: &str,
        campaign_id: u64,
        entry_id: &str,
        event: &str,
        reason: &str,
    ) -> Result<()> {
        let _: String = self
            .dead_letter
            .key(stream)
            .key(keys::dead_letters(campaign_id))
            .arg(keys::GROUP)
            .arg(entry_id)
            .arg(event)
            .arg(reason)
            .arg(crate::clock::now_ms())
            .invoke_async(&mut self.conn)
            .await?;
        Ok(())
    }

    async fn ack_ids(&mut self, stream: &str, ids: &[&str]) -> Result<()> {
        let mut inv = self.ack.prepare_invoke();
        inv.key(stream).arg(keys::GROUP);
        for id in ids {
            inv.arg(*id);
        }
        let _: i64 = inv.invoke_async(&mut self.conn).await?;
        Ok(())
    }

    async fn ensure_groups(&mut self) -> Result<()> {
        for s in self.streams.clone() {
            let r: redis::RedisResult<()> =
                self.conn.xgroup_create_mkstream(&s, keys::GROUP, "0").await;
            if let Err(e) = r {
                if e.code() != Some("BUSYGROUP") {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

fn parse_entry(e: &StreamId) -> Option<ClaimEvent> {
    ClaimEvent::decode(&e.get::<String>("e")?)
}

#[async_trait]
impl Consumer for RedisConsumer {
    async fn fetch(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>> {
        self.discover().await?;
        if self.streams.is_empty() {
            tokio::time::sleep(block).await;
            return Ok(Vec::new());
        }
        let opts = StreamReadOptions::default()
            .group(keys::GROUP, &self.name)
            .count(max)
            .block(block.as_millis() as usize);
        let ids: Vec<&str> = self.streams.iter().map(|_| ">").collect();
        let reply: redis::RedisResult<Option<StreamReadReply>> =
            self.conn.xread_options(&self.streams, &ids, &opts).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) if e.code() == Some("NOGROUP") => {
                // A stream lost its group (Redis lost its data): recreate and read next time.
                self.ensure_groups().await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let mut batch = self.deliveries(&key.key, key.ids).await?;
            out.append(&mut batch);
        }
        Ok(out)
    }

    async fn reclaim(&mut self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>> {
        self.discover().await?;
        let mut out = Vec::new();
        for stream in self.streams.clone() {
            let mut start = String::from("0-0");
            loop {
                let left = max.saturating_sub(out.len());
                if left == 0 {
                    return Ok(out);
                }
                let opts = StreamAutoClaimOptions::default().count(left);
                let reply: redis::RedisResult<redis::streams::StreamAutoClaimReply> = self
                    .conn
                    .xautoclaim_options(
                        &stream,
                        keys::GROUP,
                        &self.name,
                        min_idle.as_millis() as u64,
                        &start,
                        opts,
                    )
                    .await;
                let reply = match reply {
                    Ok(r) => r,
                    Err(e) if e.code() == Some("NOGROUP") => break,
                    Err(e) => return Err(e.into()),
                };
                if !reply.claimed.is_empty() {
                    tracing::warn!(stream, n = reply.claimed.len(), consumer = %self.name, "reclaimed pending claim events");
                }
                let mut batch = self.deliveries(&stream, reply.claimed).await?;
                out.append(&mut batch);
                if reply.next_stream_id == "0-0" {
                    break;
                }
                start = reply.next_stream_id;
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, batch: &[Delivery]) -> Result<()> {
        // Group by stream: a batch may span campaigns.
        let mut by_stream: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
        for d in batch {
            by_stream
                .entry(keys::stream(d.claim.campaign_id))
                .or_default()
                .push(d.entry_id.as_str());
        }
        for (stream, ids) in by_stream {
            for chunk in ids.chunks(1_000) {
                self.ack_ids(&stream, chunk).await?;
            }
        }
        Ok(())
    }

    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<()> {
        let id = delivery.claim.campaign_id;
        let event = delivery.event().encode();
        tracing::error!(event, reason, "claim event moved to the dead letters");
        self.set_aside(&keys::stream(id), id, &delivery.entry_id, &event, reason)
            .await
    }
}
