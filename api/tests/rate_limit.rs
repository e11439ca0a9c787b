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
