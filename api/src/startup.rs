//! Builds the engine from the configuration and runs the api, the worker, or both,
//! until shutdown.
//!
//! Shutdown order (SIGTERM, ctrl-c, or [`Running::stop`]): the HTTP server stops
//! accepting and finishes in-flight requests; then the worker flushes the batch it
//! holds (and, embedded, drains the in-process queue); then the database pool closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use stampede_engine::auth::Auth;
use stampede_engine::blocklist::Blocklist;
use stampede_engine::circuit_breaker::CircuitBreaker;
use stampede_engine::claim_lists::ClaimLists;
use stampede_engine::clock::{Clock, SystemClock};
use stampede_engine::db::Database;
use stampede_engine::funnel::Funnel;
use stampede_engine::queue::memory::MemoryQueue;
use stampede_engine::queue::redis::RedisQueue;
use stampede_engine::service::Engine;
use stampede_engine::signals::{RedisSignals, SignalSink};
use stampede_engine::signin::{SigninConfig, SigninRules};
use stampede_engine::store::breaker::BreakerStore;
use stampede_engine::store::memory::MemoryStore;
use stampede_engine::store::redis::RedisStore;
use stampede_engine::ticket::Tickets;
use stampede_worker::WorkerConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client_ip::TrustedProxies;
use crate::config::{Config, DEV_ADMIN_TOKEN, DEV_JWT_SECRET, DEV_PAYMENT_SECRET};
use crate::dashboard::Dashboard;
use crate::rate_limit::RateLimits;
use crate::risk::RiskRules;
use crate::state::{AppState, Shared};
use crate::telemetry;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// How often a worker process sweeps: bucket transfers that a dead process left half done
/// (units stranded that long at most, while any worker runs) and orders come due unpaid
/// (expired within this of their deadline; the contract allows 5 s).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Claim batches of one campaign outstanding at once per api process: one gathering
/// while one is at Redis. Measured with benches/claim-throughput.sh, 1, 2 and 4 gave the
/// same rate here; fewer in flight means larger batches and less Redis CPU.
const CLAIM_BATCHES_IN_FLIGHT: usize = 2;

/// Bound on the behaviour events' Redis calls: an append carries up to 100 events, and
/// a client retries a 503 as it would any other; not on the claim path.
const EVENTS_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// API and workers in one process.
    Serve,
    Api,
    Worker,
}

/// Opens the database, applies migrations, connects the store and queue, and (embedded)
/// restores live state from the database.
pub async fn build_engine(config: &Config) -> anyhow::Result<Arc<Engine>> {
    build_engine_with_clock(config, None).await
}

/// [`build_engine`] with the sign-in's clock replaced (tests walk through days).
pub async fn build_engine_with_clock(
    config: &Config,
    clock: Option<Arc<dyn Clock>>,
) -> anyhow::Result<Arc<Engine>> {
    // The engine's metric handles bind to the recorder present when they are made.
    telemetry::metrics_handle();
    let db = Database::connect(&config.database_url, config.db_connections)
        .await
        .context("opening the database")?;
    db.migrate().await.context("applying database migrations")?;
    let redis = config.redis_target();
    let engine = match &redis {
        Some(target) => {
            let conn = target
                .connect(config.redis_timeout())
                .await
                .context("configuring Redis")?;
            // WAIT gets half the call bound, so its reply comes back within the bound.
            let store = RedisStore::new(conn.clone())
                .with_wait_replicas(config.redis_wait_replicas, config.redis_timeout() / 2);
            warn_if_redis_forgets(&store).await;
            // Behaviour events: the same queue machinery over their own streams, on a
            // connection of their own, so a burst of 100-event appends never queues in
            // front of the claims' scripts, with a longer bound (see EVENTS_REDIS_TIMEOUT).
            let events_timeout = EVENTS_REDIS_TIMEOUT.max(config.redis_timeout());
            let events_conn = target
                .connect(events_timeout)
                .await
                .context("configuring Redis")?;
            let events =
                Arc::new(RedisQueue::new(target.clone(), events_timeout, events_conn).behaviour());
            let breaker = CircuitBreaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cool_down_ms),
            );
            Engine::new(
                Arc::new(BreakerStore::new(Arc::new(store), breaker)),
                Arc::new(
                    RedisQueue::new(target.clone(), config.redis_timeout(), conn.clone())
                        .with_wait_replicas(config.redis_wait_replicas, config.redis_timeout() / 2),
                ),
                db,
            )
            .with_coalescing(
                config.claim_batch,
                CLAIM_BATCHES_IN_FLIGHT,
                // Queueing plus one store call: within the failure model's 1 s at the default.
                config.redis_timeout() * 2,
            )
            .with_claim_lists(ClaimLists::new(conn.clone()))
            .with_behaviour_queue(events.clone(), events)
            .with_funnel(Funnel::redis(conn.clone()))
            .with_sold_out_flags(
                Some(RedisSignals::new(target.clone(), conn.clone())),
                Duration::from_millis(config.sold_out_ttl_ms),
            )
            .with_signals(RedisSignals::new(target.clone(), conn))
        }
        None => {
            let queue = Arc::new(MemoryQueue::default());
            Engine::new(
                Arc::new(MemoryStore::new(queue.clone())),
                Arc::new(queue),
                db,
            )
        }
    };
    let engine = engine
        .with_backlog_cap(config.backlog_cap)
        .with_events_backlog_cap(config.events_backlog_cap)
        .with_live_cache_ttl(Duration::from_millis(config.cache_ttl_ms))
        .with_signin(SigninConfig {
            tz: config.tz(),
            rules: SigninRules {
                base_points: config.signin_points,
                streak_step: config.signin_streak_bonus,
                bonus_cap: config.signin_bonus_cap,
            },
            clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
        });
    // The replica is not migrated: it follows the primary's schema.
    let engine = match &config.database_read_url {
        Some(url) => engine.with_read_replica(
            Database::connect(url, config.db_connections)
                .await
                .context("opening the read replica")?,
        ),
        None => engine,
    };
    if redis.is_none() {
        let restored = engine
            .restore_missing()
            .await
            .context("restoring campaigns from the database")?;
        if restored > 0 {
            tracing::info!(restored, "restored live campaigns from the database");
        }
    }
    let engine = Arc::new(engine);
    if let Some(target) = &redis {
        let conn = target
            .connect(config.redis_timeout())
            .await
            .context("configuring Redis")?;
        let sink: std::sync::Weak<dyn SignalSink> = Arc::downgrade(&engine) as _;
        RedisSignals::new(target.clone(), conn).listen(sink);
    }
    Ok(engine)
}

