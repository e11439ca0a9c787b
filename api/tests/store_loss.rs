//! Redis restarted empty: claims get 503 (never a silent sold-out, never a re-sale)
//! until the admin rebuild reloads the campaign from the database; afterwards exactly
//! the unsold remainder can be claimed and earlier winners hear `already_claimed`.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp, ADMIN_TOKEN};
use serde_json::Value;
use stampede_engine::testkit::TestRedis;

async fn rebuild(app: &TestApp, id: u64) -> (u16, Value) {
    let res = app
        .http
        .post(app.url(&format!("/v1/admin/campaigns/{id}/rebuild")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("rebuild");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// Kills the test's redis-server and starts an empty one on the same port.
fn restart_empty(deps: &mut Deps) {
    let redis = deps.redis.as_mut().expect("redis");
    let port = redis.port;
    redis.kill();
    *redis = TestRedis::start_on(port);
}

/// Claims until the store answers again (the connection manager reconnects): past the
/// "dependency unavailable" 503s of the restart itself.
async fn claim_when_back(app: &TestApp, id: u64, user: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.claim(id, &app.token(user), None).await;
        let reconnecting = status == 503
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("dependency"));
        if !reconnecting || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A rebuild went through, from `persisted` claims, leaving `remaining` units.
fn assert_rebuilt((status, body): (u16, Value), persisted: u64, remaining: u64) {
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["persisted_claims"].as_u64(),
            body["remaining"].as_u64()
        ),
        (Some(persisted), Some(remaining))
    );
}

/// After a rebuild: every earlier winner keeps their claim (`200`, the same id), and of
/// `late` newcomers at once exactly `remaining` are accepted, the rest sold out.
async fn winners_keep_and_the_remainder_sells(
    app: &TestApp,
    id: u64,
    winners: &[(&str, Value)],
    late: usize,
    remaining: usize,
) {
    for (u, claim_id) in winners {
        let (status, body) = app.claim(id, &app.token(u), None).await;
        assert_eq!(status, 200, "{u} keeps the claim: {body}");
        assert_eq!(&body["claim"]["id"], claim_id);
    }
    let statuses: Vec<u16> = futures::future::join_all((0..late).map(|n| {
        let token = app.token(&format!("late{n}"));
        async move { app.claim(id, &token, None).await.0 }
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        remaining,
        "exactly the unsold remainder: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        late - remaining
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_lost_its_data_refuses_claims_until_rebuilt() {
    let mut deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.flash(5, 1).await;
    let mut winners = Vec::new();
    for u in ["w1", "w2", "w3"] {
        let (status, body) = app.claim(id, &app.token(u), None).await;
        assert_eq!(status, 201);
        winners.push((u, body["claim"]["id"].clone()));
    }
    app.wait_drained(id).await;
    let (status, body) = rebuild(&app, id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("rebuild_refused")),
        "live state is never overwritten"
    );

    restart_empty(&mut deps);
    let (status, body) = claim_when_back(&app, id, "newcomer").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let read = app
        .http
        .get(app.url(&format!("/v1/campaigns/{id}")))
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 503, "no silent sold out");

    assert_rebuilt(rebuild(&app, id).await, 3, 2);
    winners_keep_and_the_remainder_sells(&app, id, &winners, 6, 2).await;
    app.wait_drained(id).await;
    assert_eq!(app.export(id).await.len(), 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_keeps_a_campaign_closed() {
    let mut deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let mut closer = TestApp::start(&config).await;
    let mut other = TestApp::start(&config).await;
    let id = closer.flash(5, 1).await;
    // The second instance caches the campaign row before the close.
    assert_eq!(other.claim(id, &other.token("early"), None).await.0, 201);
    closer.close(id).await;
    closer.wait_drained(id).await;
    restart_empty(&mut deps);
    let _ = claim_when_back(&other, id, "probe").await;
    let (status, body) = rebuild(&other, id).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = other.claim(id, &other.token("late"), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("ended")),
        "the close survives the rebuild"
    );
    closer.stop().await;
    other.stop().await;
}

/// A directory of the test's own for Redis's snapshot, removed afterwards.
struct SnapshotDir(std::path::PathBuf);

impl SnapshotDir {
    fn new() -> SnapshotDir {
        let dir =
            std::env::temp_dir().join(format!("stampede-snapshot-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        SnapshotDir(dir)
    }
}

impl Drop for SnapshotDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rebuilds, retrying while the queue still holds the campaign's events (`503`).
async fn rebuild_when_drained(app: &TestApp, id: u64) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = rebuild(app, id).await;
        if status != 503 || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Redis restarted from a snapshot taken before its last sales (RDB persistence, or a
/// failover to a replica that had not caught up): it comes back believing stock is left
/// that is sold, and would hand out claim ids the database already holds. The instance
/// that saw the later sales refuses the older state, marks it, and claims get 503 until
/// the rebuild reloads the campaign from the database: never a second sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_from_an_older_snapshot_refuses_claims_until_rebuilt() {
    let mut deps = Deps::new(Backend::Redis).await;
    let snapshots = SnapshotDir::new();
    let port = {
        let redis = deps.redis.as_mut().expect("redis");
        let port = redis.port;
        redis.kill();
        *redis = TestRedis::start_snapshotting(port, &snapshots.0);
        port
    };
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.flash(5, 1).await;
    let mut winners = Vec::new();
    for u in ["w1", "w2", "w3", "w4"] {
        if u == "w3" {
            // The snapshot holds the first two sales only.
            deps.redis.as_ref().expect("redis").save();
        }
        let (status, body) = app.claim(id, &app.token(u), None).await;
        assert_eq!(status, 201, "{body}");
        winners.push((u, body["claim"]["id"].clone()));
    }
    app.wait_drained(id).await;

    {
        let redis = deps.redis.as_mut().expect("redis");
        redis.kill();
        *redis = TestRedis::start_snapshotting(port, &snapshots.0);
    }
    // The restored store says 3 are left; only 1 is.
    let (status, body) = claim_when_back(&app, id, "newcomer").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "an older state sells nothing: {body}"
    );
    let (status, body) = app.claim(id, &app.token("w3"), None).await;
    assert_eq!(
        status, 503,
        "w3's sale is not forgotten and re-made: {body}"
    );
    let read = app
        .http
        .get(app.url(&format!("/v1/campaigns/{id}")))
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 503, "no stale remaining stock shown");
    let metrics = app.metrics().await;
    let rollbacks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stampede_store_rollbacks_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(
        rollbacks,
        Some(1.0),
        "the rollback is counted once for alerts, however many claims it refuses"
    );

    assert_rebuilt(rebuild_when_drained(&app, id).await, 4, 1);
    winners_keep_and_the_remainder_sells(&app, id, &winners, 4, 1).await;
    app.wait_drained(id).await;
    let rows = app.export(id).await;
    assert_eq!(rows.len(), 5, "every sale once in the database: {rows:?}");
    app.stop().await;
}
