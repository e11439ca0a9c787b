//! The order desk: sends what the winners do with their orders — payment notifications
//! (as the payment provider, signed) and cancels (as the user, with the user's token) —
//! each at its due time, and keeps every answer for the audit.
//!
//! Unlike the crowd, these requests are few, spread over the payment window and partly
//! dependent on what the engine said (a late payment is due a moment after *its* order's
//! `pay_by`), so they do not go through the driver's fixed request list. Each action is a
//! task that sleeps until it is due and then borrows a connection from a small pool:
//! [`POOL`] keep-alive connections at most, so a burst of thousands of notifications is
//! not thousands of handshakes. The second wave's claims go through the same pool.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::Method;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::admin::percent_encode;
use crate::audit::orders::{Act, Attempt, LATE_MARGIN};
use crate::client::{Client, Prepared, Reply, Target};
use crate::error::Result;
use crate::payments::{signature_header, Notification, NOTIFY_PATH};
use crate::scenario::orders::fate::{Fate, Late};
use crate::wire::{cancel_reply_claim, error_code, Claim, PaidReply};

/// Connections the desk keeps at most (also its concurrency).
pub const POOL: usize = 64;

/// One request the desk sent, with its timing.
#[derive(Clone, Debug)]
pub struct Sent {
    pub attempt: Attempt,
    /// Part of the first wave's burst (sent at once, not scheduled for later).
    pub burst: bool,
    pub sent: Instant,
    pub done: Instant,
}

/// A few keep-alive connections shared by every action.
struct Pool {
    target: Target,
    timeout: Duration,
    permits: Semaphore,
    /// Idle connections. A std mutex: held only to push or pop, never across an await.
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    async fn send(&self, prepared: &Prepared) -> Result<Reply> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await;
        let client = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut client = client.unwrap_or_else(|| Client::new(self.target.clone(), self.timeout));
        let result = client.request(prepared).await;
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(client);
        result
    }
}

/// What one order needs to be acted on.
struct OrderRef {
    claim_id: String,
    /// The owner's `Authorization` header (for the cancel).
    owner: Option<HeaderValue>,
    pay_by: SystemTime,
}

/// The desk; see the module comment.
pub struct Desk {
    pool: Arc<Pool>,
    /// The payment secret (`STAMPEDE_PAYMENT_SECRET` of the engine).
    secret: Arc<[u8]>,
    /// price × quantity: what every order costs.
    amount_cents: u64,
    /// The expiry grace: when a late payment is certainly after the expiry.
    grace: Duration,
    /// Payment ids are `p{campaign}-{n}`: unique across runs, since campaigns are.
    campaign: u64,
    next_payment: u64,
    tasks: JoinSet<Sent>,
    done: Vec<Sent>,
}

impl Desk {
    pub fn new(
        target: Target,
        timeout: Duration,
        connections: usize,
        secret: &[u8],
        amount_cents: u64,
        grace: Duration,
        campaign: u64,
    ) -> Self {
        Self {
            pool: Arc::new(Pool {
                target,
                timeout,
                permits: Semaphore::new(connections.clamp(1, POOL)),
                idle: Mutex::new(Vec::new()),
            }),
            secret: Arc::from(secret),
            amount_cents,
            grace,
            campaign,
            next_payment: 0,
            tasks: JoinSet::new(),
            done: Vec::new(),
        }
    }

