//! Load shedding: when more accepted claims wait unpersisted than the backlog cap, new
//! claims get 503 with Retry-After; once workers drain the queue, claims flow again.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};
use stampede_api::startup::Mode;
use stampede_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_shed_while_the_backlog_is_over_its_cap() {
    let deps = Deps::new(Backend::Redis).await;
    let mut config = deps.config();
    config.backlog_cap = 50;
    // An api without workers: every accepted claim stays in the queue.
    let mut app = TestApp::start_in(&config, Mode::Api, None).await;
    let id = app.flash(10_000, 1).await;
    // Claims are accepted until the sampler sees the backlog over the cap; it may see
    // it at any moment once more than 50 wait (the sampler runs on its own clock).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut accepted = 0;
    for n in 0.. {
        let res = app
            .http
            .post(app.url(&format!("/v1/campaigns/{id}/claims")))
            .bearer_auth(app.token(&format!("u{n}")))
            .send()
            .await
            .expect("claim");
        if res.status() == 503 {
            assert!(accepted > 50, "shed with only {accepted} waiting");
            assert!(res.headers().contains_key("retry-after"));
            let body: serde_json::Value = res.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unavailable");
            break;
        }
        assert_eq!(res.status(), 201);
        accepted += 1;
        assert!(Instant::now() < deadline, "never shed load");
        if accepted >= 60 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The metrics say why.
    let metrics = app.metrics().await;
    assert!(metrics.contains("stampede_load_shedding 1"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stampede_queue_backlog ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // A worker drains the queue; claims are accepted again.
    let engine = app.running.as_ref().expect("running").engine.clone();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(stampede_worker::run(
        engine.queue.clone(),
        engine.db.clone(),
        WorkerConfig::default(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        let (status, _) = app.claim(id, &app.token(&format!("late{n}")), None).await;
        n += 1;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "claims never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    worker.await.expect("worker");
    app.stop().await;
}
