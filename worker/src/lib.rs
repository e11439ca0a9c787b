//! The worker: consumer tasks that drain the queue of accepted claims into the database.
//!
//! Each task loops: take a batch (reclaiming first, every `reclaim_every`, what dead
//! consumers left pending), write it in ONE transaction that skips rows already there,
//! and only after the commit acknowledge it. A crash anywhere in that loop leaves the
//! batch pending, to be reclaimed and rewritten; the unique keys make the rewrite a
//! no-op, so every accepted claim lands exactly once.
//!
//! A database that fails is retried with capped exponential backoff and jitter; the
//! queue buffers meanwhile. A batch the database refuses for its data (a constraint, a
//! value it cannot store) is written claim by claim to find the poison: each claim it
//! keeps refusing after `poison_attempts` tries moves to its campaign's dead letters,
//! and the rest of the batch is written and acknowledged. On shutdown a task finishes (and acknowledges) the batch
//! it holds; with `drain_on_shutdown` (the embedded queue, which lives in memory) it
//! keeps going until the queue is empty.
//!
//! The same loop, over the behaviour queue with its own tasks ([`run`] once more, with
//! [`WorkerConfig::events`]), writes behaviour events (partitioned by day) with their minutes' counts, and
//! [`retention`] makes the coming days' partitions and drops the days past their retention.
//!
//! Each persisted claim is logged at debug level with the id of the HTTP request that
//! made it (`RUST_LOG=stampede_worker=debug`); nothing is logged per claim at info.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use stampede_engine::claim::Claim;
use stampede_engine::claim_lists::ClaimLists;
use stampede_engine::clock::now_ms;
use stampede_engine::db::{Database, OrderWrites};
use stampede_engine::order::Order;
use stampede_engine::queue::{Delivery, Event, Queue};
use tokio_util::sync::CancellationToken;

pub mod retention;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Consumer tasks; each holds its own queue connection and one database connection
    /// while it writes.
    pub consumers: usize,
    /// Claims per batch, so per transaction.
    pub batch_size: usize,
    /// How long one fetch waits for the first event; also bounds how long a task takes
    /// to notice shutdown.
    pub block: Duration,
    /// An event pending this long with its consumer is taken over.
    pub reclaim_idle: Duration,
    pub reclaim_every: Duration,
    /// Keep draining after shutdown until the queue is empty (embedded queue).
    pub drain_on_shutdown: bool,
    /// Tries to write a claim the database refuses for its data before it is set aside.
    pub poison_attempts: u32,
    /// When set, each committed claim is added to its user's cached first page of
    /// claims (see `stampede_engine::claim_lists`).
    pub claim_lists: Option<ClaimLists>,
    /// Consumer names are `{name}-{i}`; unique per process (host and pid by default).
    pub name: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            consumers: 4,
            batch_size: 1_000,
            block: Duration::from_millis(200),
            reclaim_idle: Duration::from_secs(30),
            reclaim_every: Duration::from_secs(5),
            drain_on_shutdown: false,
            poison_attempts: 5,
            claim_lists: None,
            name: default_name(),
        }
    }
}

impl WorkerConfig {
    /// The behaviour event writers: one consumer, batches of up to 1,000 events, names
    /// `{name}-events-{i}`; otherwise as `self`.
    pub fn events(&self) -> WorkerConfig {
        WorkerConfig {
            consumers: 1,
            batch_size: 1_000,
            claim_lists: None,
            name: format!("{}-events", self.name),
            ..self.clone()
        }
    }
}

/// `{hostname}-{pid}`, unique among the live workers of one deployment.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "stampede".into());
    format!("{host}-{}", std::process::id())
}

/// Runs the consumer tasks until `shutdown` is cancelled and they have flushed.
pub async fn run(
    queue: Arc<dyn Queue>,
    db: Database,
    config: WorkerConfig,
    shutdown: CancellationToken,
) {
    let tasks: Vec<_> = (0..config.consumers.max(1))
        .map(|i| {
            let (queue, db, config, shutdown) =
                (queue.clone(), db.clone(), config.clone(), shutdown.clone());
            tokio::spawn(async move {
                let name = format!("{}-{i}", config.name);
                consume(queue, db, &config, &name, shutdown).await
            })
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "worker task panicked");
        }
    }
}