    /// A claim through the desk's pool (the second wave's):
    /// `POST /v1/campaigns/{id}/claims`, ready to spawn.
    pub fn claim(
        &self,
        auth: HeaderValue,
        body: Bytes,
    ) -> impl Future<Output = Result<Reply>> + Send + 'static {
        let pool = self.pool.clone();
        let path = format!("/v1/campaigns/{}/claims", self.campaign);
        async move {
            let prepared = Prepared {
                method: Method::POST,
                uri: pool.target.uri(&path)?,
                auth: Some(auth),
                headers: Vec::new(),
                body,
            };
            pool.send(&prepared).await
        }
    }

    /// Schedules what `claim`'s owner does with its order under `fate`. `owner` is the
    /// owner's `Authorization` header; `burst` marks the first wave's orders. Late
    /// payments are drawn with `rng` somewhere in their slot after `pay_by`.
    pub fn act(
        &mut self,
        claim: &Claim,
        fate: Fate,
        owner: Option<HeaderValue>,
        burst: bool,
        rng: &mut impl Rng,
    ) {
        let order = OrderRef {
            claim_id: claim.id.clone(),
            owner,
            pay_by: claim
                .order
                .as_ref()
                .and_then(|o| o.pay_by_time())
                // Without a pay_by (a contract breach the audit reports), act as if in time.
                .unwrap_or_else(SystemTime::now),
        };
        match fate {
            Fate::Pay {
                late,
                repeat,
                second,
            } => {
                let due = late.map(|late| self.late_due(order.pay_by, late, rng));
                let immediate = burst && due.is_none();
                let first = self.payment_id();
                self.pay(&order, first.clone(), due, immediate);
                if repeat {
                    self.pay(&order, first, due, immediate);
                }
                if second {
                    let other = self.payment_id();
                    self.pay(&order, other, due, immediate);
                }
            }
            Fate::Cancel { racing_payment } => {
                self.cancel(&order, burst);
                if racing_payment {
                    let payment = self.payment_id();
                    self.pay(&order, payment, None, burst);
                }
            }
            Fate::Expire => {}
        }
    }

    /// Requests sent or scheduled and not yet answered.
    pub fn outstanding(&mut self) -> usize {
        while let Some(joined) = self.tasks.try_join_next() {
            if let Ok(sent) = joined {
                self.done.push(sent);
            }
        }
        self.tasks.len()
    }

    /// Waits for every scheduled request and returns them all.
    pub async fn finish(mut self) -> Vec<Sent> {
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok(sent) = joined {
                self.done.push(sent);
            }
        }
        self.done
    }

    fn payment_id(&mut self) -> String {
        self.next_payment += 1;
        format!("p{}-{:08}", self.campaign, self.next_payment)
    }

    /// When a late payment is due, as a local instant.
    fn late_due(&self, pay_by: SystemTime, late: Late, rng: &mut impl Rng) -> Instant {
        let after = match late {
            // Somewhere in the first four fifths of the grace (never right at pay_by).
            Late::InGrace => self.grace.mul_f64(rng.random_range(0.2..0.8)),
            // Past the grace and the margin by up to a second.
            Late::AfterExpiry => {
                self.grace + LATE_MARGIN + Duration::from_millis(rng.random_range(100..1000))
            }
        };
        local_instant(pay_by + after)
    }

    fn pay(&mut self, order: &OrderRef, payment_id: String, due: Option<Instant>, burst: bool) {
        let pool = self.pool.clone();
        let secret = self.secret.clone();
        let amount = self.amount_cents;
        let claim_id = order.claim_id.clone();
        let pay_by = order.pay_by;
        self.tasks.spawn(async move {
            if let Some(due) = due {
                tokio::time::sleep_until(due.into()).await;
            }
            let body = Notification::succeeded(&payment_id, &claim_id, amount).body();
            let headers = signature_header(&secret, &body).into_iter().collect();
            let sent_at = SystemTime::now();
            let after_pay_by = match sent_at.duration_since(pay_by) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            let (sent, result, done) = match pool.target.uri(NOTIFY_PATH) {
                Ok(uri) => {
                    let prepared = Prepared {
                        method: Method::POST,
                        uri,
                        auth: None,
                        headers,
                        body,
                    };
                    let sent = Instant::now();
                    let result = pool.send(&prepared).await;
                    (sent, result, Instant::now())
                }
                Err(e) => (Instant::now(), Err(e), Instant::now()),
            };
            let mut attempt = Attempt {
                claim_id,
                act: Act::Pay {
                    payment_id,
                    after_pay_by,
                },
                status: None,
                code: None,
                reply_status: None,
                claim: None,
            };
            if let Ok(reply) = result {
                attempt.status = Some(reply.status.as_u16());
                if reply.status.is_success() {
                    if let Ok(paid) = serde_json::from_slice::<PaidReply>(&reply.body) {
                        attempt.reply_status = Some(paid.status);
                        attempt.claim = Some(paid.claim);
                    }
                } else {
                    attempt.code = error_code(&reply.body);
                }
            }
            Sent {
                attempt,
                burst,
                sent,
                done,
            }
        });
    }

    fn cancel(&mut self, order: &OrderRef, burst: bool) {
        let pool = self.pool.clone();
        let claim_id = order.claim_id.clone();
        let owner = order.owner.clone();
        self.tasks.spawn(async move {
            let path = format!("/v1/claims/{}/cancel", percent_encode(&claim_id));
            let sent = Instant::now();
            let result = match pool.target.uri(&path) {
                Ok(uri) => {
                    let prepared = Prepared {
                        method: Method::POST,
                        uri,
                        auth: owner,
                        headers: Vec::new(),
                        body: Bytes::new(),
                    };
                    pool.send(&prepared).await
                }
                Err(e) => Err(e),
            };
            let done = Instant::now();
            let mut attempt = Attempt {
                claim_id,
                act: Act::Cancel,
                status: None,
                code: None,
                reply_status: None,
                claim: None,
            };
            if let Ok(reply) = result {
                attempt.status = Some(reply.status.as_u16());
                if reply.status.is_success() {
                    attempt.claim = cancel_reply_claim(&reply.body);
                } else {
                    attempt.code = error_code(&reply.body);
                }
            }
            Sent {
                attempt,
                burst,
                sent,
                done,
            }
        });
    }
}

/// The local instant of a wall-clock time (the engine's `pay_by`); a past time is now.
pub fn local_instant(at: SystemTime) -> Instant {
    let now = Instant::now();
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => now + ahead,
        Err(_) => now,
    }
}

/// Users' `Authorization` headers by user id, for the cancels.
pub type Owners = HashMap<String, HeaderValue>;
