//! `/metrics` speaks Prometheus text with the contract's stable names, and its counters
//! move with the traffic.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_claims_and_sign_ins() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    let scrape = || async {
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text")
    };
    let before = scrape().await;
    let accepted = r#"stampede_claims_total{outcome="accepted"}"#;
    let sold_out = r#"stampede_claims_total{outcome="sold_out"}"#;
    let id = app.flash(2, 1).await;
    for u in ["a", "b", "c"] {
        app.claim(id, &app.token(u), None).await;
    }
    app.signin("a").await;
    app.wait_drained(id).await;
    let after = scrape().await;
    assert_eq!(
        sample(&after, accepted) - sample(&before, accepted),
        2.0,
        "{after}"
    );
    assert_eq!(sample(&after, sold_out) - sample(&before, sold_out), 1.0);
    assert!(
        sample(&after, "stampede_worker_persisted_total")
            - sample(&before, "stampede_worker_persisted_total")
            >= 2.0
    );
    assert!(sample(&after, r#"stampede_signins_total{outcome="signed_in"}"#) >= 1.0);
    assert!(
        after.contains("stampede_claim_duration_seconds_bucket"),
        "a histogram with buckets"
    );
    assert!(after.contains("stampede_queue_backlog 0"), "{after}");
    app.stop().await;
}
