//! The database cut off (a TCP proxy in front of PostgreSQL, or MySQL/MariaDB, drops
//! every connection and refuses new ones): the api keeps accepting, the queue buffers,
//! the workers back off, and when the database returns every accepted claim is
//! persisted exactly once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Backend, Deps, TestApp};
use futures::stream::{self, StreamExt};
use stampede_engine::db::Database;
use stampede_engine::testkit::CutProxy;

async fn claims_accepted_while_the_database_is_cut_off_are_persisted_once_it_returns(
    backend: Backend,
) {
    let deps = Deps::new(backend).await;
    let port = deps.database_port();
    let proxy = CutProxy::start(format!("127.0.0.1:{port}").parse().expect("addr")).await;
    let mut config = deps.config();
    config.database_url = proxy.rewrite_url(&deps.database_url(), port);
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
    let direct = Database::connect(&deps.database_url(), 1)
        .await
        .expect("direct connection");
    let rows = direct.persisted_count(id).await.expect("count");
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
    let rows = direct
        .campaign_claims(id, "", 10_000)
        .await
        .expect("the table's rows");
    let distinct: HashSet<&str> = rows.iter().map(|c| c.id.as_str()).collect();
    assert_eq!((distinct.len(), rows.len()), (2_001, 2_001));
    direct.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_postgres() {
    claims_accepted_while_the_database_is_cut_off_are_persisted_once_it_returns(Backend::Redis)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_mysql() {
    claims_accepted_while_the_database_is_cut_off_are_persisted_once_it_returns(Backend::Mysql)
        .await;
}