/// Capped exponential backoff with full jitter: up to 50 ms * 2^attempt, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    let cap = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}

async fn consume(
    queue: Arc<dyn Queue>,
    db: Database,
    config: &WorkerConfig,
    name: &str,
    shutdown: CancellationToken,
) {
    let mut attempt = 0;
    let mut consumer = loop {
        match queue.consumer(name).await {
            Ok(c) => break c,
            Err(e) if shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "worker stopping without a queue connection");
                return;
            }
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "queue unavailable; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    };
    let mut last_reclaim: Option<Instant> = None;
    let mut failures = 0;
    loop {
        let draining = shutdown.is_cancelled();
        if draining && !config.drain_on_shutdown {
            break;
        }
        let reclaim_due = last_reclaim.is_none_or(|t| t.elapsed() >= config.reclaim_every);
        let batch = if reclaim_due && !draining {
            last_reclaim = Some(Instant::now());
            match consumer
                .reclaim(config.reclaim_idle, config.batch_size)
                .await
            {
                Ok(b) if !b.is_empty() => Ok(b),
                Ok(_) => consumer.fetch(config.batch_size, config.block).await,
                Err(e) => Err(e),
            }
        } else {
            consumer.fetch(config.batch_size, config.block).await
        };
        let batch = match batch {
            Ok(b) => {
                failures = 0;
                b
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, consumer = name, "queue read failed; backing off");
                if draining {
                    break;
                }
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        if batch.is_empty() {
            if draining {
                break;
            }
            continue;
        }
        let Some(poisoned) = persist(&db, &batch, config, &shutdown, name).await else {
            tracing::error!(
                events = batch.len(),
                consumer = name,
                "shutting down with an unpersisted batch"
            );
            break;
        };
        let mut written = batch;
        for (i, reason) in poisoned.into_iter().rev() {
            let poison = written.remove(i);
            match consumer.dead_letter(&poison, &reason).await {
                Ok(()) => metrics::counter!("stampede_worker_dead_letters_total").increment(1),
                // It stays pending: reclaimed later, it is tried (and set aside) again.
                Err(e) => {
                    tracing::warn!(error = %e, consumer = name, "could not set a poison event aside")
                }
            }
        }
        if let Some(lists) = &config.claim_lists {
            let claims: Vec<Claim> = written.iter().filter_map(|d| d.claim().cloned()).collect();
            if let Err(e) = lists.push(&claims).await {
                // The pages expire on their own; a stale one is refilled when it does.
                tracing::warn!(error = %e, consumer = name, "could not refresh cached claim pages");
            }
        }
        if let Err(e) = consumer.ack(&written).await {
            // The rows are committed; the events stay pending and a later reclaim
            // rewrites them as no-ops.
            tracing::warn!(error = %e, consumer = name, "ack failed after commit");
        }
    }
    tracing::info!(consumer = name, "worker task stopped");
}

/// Writes the batch, retrying until it commits. Returns the claims (index in the batch,
/// and why) that the database refused for their data `poison_attempts` times, the rest
/// being committed; `None` only when shutting down with the database still failing
/// (the batch then stays pending).
async fn persist(
    db: &Database,
    batch: &[Delivery],
    config: &WorkerConfig,
    shutdown: &CancellationToken,
    name: &str,
) -> Option<Vec<(usize, String)>> {
    let mut attempt = 0;
    loop {
        // The write's time is recorded by the database layer
        // (`stampede_db_duration_seconds{op="persist_claims"}`).
        let result = match write(db, batch).await {
            Err(e) if e.is_data_error() => {
                tracing::warn!(error = %e, events = batch.len(), consumer = name,
                    "the database refused the batch's data; writing its events one by one");
                isolate(db, batch, config.poison_attempts).await
            }
            other => other.map(|inserted| (inserted, Vec::new())),
        };
        match result {
            Ok((inserted, poisoned)) => {
                let claims = batch.iter().filter(|d| d.claim().is_some()).count();
                metrics::counter!("stampede_worker_persisted_total").increment(inserted);
                // Claims per transaction: the behaviour event writer's batches are not.
                if !matches!(batch.first().map(|d| &d.event), Some(Event::Behaviour(_))) {
                    metrics::histogram!("stampede_worker_batch_size").record(batch.len() as f64);
                }
                if tracing::enabled!(tracing::Level::DEBUG) {
                    for (i, d) in batch.iter().enumerate() {
                        if poisoned.iter().any(|(p, _)| *p == i) {
                            continue;
                        }
                        let request_id = d.request_id();
                        let request_id = request_id.as_ref().map_or("-", |r| r.as_str());
                        let (claim, campaign) = (d.event.claim_id(), d.campaign_id());
                        match &d.event {
                            Event::Claim(_) => tracing::debug!(
                                request_id,
                                claim,
                                campaign,
                                consumer = name,
                                "claim persisted"
                            ),
                            Event::Order(o) => tracing::debug!(
                                claim,
                                campaign,
                                status = o.status.as_str(),
                                consumer = name,
                                "order change persisted"
                            ),
                            Event::Refund(r) => tracing::debug!(
                                claim, campaign, payment = %r.payment_id, consumer = name,
                                "refund persisted"
                            ),
                            Event::Behaviour(_) => {}
                        }
                    }
                }
                let poisoned_claims = poisoned
                    .iter()
                    .filter(|(i, _)| batch[*i].claim().is_some())
                    .count();
                let redelivered = ((claims - poisoned_claims) as u64).saturating_sub(inserted);
                if redelivered > 0 {
                    tracing::info!(
                        redelivered,
                        consumer = name,
                        "skipped claims already persisted"
                    );
                }
                return Some(poisoned);
            }
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, consumer = name, "database write failed; retrying");
                if shutdown.is_cancelled() && attempt >= 3 {
                    return None;
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
}

/// Writes a batch of events: the claims in one transaction (the orders of those with a
/// payment window opened beside them), then the orders' changes and refunds in another.
/// Both skip what is there already, so a batch written twice (or half written, then
/// redelivered) ends the same. Returns how many claim rows were new. Behaviour events
/// (their queue carries nothing else) go to the events table in one transaction.
async fn write(db: &Database, batch: &[Delivery]) -> stampede_engine::Result<u64> {
    let mut claims = Vec::new();
    let mut orders = OrderWrites::default();
    let mut events = Vec::new();
    for d in batch {
        match &d.event {
            Event::Claim(e) => {
                claims.push(e.claim.clone());
                if let Some(by) = e.pay_by_ms {
                    orders.opened.push(Order::pending(&e.claim, by));
                }
            }
            Event::Order(o) => orders.closed.push(o),
            Event::Refund(r) => orders.refunds.push(r),
            Event::Behaviour(b) => events.push(b.clone()),
        }
    }
    if !events.is_empty() {
        let written = db.persist_events(&events).await?;
        metrics::counter!("stampede_worker_events_persisted_total").increment(written);
        if written < events.len() as u64 {
            tracing::debug!(
                skipped = events.len() as u64 - written,
                "skipped behaviour events already written"
            );
        }
    }
    let inserted = db.persist_claims(&claims, now_ms()).await?;
    db.persist_orders(&orders).await?;
    Ok(inserted)
}

/// Writes the events one by one: how many claim rows were new, and the events the
/// database refused for their data `attempts` times in a row. Any other failure (the
/// database went away) is returned, for the whole batch to be retried; rows already
/// written are skipped then.
async fn isolate(
    db: &Database,
    batch: &[Delivery],
    attempts: u32,
) -> stampede_engine::Result<(u64, Vec<(usize, String)>)> {
    let mut inserted = 0;
    let mut poisoned = Vec::new();
    for (i, delivery) in batch.iter().enumerate() {
        let mut tries = 0;
        loop {
            match write(db, std::slice::from_ref(delivery)).await {
                Ok(n) => {
                    inserted += n;
                    break;
                }
                Err(e) if e.is_data_error() => {
                    tries += 1;
                    if tries >= attempts.max(1) {
                        poisoned.push((i, e.to_string()));
                        break;
                    }
                    tokio::time::sleep(backoff(tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((inserted, poisoned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped_at_five_seconds() {
        for attempt in 0..40 {
            let cap = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
            let d = backoff(attempt).as_millis() as u64;
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d} ms outside {}..={cap}",
                cap / 2
            );
        }
        assert!(backoff(30) <= Duration::from_secs(5));
        assert!(backoff(1) < backoff(6) || backoff(6) >= Duration::from_millis(1_600));
    }
}
