//! The run loop: N workers, one keep-alive connection each, pulling request numbers from
//! one shared counter until the workload or the time runs out.
//!
//! Three arrival modes:
//! - **burst** — the crowd: every connection is opened first, then all workers start at
//!   once and send the workload's requests back to back (closed loop over a finite list).
//! - **closed** loop for a duration: each connection sends its next request as soon as
//!   the previous reply is in. Latency runs from the actual send.
//! - **open** loop at a fixed rate: request `i` is *due* at `start + i / rate`, whatever
//!   happened before. Latency runs from the due time, not the actual send, so a stalled
//!   server is charged for the requests that queued behind the stall
//!   (coordinated-omission correction, as in wrk2).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::client::hyper_conn::with_connection;
use crate::client::lean::LeanConn;
use crate::client::{connect, Call, ClientKind, Exchange, Reply, Target};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recorder::{Live, Recorder, Summary};

/// What a run sends and what it makes of the replies.
pub trait Workload: Send + Sync + 'static {
    /// Per-worker findings (for example, the claims a worker saw accepted), merged by the
    /// caller after the run. Per worker so that observing a reply needs no lock.
    type Tally: Default + Send + 'static;

    /// The `i`-th request, or `None` when the workload has no more. Everything it borrows
    /// was prepared before the run: nothing is minted or formatted on the hot path.
    fn request(&self, i: usize) -> Option<Call<'_>>;

    /// Looks at the reply to request `i`.
    fn observe(&self, _i: usize, _reply: &Reply, _tally: &mut Self::Tally) {}

    /// Request `i` got no reply (timeout, reset): the outcome is unknown.
    fn unanswered(&self, _i: usize, _tally: &mut Self::Tally) {}
}

/// How requests arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// All at once, as fast as the connections allow, until the workload is exhausted.
    Burst,
    /// Closed loop until `duration` has passed (or the workload is exhausted).
    Closed { duration: Duration },
    /// Open loop at `rate` requests per second, until `duration` (if any) or exhaustion.
    Open {
        rate: f64,
        duration: Option<Duration>,
    },
}

impl Arrival {
    pub fn name(&self) -> &'static str {
        match self {
            Arrival::Burst => "burst",
            Arrival::Closed { .. } => "closed",
            Arrival::Open { .. } => "open",
        }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Where the requests go: connection i to `targets[i % len]`.
    pub targets: Vec<Target>,
    /// Connections, one worker each.
    pub concurrency: usize,
    pub arrival: Arrival,
    /// Per request; a request that times out costs its connection (it is reopened).
    pub timeout: Duration,
    /// Which connection type carries the requests.
    pub client: ClientKind,
    /// Print the live progress line on stderr.
    pub progress: bool,
    /// Names the run on the progress line.
    pub label: String,
}

/// What a run measured, plus each worker's tally.
pub struct Outcome<T> {
    pub summary: Summary,
    pub tallies: Vec<T>,
}

/// Everything the workers share; read-only except the request counter.
struct Shared<W> {
    workload: W,
    targets: Vec<Target>,
    arrival: Arrival,
    timeout: Duration,
    client: ClientKind,
    start: Instant,
    /// The next request number to send. Workers take numbers in order, so in an open loop
    /// the earliest-due request always goes out first.
    next: AtomicUsize,
}

impl<W> Shared<W> {
    /// When the run stops taking new requests, if it has a time limit.
    fn deadline(&self) -> Option<Instant> {
        match self.arrival {
            Arrival::Burst => None,
            Arrival::Closed { duration } => Some(self.start + duration),
            Arrival::Open { duration, .. } => duration.map(|d| self.start + d),
        }
    }
}

/// Runs `workload` against the target and returns the measurements.
///
/// Fails only when the target cannot be reached at all before the start; once running,
/// every failure is counted instead.
pub async fn run<W: Workload>(workload: W, config: &RunConfig) -> Result<Outcome<W::Tally>> {
    if config.concurrency == 0 {
        return Err(Error::Config("--concurrency must be at least 1".into()));
    }
    if let Arrival::Open { rate, .. } = config.arrival {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::Config("--rate must be a positive number".into()));
        }
    }
    // Open every connection before the clock starts: the crowd arrives at once, and the
    // handshakes are not measured. Sequential, so a listen backlog is never overrun.
    if config.targets.is_empty() {
        return Err(Error::Config("no target".into()));
    }
    let mut streams = Vec::with_capacity(config.concurrency);
    for i in 0..config.concurrency {
        streams.push(connect(&config.targets[i % config.targets.len()]).await?);
    }

    let start = Instant::now();
    let live = Live::new(start);
    let shared = Arc::new(Shared {
        workload,
        targets: config.targets.clone(),
        arrival: config.arrival,
        timeout: config.timeout,
        client: config.client,
        start,
        next: AtomicUsize::new(0),
    });
    let progress = Progress::start(live.clone(), config.label.clone(), config.progress);
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let target = i % shared.targets.len();
            tokio::spawn(worker(shared.clone(), live.clone(), stream, target))
        })
        .collect();
    let mut recorders = Vec::with_capacity(workers.len());
    let mut tallies = Vec::with_capacity(workers.len());
    let mut panicked = false;
    for handle in workers {
        match handle.await {
            Ok((recorder, tally)) => {
                recorders.push(recorder);
                tallies.push(tally);
            }
            Err(_) => panicked = true,
        }
    }
    progress.stop().await;
    if panicked {
        return Err(Error::Config("a load worker panicked".into()));
    }
    Ok(Outcome {
        summary: Summary::merge(&live, recorders),
        tallies,
    })
}

