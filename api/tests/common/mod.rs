//! Shared by the api's integration tests: start the real engine in-process on port 0,
//! on Redis + a fresh PostgreSQL or MySQL/MariaDB database, or embedded on a fresh
//! SQLite file, and talk to it over HTTP like any client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stampede_api::config::{Config, LogFormat};
use stampede_api::startup::{self, Mode, Running};
use stampede_engine::auth::Auth;
use stampede_engine::clock::Clock;
use stampede_engine::testkit::{TestCluster, TestMysql, TestPg, TestRedis, TestSqlite};

/// The engine's warnings and errors into the test's captured output (the test harness
/// prints it only for a failing test, so a 503 shows its cause). Once per test binary;
/// `RUST_LOG` overrides the level.
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// `stampede serve` (the real binary) on `port`, over the test's database, with the
/// test secrets; the caller adds its own settings and spawns it.
pub fn serve_command(config: &Config, port: u16) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stampede"));
    cmd.arg("serve")
        .env("STAMPEDE_LISTEN", format!("127.0.0.1:{port}"))
        .env("STAMPEDE_DATABASE_URL", &config.database_url)
        .env("STAMPEDE_JWT_SECRET", JWT_SECRET)
        .env("STAMPEDE_ADMIN_TOKEN", ADMIN_TOKEN);
    cmd
}

/// A `stampede` process (`api`, `worker` or `serve`) over the test's Redis (or cluster)
/// and database, SIGKILLed when dropped so a failing test leaves none behind.
pub struct Process {
    pub child: std::process::Child,
    /// The HTTP address, for the modes that serve.
    pub addr: Option<SocketAddr>,
}

