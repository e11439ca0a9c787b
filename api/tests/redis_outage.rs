//! Redis cut off (a TCP proxy in front of it drops every connection and refuses new
//! ones): claims fail within a second with 503 + Retry-After, the circuit breaker keeps
//! the api from hammering the dead address, reads keep answering 200 from the hot cache
//! (marked stale), `/metrics` shows the breaker open and the api not ready, and claims
//! succeed again within seconds of Redis's return.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};
use stampede_api::startup::Mode;
use stampede_engine::testkit::CutProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_fail_fast_and_reads_serve_stale_while_redis_is_cut_off() {
    let deps = Deps::new(Backend::Redis).await;
    let redis = deps.redis.as_ref().expect("redis");
    let proxy = CutProxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let mut config = deps.config();
    config.redis_url = Some(proxy.rewrite_url(&redis.url(), redis.port));
    // The api alone: no worker connections to the proxy besides the api's own.
    let mut app = TestApp::start_in(&config, Mode::Api, None).await;
    let id = app.flash(100, 1).await;
    assert_eq!(app.claim(id, &app.token("before"), None).await.0, 201);
    let read = |app: &TestApp| {
        let url = app.url(&format!("/v1/campaigns/{id}"));
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("read") }
    };
    let first = read(&app).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("x-stampede-stale").is_none());

    proxy.cut();
    let cut_at = Instant::now();
    let mut claims = 0;
    while cut_at.elapsed() < Duration::from_secs(3) {
        let started = Instant::now();
        let res = app
            .http
            .post(app.url(&format!("/v1/campaigns/{id}/claims")))
            .bearer_auth(app.token(&format!("during{claims}")))
            .send()
            .await
            .expect("reply");
        let took = started.elapsed();
        assert_eq!(res.status(), 503, "claim {claims}");
        assert!(res.headers().contains_key("retry-after"));
        assert!(took < Duration::from_secs(1), "failed fast: {took:?}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unavailable");
        claims += 1;

        let res = read(&app).await;
        assert_eq!(res.status(), 200, "reads keep answering");
        if cut_at.elapsed() > Duration::from_millis(600) {
            assert_eq!(
                res.headers()
                    .get("x-stampede-stale")
                    .and_then(|v| v.to_str().ok()),
                Some("true"),
                "past the TTL, the last known counters, marked stale"
            );
            let body: serde_json::Value = res.json().await.expect("json");
            assert_eq!(body["remaining"], 99);
        }
    }
    let refused = proxy.refused();
    assert!(claims >= 20, "only {claims} claims in 3 s");
    assert!(
        refused * 4 < claims,
        "the breaker spares the dead address: {refused} connection attempts for {claims} claims"
    );
    // An operator hears of it: the breaker's and readiness's gauges (ops/prometheus).
    let cut_off = app.metrics().await;
    assert!(
        cut_off.contains(r#"stampede_breaker_open{dependency="store"} 1"#),
        "{cut_off}"
    );
    assert!(cut_off.contains("stampede_ready 0"), "{cut_off}");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.claim(id, &app.token("after"), None).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "claims never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back_at = Instant::now();
    loop {
        let res = read(&app).await;
        if res.headers().get("x-stampede-stale").is_none() {
            let body: serde_json::Value = res.json().await.expect("json");
            // "before" and "after", and at most the first claim of the cut: sent as the
            // connection was cut, Redis may have run it though its reply was lost (a 503
            // claim may have been accepted; the user's retry finds it).
            let stats = app
                .admin_get(&format!("/v1/admin/campaigns/{id}/stats"))
                .await;
            let accepted = stats["accepted_claims"].as_u64().expect("accepted");
            assert!((2..=3).contains(&accepted), "{stats}");
            assert_eq!(body["remaining"], 100 - accepted, "{stats}");
            break;
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(5),
            "reads stay stale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = app.metrics().await;
    assert!(
        recovered.contains(r#"stampede_breaker_open{dependency="store"} 0"#),
        "{recovered}"
    );
    assert!(recovered.contains("stampede_ready 1"), "{recovered}");
    app.stop().await;
}
