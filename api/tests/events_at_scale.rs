//! Behaviour events at the scale of the acceptance run: 100,000 events from 10,000 users
//! through `stampede serve`, each stored exactly once and counted once in the funnel.
//! On Redis + PostgreSQL a second worker process is SIGKILLed while it writes (its
//! pending events are taken over by the serve process's writer); embedded, one process
//! does it all.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, Process, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use stampede_engine::behaviour::day_of;
use stampede_engine::clock::now_ms;
use stampede_engine::db::Database;

const USERS: usize = 10_000;
const PER_USER: usize = 10;
const TOTAL: u64 = (USERS * PER_USER) as u64;

/// (rows, distinct ids) of the campaign's events over every day.
async fn stored(db: &Database, campaign: u64) -> (u64, u64) {
    let mut total = (0, 0);
    for day in db.event_days().await.expect("days") {
        let (n, d) = db.event_count(&day, campaign).await.expect("count");
        total = (total.0 + n, total.1 + d);
    }
    total
}

/// Every user sends one request of [`PER_USER`] events (9 views and an `add_to_cart`),
/// 64 at a time; every one must be taken.
async fn crowd_reports(app: &TestApp, campaign: u64) {
    let tokens: Vec<String> = (0..USERS)
        .map(|u| app.token(&format!("viewer{u}")))
        .collect();
    let body = {
        let mut events: Vec<Value> = (0..PER_USER - 1)
            .map(|i| json!({"type": "view", "campaign_id": campaign, "props": {"i": i}}))
            .collect();
        events.push(json!({"type": "add_to_cart", "campaign_id": campaign}));
        json!({ "events": events }).to_string()
    };
    let statuses: Vec<u16> = futures::stream::iter(tokens)
        .map(|t| {
            let (app, body) = (app, body.clone());
            async move {
                app.http
                    .post(app.url("/v1/events"))
                    .bearer_auth(t)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let taken = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!(taken, USERS, "every request taken: {:?}", {
        let mut other: Vec<&u16> = statuses.iter().filter(|s| **s != 202).collect();
        other.dedup();
        other
    });
}

/// Waits until the campaign's funnel shows every event (at most a minute), then checks
/// the counts by type.
async fn funnel_shows_every_event(app: &TestApp, campaign: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply: Value = app
            .http
            .get(app.url(&format!("/v1/admin/campaigns/{campaign}/funnel?minutes=30")))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .expect("funnel")
            .json()
            .await
            .expect("json");
        let sum = |k: &str| -> u64 {
            reply["minutes"]
                .as_array()
                .expect("minutes")
                .iter()
                .map(|m| m[k].as_u64().unwrap_or(0))
                .sum()
        };
        let (views, carts) = (sum("view"), sum("add_to_cart"));
        let want = (TOTAL - USERS as u64, USERS as u64);
        if (views, carts) == want {
            return;
        }
        assert!(
            views <= want.0 && carts <= want.1,
            "never more than sent: {views} views, {carts} carts"
        );
        assert!(
            Instant::now() < deadline,
            "the funnel shows {views} views and {carts} carts of {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_stored(db: &Database, campaign: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (rows, distinct) = stored(db, campaign).await;
        assert_eq!(rows, distinct, "an event stored twice");
        if rows == TOTAL {
            return;
        }
        assert!(rows < TOTAL, "{rows} rows of {TOTAL}");
        assert!(Instant::now() < deadline, "only {rows} of {TOTAL} stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_events_through_serve_on_redis_and_postgres_with_a_worker_killed() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let serve = Process::start(&config, "serve", &[("STAMPEDE_IP_RATE", "0")]).await;
    let app = TestApp::external(serve.addr.expect("serves"));
    let campaign = app
        .create(json!({"kind": "flash_sale", "name": "crowd", "stock": 100}))
        .await;
    let db = Database::connect(&config.database_url, 4)
        .await
        .expect("db");
    // A second worker process writes beside the serve process's own writer.
    let mut extra = Process::start(&config, "worker", &[]).await;
    // SIGKILL it in the middle, while the crowd still reports and both write: what it
    // had taken and not acknowledged is taken over by the other writer.
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (rows, _) = stored(&db, campaign).await;
            if rows >= TOTAL / 5 {
                extra.kill();
                return rows;
            }
            assert!(Instant::now() < deadline, "{rows} stored after a minute");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let ((), killed_at) = tokio::join!(crowd_reports(&app, campaign), kill);
    eprintln!("extra worker killed with {killed_at} of {TOTAL} events stored");
    assert!(killed_at < TOTAL, "killed before the end");
    wait_stored(&db, campaign, Duration::from_secs(120)).await;
    let days = db.event_days().await.expect("days");
    assert!(
        days.contains(&day_of(now_ms())),
        "today's partition: {days:?}"
    );
    assert!(
        days.contains(&day_of(now_ms() + 2 * 86_400_000)),
        "made ahead: {days:?}"
    );
    funnel_shows_every_event(&app, campaign).await;
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_events_through_serve_embedded() {
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let serve = Process::start(&config, "serve", &[("STAMPEDE_IP_RATE", "0")]).await;
    let app = TestApp::external(serve.addr.expect("serves"));
    let campaign = app
        .create(json!({"kind": "flash_sale", "name": "crowd", "stock": 100}))
        .await;
    crowd_reports(&app, campaign).await;
    let db = Database::connect(&config.database_url, 2)
        .await
        .expect("db");
    wait_stored(&db, campaign, Duration::from_secs(120)).await;
    assert!(db
        .event_days()
        .await
        .expect("days")
        .contains(&day_of(now_ms())));
    funnel_shows_every_event(&app, campaign).await;
    drop(serve);
}
