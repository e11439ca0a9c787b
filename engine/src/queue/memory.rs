//! The embedded queue: an unbounded tokio channel from the in-process store's critical
//! section (which must never block or await, hence unbounded) to the workers, plus a
//! per-campaign count of unacknowledged events for the stats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Consumer, Delivery, Queue};
use crate::claim::ClaimEvent;
use crate::error::Result;

pub struct MemoryQueue {
    tx: mpsc::UnboundedSender<ClaimEvent>,
    /// Shared by the consumers; each takes it for the length of one fetch.
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ClaimEvent>>>,
    /// Campaign id -> events pushed and not yet acknowledged.
    backlog: parking_lot::Mutex<HashMap<u64, u64>>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryQueue {
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            backlog: parking_lot::Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryQueue {
    /// Enqueues an accepted claim's event; called inside the store's critical section.
    pub fn push(&self, event: ClaimEvent) {
        *self
            .backlog
            .lock()
            .entry(event.claim.campaign_id)
            .or_default() += 1;
        // The receiver lives as long as the queue, so sending cannot fail.
        let _ = self.tx.send(event);
    }

    fn acked(&self, batch: &[Delivery]) {
        let mut backlog = self.backlog.lock();
        for d in batch {
            if let Some(n) = backlog.get_mut(&d.claim.campaign_id) {
                *n = n.saturating_sub(1);
            }
        }
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

    async fn dead_letters(&self, _campaign_id: u64) -> Result<u64> {
        Ok(0)
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
            .map(|event| Delivery::new(event.claim.id.clone(), event))
            .collect())
    }

    async fn reclaim(&mut self, _min_idle: Duration, _max: usize) -> Result<Vec<Delivery>> {
        Ok(Vec::new())
    }

    async fn ack(&mut self, batch: &[Delivery]) -> Result<()> {
        self.queue.acked(batch);
        Ok(())
    }
}
