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
//! Streams are discovered from the `stampede:streams` set, re-read every second (it is
//! written by the campaign's load with a plain `SADD`, never from a script, so it works on
//! a cluster too).
//!
//! On one Redis a consumer reads every stream in one blocking `XREADGROUP`. On a cluster
//! the streams live in different slots, and a read of several would be refused
//! (CROSSSLOT): the consumer reads each stream with its own non-blocking `XREADGROUP`,
//! all at once (one round trip per node), and when every stream is empty waits before
//! the next round, from [`IDLE_WAIT_MIN`] doubling up to the fetch's block time, so an
//! idle worker costs a few commands a second and a busy one never waits.
//! An entry that cannot be read, or that the database keeps refusing, is moved to the
//! campaign's dead-letter stream (`{c:ID}:dead`, `lua/dead_letter.lua`) so it cannot
//! block the rest; `lua/replay.lua` moves dead letters back.
//!
//! The same machinery carries the behaviour events ([`Streams::Behaviour`]): one stream
//! per campaign bucket (`{c:ID}:events`, its dead letters `{c:ID}:events:dead`; a
//! bucketed campaign's user's events go to their home bucket's stream, so one hot
//! campaign's events spread over its buckets' slots as its claims do), registered in
//! `stampede:event_streams` and read by the consumer group `stampede-event-writers`.
//! The api appends to them ([`EventLog`]); nothing else differs.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Script};

use super::{Consumer, DeadLetter, Delivery, Event, EventLog, Queue};
use crate::behaviour::BehaviourEvent;
use crate::buckets::BucketCounts;
use crate::error::Result;
use crate::redis_conn::{RedisConn, RedisTarget};
use crate::store::keys::{self, BucketKeys};

/// The ack script, embedded at build time.
pub const ACK_LUA: &str = include_str!("../../../lua/ack.lua");
/// The dead-letter script, embedded at build time.
pub const DEAD_LETTER_LUA: &str = include_str!("../../../lua/dead_letter.lua");
/// The replay script, embedded at build time.
pub const REPLAY_LUA: &str = include_str!("../../../lua/replay.lua");

/// How often a consumer re-reads the set of streams.
const DISCOVERY_EVERY: Duration = Duration::from_secs(1);
/// On a cluster, the first wait after a round of reads that found nothing.
const IDLE_WAIT_MIN: Duration = Duration::from_millis(2);

/// Which streams a [`RedisQueue`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// The claim streams, one per campaign bucket (the claim script fills them).
    Claims,
    /// The behaviour event streams, one per campaign (the api fills them).
    Behaviour,
}

impl Streams {
    /// The set that lists the streams.
    fn registry(self) -> &'static str {
        match self {
            Streams::Claims => keys::STREAMS,
            Streams::Behaviour => keys::EVENT_STREAMS,
        }
    }

    /// The consumer group that reads them.
    fn group(self) -> &'static str {
        match self {
            Streams::Claims => keys::GROUP,
            Streams::Behaviour => keys::EVENT_GROUP,
        }
    }

    /// The dead-letter stream of one of these streams.
    fn dead_letters_of(self, stream: &str) -> Option<String> {
        match self {
            Streams::Claims => BucketKeys::of_stream(stream).map(|b| b.dead_letters()),
            Streams::Behaviour => keys::event_dead_letters_of(stream),
        }
    }
}

/// One stream of a campaign, with its dead letters and its replay answers' key.
struct Lane {
    stream: String,
    dead: String,
    /// Replay id -> the key of that replay's answer.
    replay: Box<dyn Fn(&str) -> String + Send + Sync>,
}

pub struct RedisQueue {
    /// Which streams this queue reads.
    kind: Streams,
    target: RedisTarget,
    /// Bounds every call except the blocking read (which adds its block time).
    timeout: Duration,
    /// For the non-blocking calls: backlog and dead-letter counts.
    conn: RedisConn,
    /// Replicas that must hold the entries a consumer read before it hands them to the
    /// worker (see [`RedisQueue::with_wait_replicas`]); 0: none.
    wait_replicas: u32,
    wait_timeout: Duration,
    /// How many buckets (so streams) each campaign has.
    buckets: BucketCounts,
}

impl RedisQueue {
    pub fn new(target: RedisTarget, timeout: Duration, conn: RedisConn) -> Self {
        RedisQueue {
            kind: Streams::Claims,
            target,
            timeout,
            conn,
            wait_replicas: 0,
            wait_timeout: Duration::ZERO,
            buckets: BucketCounts::default(),
        }
    }

