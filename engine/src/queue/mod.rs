//! The queue of accepted claims, between the store's claim step and the workers.
//!
//! At-least-once: a consumer takes a batch, the worker writes it to the database in one
//! idempotent transaction, and only then acknowledges it. A consumer that dies holding
//! a batch leaves it pending; another one reclaims it after `min_idle`.
//!
//! [`redis::RedisQueue`] is Redis Streams with one consumer group; [`memory::MemoryQueue`]
//! is the embedded mode's in-process channel (nothing to reclaim: a consumer lives as
//! long as the process that holds the queue).

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::claim::{Claim, ClaimEvent};
use crate::error::Result;
use crate::request_id::RequestId;

/// A claim event set aside (see [`Consumer::dead_letter`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its id among the campaign's dead letters.
    pub id: String,
    /// The event as queued ([`Claim::to_event`]'s format when it could be read).
    pub event: String,
    pub reason: String,
    pub failed_at_ms: i64,
}

/// One claim event handed to a consumer, with what it takes to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue's own id of the entry (a stream entry id in Redis).
    pub entry_id: String,
    pub claim: Claim,
    /// The id of the HTTP request that made the claim, when the event carries one.
    pub request_id: Option<RequestId>,
    /// Where the queue holds it: the Redis stream key (a bucketed campaign has one stream
    /// per bucket); empty in the in-process queue.
    pub stream: String,
}

impl Delivery {
    pub fn new(entry_id: String, event: ClaimEvent) -> Delivery {
        Delivery {
            entry_id,
            claim: event.claim,
            request_id: event.request_id,
            stream: String::new(),
        }
    }

    /// A delivery read from the Redis stream `stream`.
    pub fn from_stream(stream: &str, entry_id: String, event: ClaimEvent) -> Delivery {
        Delivery {
            stream: stream.to_string(),
            ..Delivery::new(entry_id, event)
        }
    }

    /// The claim event this delivery carried.
    pub fn event(&self) -> ClaimEvent {
        ClaimEvent {
            claim: self.claim.clone(),
            request_id: self.request_id,
        }
    }
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// A consumer for one worker task. `name` must be unique among live consumers.
    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>>;

    /// Claim events of the campaign accepted but not yet acknowledged.
    async fn backlog(&self, campaign_id: u64) -> Result<u64>;

    /// Claim events of every campaign accepted but not yet acknowledged.
    async fn total_backlog(&self) -> Result<u64>;

    /// Events of the campaign that could not be processed and were set aside.
    async fn dead_letters(&self, campaign_id: u64) -> Result<u64>;

    /// Up to `limit` of the campaign's dead letters, oldest first.
    async fn dead_letter_list(&self, campaign_id: u64, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Moves up to `limit` dead letters back into the queue, oldest first; returns how
    /// many moved.
    async fn replay_dead_letters(&self, campaign_id: u64, limit: usize) -> Result<u64>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Up to `max` new events, waiting at most `block` for the first.
    async fn fetch(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>>;

    /// Up to `max` events that another consumer took and has not acknowledged for
    /// at least `min_idle`; they now belong to this consumer.
    async fn reclaim(&mut self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>>;

    /// Acknowledges a batch after its transaction committed.
    async fn ack(&mut self, batch: &[Delivery]) -> Result<()>;

    /// Sets an event the database keeps refusing aside among its campaign's dead
    /// letters, with `reason`, and acknowledges it: the rest of the queue flows on, and
    /// the accepted claim is kept for a replay.
    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<()>;
}
