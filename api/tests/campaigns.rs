//! Campaign administration over HTTP: close, list by status, and the ETag of a read.

mod common;

use common::{Backend, Deps, TestApp};
use serde_json::{json, Value};

async fn get(app: &TestApp, path: &str) -> Value {
    app.http
        .get(app.url(path))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn a_closed_campaign_stays_closed(backend: Backend) {
    let deps = Deps::new(backend).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let id = app.flash(10, 1).await;
    let open = app.flash(10, 1).await;
    assert_eq!(app.close(id).await["status"], "ended");
    assert_eq!(
        app.claim(id, &app.token("u"), None).await.1["error"]["code"],
        "ended"
    );
    app.stop().await;

    // The database is the source of truth: a restart (embedded: the store is rebuilt
    // from it) must not reopen the campaign.
    let mut app = TestApp::start(&config).await;
    let after = get(&app, &format!("/v1/campaigns/{id}")).await;
    assert_eq!(after["status"], "ended", "{after}");
    assert_eq!(
        app.claim(id, &app.token("u"), None).await.1["error"]["code"],
        "ended"
    );
    let active = get(&app, "/v1/campaigns?status=active").await;
    let ids: Vec<u64> = active["campaigns"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_u64())
        .collect();
    assert_eq!(
        ids,
        vec![open],
        "only the open campaign is listed as active"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_campaign_stays_closed_on_redis() {
    a_closed_campaign_stays_closed(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_campaign_stays_closed_embedded() {
    a_closed_campaign_stays_closed(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_campaign_stays_closed_on_mysql() {
    a_closed_campaign_stays_closed(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_read_carries_an_etag_and_honours_if_none_match() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app
        .create(json!({"kind": "red_packet", "name": "rp", "total_cents": 500, "count": 5}))
        .await;
    let url = app.url(&format!("/v1/campaigns/{id}"));
    let first = app.http.get(&url).send().await.expect("get");
    assert_eq!(first.status(), 200);
    let tag = first.headers()["etag"].to_str().expect("etag").to_string();
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["total_cents"], 500);
    assert!(
        body.get("per_user_limit").is_none(),
        "flash-sale fields stay off a red packet"
    );
    let again = app
        .http
        .get(&url)
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("body").is_empty());
    // A claim changes `remaining`, so the tag changes.
    assert_eq!(app.claim(id, &app.token("u1"), None).await.0, 201);
    let changed = app
        .http
        .get(&url)
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("get");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), tag);
    app.stop().await;
}
