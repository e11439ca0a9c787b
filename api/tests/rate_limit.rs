//! Rate limits: a user hammering the claim route gets 429 with Retry-After; other
//! users are unaffected.

mod common;

use common::{Backend, Deps, TestApp};
use futures::future::join_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_rate_gets_429_and_others_are_unaffected() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    config.user_rate = 5;
    let mut app = TestApp::start(&config).await;
    let id = app.flash(1_000, 1_000).await;
    let token = app.token("hammer");
    let replies = join_all((0..200).map(|_| {
        app.http
            .post(app.url(&format!("/v1/campaigns/{id}/claims")))
            .bearer_auth(&token)
            .send()
    }))
    .await;
    let mut limited = 0;
    let mut accepted = 0;
    for r in replies {
        let r = r.expect("reply");
        match r.status().as_u16() {
            201 => accepted += 1,
            429 => {
                limited += 1;
                let wait: u64 = r.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                assert!(wait >= 1);
                let body: serde_json::Value = r.json().await.expect("json");
                assert_eq!(body["error"]["code"], "rate_limited");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(accepted <= 10, "at most the burst gets through: {accepted}");
    assert!(limited >= 190, "the rest are limited: {limited}");
    assert_eq!(
        app.claim(id, &app.token("bystander"), None).await.0,
        201,
        "another user is unaffected"
    );
    assert_eq!(app.signin("bystander").await.0, 201);
    app.stop().await;
}

/// Sign-ins from many users behind one address, `X-Forwarded-For` set as a proxy would:
/// how many the per-address limit refused.
async fn limited_behind(app: &TestApp, forwarded_for: &str, users: &str) -> usize {
    let replies = join_all((0..40).map(|n| {
        app.http
            .post(app.url("/v1/signin"))
            .bearer_auth(app.token(&format!("{users}{n}")))
            .header("x-forwarded-for", forwarded_for)
            .send()
    }))
    .await;
    replies
        .into_iter()
        .filter(|r| r.as_ref().expect("reply").status() == 429)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    config.ip_rate = 5;

    // Untrusted: every request is the peer's, 127.0.0.1, whatever the header says.
    let mut app = TestApp::start(&config).await;
    assert!(limited_behind(&app, "203.0.113.1", "a").await >= 20);
    assert!(
        limited_behind(&app, "203.0.113.2", "b").await >= 35,
        "a forged header buys no fresh budget"
    );
    app.stop().await;

    // Behind a trusted proxy, each forwarded address has its own budget.
    config.trusted_proxies = "127.0.0.1".into();
    let mut app = TestApp::start(&config).await;
    assert!(limited_behind(&app, "203.0.113.1", "c").await >= 20);
    let limited = limited_behind(&app, "203.0.113.2", "d").await;
    assert!(
        (20..=30).contains(&limited),
        "another address has its own burst of 10 (refused: {limited})"
    );
    app.stop().await;
}