/// A worker process's own `/metrics` (its persist rate, batch sizes, database times) and
/// `/healthz`, for Prometheus, on `STAMPEDE_METRICS_LISTEN`; stops with `shutdown`.
fn serve_worker_metrics(listener: tokio::net::TcpListener, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async { telemetry::render(&telemetry::metrics_handle()) }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the worker's metrics listener stopped");
        }
    });
}

/// Warns at start-up when Redis keeps no append-only file: an accepted claim then lives
/// only in Redis's memory until a worker commits it (README, "Guarantees").
async fn warn_if_redis_forgets(store: &RedisStore) {
    match store.append_only().await {
        Some(false) => tracing::warn!(
            "Redis persistence: appendonly is off. Accepted claims not yet written to the database \
             are lost if Redis restarts; use appendonly yes (appendfsync everysec or always) in production"
        ),
        Some(true) => {}
        None => tracing::warn!("could not read Redis's persistence settings (INFO persistence)"),
    }
}

/// A running engine: its HTTP address (when it serves) and how to stop it.
/// The api's shared state over `engine`, as `config` says; the dashboard's sampler
/// stops with `shutdown`.
pub fn app_state(
    config: &Config,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) -> anyhow::Result<AppState> {
    Ok(AppState::new(Shared {
        engine,
        auth: Arc::new(Auth::new(config.jwt_secret(), config.admin_token())),
        metrics: telemetry::metrics_handle(),
        limits: Arc::new(RateLimits::new(config.user_rate, config.ip_rate)),
        proxies: Arc::new(
            TrustedProxies::parse(&config.trusted_proxies).map_err(anyhow::Error::msg)?,
        ),
        dashboard: Arc::new(Dashboard::new(config.admin_token(), shutdown)),
        tickets: Arc::new(Tickets::new(
            config.jwt_secret(),
            config.ticket_ttl_secs as i64 * 1_000,
        )),
        risk: Arc::new(RiskRules::new(config.risk().map_err(anyhow::Error::msg)?)),
        campaign_replies: Default::default(),
        payments: Arc::new(match config.payment_secret() {
            Some(secret) => crate::payment_signature::Signatures::new(secret),
            None => crate::payment_signature::Signatures::refusing(),
        }),
    }))
}

pub struct Running {
    pub addr: Option<SocketAddr>,
    pub engine: Arc<Engine>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Cancelling this token starts the graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Shuts down gracefully and waits until everything has flushed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("shutdown task")?
    }

    /// Waits until the engine stops (after its shutdown token is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("shutdown task")?
    }
}

/// Starts the engine in `mode`; `listener` overrides `config.listen` (tests pass port 0).
pub async fn start(
    config: &Config,
    mode: Mode,
    listener: Option<tokio::net::TcpListener>,
) -> anyhow::Result<Running> {
    start_with_clock(config, mode, listener, None).await
}

