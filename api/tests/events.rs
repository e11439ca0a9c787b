//! Behaviour events and the live funnel (contract: "Behaviour events and the funnel")
//! through the real engine, on Redis + PostgreSQL, Redis + MariaDB and embedded:
//! events are written to their days exactly once (also after a worker SIGKILL
//! and a redelivery), bad requests get their status and store nothing, the rate limit
//! applies, the retention drops old days only, and the funnel counts a scripted
//! run exactly, also across two api processes sharing Redis.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Backend, Deps, Process, TestApp, ADMIN_TOKEN, PAYMENT_SECRET};
use serde_json::{json, Value};
use stampede_api::payment_signature::Signatures;
use stampede_api::startup::Mode;
use stampede_engine::behaviour::{day_of, BehaviourEvent};
use stampede_engine::clock::{now_ms, to_rfc3339};
use stampede_engine::db::Database;

const DAY_MS: i64 = 86_400_000;

/// `POST /v1/events` with a raw body: the status, the body and `Retry-After`.
async fn post_raw(app: &TestApp, token: Option<&str>, body: &str) -> (u16, Value, Option<String>) {
    let mut req = app
        .http
        .post(app.url("/v1/events"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("post events");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, res.json().await.unwrap_or(Value::Null), retry)
}

async fn post(app: &TestApp, user: &str, body: Value) -> (u16, Value) {
    let (s, v, _) = post_raw(app, Some(&app.token(user)), &body.to_string()).await;
    (s, v)
}

fn views(campaign: u64, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": "view", "campaign_id": campaign, "props": {"i": i}}))
        .collect();
    json!({ "events": events })
}

fn db_of(app: &TestApp) -> Database {
    app.running.as_ref().expect("in-process").engine.db.clone()
}

/// (rows, distinct ids) of the campaign's events over every day table.
async fn stored(db: &Database, campaign: u64) -> (u64, u64) {
    let mut total = (0, 0);
    for day in db.event_days().await.expect("days") {
        let (n, d) = db.event_count(&day, campaign).await.expect("count");
        total = (total.0 + n, total.1 + d);
    }
    total
}

/// Waits (at most 60 s) until `n` events of the campaign are stored; then they must be
/// exactly `n` rows of `n` distinct ids.
async fn wait_stored(db: &Database, campaign: u64, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (rows, distinct) = stored(db, campaign).await;
        if rows >= n {
            assert_eq!((rows, distinct), (n, n), "rows and distinct ids");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {rows} of {n} events stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events_are_stored_exactly_once(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let campaign = app.flash(10, 1).await;
    let other = app.flash(10, 1).await;
    let db = db_of(&app);
    // 20 users, 10 requests of 100 events each, sent at once; a tenth of them a day old
    // less an hour (yesterday's table at this hour: two days written in one batch).
    let yesterday = to_rfc3339(now_ms() - DAY_MS + 3_600_000);
    let sends = (0..200).map(|r| {
        let app = &app;
        let yesterday = yesterday.clone();
        async move {
            let events: Vec<Value> = (0..100)
                .map(|i| {
                    if i % 10 == 0 {
                        json!({"type": "add_to_cart", "campaign_id": campaign, "at": yesterday})
                    } else {
                        json!({"type": "view", "campaign_id": campaign, "props": {"r": r, "i": i}})
                    }
                })
                .collect();
            post(app, &format!("u{}", r % 20), json!({ "events": events })).await
        }
    });
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!((status, &body), (202, &json!({"accepted": 100})));
    }
    wait_stored(&db, campaign, 20_000).await;
    let days = db.event_days().await.expect("days");
    assert!(days.contains(&day_of(now_ms())), "{days:?}");
    assert!(
        days.contains(&day_of(now_ms() - DAY_MS + 3_600_000)),
        "{days:?}"
    );
    // A redelivery: the same events queued twice are written once.
    let now = now_ms();
    let again: Vec<BehaviourEvent> = (0..50)
        .map(|i| BehaviourEvent::new(i, "u1", "view", other, None, None, now).expect("valid"))
        .collect();
    let engine = app.running.as_ref().expect("in-process").engine.clone();
    engine.ingest_events(&again).await.expect("queued");
    engine.ingest_events(&again).await.expect("queued again");
    wait_stored(&db, other, 50).await;
    assert_eq!(
        db.persist_events(&again).await.expect("rewrite"),
        0,
        "a rewrite adds nothing"
    );
    assert_eq!(stored(&db, other).await, (50, 50));
    // Nothing of the events reached the claim queue.
    let stats = app
        .admin_get(&format!("/v1/admin/campaigns/{campaign}/stats"))
        .await;
    assert_eq!(stats["queue_backlog"], 0);
    assert_eq!(stats["dead_letters"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_stored_exactly_once_on_redis_and_postgres() {
    events_are_stored_exactly_once(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_stored_exactly_once_on_redis_and_mariadb() {
    events_are_stored_exactly_once(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_stored_exactly_once_embedded() {
    events_are_stored_exactly_once(Backend::Embedded).await;
}

/// Events queued while no worker runs; a worker process is SIGKILLed while it writes
/// them, another finishes: every event stored once.
async fn a_killed_event_writer_loses_and_doubles_nothing(backend: Backend) {
    let deps = Deps::new(backend).await;
    let config = deps.config();
    let mut app = TestApp::start_in(&config, Mode::Api, None).await;
    let campaign = app.flash(10, 1).await;
    let db = db_of(&app);
    const REQUESTS: usize = 300;
    let sends = (0..REQUESTS).map(|r| {
        let app = &app;
        async move {
            post(app, &format!("u{}", r % 50), views(campaign, 100))
                .await
                .0
        }
    });
    for status in futures::future::join_all(sends).await {
        assert_eq!(status, 202);
    }
    let total = (REQUESTS * 100) as u64;
    assert_eq!(stored(&db, campaign).await.0, 0, "no worker yet");
    // Kill a worker once it has written some and not all (a worker that finishes before
    // the kill lands leaves nothing pending; the next one is killed sooner).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_mid_way = false;
    while !killed_mid_way {
        let mut worker = Process::start(&config, "worker", &[]).await;
        loop {
            let (rows, _) = stored(&db, campaign).await;
            if rows > 0 || Instant::now() > deadline {
                worker.kill();
                killed_mid_way = rows < total;
                eprintln!("worker killed with {rows} of {total} events stored");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if stored(&db, campaign).await.0 >= total {
            break;
        }
        assert!(Instant::now() < deadline, "no worker wrote anything");
    }
    let _second = Process::start(&config, "worker", &[]).await;
    wait_stored(&db, campaign, total).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_event_writer_loses_and_doubles_nothing_on_redis_and_postgres() {
    a_killed_event_writer_loses_and_doubles_nothing(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_event_writer_loses_and_doubles_nothing_on_redis_and_mariadb() {
    a_killed_event_writer_loses_and_doubles_nothing(Backend::Mysql).await;
}

async fn bad_requests_get_their_status_and_store_nothing(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let c = app.flash(10, 1).await;
    let db = db_of(&app);
    let token = app.token("u1");
    let good = json!({"type": "view", "campaign_id": c});
    let event = |extra: Value| {
        let mut e = good.clone();
        for (k, v) in extra.as_object().expect("object") {
            e[k] = v.clone();
        }
        e
    };
    let many: Vec<Value> = (0..101).map(|_| good.clone()).collect();
    let hundred: Vec<Value> = (0..100).map(|_| good.clone()).collect();
    let cases: Vec<(&str, Option<&str>, String, u16)> = vec![
        (
            "no events",
            Some(&token),
            json!({"events": []}).to_string(),
            422,
        ),
        (
            "101 events",
            Some(&token),
            json!({ "events": many }).to_string(),
            422,
        ),
        ("no body", Some(&token), String::new(), 422),
        ("no events field", Some(&token), "{}".into(), 422),
        (
            "bad type",
            Some(&token),
            json!({"events": [event(json!({"type": "View"}))]}).to_string(),
            422,
        ),
        (
            "a type the engine counts itself",
            Some(&token),
            json!({"events": [event(json!({"type": "view"})), event(json!({"type": "accepted"}))]})
                .to_string(),
            422,
        ),
        (
            "empty type",
            Some(&token),
            json!({"events": [event(json!({"type": ""}))]}).to_string(),
            422,
        ),
        (
            "long type",
            Some(&token),
            json!({"events": [event(json!({"type": "a".repeat(33)}))]}).to_string(),
            422,
        ),
        (
            "big props",
            Some(&token),
            json!({"events": [event(json!({"props": {"k": "x".repeat(1100)}}))]}).to_string(),
            422,
        ),
        (
            "props not an object",
            Some(&token),
            json!({"events": [event(json!({"props": [1]}))]}).to_string(),
            422,
        ),
        (
            "stale at",
            Some(&token),
            json!({"events": [event(json!({"at": to_rfc3339(now_ms() - DAY_MS - 60_000)}))]})
                .to_string(),
            422,
        ),
        (
            "future at",
            Some(&token),
            json!({"events": [event(json!({"at": to_rfc3339(now_ms() + 600_000)}))]}).to_string(),
            422,
        ),
        (
            "bad at",
            Some(&token),
            json!({"events": [event(json!({"at": "yesterday"}))]}).to_string(),
            422,
        ),
        (
            "null at",
            Some(&token),
            json!({"events": [event(json!({"at": null}))]}).to_string(),
            422,
        ),
        (
            "unknown field",
            Some(&token),
            json!({"events": [good.clone()], "extra": 1}).to_string(),
            422,
        ),
        (
            "unknown event field",
            Some(&token),
            json!({"events": [event(json!({"user_id": "u2"}))]}).to_string(),
            422,
        ),
        (
            "one bad among good",
            Some(&token),
            json!({"events": [good.clone(), event(json!({"type": "BAD"}))]}).to_string(),
            422,
        ),
        (
            "unknown campaign",
            Some(&token),
            json!({"events": [good.clone(), event(json!({"campaign_id": 999_999}))]}).to_string(),
            404,
        ),
        (
            "campaign zero",
            Some(&token),
            json!({"events": [event(json!({"campaign_id": 0}))]}).to_string(),
            404,
        ),
        ("malformed JSON", Some(&token), "{\"events\": [".into(), 400),
        (
            "not an object",
            Some(&token),
            json!([good.clone()]).to_string(),
            400,
        ),
        (
            "no token",
            None,
            json!({"events": [good.clone()]}).to_string(),
            401,
        ),
        (
            "bad token",
            Some("not-a-jwt"),
            json!({"events": [good.clone()]}).to_string(),
            401,
        ),
        (
            "admin token",
            Some(ADMIN_TOKEN),
            json!({"events": [good.clone()]}).to_string(),
            401,
        ),
    ];
    for (name, token, body, expected) in &cases {
        let (status, reply, _) = post_raw(&app, *token, body).await;
        assert_eq!(status, *expected, "{name}: {reply}");
        assert!(reply["error"]["code"].is_string(), "{name}: {reply}");
    }
    // A request over 16 KiB.
    let big: Vec<Value> = (0..100)
        .map(|_| event(json!({"props": {"k": "x".repeat(200)}})))
        .collect();
    let (status, _, _) = post_raw(&app, Some(&token), &json!({ "events": big }).to_string()).await;
    assert_eq!(status, 413);
    // Then 100 good ones as a marker: exactly those are stored.
    let (status, reply, _) = post_raw(
        &app,
        Some(&token),
        &json!({ "events": hundred }).to_string(),
    )
    .await;
    assert_eq!((status, reply), (202, json!({"accepted": 100})));
    wait_stored(&db, c, 100).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_their_status_and_store_nothing_embedded() {
    bad_requests_get_their_status_and_store_nothing(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_their_status_and_store_nothing_on_redis_and_postgres() {
    bad_requests_get_their_status_and_store_nothing(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_rate_limited_per_user_and_blocked_users_refused() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut config = deps.config();
    config.user_rate = 1; // a burst of 2
    let mut app = TestApp::start(&config).await;
    let c = app.flash(10, 1).await;
    let db = db_of(&app);
    let token = app.token("busy");
    let mut accepted = 0;
    let mut limited = 0;
    for _ in 0..10 {
        let (status, _, retry) = post_raw(&app, Some(&token), &views(c, 3).to_string()).await;
        match status {
            202 => accepted += 1,
            429 => {
                limited += 1;
                assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
            }
            other => panic!("status {other}"),
        }
    }
    assert!(limited >= 1, "the rate limit applies");
    assert!(accepted >= 1);
    // Another user is not held back by the first.
    assert_eq!(post(&app, "calm", views(c, 1)).await.0, 202);
    // A blocked user gets 403 blocked.
    let res = app
        .http
        .post(app.url("/v1/admin/blocklist"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"user_id": "blocked"}))
        .send()
        .await
        .expect("block");
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let (status, reply) = post(&app, "blocked", views(c, 1)).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (403, Some("blocked"))
    );
    wait_stored(&db, c, accepted * 3 + 1).await;
    app.stop().await;
}

async fn retention_drops_old_days_only(backend: Backend) {
    // No engine runs: a running worker's own start-up pass would race the test's.
    let deps = Deps::new(backend).await;
    let db = Database::connect(&deps.config().database_url, 4)
        .await
        .expect("db");
    db.migrate().await.expect("migrate");
    let now = now_ms();
    let (old, kept, today) = (now - 40 * DAY_MS, now - 29 * DAY_MS, now);
    let at = |campaign_id, at_ms| BehaviourEvent {
        id: stampede_engine::behaviour::new_id(),
        campaign_id,
        user_id: "u1".into(),
        kind: "view".into(),
        at_ms,
        props: None,
        received_at_ms: at_ms,
    };
    let batch = vec![at(5, old), at(5, kept), at(5, today)];
    assert_eq!(db.persist_events(&batch).await.expect("write"), 3);
    stampede_worker::retention::run_once(&db, 30)
        .await
        .expect("retention");
    let days = db.event_days().await.expect("days");
    assert!(!days.contains(&day_of(old)), "{days:?}");
    assert!(
        days.contains(&day_of(kept)) && days.contains(&day_of(today)),
        "{days:?}"
    );
    if matches!(backend, Backend::Redis) {
        // PostgreSQL: the partitions of the coming days are made ahead.
        assert!(days.contains(&day_of(now + 2 * DAY_MS)), "{days:?}");
    }
    let stored = |day: i64| {
        let db = db.clone();
        async move { db.event_count(&day_of(day), 5).await.expect("count").0 }
    };
    assert_eq!(
        (stored(old).await, stored(kept).await, stored(today).await),
        (0, 1, 1)
    );
    // Twice (or by many workers at once): nothing more goes.
    stampede_worker::retention::run_once(&db, 30)
        .await
        .expect("retention");
    assert_eq!(
        (stored(old).await, stored(kept).await, stored(today).await),
        (0, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_drops_old_days_only_on_postgres() {
    retention_drops_old_days_only(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_drops_old_days_only_on_mariadb() {
    retention_drops_old_days_only(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_drops_old_days_only_on_sqlite() {
    retention_drops_old_days_only(Backend::Embedded).await;
}

/// A GET as the admin: the status and body.
async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("get");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn ticket(app: &TestApp, campaign: u64, user: &str) -> String {
    let res = app
        .http
        .get(app.url(&format!("/v1/campaigns/{campaign}/ticket")))
        .bearer_auth(app.token(user))
        .send()
        .await
        .expect("ticket");
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.expect("json");
    v["ticket"].as_str().expect("ticket").to_string()
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

async fn pay(app: &TestApp, payment_id: &str, claim_id: &str) -> u16 {
    let raw = json!({"payment_id": payment_id, "claim_id": claim_id, "amount_cents": 500,
        "status": "succeeded"})
    .to_string();
    let sig = Signatures::new(PAYMENT_SECRET).sign(now_ms() / 1_000, raw.as_bytes());
    let res = app
        .http
        .post(app.url("/v1/payments/notify"))
        .header("content-type", "application/json")
        .header("Stampede-Signature", sig)
        .body(raw)
        .send()
        .await
        .expect("notify");
    res.status().as_u16()
}

/// Each kind's total over the reply's minutes.
fn totals(reply: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in reply["minutes"].as_array().expect("minutes") {
        for (k, v) in m.as_object().expect("minute") {
            if k != "at" {
                *out.entry(k.clone()).or_default() += v.as_u64().expect("count");
            }
        }
    }
    out
}

/// A scripted run spread over `apps` (api processes sharing the store): 5 users view
/// (one also shares), 4 get tickets, 3 claim with a ticket (2 units: 2 accepted, 1 sold
/// out), one claims without (refused before the claim step), 1 pays (its notification
/// sent twice). The funnel counts exactly that, in the minutes it happened.
async fn the_funnel_counts_a_scripted_run(apps: &[&TestApp]) {
    let a = apps[0];
    let at = |i: usize| apps[i % apps.len()];
    let started = now_ms();
    let c = a
        .create(
            json!({"kind": "flash_sale", "name": "funnel", "stock": 2, "per_user_limit": 1,
            "price_cents": 500, "payment_window_secs": 60, "ticket_required": true}),
        )
        .await;
    for i in 0..5 {
        let mut events = vec![json!({"type": "view", "campaign_id": c})];
        if i == 0 {
            events.push(json!({"type": "share", "campaign_id": c}));
        }
        assert_eq!(
            post(at(i), &format!("f{i}"), json!({ "events": events }))
                .await
                .0,
            202
        );
    }
    let mut tickets = Vec::new();
    for i in 0..4 {
        tickets.push(ticket(at(i), c, &format!("f{i}")).await);
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, t) in tickets.iter().enumerate().take(3) {
        match claim_with(at(i), c, &format!("f{i}"), Some(t)).await {
            (201, body) => accepted.push(body["claim"]["id"].as_str().expect("id").to_string()),
            (409, _) => refused += 1,
            other => panic!("claim: {other:?}"),
        }
    }
    assert_eq!((accepted.len(), refused), (2, 1));
    assert_eq!(claim_with(at(3), c, "f3", None).await.0, 403, "no ticket");
    assert_eq!(pay(at(1), "p-funnel", &accepted[0]).await, 200);
    assert_eq!(
        pay(at(0), "p-funnel", &accepted[0]).await,
        200,
        "a retried notification"
    );
    let expected: BTreeMap<String, u64> = [
        ("accepted", 2),
        ("claim", 3),
        ("paid", 1),
        ("share", 1),
        ("ticket", 4),
        ("view", 5),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    // Each process flushes its counts within a second: wait for them (at most 20 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (reply, asked_at) = loop {
        let asked_at = now_ms();
        let (status, reply) =
            admin_get(a, &format!("/v1/admin/campaigns/{c}/funnel?minutes=10")).await;
        assert_eq!(status, 200, "{reply}");
        let got = totals(&reply);
        if got == expected {
            break (reply, asked_at);
        }
        assert!(
            got.iter()
                .all(|(k, n)| expected.get(k).is_some_and(|e| n <= e)),
            "never more than done: {got:?}"
        );
        assert!(
            Instant::now() < deadline,
            "funnel {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reply["campaign_id"], c);
    let minutes = reply["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 10);
    let start_of = |ms: i64| ms - ms.rem_euclid(60_000);
    let ats: Vec<i64> = minutes
        .iter()
        .map(|m| {
            stampede_engine::clock::parse_rfc3339(m["at"].as_str().expect("at")).expect("time")
        })
        .collect();
    for w in ats.windows(2) {
        assert_eq!(w[1] - w[0], 60_000, "one entry per minute, oldest first");
    }
    let last = *ats.last().expect("a minute");
    assert!(
        last == start_of(asked_at) || last == start_of(asked_at) + 60_000,
        "the current minute last"
    );
    for (m, at) in minutes.iter().zip(&ats) {
        for k in ["view", "ticket", "claim", "accepted", "paid"] {
            assert!(m[k].is_u64(), "{k} in every minute: {m}");
        }
        if *at < start_of(started) {
            // Before the run: zeros, and only the five stages.
            assert_eq!(
                m,
                &json!({"at": m["at"], "view": 0, "ticket": 0, "claim": 0, "accepted": 0, "paid": 0})
            );
        }
    }
    // The route's own refusals.
    assert_eq!(
        admin_get(a, "/v1/admin/campaigns/999999/funnel").await.0,
        404
    );
    for bad in ["0", "1441", "x", "-1"] {
        let (status, _) =
            admin_get(a, &format!("/v1/admin/campaigns/{c}/funnel?minutes={bad}")).await;
        assert_eq!(status, 422, "minutes={bad}");
    }
    let (status, reply) = admin_get(a, &format!("/v1/admin/campaigns/{c}/funnel")).await;
    assert_eq!(
        (status, reply["minutes"].as_array().map(Vec::len)),
        (200, Some(60))
    );
    let res = a
        .http
        .get(a.url(&format!("/v1/admin/campaigns/{c}/funnel")))
        .bearer_auth(a.token("f0"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 403, "a user token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_funnel_counts_a_scripted_run_across_two_api_processes_on_redis() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    let mut a = TestApp::start(&config).await;
    let mut b = TestApp::start_in(&config, Mode::Api, None).await;
    the_funnel_counts_a_scripted_run(&[&a, &b]).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_funnel_counts_a_scripted_run_on_redis_and_mariadb() {
    let deps = Deps::new(Backend::Mysql).await;
    let mut a = TestApp::start(&deps.config()).await;
    the_funnel_counts_a_scripted_run(&[&a]).await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_funnel_counts_a_scripted_run_embedded() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut a = TestApp::start(&deps.config()).await;
    the_funnel_counts_a_scripted_run(&[&a]).await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_stored_exactly_once_on_a_redis_cluster() {
    events_are_stored_exactly_once(Backend::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_funnel_counts_a_scripted_run_across_two_api_processes_on_a_redis_cluster() {
    let deps = Deps::new(Backend::Cluster).await;
    let config = deps.config();
    let mut a = TestApp::start(&config).await;
    let mut b = TestApp::start_in(&config, Mode::Api, None).await;
    the_funnel_counts_a_scripted_run(&[&a, &b]).await;
    b.stop().await;
    a.stop().await;
}

/// One hot campaign's events do not all land on one slot: a bucketed campaign's go to
/// its users' home buckets' streams, on different masters, and are stored once each,
/// with the funnel counting them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucketed_campaigns_events_spread_over_the_cluster_and_are_stored_once() {
    let deps = Deps::new(Backend::Cluster).await;
    let mut app = TestApp::start(&deps.config()).await;
    let campaign = app
        .create(json!({"kind": "flash_sale", "name": "hot", "stock": 10, "buckets": 3}))
        .await;
    let db = db_of(&app);
    let sends = (0..60).map(|u| {
        let app = &app;
        async move { post(app, &format!("crowd{u}"), views(campaign, 10)).await }
    });
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!((status, &body), (202, &json!({"accepted": 10})));
    }
    wait_stored(&db, campaign, 600).await;
    let cluster = deps.cluster.as_ref().expect("cluster");
    let registry = stampede_engine::store::keys::EVENT_STREAMS;
    let streams: Vec<String> = cluster
        .cli(cluster.master_of(registry), &["smembers", registry])
        .lines()
        .map(str::to_string)
        .filter(|s| stampede_engine::store::keys::stream_campaign(s) == Some(campaign))
        .collect();
    assert_eq!(streams.len(), 3, "one stream a bucket: {streams:?}");
    let masters: std::collections::HashSet<u16> =
        streams.iter().map(|s| cluster.master_of(s)).collect();
    assert!(masters.len() >= 2, "on more than one master: {masters:?}");
    // The funnel counts every one of them once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, reply) = admin_get(
            &app,
            &format!("/v1/admin/campaigns/{campaign}/funnel?minutes=5"),
        )
        .await;
        assert_eq!(status, 200);
        let views = totals(&reply).get("view").copied().unwrap_or(0);
        if views == 600 {
            break;
        }
        assert!(views < 600 && Instant::now() < deadline, "views {views}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = app
        .admin_get(&format!("/v1/admin/campaigns/{campaign}/stats"))
        .await;
    assert_eq!(stats["queue_backlog"], 0);
    app.stop().await;
}
