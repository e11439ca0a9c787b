//! `STAMPEDE_DATABASE_READ_URL`: the reads that may lag go to the read replica, those
//! that must see a write they follow stay on the primary.
//!
//! The "replica" here is a second database with the schema and none of the rows: a
//! replica lagging behind everything, so every read shows where it went.

mod common;

use common::{Backend, Deps, TestApp};
use stampede_engine::db::Database;
use stampede_engine::testkit::{TestMysql, TestPg};

async fn reads_that_may_lag_go_to_the_replica(backend: Backend) {
    let deps = Deps::new(backend).await;
    let (_pg, _my, replica_url) = match backend {
        Backend::Mysql => {
            let my = TestMysql::create().await;
            let url = my.url();
            (None, Some(my), url)
        }
        _ => {
            let pg = TestPg::create().await;
            let url = pg.url();
            (Some(pg), None, url)
        }
    };
    let replica = Database::connect(&replica_url, 1).await.expect("replica");
    replica.migrate().await.expect("the replica's schema");
    replica.close().await;
    let mut config = deps.config();
    config.database_read_url = Some(replica_url);
    let mut app = TestApp::start(&config).await;

    let id = app.flash(10, 3).await;
    for _ in 0..3 {
        assert_eq!(app.claim(id, &app.token("fan"), None).await.0, 201);
    }
    let stats = app.wait_drained(id).await;
    assert_eq!(
        stats["persisted_claims"], 3,
        "the stats read the primary: {stats}"
    );

    // Must see the writes: the campaign, the user's claims in it, the cached first page.
    assert_eq!(
        app.user_get("fan", &format!("/v1/campaigns/{id}")).await["id"],
        id
    );
    let mine = app
        .user_get("fan", &format!("/v1/campaigns/{id}/claims/me"))
        .await;
    let mine = mine["claims"].as_array().expect("claims").clone();
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert!(mine.iter().all(|c| c["persisted"] == true), "{mine:?}");
    let first = app.user_get("fan", "/v1/me/claims?limit=2").await;
    assert_eq!(first["claims"].as_array().map(Vec::len), Some(2), "{first}");

    // May lag: later claim pages, the export, the campaign list.
    let cursor = first["next"].as_str().expect("a next cursor");
    let later = app
        .user_get("fan", &format!("/v1/me/claims?limit=2&before={cursor}"))
        .await;
    assert_eq!(
        later["claims"],
        serde_json::json!([]),
        "from the replica: {later}"
    );
    assert!(
        app.export(id).await.is_empty(),
        "the export reads the replica"
    );
    let list = app.user_get("fan", "/v1/campaigns").await;
    assert_eq!(
        list["campaigns"],
        serde_json::json!([]),
        "from the replica: {list}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_replica() {
    reads_that_may_lag_go_to_the_replica(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_read_replica() {
    reads_that_may_lag_go_to_the_replica(Backend::Mysql).await;
}