    /// Consumers hand entries to the worker only once `replicas` replicas hold them
    /// (`WAIT` after the read: the read is a write, so its replication offset covers
    /// every entry it returned). Without it a worker could persist a claim that a
    /// failover then loses from Redis, and the claim id would be handed out again to
    /// another claim, which the database's unique key would then drop.
    pub fn with_wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait_replicas = replicas;
        self.wait_timeout = timeout;
        self
    }

    /// The same queue machinery over the behaviour event streams instead of the claims'.
    pub fn behaviour(mut self) -> Self {
        self.kind = Streams::Behaviour;
        self
    }

    /// The campaign's streams: one per bucket (one for an unbucketed campaign), of its
    /// claims or of its behaviour events.
    async fn lanes(&self, campaign_id: u64) -> Result<Vec<Lane>> {
        let n = self.buckets.of(&self.conn, campaign_id).await?;
        let kind = self.kind;
        Ok((0..n)
            .map(|b| {
                let bk = BucketKeys::new(campaign_id, b, n);
                match kind {
                    Streams::Claims => Lane {
                        stream: bk.stream(),
                        dead: bk.dead_letters(),
                        replay: Box::new(move |id| bk.replay(id)),
                    },
                    Streams::Behaviour => Lane {
                        stream: bk.events(),
                        dead: bk.event_dead_letters(),
                        replay: Box::new(move |id| bk.event_replay(id)),
                    },
                }
            })
            .collect())
    }

    /// The summed length of one stream of every lane of the campaign (`stream` names it).
    async fn total_length(&self, campaign_id: u64, stream: fn(&Lane) -> &String) -> Result<u64> {
        let streams: Vec<String> = self
            .lanes(campaign_id)
            .await?
            .iter()
            .map(|l| stream(l).clone())
            .collect();
        Ok(stream_lengths(&self.conn, &streams).await?.iter().sum())
    }

    /// The queue on one Redis at `url`.
    pub fn single(url: &str, timeout: Duration, conn: RedisConn) -> Self {
        Self::new(RedisTarget::Single(url.to_string()), timeout, conn)
    }
}

/// The lengths of `streams`: one pipeline on one Redis, one command per stream (all at
/// once) on a cluster, where they live in different slots.
async fn stream_lengths(conn: &RedisConn, streams: &[String]) -> Result<Vec<u64>> {
    // An empty pipeline is refused by the client ("empty command"): no streams yet.
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    if conn.is_cluster() {
        let lens = futures::future::try_join_all(streams.iter().map(|s| {
            let mut conn = conn.clone();
            async move { conn.xlen::<_, u64>(s).await }
        }))
        .await?;
        return Ok(lens);
    }
    let mut pipe = redis::pipe();
    for s in streams {
        pipe.xlen(s);
    }
    Ok(pipe.query_async(&mut conn.clone()).await?)
}

#[async_trait]
impl Queue for RedisQueue {
    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>> {
        // The blocking read waits up to its block time, so its connection allows more.
        let conn = self
            .target
            .connect(self.timeout + Duration::from_secs(5))
            .await?;
        Ok(Box::new(RedisConsumer {
            kind: self.kind,
            name: name.to_string(),
            conn,
            idle_wait: IDLE_WAIT_MIN,
            wait_replicas: self.wait_replicas,
            wait_timeout: self.wait_timeout,
            ack: Script::new(ACK_LUA),
            dead_letter: Script::new(DEAD_LETTER_LUA),
            streams: Vec::new(),
            discovered: None,
        }))
    }

    async fn backlog(&self, campaign_id: u64) -> Result<u64> {
        self.total_length(campaign_id, |l| &l.stream).await
    }

    async fn total_backlog(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let streams: Vec<String> = conn.smembers(self.kind.registry()).await?;
        Ok(stream_lengths(&self.conn, &streams).await?.iter().sum())
    }

    async fn dead_letters(&self, campaign_id: u64) -> Result<u64> {
        self.total_length(campaign_id, |l| &l.dead).await
    }

    /// Each claim stream in the registry names its bucket, whose dead-letter stream
    /// shares its tag: the registry finds them all (one pipeline, as for the backlog).
    async fn total_dead_letters(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let streams: Vec<String> = conn.smembers(self.kind.registry()).await?;
        let dead: Vec<String> = streams
            .iter()
            .filter_map(|s| self.kind.dead_letters_of(s))
            .collect();
        Ok(stream_lengths(&self.conn, &dead).await?.iter().sum())
    }

    async fn dead_letter_list(&self, campaign_id: u64, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        for lane in self.lanes(campaign_id).await? {
            if out.len() >= limit {
                break;
            }
            let reply: redis::streams::StreamRangeReply = self
                .conn
                .clone()
                .xrange_count(&lane.dead, "-", "+", limit - out.len())
                .await?;
            out.extend(reply.ids.iter().map(|entry| {
                let text = |f: &str| entry.get::<String>(f).unwrap_or_default();
                DeadLetter {
                    id: entry.id.clone(),
                    event: text("e"),
                    reason: text("reason"),
                    failed_at_ms: text("at").parse().unwrap_or(0),
                }
            }));
        }
        Ok(out)
    }

