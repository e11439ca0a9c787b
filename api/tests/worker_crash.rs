//! A worker process killed with SIGKILL in the middle of draining, then a second
//! worker: every accepted claim ends up in the database exactly once.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Deps};
use stampede_api::startup::build_engine;
use stampede_engine::campaign::NewCampaign;
use stampede_engine::claim::{ClaimOutcome, ClaimRequest};
use stampede_engine::clock::now_ms;

const CLAIMS: u64 = 20_000;

/// A worker process, SIGKILLed when dropped, so a failing test leaves none behind.
struct Worker(Child);

impl Worker {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_worker(deps: &Deps) -> Worker {
    let config = deps.config();
    let child = Command::new(env!("CARGO_BIN_EXE_stampede"))
        .arg("worker")
        .env(
            "STAMPEDE_REDIS_URL",
            config.redis_url.as_deref().unwrap_or(""),
        )
        .env("STAMPEDE_DATABASE_URL", &config.database_url)
        .env("STAMPEDE_WORKER_BATCH", "100")
        .env("STAMPEDE_WORKER_CONSUMERS", "2")
        .env("STAMPEDE_RECLAIM_IDLE_MS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stampede worker");
    Worker(child)
}

async fn a_worker_killed_mid_batch_loses_and_doubles_nothing(backend: Backend) {
    let deps = Deps::new(backend).await;
    let engine = build_engine(&deps.config()).await.expect("engine");
    let (campaign, _) = engine
        .create_campaign(&NewCampaign {
            kind: "flash_sale".into(),
            name: "crash".into(),
            stock: Some(CLAIMS as i64),
            ..Default::default()
        })
        .await
        .expect("campaign");
    let mut accepted = HashSet::new();
    for chunk in 0..CLAIMS / 500 {
        let requests: Vec<ClaimRequest> = (0..500)
            .map(|i| ClaimRequest {
                user_id: format!("u{}", chunk * 500 + i),
                quantity: 1,
                request_id: None,
            })
            .collect();
        for o in engine
            .store
            .claim_batch(campaign.id, now_ms(), &requests)
            .await
            .expect("claims")
        {
            let ClaimOutcome::Accepted(c) = o else {
                panic!("refused: {o:?}")
            };
            accepted.insert(c.id);
        }
    }
    assert_eq!(accepted.len() as u64, CLAIMS);

    let client = redis::Client::open(deps.config().redis_url.unwrap_or_default()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let stream = stampede_engine::store::keys::stream(campaign.id);
    let mut pending = async || -> u64 {
        let reply: (u64, Option<String>, Option<String>, redis::Value) = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(stampede_engine::store::keys::GROUP)
            .query_async(&mut conn)
            .await
            .expect("xpending");
        reply.0
    };

    // The kill comes mid-batch: once the worker has persisted claims and holds events it
    // has read and not yet acknowledged. An acknowledgement already on its way to Redis
    // still lands after the kill, so a kill may leave nothing pending; then another
    // worker is started and killed, until one leaves events behind.
    let mut persisted_at_kill = 0;
    let mut left_pending = 0;
    for _ in 0..20 {
        let before = engine.db.persisted_count(campaign.id).await.expect("count");
        let mut first = spawn_worker(&deps);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = engine.db.persisted_count(campaign.id).await.expect("count");
            if n > before && pending().await > 0 {
                first.kill(); // Child::kill is SIGKILL on Unix
                break;
            }
            assert!(Instant::now() < deadline, "the worker persisted nothing");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Let an acknowledgement sent before the kill land.
        tokio::time::sleep(Duration::from_millis(50)).await;
        persisted_at_kill = engine.db.persisted_count(campaign.id).await.expect("count");
        left_pending = pending().await;
        if left_pending > 0 {
            break;
        }
    }
    assert!(
        persisted_at_kill < CLAIMS,
        "the kill came mid-drain ({persisted_at_kill} persisted)"
    );
    // The dead worker held batches it never acknowledged: only a reclaim can finish them.
    assert!(
        left_pending > 0,
        "a killed worker left pending claim events"
    );

    let mut second = spawn_worker(&deps);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let backlog = engine.queue.backlog(campaign.id).await.expect("backlog");
        let n = engine.db.persisted_count(campaign.id).await.expect("count");
        if backlog == 0 && n == CLAIMS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "second worker stalled: {n} persisted, backlog {backlog}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill();

    let rows = engine
        .db
        .campaign_claims(campaign.id, "", CLAIMS as i64 + 10)
        .await
        .expect("export");
    assert_eq!(rows.len() as u64, CLAIMS, "exactly once");
    let persisted: HashSet<String> = rows.into_iter().map(|c| c.id).collect();
    assert_eq!(
        persisted, accepted,
        "every accepted claim, and nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_and_doubles_nothing_on_postgres() {
    a_worker_killed_mid_batch_loses_and_doubles_nothing(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_and_doubles_nothing_on_mysql() {
    a_worker_killed_mid_batch_loses_and_doubles_nothing(Backend::Mysql).await;
}
