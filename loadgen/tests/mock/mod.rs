//! A tiny in-test stand-in for the engine: the few routes the load generator calls
//! (create campaign, claim, sign in, stats, export, healthz), honest by default and with
//! switchable faults so the tests can prove the audit catches each one.
//!
//! Claims are "persisted" lazily: each stats call first reports the state, then persists
//! whatever was queued, so the drain wait really has to poll more than once.

#![allow(dead_code)] // each test binary uses a different part of the mock

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

pub const SECRET: &str = "test-jwt-secret";
pub const ADMIN: &str = "test-admin-token";

/// Ways the mock can break the contract.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Accept flash claims past the stock.
    pub oversell: bool,
    /// Never persist the first accepted claim.
    pub lose_one: bool,
    /// Export the first claim twice.
    pub duplicate_row: bool,
    /// Make the red packet's last packet one cent short.
    pub short_change: bool,
    /// Award every sign-in request, duplicates included.
    pub double_award: bool,
    /// Have no export route (404), so the audit cannot run.
    pub no_export: bool,
}

/// How long `/slow` takes to answer.
pub const SLOW: std::time::Duration = std::time::Duration::from_millis(40);

#[derive(Default)]
struct Campaign {
    kind: String,
    total: u64,
    per_user_limit: u64,
    /// Red packet: the pre-split amounts, taken from the back.
    packets: Vec<u64>,
    taken: u64,
    per_user: HashMap<String, u64>,
    accepted: Vec<Value>,
    queued: Vec<Value>,
    persisted: Vec<Value>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    campaigns: HashMap<u64, Campaign>,
    signed_in: HashMap<String, u32>,
}

#[derive(Clone)]
struct Mock {
    faults: Faults,
    // A std mutex: held for a few map operations, never across an await.
    inner: Arc<Mutex<Inner>>,
}

/// Starts the mock on a free loopback port; returns its base URL.
pub async fn spawn(faults: Faults) -> String {
    let mock = Mock {
        faults,
        inner: Arc::default(),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(SLOW).await;
                "slow"
            }),
        )
        .route("/v1/campaigns", post(create))
        .route("/v1/campaigns/{id}/claims", post(claim))
        .route("/v1/signin", post(signin))
        .route("/v1/admin/campaigns/{id}/stats", get(stats))
        .route("/v1/admin/campaigns/{id}/claims", get(export))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": "mock refusal"}})),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn is_admin(headers: &HeaderMap) -> bool {
    bearer(headers) == Some(ADMIN)
}

#[derive(Deserialize)]
struct UserClaims {
    sub: String,
}

fn user(headers: &HeaderMap) -> Option<String> {
    let token = bearer(headers)?;
    let data = decode::<UserClaims>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &Validation::new(Algorithm::HS256),
    )
    .ok()?;
    Some(data.claims.sub)
}

async fn create(State(mock): State<Mock>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !is_admin(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let kind = body["kind"].as_str().unwrap_or_default().to_owned();
    let mut campaign = Campaign {
        kind: kind.clone(),
        per_user_limit: body["per_user_limit"].as_u64().unwrap_or(1),
        ..Campaign::default()
    };
    match kind.as_str() {
        "flash_sale" => campaign.total = body["stock"].as_u64().unwrap_or(0),
        "red_packet" => {
            let count = body["count"].as_u64().unwrap_or(0);
            let total = body["total_cents"].as_u64().unwrap_or(0);
            let min = body["min_cents"].as_u64().unwrap_or(1);
            // Even split: everyone gets the minimum, the rest is spread a cent at a time.
            let spare = total - count * min;
            let mut packets: Vec<u64> = (0..count)
                .map(|i| min + spare / count + u64::from(i < spare % count))
                .collect();
            if mock.faults.short_change {
                if let Some(last) = packets.first_mut() {
                    *last -= 1;
                }
            }
            campaign.total = count;
            campaign.packets = packets;
        }
        _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
    }
    let total = campaign.total;
    let mut inner = mock.inner.lock().expect("mock lock");
    inner.next_id += 1;
    let id = inner.next_id;
    inner.campaigns.insert(id, campaign);
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "kind": kind, "name": body["name"], "status": "active", "total": total})),
    )
        .into_response()
}

