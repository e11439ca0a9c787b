//! A Redis that hangs (SIGSTOPped, connections open, nothing answering): claims fail
//! fast with 503 + Retry-After instead of waiting, and succeed again once it answers.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_fail_within_a_second_while_redis_hangs_and_recover() {
    let deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.flash(100, 1).await;
    assert_eq!(app.claim(id, &app.token("before"), None).await.0, 201);

    let redis = deps.redis.as_ref().expect("redis");
    redis.pause();
    for n in 0..3 {
        let started = Instant::now();
        let res = app
            .http
            .post(app.url(&format!("/v1/campaigns/{id}/claims")))
            .bearer_auth(app.token(&format!("during{n}")))
            .send()
            .await
            .expect("reply");
        let took = started.elapsed();
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"));
        assert!(took < Duration::from_millis(1_500), "failed fast: {took:?}");
    }
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.claim(id, &app.token("after"), None).await;
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "claims never recovered ({status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
