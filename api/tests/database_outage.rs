//! The database cut off (a TCP proxy in front of PostgreSQL drops every connection and
//! refuses new ones): the api keeps accepting, the queue buffers, the workers back off,
//! and when the database returns every accepted claim is persisted exactly once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Backend, Deps, TestApp};
use futures::stream::{self, StreamExt};
use stampede_engine::testkit::CutProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_accepted_while_the_database_is_cut_off_are_persisted_once_it_returns() {
    let deps = Deps::new(Backend::Redis).await;
    let pg = deps.pg.as_ref().expect("pg");
    let proxy = CutProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let mut config = deps.config();
    config.database_url = proxy.rewrite_url(&pg.url(), 5432);
    let mut app = TestApp::start(&config).await;
    let id = app.flash(3_000, 1).await;
    // The campaign row is cached by the first claim; from then on the claim path
    // needs no database.
    assert_eq!(app.claim(id, &app.token("warm"), None).await.0, 201);
    app.wait_drained(id).await;

    proxy.cut();
    let tokens: Vec<String> = (0..2_000).map(|u| app.token(&format!("user{u}"))).collect();
    let replies: Vec<(u16, serde_json::Value)> = stream::iter(&tokens)
        .map(|t| app.claim(id, t, None))
        .buffer_unordered(64)
        .collect()
        .await;
    let accepted: HashSet<String> = replies
        .iter()
        .filter(|(s, _)| *s == 201)
        .filter_map(|(_, b)| {
            assert_eq!(b["claim"]["persisted"], false, "nothing can persist now");
            b["claim"]["id"].as_str().map(String::from)
        })
        .collect();
    let refused: Vec<_> = replies.iter().filter(|(s, _)| *s != 201).collect();
    assert!(
        refused.is_empty(),
        "every claim accepted: {:?}",
        refused.first()
    );
    assert_eq!(accepted.len(), 2_000);

    // The workers keep failing (and backing off) for a while; nothing is written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let direct = sqlx::PgPool::connect(&pg.url()).await.expect("direct pg");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM claims WHERE campaign_id = $1")
        .bind(id as i64)
        .fetch_one(&direct)
        .await
        .expect("count");
    assert_eq!(rows, 1, "only the warm-up claim is in the database");
    let status = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status();
    assert_eq!(status, 503, "not ready while the database is cut off");

    proxy.restore();
    let stats = app.wait_drained(id).await;
    assert_eq!(stats["persisted_claims"], 2_001, "{stats}");
    let exported = app.export(id).await;
    let ids: HashSet<&str> = exported.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(exported.len(), 2_001, "no duplicates");
    assert_eq!(ids.len(), 2_001);
    assert!(
        accepted.iter().all(|c| ids.contains(c.as_str())),
        "none lost"
    );
    let (distinct, total): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT claim_id), count(*) FROM claims WHERE campaign_id = $1",
    )
    .bind(id as i64)
    .fetch_one(&direct)
    .await
    .expect("count");
    assert_eq!((distinct, total), (2_001, 2_001));
    direct.close().await;
    app.stop().await;
}
