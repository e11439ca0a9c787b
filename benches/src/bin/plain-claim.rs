//! The baseline claim handler: axum + redis-rs, one EVALSHA of `lua/claim.lua` per
//! request, the user id taken from the path, no authentication, no metrics, no JSON
//! parsing: the floor of what an HTTP claim on Redis costs.
//!
//! Usage: plain-claim REDIS_URL LISTEN_ADDR CAMPAIGN_ID

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use redis::aio::MultiplexedConnection;
use redis::Script;
use stampede_engine::store::keys;
use stampede_engine::store::redis::{BATCH_REPLY_TTL_MS, CLAIM_LUA};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct App {
    conn: MultiplexedConnection,
    script: Script,
    campaign: u64,
}

async fn claim(
    State(app): State<App>,
    Path(user): Path<String>,
) -> (axum::http::StatusCode, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let batch = "";
    let mut conn = app.conn.clone();
    let reply: redis::RedisResult<Vec<String>> = app
        .script
        .key(keys::state(app.campaign))
        .key(keys::users(app.campaign))
        .key(keys::packets(app.campaign))
        .key(keys::stream(app.campaign))
        .key(keys::batch(app.campaign, batch))
        .arg(now)
        .arg(app.campaign)
        .arg("") // no rollback floor (gen)
        .arg(0) // no rollback floor (seq)
        // No batch id: a plain handler on one Redis has no client-side re-sends to guard
        // against, so it skips the batch-reply bookkeeping stampede pays per batch. The
        // easier baseline keeps the ratio honest.
        .arg("")
        .arg(BATCH_REPLY_TTL_MS)
        .arg(format!("c{}-", app.campaign)) // the claim id prefix
        .arg(user)
        .arg(1)
        .arg("") // no request id
        .invoke_async(&mut conn)
        .await;
    match reply {
        // The state's gen and seq, then the claim's code and record.
        Ok(v) if v.get(2).map(String::as_str) == Some("A") => {
            (axum::http::StatusCode::CREATED, v[3].clone())
        }
        Ok(v) => (axum::http::StatusCode::CONFLICT, v.join(" ")),
        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, redis_url, listen, campaign] = &args[..] else {
        anyhow::bail!("usage: plain-claim REDIS_URL LISTEN_ADDR CAMPAIGN_ID");
    };
    let client = redis::Client::open(redis_url.as_str())?;
    let app = App {
        conn: client.get_multiplexed_async_connection().await?,
        script: Script::new(CLAIM_LUA),
        campaign: campaign.parse()?,
    };
    let router = Router::new()
        .route("/claim/{user}", post(claim))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
