//! Fills a campaign's claim stream for the drain benchmark (`benches/drain.sh`): creates
//! a flash sale of `--claims` units in the database and the store, then accepts one claim
//! per user through the claim script (500 per call), so the stream holds `--claims`
//! events for `stampede worker` to persist. Prints the campaign id on stdout.
//!
//! Usage: `drain --redis URL --database URL [--claims 200000]`.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use stampede_engine::campaign::NewCampaign;
use stampede_engine::claim::ClaimRequest;
use stampede_engine::clock::now_ms;
use stampede_engine::db::Database;
use stampede_engine::queue::redis::RedisQueue;
use stampede_engine::service::Engine;
use stampede_engine::store::redis::{connect, RedisStore};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    redis: String,
    #[arg(long)]
    database: String,
    #[arg(long, default_value_t = 200_000)]
    claims: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = Database::connect(&args.database, 4).await?;
    db.migrate().await?;
    let conn = connect(&args.redis, Duration::from_secs(5)).await?;
    let queue = Arc::new(RedisQueue::single(
        &args.redis,
        Duration::from_secs(5),
        conn.clone(),
    ));
    let engine = Engine::new(Arc::new(RedisStore::new(conn)), queue, db.clone());
    let (campaign, _) = engine
        .create_campaign(&NewCampaign {
            kind: "flash_sale".into(),
            name: "drain bench".into(),
            stock: Some(args.claims as i64),
            ..Default::default()
        })
        .await?;
    let mut filled = 0;
    while filled < args.claims {
        let n = 500.min(args.claims - filled);
        let requests: Vec<ClaimRequest> = (filled..filled + n)
            .map(|u| ClaimRequest {
                user_id: format!("c{}-user{u}", campaign.id),
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
    println!("{}", campaign.id);
    db.close().await;
    Ok(())
}
