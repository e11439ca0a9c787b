//! A tiny in-test stand-in for the engine: the few routes the load generator calls
//! (create campaign, claim, sign in, stats, export, healthz, behaviour events and the
//! funnel), honest by default and with switchable faults so the tests can prove the
//! audit catches each one.
//!
//! Claims are "persisted" lazily: each stats call first reports the state, then persists
//! whatever was queued, so the drain wait really has to poll more than once.
//!
//! The funnel counts claims as they come, but behaviour events only lazily, as the
//! engine's workers might: each funnel read first reports, then counts the events taken
//! so far, so the load generator has to poll it more than once.
//!
//! A flash sale created with `payment_window_secs` turns claims into orders: the mock
//! serves the cancel, the signed payment notification (verified here with its own HMAC,
//! independently of the load generator's code) and the refunds list, and expires unpaid
//! orders the moment their `pay_by` passes (its "sweeper" runs on every request). A
//! [`Watch`] counts what the tests need to see: signatures verified or refused, cancels by
//! their owner or by anyone else.

#![allow(dead_code)] // each test binary uses a different part of the mock

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
pub const PAYMENT_SECRET: &str = "test-payment-secret";

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
    /// Accept a payment for an order that already expired, keeping its unit in stock too:
    /// the unit is sold twice.
    pub pay_expired: bool,
    /// Record no refund for refused payments.
    pub drop_refunds: bool,
    /// Answer every third `POST /v1/events` 503 (storing nothing of it, honestly).
    pub shed_events: bool,
    /// Never count one `view` in the funnel.
    pub funnel_drops_a_view: bool,
    /// Count the events of a batch answered 503 in the funnel anyway.
    pub funnel_counts_refused: bool,
}

/// What the tests can observe of the calls the mock got.
#[derive(Debug, Default)]
pub struct Watch {
    /// Notifications whose signature verified.
    pub signatures_ok: AtomicU64,
    /// Notifications refused for their signature (missing, malformed, wrong, stale).
    pub signatures_bad: AtomicU64,
    /// Cancels sent with the claim owner's token.
    pub cancels_by_owner: AtomicU64,
    /// Cancels without a valid token, or with another user's.
    pub cancels_by_others: AtomicU64,
    /// Notifications whose amount was not price x quantity.
    pub wrong_amounts: AtomicU64,
}

impl Watch {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One order's state.
struct MockOrder {
    status: &'static str,
    pay_by: SystemTime,
    paid_at: Option<SystemTime>,
    payment_id: Option<String>,
    user: String,
    units: u64,
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
    /// With a payment window: the window, the price and every claim's order.
    window: Option<Duration>,
    price_cents: u64,
    orders: HashMap<String, MockOrder>,
    /// The funnel: kind -> count (all in the current minute), and the events taken but
    /// not counted yet.
    funnel: BTreeMap<String, u64>,
    uncounted: Vec<String>,
}

impl Campaign {
    /// The sweeper: every pending order past its pay_by expires, its units back in stock.
    fn sweep(&mut self, now: SystemTime) {
        for order in self.orders.values_mut() {
            if order.status == "pending_payment" && now > order.pay_by {
                order.status = "expired";
                self.taken -= order.units;
                if let Some(held) = self.per_user.get_mut(&order.user) {
                    *held -= order.units;
                }
            }
        }
    }

    /// `claim` with its order as it stands now.
    fn render(&self, claim: &Value) -> Value {
        let mut claim = claim.clone();
        if let Some(order) = claim["id"].as_str().and_then(|id| self.orders.get(id)) {
            claim["order"] = json!({
                "status": order.status,
                "pay_by": rfc3339(order.pay_by),
                "paid_at": order.paid_at.map(rfc3339),
                "payment_id": order.payment_id,
            });
        }
        claim
    }

