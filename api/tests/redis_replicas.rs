//! With `STAMPEDE_REDIS_WAIT_REPLICAS`, a claim is answered only once a replica holds
//! it: while the replica is frozen, claims get 503 (none is confirmed that a failover
//! could lose), and a retry after it catches up finds the claim already made.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};
use stampede_engine::testkit::TestRedis;

/// Waits until the primary reports `replicas` connected and in sync.
async fn wait_in_sync(primary: &TestRedis, replicas: u32) {
    let client = redis::Client::open(primary.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let confirmed: u32 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(200)
            .query_async(&mut conn)
            .await
            .expect("WAIT");
        if confirmed >= replicas {
            return;
        }
        assert!(Instant::now() < deadline, "the replica never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_confirmed_only_once_a_replica_holds_them() {
    let deps = Deps::new(Backend::Redis).await;
    let primary = deps.redis.as_ref().expect("redis");
    let replica = TestRedis::start_replica_of(primary);
    wait_in_sync(primary, 1).await;
    let mut config = deps.config();
    config.redis_wait_replicas = 1;
    let mut app = TestApp::start(&config).await;
    let id = app.flash(10, 1).await;
    assert_eq!(app.claim(id, &app.token("u1"), None).await.0, 201);

    replica.pause();
    let started = Instant::now();
    let (status, body) = app.claim(id, &app.token("u2"), None).await;
    assert_eq!(status, 503, "unconfirmed: {body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    replica.resume();

    // The claim was made on the primary; once a replica confirms, the retry finds it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.claim(id, &app.token("u2"), None).await;
        if status != 503 {
            assert_eq!(
                (status, body["status"].as_str()),
                (200, Some("already_claimed")),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "claims never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.claim(id, &app.token("u3"), None).await.0, 201);
    let stats = app.wait_drained(id).await;
    assert_eq!(
        stats["persisted_claims"], 3,
        "u1, u2 (made, then confirmed) and u3: {stats}"
    );
    app.stop().await;
}
