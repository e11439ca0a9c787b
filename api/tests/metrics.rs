//! `/metrics` speaks Prometheus text with the contract's stable names, and its counters
//! move with the traffic: claims, sign-ins, the store and database timings, the worker's
//! batches, the caches' hits and misses, rate-limit and risk refusals.

mod common;

use common::{Backend, Deps, TestApp};

/// The value of the first sample line that starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// How much `series` grew between two scrapes.
fn moved(before: &str, after: &str, series: &str) -> f64 {
    sample(after, series) - sample(before, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_claims_and_sign_ins() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    // One request a second per user, a burst of two: the last test below trips it.
    config.user_rate = 1;
    let mut app = TestApp::start(&config).await;
    let before = app.metrics().await;
    let accepted = r#"stampede_claims_total{outcome="accepted"}"#;
    let sold_out = r#"stampede_claims_total{outcome="sold_out"}"#;
    let id = app.flash(2, 1).await;
    let token_a = app.token("a");
    for u in ["a", "b", "c"] {
        app.claim(id, &app.token(u), None).await;
    }
    // The same token again: answered from the verified-token cache.
    assert_eq!(app.claim(id, &token_a, None).await.0, 200);
    app.signin("d").await;
    app.user_get("e", "/v1/me/points").await;
    app.user_get("e", "/v1/me/points").await;
    app.wait_drained(id).await;
    let after = app.metrics().await;
    assert_eq!(moved(&before, &after, accepted), 2.0, "{after}");
    assert_eq!(moved(&before, &after, sold_out), 1.0);
    assert!(moved(&before, &after, "stampede_worker_persisted_total") >= 2.0);
    assert!(sample(&after, r#"stampede_signins_total{outcome="signed_in"}"#) >= 1.0);
    assert!(
        after.contains("stampede_claim_duration_seconds_bucket"),
        "a histogram with buckets"
    );
    assert!(after.contains("stampede_queue_backlog 0"), "{after}");

    // Store and database latency, by operation.
    assert!(
        moved(
            &before,
            &after,
            r#"stampede_store_duration_seconds_count{op="claim"}"#
        ) >= 4.0,
        "{after}"
    );
    assert!(
        after.contains(r#"stampede_store_duration_seconds_bucket{op="claim",le="0.0001"}"#),
        "{after}"
    );
    assert!(
        moved(
            &before,
            &after,
            r#"stampede_db_duration_seconds_count{op="persist_claims"}"#
        ) >= 1.0,
        "{after}"
    );
    assert!(
        moved(
            &before,
            &after,
            r#"stampede_db_duration_seconds_count{op="points"}"#
        ) >= 1.0,
        "{after}"
    );
    // The worker's batch size: explicit buckets, counted in claims.
    assert!(
        after.contains(r#"stampede_worker_batch_size_bucket{le="1000"}"#),
        "{after}"
    );
    assert!(moved(&before, &after, "stampede_worker_batch_size_count") >= 1.0);
    // The caches: the campaign row and the verified token hit on the repeated claim,
    // the balance on the second read.
    let cache =
        |c: &str, r: &str| format!(r#"stampede_cache_requests_total{{cache="{c}",result="{r}"}}"#);
    assert!(
        moved(&before, &after, &cache("campaign", "hit")) >= 4.0,
        "{after}"
    );
    assert!(
        moved(&before, &after, &cache("token", "miss")) >= 3.0,
        "{after}"
    );
    assert!(
        moved(&before, &after, &cache("token", "hit")) >= 1.0,
        "{after}"
    );
    assert!(
        moved(&before, &after, &cache("points", "miss")) >= 1.0,
        "{after}"
    );
    assert!(
        moved(&before, &after, &cache("points", "hit")) >= 1.0,
        "{after}"
    );

    // Refusals: over the user's rate, and by a risk rule.
    let rate_limited = r#"stampede_rate_limited_total{scope="user"}"#;
    let risk = r#"stampede_risk_refusals_total{rule="blocklist",action="refuse"}"#;
    assert!(after.contains(rate_limited), "registered from the start");
    assert!(after.contains(risk), "registered from the start");
    let greedy = app.token("greedy");
    let mut refused = 0;
    for _ in 0..5 {
        if app.claim(id, &greedy, None).await.0 == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2, "{refused} refused");
    let res = app
        .http
        .post(app.url("/v1/admin/blocklist"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&serde_json::json!({"user_id": "blocked"}))
        .send()
        .await
        .expect("block");
    assert_eq!(res.status(), 201);
    assert_eq!(app.claim(id, &app.token("blocked"), None).await.0, 403);
    let last = app.metrics().await;
    assert_eq!(moved(&after, &last, rate_limited), refused as f64, "{last}");
    assert_eq!(
        moved(
            &after,
            &last,
            r#"stampede_claims_total{outcome="rate_limited"}"#
        ),
        refused as f64
    );
    assert_eq!(moved(&after, &last, risk), 1.0);
    app.stop().await;
}
