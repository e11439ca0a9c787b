//! The queue of accepted claims (and orders' changes), between the store's atomic steps
//! and the workers.
//!
//! At-least-once: a consumer takes a batch, the worker writes it to the database in one
//! idempotent transaction, and only then acknowledges it. A consumer that dies holding
//! a batch leaves it pending; another one reclaims it after `min_idle`.
//!
//! [`redis::RedisQueue`] is Redis Streams with one consumer group; [`memory::MemoryQueue`]
//! is the embedded mode's in-process channel (nothing to reclaim: a consumer lives as
//! long as the process that holds the queue).
//!
//! Behaviour events ([`crate::behaviour`]) travel a queue of their own, built from the
//! same two kinds ([`redis::Streams::Behaviour`]: other streams, another registry and
//! consumer group; embedded, a second [`memory::MemoryQueue`]), which the api fills
//! through [`EventLog`]. The claim queue never carries them: its backlog is the claims'
//! backlog, which load shedding and the rebuild depend on.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::behaviour::BehaviourEvent;
use crate::claim::{Claim, ClaimEvent};
use crate::error::Result;
use crate::order::{Order, Refund};
use crate::request_id::RequestId;

/// An event set aside (see [`Consumer::dead_letter`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its id among the campaign's dead letters.
    pub id: String,
    /// The event as queued ([`Event::encode`]'s format when it could be read).
    pub event: String,
    pub reason: String,
    pub failed_at_ms: i64,
}

/// What the queue carries: an accepted claim, or an order's change (its final state,
/// or a payment to refund; see [`crate::order`]). All of a campaign bucket's events
/// travel one stream, so one consumer group, one backlog and one set of dead letters
/// cover them all. A behaviour event travels the behaviour queue only (see the
/// module's note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Claim(ClaimEvent),
    Order(Order),
    Refund(Refund),
    Behaviour(BehaviourEvent),
}

impl Event {
    pub fn campaign_id(&self) -> u64 {
        match self {
            Event::Claim(e) => e.claim.campaign_id,
            Event::Order(o) => o.campaign_id,
            Event::Refund(r) => r.campaign_id,
            Event::Behaviour(b) => b.campaign_id,
        }
    }

    /// The stream field `e`: a claim event starts with its campaign id, an order change
    /// with `o|`, a refund with `r|`, a behaviour event with `b{` (its JSON).
    pub fn encode(&self) -> String {
        match self {
            Event::Claim(e) => e.encode(),
            Event::Order(o) => o.change_event(),
            Event::Refund(r) => r.event(),
            Event::Behaviour(b) => b.encode(),
        }
    }

    pub fn decode(s: &str) -> Option<Event> {
        match s.as_bytes().first()? {
            b'o' => Order::from_change_event(s).map(Event::Order),
            b'r' => Refund::from_event(s).map(Event::Refund),
            b'b' => BehaviourEvent::decode(s).map(Event::Behaviour),
            _ => ClaimEvent::decode(s).map(Event::Claim),
        }
    }

    /// A short name of what it is about, for logs: the claim id (a behaviour event's
    /// own id).
    pub fn claim_id(&self) -> &str {
        match self {
            Event::Claim(e) => &e.claim.id,
            Event::Order(o) => &o.claim_id,
            Event::Refund(r) => &r.claim_id,
            Event::Behaviour(b) => &b.id,
        }
    }
}

/// One event handed to a consumer, with what it takes to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue's own id of the entry (a stream entry id in Redis).
    pub entry_id: String,
    pub event: Event,
    /// Where the queue holds it: the Redis stream key (a bucketed campaign has one stream
    /// per bucket); empty in the in-process queue.
    pub stream: String,
}

impl Delivery {
    pub fn new(entry_id: String, event: Event) -> Delivery {
        Delivery {
            entry_id,
            event,
            stream: String::new(),
        }
    }

    /// A delivery read from the Redis stream `stream`.
    pub fn from_stream(stream: &str, entry_id: String, event: Event) -> Delivery {
        Delivery {
            stream: stream.to_string(),
            ..Delivery::new(entry_id, event)
        }
    }

    /// The claim, when this is a claim event.
    pub fn claim(&self) -> Option<&Claim> {
        match &self.event {
            Event::Claim(e) => Some(&e.claim),
            _ => None,
        }
    }

    /// The id of the HTTP request that made the claim, when the event carries one.
    pub fn request_id(&self) -> Option<RequestId> {
        match &self.event {
            Event::Claim(e) => e.request_id,
            _ => None,
        }
    }

    pub fn campaign_id(&self) -> u64 {
        self.event.campaign_id()
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

    /// Dead letters of every campaign (not yet replayed): `stampede_dead_letters`.
    async fn total_dead_letters(&self) -> Result<u64>;

    /// Up to `limit` of the campaign's dead letters, oldest first.
    async fn dead_letter_list(&self, campaign_id: u64, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Moves up to `limit` dead letters back into the queue, oldest first; returns how
    /// many moved.
    async fn replay_dead_letters(&self, campaign_id: u64, limit: usize) -> Result<u64>;
}

/// Where the api puts behaviour events: the behaviour queue's writing side.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Queues the events durably; once this returns, the workers will write them.
    /// `buckets` gives each campaign's bucket count (its row's; absent: 1): with Redis a
    /// bucketed campaign's events go to the streams of their users' home buckets.
    async fn append(
        &self,
        events: &[BehaviourEvent],
        buckets: &std::collections::HashMap<u64, u64>,
    ) -> Result<()>;
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
