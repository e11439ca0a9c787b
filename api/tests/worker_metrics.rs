//! `stampede worker` with `STAMPEDE_METRICS_LISTEN` serves its own `/metrics`: with the
//! api and the workers in separate processes, the persist rate the operator's alerts
//! watch (`stampede_worker_persisted_total`) comes from the workers themselves.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, Process, TestApp};
use stampede_api::startup::Mode;

/// `stampede_worker_persisted_total` as a worker's `/metrics` says, if it says it.
async fn persisted(http: &reqwest::Client, addr: &str) -> Option<f64> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("stampede_worker_persisted_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_serves_its_persist_rate() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let mut api = TestApp::start_in(&config, Mode::Api, None).await;
    let addr = format!("127.0.0.1:{}", stampede_engine::testkit::free_port());
    let _worker = Process::start(&config, "worker", &[("STAMPEDE_METRICS_LISTEN", &addr)]).await;

    let id = api.flash(50, 1).await;
    for u in 0..20 {
        assert_eq!(
            api.claim(id, &api.token(&format!("u{u}")), None).await.0,
            201
        );
    }
    api.wait_drained(id).await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = persisted(&http, &addr).await;
        if n == Some(20.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's /metrics never showed its 20 persisted claims: {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    api.stop().await;
}
