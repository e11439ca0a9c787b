//! Rate limits: a user hammering the claim route gets 429 with Retry-After; other
//! users are unaffected.

mod common;

use common::{Backend, Deps, TestApp};
use futures::future::join_all;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_rate_gets_429_and_others_are_unaffected() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    config.user_rate = 5;
    let mut app = TestApp::start(&config).await;
    let id = app.flash(1_000, 1_000).await;
    let token = app.token("hammer");
    let started = Instant::now();
    let replies = join_all((0..200).map(|_| {
        app.http
            .post(app.url(&format!("/v1/campaigns/{id}/claims")))
            .bearer_auth(&token)
            .send()
    }))
    .await;
    // The limiter refills 5 a second on top of its burst of 10; on a slow machine the
    // 200 requests take a while, so the bound is what the limiter promises for the time
    // they actually took, not a fixed 10.
    let allowed = 10 + (5.0 * started.elapsed().as_secs_f64()).ceil() as usize;
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
    assert!(accepted >= 10, "the burst gets through: {accepted}");
    assert!(
        accepted <= allowed,
        "at most the burst plus the refill gets through: {accepted} > {allowed}"
    );
    assert_eq!(accepted + limited, 200, "the rest are limited: {limited}");
    assert_eq!(
        app.claim(id, &app.token("bystander"), None).await.0,
        201,
        "another user is unaffected"
    );
    assert_eq!(app.signin("bystander").await.0, 201);
    app.stop().await;
}

/// Requests to `path` (a sign-in, or a claim) from many users behind one address,
/// `X-Forwarded-For` set as a proxy would: how many the per-address limit let through
/// (the rest must be 429).
async fn passed_behind(app: &TestApp, path: &str, forwarded_for: &str, users: &str) -> usize {
    let replies = join_all((0..40).map(|n| {
        app.http
            .post(app.url(path))
            .bearer_auth(app.token(&format!("{users}{n}")))
            .header("x-forwarded-for", forwarded_for)
            .send()
    }))
    .await;
    let statuses: Vec<u16> = replies
        .into_iter()
        .map(|r| r.expect("reply").status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 429),
        "only accepted or limited: {statuses:?}"
    );
    statuses.iter().filter(|s| **s == 201).count()
}

/// What a limit of 5 a second with a burst of 10 may let through in `window`: the burst
/// plus the refill. The machine is slow at times, so the bound follows the time taken.
fn budget(window: Instant) -> usize {
    10 + (5.0 * window.elapsed().as_secs_f64()).ceil() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    config.ip_rate = 5;
    // The sign-in reads the address through its own extractor, the claim route through
    // the one that reads its whole request (`claim_request.rs`): both must agree.
    for route in ["signin", "claim"] {
        // Untrusted: every request is the peer's, 127.0.0.1, whatever the header says, so
        // two forged addresses share one budget.
        config.trusted_proxies = String::new();
        let mut app = TestApp::start(&config).await;
        let path = path_of(&app, route).await;
        let window = Instant::now();
        let a = passed_behind(&app, &path, "203.0.113.1", "a").await;
        let b = passed_behind(&app, &path, "203.0.113.2", "b").await;
        let allowed = budget(window);
        assert!(a >= 10, "{route}: the first burst gets through: {a}");
        assert!(
            a + b <= allowed,
            "{route}: a forged header buys no fresh budget: {a} + {b} > {allowed}"
        );
        app.stop().await;

        // Behind a trusted proxy, each forwarded address has its own budget.
        config.trusted_proxies = "127.0.0.1".into();
        let mut app = TestApp::start(&config).await;
        let path = path_of(&app, route).await;
        let window = Instant::now();
        let c = passed_behind(&app, &path, "203.0.113.1", "c").await;
        let first = budget(window);
        let d = passed_behind(&app, &path, "203.0.113.2", "d").await;
        let both = budget(window);
        assert!(
            (10..=first).contains(&c),
            "{route}: one address, one budget: {c}"
        );
        assert!(
            d >= 10 && d <= both,
            "{route}: another address has its own burst of 10 (passed: {d})"
        );
        app.stop().await;
    }
}

/// The path a route's requests go to (a claim: on a new campaign with room for all).
async fn path_of(app: &TestApp, route: &str) -> String {
    match route {
        "signin" => "/v1/signin".into(),
        _ => format!("/v1/campaigns/{}/claims", app.flash(1_000, 1).await),
    }
}
