//! `GET /v1/me/claims`: the first page comes from the user's page cached in Redis, which
//! the worker refreshes when one of the user's claims persists; later pages come from
//! the database, and the pages join up without gaps or repeats.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};
use serde_json::Value;

/// Database reads of users' claim lists so far, from `/metrics`.
async fn list_queries(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .lines()
        .find(|l| {
            l.starts_with("stampede_db_duration_seconds_count") && l.contains(r#"op="user_claims""#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn ids(page: &Value) -> Vec<String> {
    page["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_page_is_cached_and_refreshed_by_the_worker() {
    let deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    let mut campaigns = Vec::new();
    for _ in 0..3 {
        let id = app.flash(10, 1).await;
        assert_eq!(app.claim(id, &app.token("fan"), None).await.0, 201);
        app.wait_drained(id).await;
        campaigns.push(id);
    }

    let first = app.user_get("fan", "/v1/me/claims").await;
    assert_eq!(ids(&first).len(), 3);
    let queries = list_queries(&app).await;
    let again = app.user_get("fan", "/v1/me/claims").await;
    assert_eq!(again, first, "the same page");
    assert_eq!(list_queries(&app).await, queries, "served from the cache");

    // A new claim persists: the worker adds it to the cached page.
    let id = app.flash(10, 1).await;
    assert_eq!(app.claim(id, &app.token("fan"), None).await.0, 201);
    app.wait_drained(id).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        let page = app.user_get("fan", "/v1/me/claims").await;
        if ids(&page).len() == 4 {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the claim: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        list_queries(&app).await,
        queries,
        "refreshed without the database"
    );
    assert_eq!(page["claims"][0]["campaign_id"], id, "newest first");
    assert_eq!(page["claims"][0]["persisted"], true);

    // Smaller first pages come from the cache too; later pages from the database.
    let head = app.user_get("fan", "/v1/me/claims?limit=2").await;
    assert_eq!(list_queries(&app).await, queries);
    let cursor = head["next"].as_str().expect("a next cursor").to_string();
    let tail = app
        .user_get("fan", &format!("/v1/me/claims?limit=2&before={cursor}"))
        .await;
    assert!(
        list_queries(&app).await > queries,
        "a later page reads the database"
    );
    let joined: Vec<String> = ids(&head).into_iter().chain(ids(&tail)).collect();
    assert_eq!(joined, ids(&page), "pages join up in order");
    app.stop().await;
}
