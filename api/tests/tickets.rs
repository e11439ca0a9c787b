//! Claim tickets (contract: "Claim tickets"): a campaign created with `ticket_required`
//! accepts a claim only with a valid `X-Claim-Ticket`, and `GET .../ticket` hands one
//! out only from `ticket_lead_secs` before the start. Every refusal is checked: no
//! ticket, a garbled one, another user's, another campaign's, an expired one, and a
//! ticket asked for too early.

mod common;

use std::time::Duration;

use common::{Backend, Deps, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};
use stampede_engine::clock::{now_ms, to_rfc3339};

async fn ticket(app: &TestApp, campaign: u64, user: &str) -> (u16, Value) {
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

async fn claim_with(
    app: &TestApp,
    campaign: u64,
    user: &str,
    ticket: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/claims")))
        .bearer_auth(app.token(user));
    if let Some(t) = ticket {
        req = req.header("X-Claim-Ticket", t);
    }
    let res = req.send().await.expect("claim");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

fn ticketed(starts_in_ms: i64, lead_secs: u64) -> Value {
    json!({"kind": "flash_sale", "name": "Ticketed", "stock": 100,
           "starts_at": to_rfc3339(now_ms() + starts_in_ms),
           "ticket_required": true, "ticket_lead_secs": lead_secs})
}

fn assert_refused(reply: &(u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(reply.0, status, "{what}: {}", reply.1);
    assert_eq!(reply.1["error"]["code"], code, "{what}: {}", reply.1);
}

async fn each_refusal(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.create(ticketed(-1_000, 5)).await;
    let other = app.create(ticketed(-1_000, 5)).await;
    let plain = app.flash(10, 1).await;

    let c = app.admin_get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(c["ticket_required"], true);
    assert_eq!(c["ticket_lead_secs"], 5);

    assert_refused(
        &claim_with(&app, id, "alice", None).await,
        403,
        "ticket_required",
        "no ticket",
    );
    assert_refused(
        &claim_with(&app, id, "alice", Some("t1.1.2.3.garbage")).await,
        403,
        "ticket_required",
        "garbled",
    );
    let (status, t) = ticket(&app, id, "alice").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["campaign_id"], id);
    let alices = t["ticket"].as_str().expect("ticket").to_string();
    assert!(t["expires_at"].as_str().is_some());
    assert_refused(
        &claim_with(&app, id, "bob", Some(&alices)).await,
        403,
        "ticket_required",
        "another user's ticket",
    );
    assert_refused(
        &claim_with(&app, other, "alice", Some(&alices)).await,
        403,
        "ticket_required",
        "another campaign's ticket",
    );
    let mut tampered = alices.clone();
    tampered.replace_range(tampered.len() - 2.., "AA");
    assert_refused(
        &claim_with(&app, id, "alice", Some(&tampered)).await,
        403,
        "ticket_required",
        "tampered",
    );
    let ok = claim_with(&app, id, "alice", Some(&alices)).await;
    assert_eq!(ok.0, 201, "{}", ok.1);
    assert_eq!(
        claim_with(&app, id, "alice", Some(&alices)).await.0,
        200,
        "a retry with the same ticket is safe"
    );
    // A campaign without tickets is not affected.
    assert_eq!(claim_with(&app, plain, "alice", None).await.0, 201);
    // No ticket without valid credentials, nor for an unknown campaign.
    let anon = app
        .http
        .get(app.url(&format!("/v1/campaigns/{id}/ticket")))
        .send()
        .await
        .expect("get");
    assert_eq!(anon.status(), 401);
    assert_refused(
        &ticket(&app, 999_999, "alice").await,
        404,
        "not_found",
        "unknown campaign",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticketed_campaign_refuses_every_claim_without_its_users_ticket_redis() {
    each_refusal(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticketed_campaign_refuses_every_claim_without_its_users_ticket_embedded() {
    each_refusal(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_exist_only_from_the_lead_window_and_expire() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    // Long enough that a slow machine between two steps does not expire a ticket the
    // test means to be valid; the expiry step waits it out.
    config.ticket_ttl_secs = 3;
    let mut app = TestApp::start(&config).await;

    // Starts in a minute, tickets from 5 s before: none yet.
    let later = app.create(ticketed(60_000, 5)).await;
    assert_refused(
        &ticket(&app, later, "u1").await,
        409,
        "not_started",
        "before the lead window",
    );

    // Starts in 3 s, tickets from 5 s before: one now; the claim waits for the start.
    let starts_at = now_ms() + 3_000;
    let soon = app.create(ticketed(starts_at - now_ms(), 5)).await;
    let (status, t) = ticket(&app, soon, "u1").await;
    assert_eq!(status, 200, "{t}");
    let early = t["ticket"].as_str().expect("ticket").to_string();
    assert_refused(
        &claim_with(&app, soon, "u1", Some(&early)).await,
        409,
        "not_started",
        "a ticket does not open the sale early",
    );
    let until_start = (starts_at + 100 - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(until_start)).await;
    let ok = claim_with(&app, soon, "u1", Some(&early)).await;
    assert_eq!(ok.0, 201, "valid for the TTL after the start: {}", ok.1);

    // Past its TTL a ticket is refused; a fresh one works.
    let open = app.create(ticketed(-1_000, 5)).await;
    let (_, t) = ticket(&app, open, "u2").await;
    let stale = t["ticket"].as_str().expect("ticket").to_string();
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_refused(
        &claim_with(&app, open, "u2", Some(&stale)).await,
        403,
        "ticket_required",
        "expired",
    );
    let (_, t) = ticket(&app, open, "u2").await;
    let fresh = t["ticket"].as_str().expect("ticket").to_string();
    assert_eq!(claim_with(&app, open, "u2", Some(&fresh)).await.0, 201);

    // An ended (here: closed) campaign hands out no ticket. One cannot be created
    // already ended: that is refused with 422.
    let ended = app
        .create(json!({"kind": "flash_sale", "name": "Over", "stock": 1,
                       "starts_at": to_rfc3339(now_ms() - 10_000), "ticket_required": true}))
        .await;
    app.close(ended).await;
    assert_refused(&ticket(&app, ended, "u3").await, 409, "ended", "ended");

    // The lead is bounded.
    let res = app
        .http
        .post(app.url("/v1/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"kind": "flash_sale", "name": "x", "stock": 1,
                      "ticket_required": true, "ticket_lead_secs": 3_601}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("ticket_lead_secs"));
    app.stop().await;
}
