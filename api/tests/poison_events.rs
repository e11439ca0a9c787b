//! A poison event — an accepted claim the database keeps refusing — moves to its
//! campaign's dead letters after its attempts while the rest of the queue flows on; the
//! admin lists it, the reconciliation accounts for it, and once the cause is fixed a
//! replay persists it exactly once. On Redis + PostgreSQL, Redis + MySQL/MariaDB and on
//! the embedded engine.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp, ADMIN_TOKEN};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use stampede_engine::db::Database;

/// A trigger that refuses one user's rows: a stand-in for any row the database will not
/// take (a constraint added by an operator, a value it cannot store).
async fn refuse_user(db: &Database, user: &str) {
    let sql = match db {
        Database::Postgres(_) => format!(
            "CREATE FUNCTION refuse_user() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.user_id = '{user}' THEN \
             RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_user BEFORE INSERT ON claims \
             FOR EACH ROW EXECUTE FUNCTION refuse_user();"
        ),
        Database::Mysql(_) => format!(
            "CREATE TRIGGER refuse_user BEFORE INSERT ON claims FOR EACH ROW \
             IF NEW.user_id = '{user}' THEN \
             SIGNAL SQLSTATE '23000' SET MESSAGE_TEXT = 'refused'; END IF"
        ),
        Database::Sqlite(_) => format!(
            "CREATE TRIGGER refuse_user BEFORE INSERT ON claims WHEN NEW.user_id = '{user}' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        ),
    };
    run(db, &sql).await;
}

async fn run(db: &Database, sql: &str) {
    match db {
        Database::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        Database::Mysql(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        Database::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
    }
    .expect("direct SQL");
}

async fn admin_post(app: &TestApp, path: &str) -> Value {
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.expect("json")
}

/// Polls the stats until `done` holds (at most 30 s).
async fn wait_stats(app: &TestApp, id: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = app
            .admin_get(&format!("/v1/admin/campaigns/{id}/stats"))
            .await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "stats never got there: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn poison_event_is_set_aside_and_replayed(backend: Backend) {
    let deps = Deps::new(backend).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let direct = Database::connect(&config.database_url, 1)
        .await
        .expect("direct connection");
    let id = app.flash(500, 1).await;
    refuse_user(&direct, "poison").await;

    let users: Vec<String> = (0..200)
        .map(|u| format!("user{u}"))
        .chain(["poison".to_string()])
        .collect();
    let statuses: Vec<u16> = stream::iter(&users)
        .map(|u| {
            let app = &app;
            async move { app.claim(id, &app.token(u), None).await.0 }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");

    let stats = wait_stats(&app, id, |s| {
        s["dead_letters"] == 1 && s["persisted_claims"] == 200 && s["queue_backlog"] == 0
    })
    .await;
    assert_eq!(stats["accepted_claims"], 201, "{stats}");

    let listed = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/dead-letters"))
        .await;
    assert_eq!(listed["count"], 1, "{listed}");
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["claim"]["user_id"], "poison", "{listed}");
    assert!(letter["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(letter["failed_at"].as_str().is_some());
    let poison_claim = letter["claim"]["id"]
        .as_str()
        .expect("claim id")
        .to_string();

    let report = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/reconcile"))
        .await;
    assert_eq!(
        report["consistent"], true,
        "the dead letter is accounted for: {report}"
    );
    assert_eq!(report["dead_letters"]["claims"], 1);
    assert_eq!(report["database"]["claims"], 200);

    // The operator fixes the cause and replays.
    let drop_trigger = match direct {
        Database::Postgres(_) => "DROP TRIGGER refuse_user ON claims",
        Database::Mysql(_) | Database::Sqlite(_) => "DROP TRIGGER refuse_user",
    };
    run(&direct, drop_trigger).await;
    let replayed = admin_post(
        &app,
        &format!("/v1/admin/campaigns/{id}/dead-letters/replay"),
    )
    .await;
    assert_eq!(replayed["replayed"], 1);
    let stats = wait_stats(&app, id, |s| {
        s["persisted_claims"] == 201 && s["queue_backlog"] == 0
    })
    .await;
    assert_eq!(stats["dead_letters"], 0, "{stats}");
    let exported = app.export(id).await;
    let ids: HashSet<&str> = exported.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        (exported.len(), ids.len()),
        (201, 201),
        "each claim exactly once"
    );
    assert!(ids.contains(poison_claim.as_str()));
    let report = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/reconcile"))
        .await;
    assert_eq!(report["consistent"], true, "{report}");
    assert_eq!(report["settled"], true);
    direct.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_on_redis_and_postgres() {
    poison_event_is_set_aside_and_replayed(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_embedded() {
    poison_event_is_set_aside_and_replayed(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_on_redis_and_mysql() {
    poison_event_is_set_aside_and_replayed(Backend::Mysql).await;
}
