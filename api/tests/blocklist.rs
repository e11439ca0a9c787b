//! The blocklist (contract: `POST/DELETE /v1/admin/blocklist`): a blocked user or
//! address gets `403 blocked` on the claim, ticket and sign-in routes, at once on the
//! instance that blocked it and within moments on the others; a TTL ends on time; a
//! lifted block lets the caller back; the list survives a restart; bad bodies get 422.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

async fn admin(app: &TestApp, method: reqwest::Method, body: Value) -> (u16, Value) {
    let res = app
        .http
        .request(method, app.url("/v1/admin/blocklist"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("blocklist");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn block(app: &TestApp, body: Value) -> Value {
    let (status, v) = admin(app, reqwest::Method::POST, body).await;
    assert_eq!(status, 201, "{v}");
    v
}

async fn unblock(app: &TestApp, body: Value) -> bool {
    let (status, v) = admin(app, reqwest::Method::DELETE, body).await;
    assert_eq!(status, 200, "{v}");
    v["removed"].as_bool().expect("removed")
}

fn is_blocked(reply: &(u16, Value)) -> bool {
    reply.0 == 403 && reply.1["error"]["code"] == "blocked"
}

async fn ticket_status(app: &TestApp, campaign: u64, user: &str) -> (u16, Value) {
    let res = app
        .http
        .get(app.url(&format!("/v1/campaigns/{campaign}/ticket")))
        .bearer_auth(app.token(user))
        .send()
        .await
        .expect("ticket");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn users_and_addresses(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.flash(100, 1).await;

    let b = block(&app, json!({"user_id": "mallory"})).await;
    assert_eq!(b["user_id"], "mallory");
    assert_eq!(b["expires_at"], Value::Null);
    assert!(is_blocked(
        &app.claim(id, &app.token("mallory"), None).await
    ));
    assert!(is_blocked(&app.signin("mallory").await));
    assert!(is_blocked(&ticket_status(&app, id, "mallory").await));
    assert_eq!(
        app.claim(id, &app.token("alice"), None).await.0,
        201,
        "others are unaffected"
    );
    assert_eq!(app.signin("alice").await.0, 201);

    let listed = app.admin_get("/v1/admin/blocklist").await;
    assert_eq!(
        listed["entries"],
        json!([{"user_id": "mallory", "expires_at": null}])
    );

    assert!(unblock(&app, json!({"user_id": "mallory"})).await);
    assert!(
        !unblock(&app, json!({"user_id": "mallory"})).await,
        "nothing left to lift"
    );
    assert_eq!(app.claim(id, &app.token("mallory"), None).await.0, 201);

    // An address: every user behind it (the tests connect from 127.0.0.1).
    let b = block(&app, json!({"ip": "127.0.0.1"})).await;
    assert_eq!(b["ip"], "127.0.0.1");
    assert!(is_blocked(&app.claim(id, &app.token("carol"), None).await));
    assert!(is_blocked(&app.signin("carol").await));
    // Reads are not the blocklist's business.
    assert_eq!(app.user_get("carol", "/v1/me/points").await["balance"], 0);
    assert!(
        unblock(&app, json!({"ip": "::ffff:127.0.0.1"})).await,
        "the same address, IPv4-mapped"
    );
    assert_eq!(app.claim(id, &app.token("carol"), None).await.0, 201);

    let m = app.metrics().await;
    assert!(
        m.lines().any(|l| l
            .starts_with(r#"stampede_risk_refusals_total{rule="blocklist",action="refuse"}"#)
            && !l.ends_with(" 0")),
        "blocklist refusals are counted"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_users_and_addresses_get_403_until_lifted_redis() {
    users_and_addresses(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_users_and_addresses_get_403_until_lifted_embedded() {
    users_and_addresses(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_users_and_addresses_get_403_until_lifted_mysql() {
    users_and_addresses(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_a_ttl_ends_on_time_and_the_list_survives_a_restart() {
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let id = app.flash(100, 1).await;
    let b = block(&app, json!({"user_id": "brief", "ttl_secs": 3})).await;
    assert!(b["expires_at"].as_str().is_some(), "{b}");
    block(&app, json!({"user_id": "forever"})).await;
    assert!(is_blocked(&app.claim(id, &app.token("brief"), None).await));
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(
        app.claim(id, &app.token("brief"), None).await.0,
        201,
        "the TTL is over"
    );
    app.stop().await;

    // The embedded store is gone with the process; the blocklist is in the database.
    let mut app = TestApp::start(&config).await;
    let start = Instant::now();
    while !is_blocked(&app.signin("forever").await) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the block came back after a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = app.admin_get("/v1/admin/blocklist").await;
    assert_eq!(
        listed["entries"],
        json!([{"user_id": "forever", "expires_at": null}])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_reaches_another_instance_within_moments() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let mut a = TestApp::start(&config).await;
    let mut b = TestApp::start(&config).await;
    let id = a.flash(100, 1).await;
    // Both instances have read the (empty) list and the campaign.
    assert_eq!(b.claim(id, &b.token("warm"), None).await.0, 201);
    block(&a, json!({"user_id": "spreader"})).await;
    let start = Instant::now();
    while !is_blocked(&b.claim(id, &b.token("spreader"), None).await) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the other instance never heard"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unblock(&a, json!({"user_id": "spreader"})).await;
    let start = Instant::now();
    loop {
        let reply = b.claim(id, &b.token("spreader"), None).await;
        // 201, or 200 when a claim got through on `b` before the block reached it.
        if reply.0 == 201 || reply.0 == 200 {
            break;
        }
        assert!(is_blocked(&reply), "{reply:?}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lift never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_blocklist_requests_get_the_contracts_errors() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    for (body, field) in [
        (json!({}), "user_id"),
        (json!({"user_id": "a", "ip": "127.0.0.1"}), "user_id"),
        (json!({"user_id": "not valid!"}), "user_id"),
        (json!({"user_id": ""}), "user_id"),
        (json!({"ip": "300.1.1.1"}), "ip"),
        (json!({"ip": "10.0.0.0/8"}), "ip"),
        (json!({"user_id": "a", "ttl_secs": 0}), "ttl_secs"),
        (
            json!({"user_id": "a", "ttl_secs": 999_999_999_999i64}),
            "ttl_secs",
        ),
        (json!({"user_id": "a", "ttl_secs": "soon"}), "ttl_secs"),
        (json!({"user_id": "a", "reason": "spam"}), "reason"),
    ] {
        let (status, v) = admin(&app, reqwest::Method::POST, body.clone()).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(field), "{body}: {msg} should name {field}");
    }
    // Lifting takes the same body as blocking, ttl_secs and all.
    block(&app, json!({"user_id": "a", "ttl_secs": 5})).await;
    assert!(unblock(&app, json!({"user_id": "a", "ttl_secs": 5})).await);
    let (status, _) = admin(&app, reqwest::Method::DELETE, json!({"ip": "nowhere"})).await;
    assert_eq!(status, 422);
    // A user token is forbidden; no token is unauthorized.
    let res = app
        .http
        .post(app.url("/v1/admin/blocklist"))
        .bearer_auth(app.token("u1"))
        .json(&json!({"user_id": "u2"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .delete(app.url("/v1/admin/blocklist"))
        .json(&json!({"user_id": "u2"}))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(app.url("/v1/admin/blocklist"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body(r#"{"user_id": "u2"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 415);
    app.stop().await;
}