/// [`start`] with the sign-in's clock replaced (tests walk through days).
pub async fn start_with_clock(
    config: &Config,
    mode: Mode,
    listener: Option<tokio::net::TcpListener>,
    clock: Option<Arc<dyn Clock>>,
) -> anyhow::Result<Running> {
    if let Err(e) = config.validate() {
        bail!(e);
    }
    let embedded = config.redis_target().is_none();
    if embedded && mode != Mode::Serve {
        bail!("the embedded engine keeps its queue in-process: run `stampede serve`, or set STAMPEDE_REDIS_URL (or STAMPEDE_REDIS_CLUSTER)");
    }
    if config.jwt_secret.is_none() {
        tracing::warn!("STAMPEDE_JWT_SECRET is not set: using the DEVELOPMENT secret {DEV_JWT_SECRET:?}; anyone can mint user tokens");
    }
    if config.admin_token.is_none() && mode != Mode::Worker {
        tracing::warn!("STAMPEDE_ADMIN_TOKEN is not set: using the DEVELOPMENT admin token {DEV_ADMIN_TOKEN:?}");
    }
    if config.payment_secret.is_none() && mode != Mode::Worker {
        match config.payment_secret() {
            Some(_) => tracing::warn!("STAMPEDE_PAYMENT_SECRET is not set: using the DEVELOPMENT payment secret {DEV_PAYMENT_SECRET:?}; anyone can sign payment notifications"),
            None => tracing::warn!("STAMPEDE_PAYMENT_SECRET is not set: POST /v1/payments/notify refuses every notification"),
        }
    }
    let engine = build_engine_with_clock(config, clock).await?;
    let shutdown = CancellationToken::new();

    let mut addr = None;
    // Cancelled once the HTTP server has stopped, so the funnel's last counts flush.
    let funnel_stop = CancellationToken::new();
    let http = if mode != Mode::Worker {
        let listener = match listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(&config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?,
        };
        addr = Some(listener.local_addr()?);
        let state = app_state(config, engine.clone(), shutdown.child_token())?;
        Blocklist::spawn_refresher(&engine.blocklist);
        state.limits.spawn_housekeeping();
        state.dashboard.spawn_sampler(engine.clone());
        // Flushes once more when the server has stopped (see below).
        engine.funnel.spawn_flusher(funnel_stop.clone());
        let app = crate::app(state);
        let stop = shutdown.clone();
        Some(tokio::spawn(async move {
            // Connection info gives handlers the peer address (the per-address limit).
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        }))
    } else {
        if let Some(listen) = &config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding STAMPEDE_METRICS_LISTEN {listen}"))?;
            addr = Some(listener.local_addr()?);
            serve_worker_metrics(listener, shutdown.clone());
        }
        None
    };

    let worker_stop = CancellationToken::new();
    let worker = if mode != Mode::Api {
        let cfg = WorkerConfig {
            consumers: if !embedded {
                config.worker_consumers
            } else {
                1
            },
            batch_size: config.worker_batch,
            reclaim_idle: Duration::from_millis(config.reclaim_idle_ms),
            reclaim_every: Duration::from_millis(config.reclaim_idle_ms.clamp(100, 5_000)),
            drain_on_shutdown: embedded,
            poison_attempts: config.poison_attempts,
            claim_lists: engine.claim_lists.clone(),
            ..WorkerConfig::default()
        };
        // Bucket transfers a dead process left half done, and due orders (the embedded
        // store has no transfers, but its orders come due too).
        engine.spawn_sweeper(SWEEP_EVERY, worker_stop.clone());
        stampede_worker::retention::spawn(
            engine.db.clone(),
            config.events_retention_days,
            worker_stop.clone(),
        );
        let (queue, db, stop) = (engine.queue.clone(), engine.db.clone(), worker_stop.clone());
        let events_cfg = cfg.events();
        let claims = tokio::spawn(stampede_worker::run(queue, db.clone(), cfg, stop.clone()));
        let events = tokio::spawn(stampede_worker::run(
            engine.events.clone(),
            db,
            events_cfg,
            stop,
        ));
        Some(async move {
            let (a, b) = tokio::join!(claims, events);
            a.and(b)
        })
    } else {
        None
    };

    let (eng, stop) = (engine.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        let served = match http {
            Some(h) => {
                // In-flight requests get SHUTDOWN_GRACE to finish after the signal; then
                // the workers are flushed regardless, so a stuck client cannot keep the
                // process (and, embedded, its queued claims) from shutting down cleanly.
                let grace = async {
                    stop.cancelled().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                };
                tokio::select! {
                    done = h => done.context("http task")?.context("http server"),
                    _ = grace => {
                        tracing::warn!("requests still in flight after the shutdown grace period; stopping anyway");
                        Ok(())
                    }
                }
            }
            None => {
                stop.cancelled().await;
                Ok(())
            }
        };
        tracing::info!("stopped accepting requests; flushing workers");
        funnel_stop.cancel();
        worker_stop.cancel();
        if let Some(w) = worker {
            w.await.context("worker task")?;
        }
        eng.db.close().await;
        tracing::info!("shutdown complete");
        served
    });
    Ok(Running {
        addr,
        engine,
        shutdown,
        task,
    })
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