/// Why a connection's request loop ended.
enum LoopEnd {
    /// No more requests: the worker is done.
    Finished,
    /// The connection broke or a request timed out: open a new one and go on.
    Reconnect,
}

/// One worker: sends on its connection, reopening it when it breaks.
async fn worker<W: Workload>(
    shared: Arc<Shared<W>>,
    live: Arc<Live>,
    first: TcpStream,
    target: usize,
) -> (Recorder, W::Tally) {
    let target = &shared.targets[target];
    let mut rec = Recorder::new(live);
    let mut tally = W::Tally::default();
    let mut stream = Some(first);
    loop {
        let tcp = match stream.take() {
            Some(tcp) => tcp,
            None => match connect(target).await {
                Ok(tcp) => tcp,
                Err(_) => {
                    // The request this connection would have carried fails too, so a dead
                    // target ends a finite workload instead of retrying forever.
                    let i = shared.next.fetch_add(1, Ordering::Relaxed);
                    if !due_in_run(&shared, i) {
                        break;
                    }
                    rec.error("connect", Instant::now());
                    shared.workload.unanswered(i, &mut tally);
                    // Not a hot spin against a refusing port.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        let end = match shared.client {
            ClientKind::Lean => {
                let mut conn = LeanConn::new(tcp);
                requests(&shared, target, &mut conn, &mut rec, &mut tally).await
            }
            ClientKind::Hyper => {
                let (shared, rec, tally) = (&shared, &mut rec, &mut tally);
                with_connection(tcp, |mut sender| async move {
                    requests(shared, target, &mut sender, rec, tally).await
                })
                .await
                .unwrap_or(LoopEnd::Reconnect)
            }
        };
        if let LoopEnd::Finished = end {
            break;
        }
    }
    (rec, tally)
}

/// Whether request `i` exists and falls inside the run's time limit (checked for the open
/// loop by its due time, for the others by the clock).
fn due_in_run<W: Workload>(shared: &Shared<W>, i: usize) -> bool {
    let Some(deadline) = shared.deadline() else {
        return true;
    };
    match shared.arrival {
        Arrival::Open { rate, .. } => due_time(shared.start, i, rate) < deadline,
        _ => Instant::now() < deadline,
    }
}

fn due_time(start: Instant, i: usize, rate: f64) -> Instant {
    start + Duration::from_secs_f64(i as f64 / rate)
}

/// Sends requests on one connection until the workload ends or the connection breaks.
async fn requests<W: Workload, C: Exchange>(
    shared: &Shared<W>,
    target: &Target,
    conn: &mut C,
    rec: &mut Recorder,
    tally: &mut W::Tally,
) -> LoopEnd {
    loop {
        if conn.is_closed() {
            return LoopEnd::Reconnect;
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if !due_in_run(shared, i) {
            return LoopEnd::Finished;
        }
        let Some(call) = shared.workload.request(i) else {
            return LoopEnd::Finished;
        };
        let sent = match shared.arrival {
            Arrival::Open { rate, .. } => {
                let due = due_time(shared.start, i, rate);
                if due > Instant::now() {
                    // Early: wait for the due time, then time from the actual send. tokio's
                    // timers fire up to a millisecond late, and that lag is ours, not the
                    // server's.
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    // Late: this connection was still busy with earlier replies when this
                    // request fell due. That wait is the server's doing, so it counts —
                    // the coordinated-omission correction.
                    due
                }
            }
            _ => Instant::now(),
        };
        let exchange = conn.exchange(&call, &target.host);
        let result = match tokio::time::timeout(shared.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(shared.timeout)),
        };
        let now = Instant::now();
        match result {
            Ok(reply) => {
                rec.reply(reply.status, sent, now);
                shared.workload.observe(i, &reply, tally);
            }
            Err(e) => {
                rec.error(error_kind(&e), now);
                shared.workload.unanswered(i, tally);
                return LoopEnd::Reconnect;
            }
        }
    }
}

/// The error's name in the report's `error_kinds`.
fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout(_) => "timeout",
        Error::Connect { .. } => "connect",
        Error::Transport(_) => "io",
        Error::Protocol(_) => "protocol",
        _ => "http",
    }
}