    async fn replay_dead_letters(&self, campaign_id: u64, limit: usize) -> Result<u64> {
        let mut moved = 0;
        for lane in self.lanes(campaign_id).await? {
            if moved >= limit as u64 {
                break;
            }
            let replay_id = format!("{:016x}", rand::random::<u64>());
            let n: u64 = Script::new(REPLAY_LUA)
                .key(&lane.dead)
                .key(&lane.stream)
                .key((lane.replay)(&replay_id))
                .arg(limit as u64 - moved)
                .arg(&replay_id)
                .arg(crate::store::redis::BATCH_REPLY_TTL_MS)
                .invoke_async(&mut self.conn.clone())
                .await?;
            moved += n;
        }
        Ok(moved)
    }
}

#[async_trait]
impl EventLog for RedisQueue {
    /// `XADD`s each event to its stream (its campaign's, or for a bucketed campaign its
    /// user's home bucket's) and registers the streams (a plain `SADD`, every time: it
    /// is cheap, and a registry Redis lost is rebuilt at once). On one Redis, one
    /// pipeline; on a cluster, one per stream (each in its own slot), all at once. The
    /// consumer group is made the first time a consumer meets the stream.
    async fn append(
        &self,
        events: &[BehaviourEvent],
        buckets: &std::collections::HashMap<u64, u64>,
    ) -> Result<()> {
        if self.kind != Streams::Behaviour {
            return Err(crate::error::EngineError::Invalid(
                "the claim queue takes no behaviour events".into(),
            ));
        }
        // The lanes (backlog, dead letters) then count the same buckets.
        for (campaign_id, n) in buckets {
            self.buckets.remember(*campaign_id, *n);
        }
        let mut by_stream: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for e in events {
            let n = buckets.get(&e.campaign_id).copied().unwrap_or(1).max(1);
            let bucket = crate::buckets::home_bucket(&e.user_id, n);
            by_stream
                .entry(BucketKeys::new(e.campaign_id, bucket, n).events())
                .or_default()
                .push(e.encode());
        }
        let streams: Vec<String> = by_stream.keys().cloned().collect();
        let xadds = |entries: &[String], stream: &str, pipe: &mut redis::Pipeline| {
            for e in entries {
                pipe.xadd(stream, "*", &[("e", e.as_str())]).ignore();
            }
        };
        if self.conn.is_cluster() {
            futures::future::try_join_all(by_stream.iter().map(|(stream, entries)| {
                let mut conn = self.conn.clone();
                let mut pipe = redis::pipe();
                xadds(entries, stream, &mut pipe);
                async move { pipe.query_async::<()>(&mut conn).await }
            }))
            .await?;
            let _: () = self
                .conn
                .clone()
                .sadd(keys::EVENT_STREAMS, &streams)
                .await?;
        } else {
            let mut pipe = redis::pipe();
            for (stream, entries) in &by_stream {
                xadds(entries, stream, &mut pipe);
            }
            pipe.sadd(keys::EVENT_STREAMS, &streams).ignore();
            let _: () = pipe.query_async(&mut self.conn.clone()).await?;
        }
        Ok(())
    }
}

struct RedisConsumer {
    /// Which streams it reads (their registry and consumer group).
    kind: Streams,
    name: String,
    conn: RedisConn,
    /// On a cluster: how long to wait after the next round of reads that finds nothing.
    idle_wait: Duration,
    /// See [`RedisQueue::with_wait_replicas`].
    wait_replicas: u32,
    wait_timeout: Duration,
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
        let mut streams: Vec<String> = self.conn.smembers(self.kind.registry()).await?;
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
                // A queue's streams carry its own kind of event only.
                Some(event)
                    if event.campaign_id() == campaign_id
                        && matches!(event, Event::Behaviour(_))
                            == (self.kind == Streams::Behaviour) =>
                {
                    out.push(Delivery::from_stream(stream, entry.id, event))
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
        let dead = self
            .kind
            .dead_letters_of(stream)
            .unwrap_or_else(|| match self.kind {
                Streams::Claims => keys::dead_letters(campaign_id),
                Streams::Behaviour => keys::event_dead_letters(campaign_id),
            });
        let _: String = self
            .dead_letter
            .key(stream)
            .key(dead)
            .arg(self.kind.group())
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
        inv.key(stream).arg(self.kind.group());
        for id in ids {
            inv.arg(*id);
        }
        let _: i64 = inv.invoke_async(&mut self.conn).await?;
        Ok(())
    }

