//! The embedded queue: an unbounded tokio channel from the in-process store's critical
//! section (which must never block or await, hence unbounded) to the workers, plus a
//! per-campaign count of unacknowledged events for the stats, and the dead letters
//! (kept in memory: they do not outlive the process, which logs each one in full).
//!
//! The behaviour events have a second one of their own, filled through [`EventLog`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::Event;
use super::{Consumer, DeadLetter, Delivery, EventLog, Queue};
use crate::behaviour::BehaviourEvent;
use crate::error::Result;

pub struct MemoryQueue {
    tx: mpsc::UnboundedSender<Event>,
    /// Shared by the consumers; each takes it for the length of one fetch.
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>>,
    /// Campaign id -> events pushed and not yet acknowledged.
    backlog: parking_lot::Mutex<HashMap<u64, u64>>,
    /// Campaign id -> its dead letters with their claims, oldest first.
    dead: parking_lot::Mutex<HashMap<u64, Vec<(DeadLetter, Event)>>>,
    /// Dead-letter ids, counting up.
    dead_seq: std::sync::atomic::AtomicU64,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryQueue {
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            backlog: parking_lot::Mutex::new(HashMap::new()),
            dead: parking_lot::Mutex::new(HashMap::new()),
            dead_seq: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl MemoryQueue {
    /// Enqueues an event; called inside the store's critical section.
    pub fn push(&self, event: Event) {
        *self.backlog.lock().entry(event.campaign_id()).or_default() += 1;
        // The receiver lives as long as the queue, so sending cannot fail.
        let _ = self.tx.send(event);
    }

    fn acked(&self, batch: &[Delivery]) {
        let mut backlog = self.backlog.lock();
        for d in batch {
            if let Some(n) = backlog.get_mut(&d.campaign_id()) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

#[async_trait]
impl EventLog for Arc<MemoryQueue> {
    async fn append(
        &self,
        events: &[BehaviourEvent],
        _buckets: &std::collections::HashMap<u64, u64>,
    ) -> Result<()> {
        for e in events {
            self.push(Event::Behaviour(e.clone()));
        }
        Ok(())
    }
}

struct MemoryConsumer {
    queue: Arc<MemoryQueue>,
}

#[async_trait]
impl Queue for Arc<MemoryQueue> {
    async fn consumer(&self, _name: &str) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(MemoryConsumer {
            queue: self.clone(),
        }))
    }

    async fn backlog(&self, campaign_id: u64) -> Result<u64> {
        Ok(self.backlog.lock().get(&campaign_id).copied().unwrap_or(0))
    }

    async fn total_backlog(&self) -> Result<u64> {
        Ok(self.backlog.lock().values().sum())
    }

    async fn dead_letters(&self, campaign_id: u64) -> Result<u64> {
        Ok(self
            .dead
            .lock()
            .get(&campaign_id)
            .map_or(0, |d| d.len() as u64))
    }

    async fn total_dead_letters(&self) -> Result<u64> {
        Ok(self.dead.lock().values().map(|d| d.len() as u64).sum())
    }

    async fn dead_letter_list(&self, campaign_id: u64, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(self
            .dead
            .lock()
            .get(&campaign_id)
            .map(|d| d.iter().take(limit).map(|(l, _)| l.clone()).collect())
            .unwrap_or_default())
    }

    async fn replay_dead_letters(&self, campaign_id: u64, limit: usize) -> Result<u64> {
        let replayed: Vec<Event> = {
            let mut dead = self.dead.lock();
            let Some(list) = dead.get_mut(&campaign_id) else {
                return Ok(0);
            };
            let n = limit.min(list.len());
            list.drain(..n).map(|(_, c)| c).collect()
        };
        let n = replayed.len() as u64;
        for event in replayed {
            self.push(event);
        }
        Ok(n)
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn fetch(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>> {
        let mut rx = self.queue.rx.lock().await;
        let mut out = Vec::new();
        match tokio::time::timeout(block, rx.recv()).await {
            Ok(Some(first)) => out.push(first),
            _ => return Ok(Vec::new()),
        }
        while out.len() < max {
            match rx.try_recv() {
                Ok(c) => out.push(c),
                Err(_) => break,
            }
        }
        Ok(out
            .into_iter()
            .map(|event| Delivery::new(event.claim_id().to_string(), event))
            .collect())
    }

    async fn reclaim(&mut self, _min_idle: Duration, _max: usize) -> Result<Vec<Delivery>> {
        Ok(Vec::new())
    }

    async fn ack(&mut self, batch: &[Delivery]) -> Result<()> {
        self.queue.acked(batch);
        Ok(())
    }

    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<()> {
        let event = delivery.event.clone();
        let id = self
            .queue
            .dead_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let letter = DeadLetter {
            id: id.to_string(),
            event: event.encode(),
            reason: reason.to_string(),
            failed_at_ms: crate::clock::now_ms(),
        };
        tracing::error!(event = %letter.event, reason, "claim event moved to the dead letters (in memory)");
        self.queue
            .dead
            .lock()
            .entry(event.campaign_id())
            .or_default()
            .push((letter, event));
        self.queue.acked(std::slice::from_ref(delivery));
        Ok(())
    }
}