impl Process {
    /// Starts `stampede MODE` with `extra` settings and, when it serves, waits until
    /// `/healthz` answers.
    pub async fn start(config: &Config, mode: &str, extra: &[(&str, &str)]) -> Process {
        let port = stampede_engine::testkit::free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stampede"));
        cmd.arg(mode)
            .env("STAMPEDE_LISTEN", format!("127.0.0.1:{port}"))
            .env("STAMPEDE_DATABASE_URL", &config.database_url)
            .env("STAMPEDE_JWT_SECRET", JWT_SECRET)
            .env("STAMPEDE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("STAMPEDE_USER_RATE", "0")
            .env("STAMPEDE_RECLAIM_IDLE_MS", "2000")
            .env("RUST_LOG", "warn");
        if let Some(url) = &config.redis_url {
            cmd.env("STAMPEDE_REDIS_URL", url);
        }
        if let Some(seeds) = &config.redis_cluster {
            cmd.env("STAMPEDE_REDIS_CLUSTER", seeds);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn stampede");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let serves = mode != "worker";
        let p = Process {
            child,
            addr: serves.then_some(addr),
        };
        if serves {
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let up = http
                    .get(format!("http://{addr}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if up {
                    break;
                }
                assert!(Instant::now() < deadline, "stampede {mode} did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        p
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const PAYMENT_SECRET: &str = "test-payment-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Redis store and queue, PostgreSQL.
    Redis,
    /// Redis store and queue, MySQL/MariaDB.
    Mysql,
    /// In-process store and queue, SQLite.
    Embedded,
    /// A Redis Cluster of the test's own (3 masters, 3 replicas), PostgreSQL.
    Cluster,
}

/// The databases and servers a test owns; dropped after the app.
pub struct Deps {
    pub redis: Option<TestRedis>,
    pub cluster: Option<TestCluster>,
    pub pg: Option<TestPg>,
    pub mysql: Option<TestMysql>,
    pub sqlite: Option<TestSqlite>,
}

impl Deps {
    pub async fn new(backend: Backend) -> Deps {
        match backend {
            Backend::Redis => Deps {
                redis: Some(TestRedis::start()),
                cluster: None,
                pg: Some(TestPg::create().await),
                mysql: None,
                sqlite: None,
            },
            Backend::Mysql => Deps {
                redis: Some(TestRedis::start()),
                cluster: None,
                pg: None,
                mysql: Some(TestMysql::create().await),
                sqlite: None,
            },
            Backend::Embedded => Deps {
                redis: None,
                cluster: None,
                pg: None,
                mysql: None,
                sqlite: Some(TestSqlite::create()),
            },
            Backend::Cluster => Deps {
                redis: None,
                cluster: Some(
                    tokio::task::spawn_blocking(TestCluster::start)
                        .await
                        .expect("cluster"),
                ),
                pg: Some(TestPg::create().await),
                mysql: None,
                sqlite: None,
            },
        }
    }

    /// The test database's URL.
    pub fn database_url(&self) -> String {
        match (&self.pg, &self.mysql, &self.sqlite) {
            (Some(pg), _, _) => pg.url(),
            (_, Some(my), _) => my.url(),
            (_, _, Some(s)) => s.url(),
            _ => unreachable!("a database"),
        }
    }

    /// The port of the database server (PostgreSQL's or MySQL's), for a proxy in front.
    pub fn database_port(&self) -> u16 {
        let url = self.database_url();
        url.rsplit_once("127.0.0.1:")
            .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
            .expect("a database server on 127.0.0.1")
    }

    pub fn config(&self) -> Config {
        Config {
            listen: "127.0.0.1:0".into(),
            redis_url: self.redis.as_ref().map(TestRedis::url),
            redis_cluster: self.cluster.as_ref().map(TestCluster::seeds_env),
            database_url: self.database_url(),
            database_read_url: None,
            metrics_listen: None,
            jwt_secret: Some(JWT_SECRET.into()),
            admin_token: Some(ADMIN_TOKEN.into()),
            payment_secret: Some(PAYMENT_SECRET.into()),
            redis_timeout_ms: 500,
            db_connections: 8,
            worker_consumers: 2,
            worker_batch: 500,
            events_retention_days: 30,
            claim_batch: 64,
            // Off: the races here send many requests per user on purpose.
            user_rate: 0,
            backlog_cap: 1_000_000,
            events_backlog_cap: 10_000_000,
            ip_rate: 0,
            timezone: "UTC".into(),
            signin_points: 10,
            signin_streak_bonus: 5,
            signin_bonus_cap: 50,
            reclaim_idle_ms: 2_000,
            cache_ttl_ms: 500,
            sold_out_ttl_ms: 1_000,
            redis_wait_replicas: 0,
            breaker_failures: 5,
            breaker_cool_down_ms: 1_000,
            poison_attempts: 3,
            log_format: LogFormat::Text,
            environment: "development".into(),
            trusted_proxies: String::new(),
            ticket_ttl_secs: 60,
            risk_device_users: "refuse:10".into(),
            risk_ip_users: "flag:200".into(),
            risk_account_age_secs: "flag:3600".into(),
            risk_ticket_min_ms: "flag:150".into(),
            risk_window_secs: 60,
        }
    }
}

/// One campaign in each state a request can meet, for the sweeps over bad inputs.
#[derive(Debug, Clone, Copy)]
pub struct Campaigns {
    /// An open flash sale.
    pub sale: u64,
    /// An open red packet.
    pub packet: u64,
    /// A flash sale that starts in 2099 (claims: 409 not_started).
    pub later: u64,
    /// A closed flash sale (409 ended).
    pub closed: u64,
    /// A sold-out flash sale (409 sold_out).
    pub sold: u64,
    /// An open flash sale that takes claims only with a ticket (403 ticket_required).
    pub ticketed: u64,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub auth: Auth,
    pub running: Option<Running>,
}

impl TestApp {
    pub async fn start(config: &Config) -> TestApp {
        Self::start_with_clock(config, None).await
    }

    /// Starts the engine with the sign-in's clock under the test's control.
    pub async fn start_with_clock(config: &Config, clock: Option<Arc<dyn Clock>>) -> TestApp {
        Self::start_in(config, Mode::Serve, clock).await
    }

    /// Starts the engine in `mode` (`Api`: no workers, so accepted claims stay queued).
    pub async fn start_in(config: &Config, mode: Mode, clock: Option<Arc<dyn Clock>>) -> TestApp {
        capture_logs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = startup::start_with_clock(config, mode, Some(listener), clock)
            .await
            .expect("engine starts");
        TestApp {
            addr: running.addr.expect("serving"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            auth: Auth::new(JWT_SECRET, ADMIN_TOKEN),
            running: Some(running),
        }
    }

    /// A client of an engine that runs elsewhere (a `stampede api` process) at `addr`.
    pub fn external(addr: SocketAddr) -> TestApp {
        TestApp {
            addr,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            auth: Auth::new(JWT_SECRET, ADMIN_TOKEN),
            running: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn token(&self, user: &str) -> String {
        self.auth.mint(user, 3600).expect("mint")
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean shutdown");
        }
    }

    /// Creates a campaign and returns its id.
    pub async fn create(&self, body: Value) -> u64 {
        let res = self
            .http
            .post(self.url("/v1/campaigns"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), 201, "create campaign: {:?}", res.text().await);
        let v: Value = res.json().await.expect("json");
        v["id"].as_u64().expect("id")
    }

    /// [`Campaigns`]: the open sale and the ticketed one with `stock` units and
    /// `per_user_limit`, the red packet with `packets` packets of 100 cents.
    pub async fn campaigns(&self, stock: u64, per_user_limit: u64, packets: u64) -> Campaigns {
        let sale = self.flash(stock, per_user_limit).await;
        let packet = self
            .create(json!({"kind": "red_packet", "name": "rp", "total_cents": packets * 100, "count": packets}))
            .await;
        let later = self
            .create(json!({"kind": "flash_sale", "name": "later", "stock": 5, "starts_at": "2099-01-01T00:00:00Z"}))
            .await;
        let closed = self.flash(5, 1).await;
        self.close(closed).await;
        let sold = self.flash(1, 1).await;
        assert_eq!(self.claim(sold, &self.token("first"), None).await.0, 201);
        let ticketed = self
            .create(
                json!({"kind": "flash_sale", "name": "ticketed", "stock": stock,
                           "per_user_limit": per_user_limit, "ticket_required": true}),
            )
            .await;
        Campaigns {
            sale,
            packet,
            later,
            closed,
            sold,
            ticketed,
        }
    }

    pub async fn flash(&self, stock: u64, per_user_limit: u64) -> u64 {
        self.create(json!({"kind": "flash_sale", "name": "Test sale", "stock": stock, "per_user_limit": per_user_limit}))
            .await
    }

    /// One claim; returns the status and the body.
    /// Closes a campaign as the admin (it must answer 200); its reply.
    pub async fn close(&self, campaign: u64) -> Value {
        let res = self
            .http
            .post(self.url(&format!("/v1/admin/campaigns/{campaign}/close")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("close");
        assert_eq!(res.status(), 200, "close");
        res.json().await.expect("json")
    }

    pub async fn claim(&self, campaign: u64, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url(&format!("/v1/campaigns/{campaign}/claims")))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("claim");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/signin` as `user`: the status and the body.
    pub async fn signin(&self, user: &str) -> (u16, Value) {
        let res = self
            .http
            .post(self.url("/v1/signin"))
            .bearer_auth(self.token(user))
            .send()
            .await
            .expect("signin");
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    /// A user GET (`/v1/me/...`): the body, asserting 200.
    pub async fn user_get(&self, user: &str, path: &str) -> Value {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(self.token(user))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.expect("json")
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.expect("json")
    }

    /// Waits (at most 30 s) until every accepted claim of the campaign is persisted.
    pub async fn wait_drained(&self, campaign: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self
                .admin_get(&format!("/v1/admin/campaigns/{campaign}/stats"))
                .await;
            if s["queue_backlog"] == 0 && s["persisted_claims"] == s["accepted_claims"] {
                return s;
            }
            assert!(Instant::now() < deadline, "queue did not drain: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A scrape of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text")
    }

    /// Every persisted claim of the campaign, through the admin export.
    pub async fn export(&self, campaign: u64) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .admin_get(&format!(
                    "/v1/admin/campaigns/{campaign}/claims?after={after}&limit=1000"
                ))
                .await;
            all.extend(page["claims"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(n) => after = n.to_string(),
                None => return all,
            }
        }
    }
}