    fn count(&self, status: &str) -> u64 {
        self.orders.values().filter(|o| o.status == status).count() as u64
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    campaigns: HashMap<u64, Campaign>,
    signed_in: HashMap<String, u32>,
    /// Claim id -> campaign id.
    claim_campaign: HashMap<String, u64>,
    /// Payment id -> the answer it got first (repeats get the same).
    payments: HashMap<String, (StatusCode, Value)>,
    /// Payment id -> refund row.
    refunds: BTreeMap<String, Value>,
    /// `POST /v1/events` requests so far.
    event_requests: u64,
    /// Whether the `funnel_drops_a_view` fault has dropped its view yet.
    dropped_view: bool,
}

#[derive(Clone)]
struct Mock {
    faults: Faults,
    // A std mutex: held for a few map operations, never across an await.
    inner: Arc<Mutex<Inner>>,
    watch: Arc<Watch>,
}

/// Starts the mock on a free loopback port; returns its base URL.
pub async fn spawn(faults: Faults) -> String {
    spawn_watched(faults).await.0
}

/// Starts the mock; returns its base URL and what it observes.
pub async fn spawn_watched(faults: Faults) -> (String, Arc<Watch>) {
    let watch = Arc::new(Watch::default());
    let mock = Mock {
        faults,
        inner: Arc::default(),
        watch: watch.clone(),
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
        .route("/v1/claims/{claim_id}/cancel", post(cancel))
        .route("/v1/payments/notify", post(notify))
        .route("/v1/admin/refunds", get(refunds))
        .route("/v1/events", post(events))
        .route("/v1/admin/campaigns/{id}/funnel", get(funnel))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), watch)
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
        window: body["payment_window_secs"]
            .as_u64()
            .map(Duration::from_secs),
        price_cents: body["price_cents"].as_u64().unwrap_or(0),
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
    let now = SystemTime::now();
    c.sweep(now);
    *c.funnel.entry("claim".into()).or_default() += 1;
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
            .map(|cl| c.render(cl));
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
    *c.funnel.entry("accepted".into()).or_default() += 1;
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
    let claim_id = claim["id"].as_str().unwrap_or_default().to_owned();
    if let Some(window) = c.window {
        c.orders.insert(
            claim_id.clone(),
            MockOrder {
                status: "pending_payment",
                pay_by: now + window,
                paid_at: None,
                payment_id: None,
                user: user.clone(),
                units,
            },
        );
    }
    let claim = c.render(&claim);
    inner.claim_campaign.insert(claim_id, id);
    (
        StatusCode::CREATED,
        Json(json!({"status": "accepted", "claim": claim})),
    )
        .into_response()
}

async fn cancel(
    State(mock): State<Mock>,
    Path(claim_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(user) = user(&headers) else {
        mock.watch.cancels_by_others.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let mut inner = mock.inner.lock().expect("mock lock");
    let Some(&id) = inner.claim_campaign.get(&claim_id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    c.sweep(SystemTime::now());
    let Some(order) = c.orders.get_mut(&claim_id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    if order.user != user {
        mock.watch.cancels_by_others.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::NOT_FOUND, "not_found");
    }
    mock.watch.cancels_by_owner.fetch_add(1, Ordering::Relaxed);
    match order.status {
        "pending_payment" => {
            order.status = "cancelled";
            let units = order.units;
            c.taken -= units;
            if let Some(held) = c.per_user.get_mut(&user) {
                *held -= units;
            }
        }
        "cancelled" => {}
        "paid" => return error(StatusCode::CONFLICT, "order_paid"),
        _ => return error(StatusCode::CONFLICT, "order_expired"),
    }
    let claim = c
        .accepted
        .iter()
        .find(|cl| cl["id"] == claim_id.as_str())
        .map(|cl| c.render(cl));
    // "200 with the Claim": the bare object.
    (StatusCode::OK, Json(claim)).into_response()
}

/// Checks `Stampede-Signature: t=<secs>,v1=<hex>` over `<t>.<body>`, within 300 s.
fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let Some(value) = headers
        .get("stampede-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => return false,
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if t.abs_diff(now) > 300 {
        return false;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(PAYMENT_SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

async fn notify(State(mock): State<Mock>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if headers.contains_key("authorization") {
        // The provider has no bearer token; the load generator must not send one.
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    if !signature_ok(&headers, &body) {
        mock.watch.signatures_bad.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    mock.watch.signatures_ok.fetch_add(1, Ordering::Relaxed);
    let Ok(note) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "malformed_json");
    };
    let (Some(payment_id), Some(claim_id), Some(amount)) = (
        note["payment_id"].as_str(),
        note["claim_id"].as_str(),
        note["amount_cents"].as_u64(),
    ) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    };
    if note["status"] != "succeeded" {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let mut inner = mock.inner.lock().expect("mock lock");
    if let Some((status, reply)) = inner.payments.get(payment_id) {
        return (*status, Json(reply.clone())).into_response();
    }
    let Some(&id) = inner.claim_campaign.get(claim_id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let now = SystemTime::now();
    c.sweep(now);
    let price = c.price_cents;
    let Some(order) = c.orders.get_mut(claim_id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    if amount != price * order.units {
        mock.watch.wrong_amounts.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let refused = match order.status {
        "pending_payment" => None,
        "expired" if mock.faults.pay_expired => None,
        "expired" => Some("order_expired"),
        "cancelled" => Some("order_cancelled"),
        _ => Some("order_paid"),
    };
    let (status, reply) = match refused {
        None => {
            // The fault: an expired order's unit is already back in stock, and stays there.
            order.status = "paid";
            order.paid_at = Some(now);
            order.payment_id = Some(payment_id.to_owned());
            let claim = c
                .accepted
                .iter()
                .find(|cl| cl["id"] == claim_id)
                .map(|cl| c.render(cl));
            (StatusCode::OK, json!({"status": "paid", "claim": claim}))
        }
        Some(code) => {
            if !mock.faults.drop_refunds {
                inner.refunds.insert(
                    payment_id.to_owned(),
                    json!({"payment_id": payment_id, "claim_id": claim_id, "campaign_id": id,
                           "amount_cents": amount, "reason": code, "recorded_at": rfc3339(now)}),
                );
            }
            (
                StatusCode::CONFLICT,
                json!({"error": {"code": code, "message": "mock refusal"}}),
            )
        }
    };
    inner
        .payments
        .insert(payment_id.to_owned(), (status, reply.clone()));
    (status, Json(reply)).into_response()
}

async fn refunds(
    State(mock): State<Mock>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if !is_admin(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let inner = mock.inner.lock().expect("mock lock");
    // Small pages, so that the tests exercise paging.
    let limit = page.limit.unwrap_or(100).min(7);
    let after = page.after.unwrap_or_default();
    let rows: Vec<Value> = inner
        .refunds
        .iter()
        .filter(|(id, _)| after.is_empty() || id.as_str() > after.as_str())
        .take(limit)
        .map(|(_, r)| r.clone())
        .collect();
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r["payment_id"].clone()))
        .flatten();
    Json(json!({"refunds": rows, "next": next})).into_response()
}

#[derive(Deserialize)]
struct EventsBody {
    events: Vec<EventIn>,
}

#[derive(Deserialize)]
struct EventIn {
    #[serde(rename = "type")]
    kind: String,
    campaign_id: u64,
}

async fn events(State(mock): State<Mock>, headers: HeaderMap, body: String) -> Response {
    if user(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let Ok(body) = serde_json::from_str::<EventsBody>(&body) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    };
    if body.events.is_empty() || body.events.len() > 100 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let mut inner = mock.inner.lock().expect("mock lock");
    if body
        .events
        .iter()
        .any(|e| !inner.campaigns.contains_key(&e.campaign_id))
    {
        return error(StatusCode::NOT_FOUND, "not_found");
    }
    inner.event_requests += 1;
    let shed = mock.faults.shed_events && inner.event_requests % 3 == 0;
    if shed && !mock.faults.funnel_counts_refused {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    for e in &body.events {
        if let Some(c) = inner.campaigns.get_mut(&e.campaign_id) {
            c.uncounted.push(e.kind.clone());
        }
    }
    if shed {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"accepted": body.events.len()})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct FunnelQuery {
    minutes: Option<u32>,
}

async fn funnel(
    State(mock): State<Mock>,
    Path(id): Path<u64>,
    Query(q): Query<FunnelQuery>,
    headers: HeaderMap,
) -> Response {
    if !is_admin(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let mut inner = mock.inner.lock().expect("mock lock");
    let drop_view = mock.faults.funnel_drops_a_view && !inner.dropped_view;
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let mut rows: Vec<Value> = (0..minutes)
        .map(|m| {
            json!({"at": format!("minute {m}"), "view": 0, "ticket": 0, "claim": 0,
                   "accepted": 0, "paid": 0})
        })
        .collect();
    if let Some(now) = rows.last_mut() {
        for (kind, n) in &c.funnel {
            now[kind] = json!(n);
        }
    }
    // The "workers": count the events taken so far, after reporting.
    let mut dropped = false;
    for kind in std::mem::take(&mut c.uncounted) {
        if drop_view && !dropped && kind == "view" {
            dropped = true;
            continue;
        }
        *c.funnel.entry(kind).or_default() += 1;
    }
    inner.dropped_view |= dropped;
    Json(json!({"campaign_id": id, "minutes": rows})).into_response()
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
    let refunds_required = inner
        .refunds
        .values()
        .filter(|r| r["campaign_id"] == id)
        .count();
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    c.sweep(SystemTime::now());
    let mut reply = json!({
        "campaign_id": id,
        "accepted_claims": c.accepted.len(),
        "accepted_quantity": c.taken,
        "persisted_claims": c.persisted.len(),
        "remaining": c.total.saturating_sub(c.taken),
        "queue_backlog": c.queued.len(),
        "dead_letters": 0,
        "claimed_cents": c.persisted.iter().filter_map(|cl| cl["amount_cents"].as_u64()).sum::<u64>(),
    });
    if c.window.is_some() {
        reply["pending_orders"] = json!(c.count("pending_payment"));
        reply["paid_orders"] = json!(c.count("paid"));
        reply["expired_orders"] = json!(c.count("expired"));
        reply["cancelled_orders"] = json!(c.count("cancelled"));
        reply["refunds_required"] = json!(refunds_required);
    }
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
    let mut inner = mock.inner.lock().expect("mock lock");
    let Some(c) = inner.campaigns.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    c.sweep(SystemTime::now());
    let mut rows: Vec<Value> = c.persisted.iter().map(|r| c.render(r)).collect();
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