async fn claim(
    State(mock): State<Mock>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(user) = user(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let quantity = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["quantity"].as_u64())
        .unwrap_or(1);
    let mut inner = mock.inner.lock().expect("mock lock");
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let held = c.per_user.get(&user).copied().unwrap_or(0);
    let limit = if c.kind == "red_packet" {
        1
    } else {
        c.per_user_limit
    };
    if held >= limit {
        let last = c
            .accepted
            .iter()
            .rev()
            .find(|cl| cl["user_id"] == user.as_str())
            .cloned();
        return (
            StatusCode::OK,
            Json(json!({"status": "already_claimed", "claim": last})),
        )
            .into_response();
    }
    let units = if c.kind == "red_packet" { 1 } else { quantity };
    if c.taken + units > c.total && !(mock.faults.oversell && c.kind == "flash_sale") {
        return error(StatusCode::CONFLICT, "sold_out");
    }
    c.taken += units;
    *c.per_user.entry(user.clone()).or_default() += units;
    let seq = c.accepted.len() + 1;
    let mut claim = json!({
        "id": format!("c{id}-{seq:08}"),
        "campaign_id": id,
        "user_id": user,
        "accepted_at": "2026-11-22T20:00:00Z",
        "persisted": false,
    });
    if c.kind == "red_packet" {
        claim["amount_cents"] = json!(c.packets.pop().unwrap_or(0));
    } else {
        claim["quantity"] = json!(quantity);
    }
    c.accepted.push(claim.clone());
    if !(mock.faults.lose_one && seq == 1) {
        c.queued.push(claim.clone());
    }
    (
        StatusCode::CREATED,
        Json(json!({"status": "accepted", "claim": claim})),
    )
        .into_response()
}

async fn signin(State(mock): State<Mock>, headers: HeaderMap) -> Response {
    let Some(user) = user(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let mut inner = mock.inner.lock().expect("mock lock");
    let count = inner.signed_in.entry(user).or_default();
    *count += 1;
    let first = *count == 1 || mock.faults.double_award;
    let (status, word) = if first {
        (StatusCode::CREATED, "signed_in")
    } else {
        (StatusCode::OK, "already_signed_in")
    };
    (
        status,
        Json(json!({"status": word, "day": "2026-11-22", "points_awarded": 10, "streak": 1, "balance": 10})),
    )
        .into_response()
}

async fn stats(State(mock): State<Mock>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if !is_admin(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut inner = mock.inner.lock().expect("mock lock");
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let reply = json!({
        "campaign_id": id,
        "accepted_claims": c.accepted.len(),
        "accepted_quantity": c.taken,
        "persisted_claims": c.persisted.len(),
        "remaining": c.total.saturating_sub(c.taken),
        "queue_backlog": c.queued.len(),
        "dead_letters": 0,
        "claimed_cents": c.persisted.iter().filter_map(|cl| cl["amount_cents"].as_u64()).sum::<u64>(),
    });
    // The "worker": persist everything queued, after reporting.
    let queued = std::mem::take(&mut c.queued);
    for mut claim in queued {
        claim["persisted"] = json!(true);
        c.persisted.push(claim);
    }
    Json(reply).into_response()
}

#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

async fn export(
    State(mock): State<Mock>,
    Path(id): Path<u64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if !is_admin(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    if mock.faults.no_export {
        return error(StatusCode::NOT_FOUND, "not_found");
    }
    let inner = mock.inner.lock().expect("mock lock");
    let Some(c) = inner.campaigns.get(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let mut rows = c.persisted.clone();
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if mock.faults.duplicate_row {
        if let Some(first) = rows.first().cloned() {
            rows.insert(0, first);
        }
    }
    let after = page.after.unwrap_or_default();
    // Small pages (not the contract's 1000) so that the tests exercise paging.
    let limit = page.limit.unwrap_or(1000).min(7);
    let start = if after.is_empty() {
        0
    } else {
        rows.iter()
            .rposition(|r| r["id"].as_str() == Some(after.as_str()))
            .map_or(rows.len(), |p| p + 1)
    };
    let slice: Vec<Value> = rows.iter().skip(start).take(limit).cloned().collect();
    let next = if start + slice.len() < rows.len() {
        slice.last().map(|r| r["id"].clone())
    } else {
        None
    };
    Json(json!({"claims": slice, "next": next})).into_response()
}
