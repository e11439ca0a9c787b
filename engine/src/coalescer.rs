//! Claim coalescing: concurrent claims on one campaign share one store call.
//!
//! A round trip to Redis costs far more than the claim script's work for one claim, so
//! under a crowd the engine sends what is waiting as ONE batch (the claim script takes
//! many claims and decides them in order, atomically). Each campaign has a lane: a task
//! that takes whatever requests are queued (up to `max_batch`) and issues the batch,
//! with at most `max_in_flight` batches outstanding so the connection stays pipelined.
//! Under light load a batch is a single claim and nothing waits; under heavy load
//! batches grow by themselves. Outcomes are per request, exactly as if sent alone.
//!
//! Bounded, so a slow or dead store turns into fast 503s rather than a growing queue:
//! a lane holds at most [`LANE_DEPTH`] waiting claims (more are refused at once), a
//! claim waits at most `wait` for its answer, and a batch leaves out the claims whose
//! caller already gave up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::claim::{ClaimOutcome, ClaimRequest};
use crate::clock::now_ms;
use crate::error::{EngineError, Result};
use crate::store::Store;

/// Claims that may wait in one campaign's lane; beyond it a claim is refused at once.
pub const LANE_DEPTH: usize = 8_192;

struct Pending {
    request: ClaimRequest,
    reply: oneshot::Sender<Result<ClaimOutcome>>,
}

pub struct Coalescer {
    store: Arc<dyn Store>,
    /// (Campaign id, bucket) -> its lane's queue: a bucketed campaign has a lane per
    /// bucket, so each batch is one script call in one slot (see [`crate::buckets`]). A
    /// lane lives as long as the process; its memory is a channel and a parked task.
    lanes: Mutex<HashMap<(u64, u64), mpsc::Sender<Pending>>>,
    max_batch: usize,
    max_in_flight: usize,
    /// The longest a claim waits for its answer.
    wait: Duration,
}

impl Coalescer {
    pub fn new(
        store: Arc<dyn Store>,
        max_batch: usize,
        max_in_flight: usize,
        wait: Duration,
    ) -> Self {
        Coalescer {
            store,
            lanes: Mutex::new(HashMap::new()),
            max_batch: max_batch.max(1),
            max_in_flight: max_in_flight.max(1),
            wait,
        }
    }

    fn lane(&self, campaign_id: u64, bucket: u64) -> mpsc::Sender<Pending> {
        let mut lanes = self.lanes.lock();
        if let Some(tx) = lanes.get(&(campaign_id, bucket)) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(LANE_DEPTH);
        tokio::spawn(run_lane(
            self.store.clone(),
            campaign_id,
            rx,
            self.max_batch,
            self.max_in_flight,
        ));
        lanes.insert((campaign_id, bucket), tx.clone());
        tx
    }

    /// One claim, decided in a batch with whatever else is waiting for the campaign's
    /// bucket `bucket` (the user's home bucket; 0 for an unbucketed campaign).
    pub async fn claim(
        &self,
        campaign_id: u64,
        bucket: u64,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome> {
        let (reply, rx) = oneshot::channel();
        self.lane(campaign_id, bucket)
            .try_send(Pending { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => EngineError::Store("claim lane full".into()),
                mpsc::error::TrySendError::Closed(_) => {
                    EngineError::Store("claim lane closed".into())
                }
            })?;
        match tokio::time::timeout(self.wait, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(EngineError::Store("claim lane dropped a request".into())),
            // Dropping `rx` tells the lane this caller gave up (see `run_lane`).
            Err(_) => Err(EngineError::Store(
                "claim timed out waiting for the store".into(),
            )),
        }
    }
}

async fn run_lane(
    store: Arc<dyn Store>,
    campaign_id: u64,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    max_in_flight: usize,
) {
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Wait for a free slot first: while all are busy, requests pile up in the
        // channel and the next batch takes them all.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        // Claims whose caller gave up (timed out, disconnected) are not sent: nobody
        // would hear that they were accepted.
        let pending: Vec<Pending> = std::mem::replace(&mut batch, Vec::with_capacity(max_batch))
            .into_iter()
            .filter(|p| !p.reply.is_closed())
            .collect();
        if pending.is_empty() {
            continue;
        }
        let store = store.clone();
        tokio::spawn(async move {
            let requests: Vec<ClaimRequest> = pending.iter().map(|p| p.request.clone()).collect();
            let result = store.claim_batch(campaign_id, now_ms(), &requests).await;
            match result {
                Ok(outcomes) => {
                    for (p, o) in pending.into_iter().zip(outcomes) {
                        let _ = p.reply.send(Ok(o));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for p in pending {
                        let _ = p.reply.send(Err(EngineError::Store(msg.clone())));
                    }
                }
            }
            drop(permit);
        });
    }
}