    /// With `wait_replicas`, waits until that many replicas hold what this consumer read
    /// of `stream` (see [`RedisQueue::with_wait_replicas`]). When fewer confirm, the
    /// entries stay pending with this consumer and are reclaimed (and waited for again)
    /// after the reclaim idle time.
    async fn replicated(&mut self, stream: &str) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let confirmed = self
            .conn
            .wait_replicas(stream, self.wait_replicas, self.wait_timeout)
            .await?;
        if confirmed < self.wait_replicas {
            return Err(crate::error::EngineError::Unreachable(format!(
                "{confirmed} of {} replicas hold the claim events read",
                self.wait_replicas
            )));
        }
        Ok(())
    }

    /// One Redis: every stream in one blocking read.
    async fn read_all(
        &mut self,
        max: usize,
        block: Duration,
    ) -> redis::RedisResult<Vec<redis::streams::StreamKey>> {
        let opts = StreamReadOptions::default()
            .group(self.kind.group(), &self.name)
            .count(max)
            .block(block.as_millis() as usize);
        let ids: Vec<&str> = self.streams.iter().map(|_| ">").collect();
        let reply: Option<StreamReadReply> =
            self.conn.xread_options(&self.streams, &ids, &opts).await?;
        Ok(reply.map(|r| r.keys).unwrap_or_default())
    }

    /// A cluster: one non-blocking read per stream, all at once; when all are empty, a
    /// wait that doubles round after round up to `block` (see the module's note).
    async fn read_each(
        &mut self,
        max: usize,
        block: Duration,
    ) -> redis::RedisResult<Vec<redis::streams::StreamKey>> {
        // Share `max` between the streams, so one fetch stays about one batch.
        let count = max.div_ceil(self.streams.len()).max(1);
        let name = self.name.as_str();
        let group = self.kind.group();
        let reads = self.streams.iter().map(|s| {
            let mut conn = self.conn.clone();
            let opts = StreamReadOptions::default().group(group, name).count(count);
            async move {
                conn.xread_options::<_, _, Option<StreamReadReply>>(&[s], &[">"], &opts)
                    .await
            }
        });
        let keys: Vec<_> = futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .flat_map(|r| r.keys)
            .filter(|k| !k.ids.is_empty())
            .collect();
        if keys.is_empty() {
            tokio::time::sleep(self.idle_wait.min(block)).await;
            self.idle_wait = (self.idle_wait * 2).min(block.max(IDLE_WAIT_MIN));
        } else {
            self.idle_wait = IDLE_WAIT_MIN;
        }
        Ok(keys)
    }

    async fn ensure_groups(&mut self) -> Result<()> {
        for s in self.streams.clone() {
            let r: redis::RedisResult<()> = self
                .conn
                .xgroup_create_mkstream(&s, self.kind.group(), "0")
                .await;
            if let Err(e) = r {
                if e.code() != Some("BUSYGROUP") {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

/// The stream a delivery came from (its campaign's, for one made elsewhere).
fn stream_of(d: &Delivery) -> String {
    if !d.stream.is_empty() {
        d.stream.clone()
    } else if let Event::Behaviour(_) = d.event {
        keys::event_stream(d.campaign_id())
    } else {
        keys::stream(d.campaign_id())
    }
}

fn parse_entry(e: &StreamId) -> Option<Event> {
    Event::decode(&e.get::<String>("e")?)
}

#[async_trait]
impl Consumer for RedisConsumer {
    async fn fetch(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>> {
        self.discover().await?;
        if self.streams.is_empty() {
            tokio::time::sleep(block).await;
            return Ok(Vec::new());
        }
        let read = if self.conn.is_cluster() {
            self.read_each(max, block).await
        } else {
            self.read_all(max, block).await
        };
        let keys = match read {
            Ok(keys) => keys,
            Err(e) if e.code() == Some("NOGROUP") => {
                // A stream lost its group (Redis lost its data): recreate and read next time.
                self.ensure_groups().await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        for key in keys.iter().filter(|k| !k.ids.is_empty()) {
            self.replicated(&key.key).await?;
        }
        let mut out = Vec::new();
        for key in keys {
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
                        self.kind.group(),
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
                if !reply.claimed.is_empty() {
                    self.replicated(&stream).await?;
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
                .entry(stream_of(d))
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
        let id = delivery.campaign_id();
        let event = delivery.event.encode();
        tracing::error!(event, reason, "claim event moved to the dead letters");
        self.set_aside(&stream_of(delivery), id, &delivery.entry_id, &event, reason)
            .await
    }
}
