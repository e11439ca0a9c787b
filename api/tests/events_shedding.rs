//! Load shedding of behaviour events: over their own cap (`STAMPEDE_EVENTS_BACKLOG_CAP`)
//! `POST /v1/events` answers 503 while claims go on; once a writer drains the events'
//! queue they are taken again, and every event accepted is counted, none refused. Alone in
//! its file: the shedding gauges are process-wide, and another engine in the same test
//! process would set them too.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};
use stampede_api::startup::Mode;
use stampede_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

/// `POST /v1/events` as `user`: ten views of `campaign`.
async fn post_views(app: &TestApp, user: &str, campaign: u64) -> reqwest::Response {
    let events: Vec<serde_json::Value> = (0..10)
        .map(|_| serde_json::json!({"type": "view", "campaign_id": campaign}))
        .collect();
    app.http
        .post(app.url("/v1/events"))
        .bearer_auth(app.token(user))
        .json(&serde_json::json!({ "events": events }))
        .send()
        .await
        .expect("events")
}

/// Behaviour events have their own cap: over it they get 503 (never dropped silently)
/// while claims go on; once a writer drains their queue they are taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_shed_over_their_own_cap_and_claims_are_not() {
    let deps = Deps::new(Backend::Redis).await;
    let mut config = deps.config();
    config.events_backlog_cap = 50;
    // An api without workers: every accepted event stays in its queue.
    let mut app = TestApp::start_in(&config, Mode::Api, None).await;
    let id = app.flash(10_000, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut accepted = 0;
    loop {
        let res = post_views(&app, "viewer", id).await;
        if res.status() == 503 {
            assert!(res.headers().contains_key("retry-after"));
            let body: serde_json::Value = res.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unavailable");
            break;
        }
        assert_eq!(res.status(), 202);
        accepted += 10;
        assert!(
            Instant::now() < deadline,
            "events were never shed ({accepted} taken)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted > 50, "shed only over the cap: {accepted} taken");
    // Claims are not held up by the events' backlog.
    assert_eq!(app.claim(id, &app.token("buyer"), None).await.0, 201);
    let metrics = app.metrics().await;
    assert!(metrics.contains("stampede_events_shedding 1"), "{metrics}");
    assert!(metrics.contains("stampede_load_shedding 0"), "{metrics}");

    // An event writer drains the queue: events are taken again, and every one accepted
    // was written (none was dropped).
    let engine = app.running.as_ref().expect("running").engine.clone();
    let stop = CancellationToken::new();
    let writer = tokio::spawn(stampede_worker::run(
        engine.events.clone(),
        engine.db.clone(),
        WorkerConfig::default().events(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = post_views(&app, "viewer", id).await;
        if res.status() == 202 {
            accepted += 10;
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(Instant::now() < deadline, "events never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while engine.events.total_backlog().await.expect("backlog") > 0 {
        assert!(Instant::now() < deadline, "the writer did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The funnel counts every accepted view and no refused one (its counts reach it
    // within a flush, every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let funnel = app
            .admin_get(&format!("/v1/admin/campaigns/{id}/funnel?minutes=5"))
            .await;
        let views: u64 = funnel["minutes"]
            .as_array()
            .expect("minutes")
            .iter()
            .map(|m| m["view"].as_u64().unwrap_or(0))
            .sum();
        assert!(
            views <= accepted as u64,
            "a refused view was counted: {funnel}"
        );
        if views == accepted as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "views never all counted: {funnel}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    writer.await.expect("writer");
    app.stop().await;
}
