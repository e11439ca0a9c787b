//! Drain benchmark: how fast the workers move a backlog of accepted claims from the
//! Redis stream into PostgreSQL, next to PostgreSQL's own rate for the same rows in
//! 100-row INSERT statements over the same number of connections, in the same run.
//!
//! It owns its state: a redis-server on a free port and a fresh PostgreSQL database,
//! both gone afterwards. Usage: `drain [--claims 200000] [--consumers 4] [--batch 1000]`
//! (PostgreSQL from `STAMPEDE_TEST_PG`, default postgres://postgres@127.0.0.1:5432).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sqlx::{PgPool, QueryBuilder};
use stampede_engine::campaign::NewCampaign;
use stampede_engine::claim::ClaimRequest;
use stampede_engine::clock::now_ms;
use stampede_engine::db::Database;
use stampede_engine::queue::redis::RedisQueue;
use stampede_engine::service::Engine;
use stampede_engine::store::redis::{connect, RedisStore};
use stampede_engine::testkit::{TestPg, TestRedis};
use stampede_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    claims: u64,
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
}

/// PostgreSQL's own rate: `rows` claim-shaped rows in 100-row statements, spread over
/// `connections` concurrent connections.
async fn baseline(pool: &PgPool, rows: u64, connections: usize) -> anyhow::Result<f64> {
    sqlx::query("CREATE TABLE baseline_claims (LIKE claims INCLUDING ALL)")
        .execute(pool)
        .await?;
    let per = rows / connections as u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections as u64)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut i = 0;
                while i < per {
                    let n = 100.min(per - i);
                    let mut q = QueryBuilder::new(
                        "INSERT INTO baseline_claims (campaign_id, claim_id, user_id, quantity, amount_cents, \
                         packet_idx, accepted_at_ms, persisted_at_ms) ",
                    );
                    q.push_values(0..n, |mut row, k| {
                        let seq = w * per + i + k;
                        row.push_bind(1i64)
                            .push_bind(format!("c1-{seq:010}"))
                            .push_bind(format!("user{seq}"))
                            .push_bind(1i64)
                            .push_bind(0i64)
                            .push_bind(-1i64)
                            .push_bind(now_ms())
                            .push_bind(now_ms());
                    });
                    q.build().execute(&pool).await?;
                    i += n;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok((per * connections as u64) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = TestRedis::start();
    let pg = TestPg::create().await;
    let db = Database::connect(&pg.url(), (args.consumers as u32).max(4) + 2).await?;
    db.migrate().await?;
    let Database::Postgres(pool) = &db else {
        anyhow::bail!("PostgreSQL expected")
    };

    let baseline_rps = baseline(pool, args.claims, args.consumers).await?;

    let conn = connect(&redis.url(), Duration::from_secs(5)).await?;
    let queue = Arc::new(RedisQueue::single(
        &redis.url(),
        Duration::from_secs(5),
        conn.clone(),
    ));
    let engine = Engine::new(Arc::new(RedisStore::new(conn)), queue.clone(), db.clone());
    let (campaign, _) = engine
        .create_campaign(&NewCampaign {
            kind: "flash_sale".into(),
            name: "drain bench".into(),
            stock: Some(args.claims as i64),
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut filled = 0;
    while filled < args.claims {
        let n = 500.min(args.claims - filled);
        let requests: Vec<ClaimRequest> = (filled..filled + n)
            .map(|u| ClaimRequest {
                user_id: format!("user{u}"),
                quantity: 1,
                request_id: None,
            })
            .collect();
        engine
            .store
            .claim_batch(campaign.id, now_ms(), &requests)
            .await?;
        filled += n;
    }
    let fill_rps = args.claims as f64 / started.elapsed().as_secs_f64();

    let stop = CancellationToken::new();
    let config = WorkerConfig {
        consumers: args.consumers,
        batch_size: args.batch,
        block: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let started = Instant::now();
    let workers = tokio::spawn(stampede_worker::run(
        queue.clone(),
        db.clone(),
        config,
        stop.clone(),
    ));
    // The stream's length is O(1) to read and reaches zero only when every event is
    // acknowledged, which happens after its transaction commits. (Polling COUNT(*)
    // would load PostgreSQL with the benchmark's own work.)
    use stampede_engine::queue::Queue;
    while queue.backlog(campaign.id).await? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        db.persisted_count(campaign.id).await? == args.claims,
        "every claim persisted"
    );
    stop.cancel();
    workers.await?;
    let drain_rps = args.claims as f64 / drain_secs;

    println!(
        "{}",
        serde_json::json!({
            "claims": args.claims,
            "consumers": args.consumers,
            "batch": args.batch,
            "backlog_fill_claims_per_sec (claim script, 500 per call)": fill_rps.round(),
            "postgres_100_row_statements_rows_per_sec": baseline_rps.round(),
            "worker_drain_rows_per_sec": drain_rps.round(),
            "ratio_drain_to_postgres": (drain_rps / baseline_rps * 100.0).round() / 100.0,
        })
    );
    db.close().await;
    Ok(())
}
