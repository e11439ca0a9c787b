//! Orders and payment through the real engine (README, "Orders and payment";
//! invariant 7): pay, cancel and expiry race over HTTP on Redis + PostgreSQL, Redis +
//! MariaDB and embedded; bad notifications change nothing; restocked units sell again;
//! expiry survives its sweepers dying and happens once when one comes back.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Deps, Process, TestApp, PAYMENT_SECRET};
use serde_json::{json, Value};
use stampede_api::payment_signature::Signatures;
use stampede_api::startup::build_engine;
use stampede_engine::campaign::NewCampaign;
use stampede_engine::claim::{ClaimOutcome, ClaimRequest};
use stampede_engine::clock::{now_ms, to_rfc3339};

const PRICE: u64 = 500;

/// What one notification was answered: (claim id, payment id, status, code).
type Answer = (String, String, u16, String);

fn now_secs() -> i64 {
    now_ms() / 1_000
}

/// `POST /v1/payments/notify` with `raw` as the body and `signature` as the header.
async fn notify_raw(app: &TestApp, raw: &str, signature: Option<&str>) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/v1/payments/notify"))
        .header("content-type", "application/json")
        .body(raw.to_string());
    if let Some(s) = signature {
        req = req.header("Stampede-Signature", s);
    }
    let res = req.send().await.expect("notify");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// Retries `call` on 503, as a payment provider (or a client) does: on a loaded machine
/// a store call may time out, and the retry finds what the first one decided.
async fn retrying<F, Fut>(mut call: F) -> (u16, Value)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    for _ in 0..50 {
        let (status, body) = call().await;
        if status != 503 {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still 503 after 50 tries")
}

/// A correctly signed notification of `payment_id` for `claim_id` (signed anew at each
/// try, as providers do).
async fn notify(app: &TestApp, payment_id: &str, claim_id: &str, amount: u64) -> (u16, Value) {
    let raw = json!({"payment_id": payment_id, "claim_id": claim_id, "amount_cents": amount,
        "status": "succeeded"})
    .to_string();
    retrying(|| {
        let sig = Signatures::new(PAYMENT_SECRET).sign(now_secs(), raw.as_bytes());
        let raw = raw.clone();
        async move { notify_raw(app, &raw, Some(&sig)).await }
    })
    .await
}

async fn cancel(app: &TestApp, user: &str, claim_id: &str) -> (u16, Value) {
    retrying(|| async {
        let res = app
            .http
            .post(app.url(&format!("/v1/claims/{claim_id}/cancel")))
            .bearer_auth(app.token(user))
            .send()
            .await
            .expect("cancel");
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    })
    .await
}

async fn windowed_sale(app: &TestApp, stock: u64, window_secs: u64) -> u64 {
    app.create(
        json!({"kind": "flash_sale", "name": "orders", "stock": stock,
        "price_cents": PRICE, "payment_window_secs": window_secs}),
    )
    .await
}

fn stats_path(id: u64) -> String {
    format!("/v1/admin/campaigns/{id}/stats")
}

/// Every refund the engine lists, paged.
async fn refunds(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .admin_get(&format!("/v1/admin/refunds?after={after}&limit=100"))
            .await;
        all.extend(page["refunds"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => return all,
        }
    }
}

/// Waits (at most `within`) until the campaign has no pending order and every event
/// is persisted; the stats then.
async fn settled(app: &TestApp, id: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let s = app.admin_get(&stats_path(id)).await;
        if s["pending_orders"] == 0
            && s["queue_backlog"] == 0
            && s["persisted_claims"] == s["accepted_claims"]
        {
            return s;
        }
        assert!(Instant::now() < deadline, "orders did not settle: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 1,000 orders; for each, at once: payments (the same notification twice, some just
/// before the deadline and some a few ms after it), cancels, or nothing (expiry). A
/// sampler checks units sold = paid + pending throughout.
async fn a_thousand_orders_race_and_each_ends_once(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut owner = TestApp::start(&deps.config()).await;
    const N: usize = 1_000;
    const WINDOW_SECS: u64 = 3;
    let id = windowed_sale(&owner, N as u64, WINDOW_SECS).await;
    let app = Arc::new(TestApp::external(owner.addr));

    // The sampler: every stats read must add up.
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (app, stop, violations) = (app.clone(), stop.clone(), violations.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                // A busy machine may answer 503 (a store call timed out): no sample then.
                let res = app
                    .http
                    .get(app.url(&stats_path(id)))
                    .bearer_auth(common::ADMIN_TOKEN)
                    .send()
                    .await
                    .expect("stats");
                if res.status() != 200 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let s: Value = res.json().await.expect("json");
                let n = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
                if n("remaining") + n("accepted_quantity") != N as u64
                    || n("accepted_quantity") != n("paid_orders") + n("pending_orders")
                {
                    violations.lock().expect("lock").push(s.to_string());
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        })
    };

    let claims: Vec<(String, String, i64)> = futures::future::join_all((0..N).map(|i| {
        let app = app.clone();
        async move {
            let user = format!("u{i}");
            let token = app.token(&user);
            let (status, body) = retrying(|| app.claim(id, &token, None)).await;
            // 200: a retry after a 503 found the claim the first try made.
            assert!(status == 201 || status == 200, "{status} {body}");
            let order = &body["claim"]["order"];
            assert_eq!(order["status"], "pending_payment", "{body}");
            let pay_by =
                stampede_engine::clock::parse_rfc3339(order["pay_by"].as_str().expect("pay_by"))
                    .expect("rfc 3339");
            (
                user,
                body["claim"]["id"].as_str().expect("id").to_string(),
                pay_by,
            )
        }
    }))
    .await;
    assert_eq!(claims.len(), N);

    // What each notification and cancel was answered.
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let mut tasks = Vec::new();
    for (i, (user, claim_id, pay_by)) in claims.iter().cloned().enumerate() {
        let (app, answers) = (app.clone(), answers.clone());
        tasks.push(tokio::spawn(async move {
            // When to act: mostly well inside the window, some a few ms around pay_by.
            let at = match i % 4 {
                0 => pay_by - 5,
                1 => pay_by + 5,
                _ => now_ms() + (i as i64 % 500),
            };
            let wait = (at - now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let payment_id = format!("pay-{i}");
            let mut acts = Vec::new();
            match i % 10 {
                0..=5 => {
                    // Paid, the notification duplicated (providers retry).
                    for _ in 0..2 {
                        let (s, b) = notify(&app, &payment_id, &claim_id, PRICE).await;
                        acts.push((payment_id.clone(), s, b));
                    }
                }
                6 | 7 => {
                    // Cancel racing a payment.
                    let (app2, claim2, user2) = (app.clone(), claim_id.clone(), user.clone());
                    let c = tokio::spawn(async move { cancel(&app2, &user2, &claim2).await });
                    let (s, b) = notify(&app, &payment_id, &claim_id, PRICE).await;
                    acts.push((payment_id.clone(), s, b));
                    let (s, b) = c.await.expect("cancel task");
                    assert!([200, 409].contains(&s), "cancel answered {s}: {b}");
                }
                _ => {} // left to expire
            }
            let mut answers = answers.lock().expect("lock");
            for (p, s, b) in acts {
                let code = b["status"]
                    .as_str()
                    .or(b["error"]["code"].as_str())
                    .unwrap_or("?")
                    .to_string();
                answers.push((claim_id.clone(), p, s, code));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = settled(&app, id, Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");
    assert!(samples > 5, "the sampler ran ({samples} samples)");
    assert!(
        violations.lock().expect("lock").is_empty(),
        "units sold != paid + pending: {:?}",
        violations.lock().expect("lock")
    );

    // Each notification's answer is one of the contract's; the same payment id twice
    // got the same answer.
    let answers = answers.lock().expect("lock").clone();
    let mut by_payment: HashMap<&str, HashSet<(u16, &str)>> = HashMap::new();
    for (_, p, s, code) in &answers {
        assert!(
            matches!(
                (s, code.as_str()),
                (200, "paid") | (409, "order_expired") | (409, "order_cancelled")
            ),
            "{p}: {s} {code}"
        );
        by_payment.entry(p).or_default().insert((*s, code));
    }
    for (p, seen) in &by_payment {
        assert_eq!(seen.len(), 1, "{p} was answered differently: {seen:?}");
    }
    let paid: HashSet<&str> = answers
        .iter()
        .filter(|a| a.2 == 200)
        .map(|a| a.0.as_str())
        .collect();
    let lost: HashSet<&str> = answers
        .iter()
        .filter(|a| a.2 == 409)
        .map(|a| a.1.as_str())
        .collect();

    // The database: one final state per order, paid exactly where the payment won.
    let export = app.export(id).await;
    assert_eq!(export.len(), N, "every claim persisted once");
    let mut finals: HashMap<&str, usize> = HashMap::new();
    for c in &export {
        let status = c["order"]["status"].as_str().expect("an order");
        assert_ne!(status, "pending_payment", "{c}");
        *finals.entry(status).or_default() += 1;
        let claim_id = c["id"].as_str().expect("id");
        assert_eq!(
            status == "paid",
            paid.contains(claim_id),
            "{claim_id}: {status}, and its payment {}",
            if paid.contains(claim_id) {
                "won"
            } else {
                "did not win"
            }
        );
    }
    let n = |k: &str| stats[k].as_u64().expect(k);
    assert_eq!(
        finals.get("paid").copied().unwrap_or(0) as u64,
        n("paid_orders")
    );
    assert_eq!(
        finals.get("expired").copied().unwrap_or(0) as u64,
        n("expired_orders")
    );
    assert_eq!(
        finals.get("cancelled").copied().unwrap_or(0) as u64,
        n("cancelled_orders")
    );
    assert!(
        n("paid_orders") > 0 && n("expired_orders") > 0 && n("cancelled_orders") > 0,
        "{stats}"
    );
    // Stock arithmetic: every unit is paid or back on sale.
    assert_eq!(n("remaining") + n("paid_orders"), N as u64, "{stats}");
    assert_eq!(n("accepted_quantity"), n("paid_orders"));
    // Refunds: exactly the payments that lost, each once.
    let listed: Vec<String> = refunds(&app)
        .await
        .into_iter()
        .filter(|r| r["campaign_id"] == id)
        .map(|r| r["payment_id"].as_str().expect("payment id").to_string())
        .collect();
    let listed_set: HashSet<&str> = listed.iter().map(String::as_str).collect();
    assert_eq!(listed.len(), listed_set.len(), "a refund is listed once");
    assert_eq!(
        listed_set, lost,
        "refunds are exactly the payments that lost"
    );
    assert_eq!(n("refunds_required"), lost.len() as u64);
    // The store and the database reconcile, order changes and all.
    let r = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/reconcile"))
        .await;
    assert_eq!(r["consistent"], true, "{r}");
    assert_eq!(r["order_changes_queued"], 0, "{r}");
    // The ledger: every order entered pending_payment once and one final state once.
    let (pending, finals, orders) = ledger(&deps, id).await;
    assert_eq!((pending, finals, orders), (N as i64, N as i64, N as i64));
    owner.stop().await;
}

/// (pending transitions, final transitions, distinct orders with a final transition) in
/// the database's `order_transitions` for the campaign, read with the test's own client.
async fn ledger(deps: &Deps, campaign: u64) -> (i64, i64, i64) {
    let sql = "SELECT \
        COALESCE(SUM(CASE WHEN status = 'pending_payment' THEN 1 ELSE 0 END), 0), \
        COALESCE(SUM(CASE WHEN status <> 'pending_payment' THEN 1 ELSE 0 END), 0), \
        COUNT(DISTINCT CASE WHEN status <> 'pending_payment' THEN claim_id END) \
        FROM order_transitions WHERE campaign_id = ";
    let sql = format!("{sql}{campaign}");
    let url = deps.database_url();
    match stampede_engine::db::kind_of(&url) {
        "postgres" => {
            let pool = sqlx::PgPool::connect(&url).await.expect("pg");
            let r: (i64, i64, i64) = sqlx::query_as(&sql).fetch_one(&pool).await.expect("ledger");
            pool.close().await;
            r
        }
        "mysql" => {
            let pool = sqlx::MySqlPool::connect(&url).await.expect("mysql");
            let sql = sql
                .replace("COALESCE(SUM", "CAST(COALESCE(SUM")
                .replace("), 0),", "), 0) AS SIGNED),");
            let r: (i64, i64, i64) = sqlx::query_as(&sql).fetch_one(&pool).await.expect("ledger");
            pool.close().await;
            r
        }
        _ => {
            let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
            let r: (i64, i64, i64) = sqlx::query_as(&sql).fetch_one(&pool).await.expect("ledger");
            pool.close().await;
            r
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orders_race_on_redis_and_postgres() {
    a_thousand_orders_race_and_each_ends_once(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orders_race_embedded() {
    a_thousand_orders_race_and_each_ends_once(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orders_race_on_redis_and_mariadb() {
    a_thousand_orders_race_and_each_ends_once(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifications_get_their_status_and_change_nothing() {
    let deps = Deps::new(Backend::Embedded).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = windowed_sale(&app, 5, 600).await;
    let (_, body) = app
        .claim(id, &app.token("alice"), Some(json!({"quantity": 1})))
        .await;
    let claim_id = body["claim"]["id"].as_str().expect("claim").to_string();
    let signer = Signatures::new(PAYMENT_SECRET);
    let before = app.wait_drained(id).await;
    let good = json!({"payment_id": "p-1", "claim_id": claim_id, "amount_cents": PRICE,
        "status": "succeeded"})
    .to_string();
    let t = now_secs();
    let good_sig = signer.sign(t, good.as_bytes());
    let old_tag = good_sig
        .split_once(",v1=")
        .map(|(_, v)| v.to_string())
        .expect("tag");
    let wrong_amount = json!({"payment_id": "p-2", "claim_id": claim_id, "amount_cents": PRICE + 1,
        "status": "succeeded"})
    .to_string();
    let unknown = json!({"payment_id": "p-3", "claim_id": format!("c{id}-0000009999"),
        "amount_cents": PRICE, "status": "succeeded"})
    .to_string();
    let malformed = "{\"payment_id\": \"p-4\", ";
    let cases: Vec<(&str, String, Option<String>, u16)> = vec![
        ("no signature", good.clone(), None, 401),
        (
            "wrong key",
            good.clone(),
            Some(Signatures::new("not-the-secret").sign(t, good.as_bytes())),
            401,
        ),
        (
            "stale timestamp",
            good.clone(),
            Some(signer.sign(t - 301, good.as_bytes())),
            401,
        ),
        (
            "future timestamp",
            good.clone(),
            Some(signer.sign(t + 301, good.as_bytes())),
            401,
        ),
        (
            "replayed with a new timestamp",
            good.clone(),
            Some(format!("t={},v1={old_tag}", t + 30)),
            401,
        ),
        (
            "another body under the signature",
            wrong_amount.clone(),
            Some(good_sig.clone()),
            401,
        ),
        (
            "garbage header",
            good.clone(),
            Some("sha256=deadbeef".into()),
            401,
        ),
        (
            "wrong amount",
            wrong_amount.clone(),
            Some(signer.sign(t, wrong_amount.as_bytes())),
            422,
        ),
        (
            "unknown claim",
            unknown.clone(),
            Some(signer.sign(t, unknown.as_bytes())),
            404,
        ),
        (
            "malformed JSON",
            malformed.into(),
            Some(signer.sign(t, malformed.as_bytes())),
            400,
        ),
        ("unsigned malformed JSON", malformed.into(), None, 401),
    ];
    for (name, raw, sig, want) in &cases {
        let (status, body) = notify_raw(&app, raw, sig.as_deref()).await;
        assert_eq!(status, *want, "{name}: {body}");
        assert!(
            body["error"]["message"].is_string(),
            "{name}: the contract's error shape: {body}"
        );
    }
    // Nothing changed: the order is still pending, no refund, no count moved.
    let after = app.admin_get(&stats_path(id)).await;
    assert_eq!(before, after);
    let mine = app
        .user_get("alice", &format!("/v1/campaigns/{id}/claims/me"))
        .await;
    assert_eq!(
        mine["claims"][0]["order"]["status"], "pending_payment",
        "{mine}"
    );
    assert!(refunds(&app).await.is_empty());
    // The good one pays; a retry of it is the same answer; a cancel is then refused.
    for _ in 0..2 {
        let (status, body) = notify_raw(&app, &good, Some(&good_sig)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "paid");
        assert_eq!(body["claim"]["order"]["payment_id"], "p-1");
        assert!(body["claim"]["order"]["paid_at"].is_string(), "{body}");
    }
    let (status, body) = cancel(&app, "alice", &claim_id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("order_paid")),
        "{body}"
    );
    // Someone else's claim, or none: 404.
    assert_eq!(cancel(&app, "mallory", &claim_id).await.0, 404);
    assert_eq!(cancel(&app, "alice", "c1-nope").await.0, 404);
    // A second payment of a paid order is refunded.
    let (status, body) = notify(&app, "p-again", &claim_id, PRICE).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("order_paid")),
        "{body}"
    );
    app.wait_drained(id).await;
    // Every list of the user's claims carries the order.
    let mine = app.user_get("alice", "/v1/me/claims").await;
    assert_eq!(mine["claims"][0]["order"]["status"], "paid", "{mine}");
    let mine = app
        .user_get("alice", &format!("/v1/campaigns/{id}/claims/me"))
        .await;
    assert_eq!(mine["claims"][0]["order"]["payment_id"], "p-1", "{mine}");
    let listed = refunds(&app).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0]["payment_id"].as_str(),
            listed[0]["reason"].as_str()
        ),
        (Some("p-again"), Some("already_paid"))
    );
    app.stop().await;
}

/// A sale whose orders all expire ends with its whole stock back, and the restocked
/// units sell to later claims, past the sold-out flag of every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restocked_units_are_bought_by_later_claims() {
    let deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = windowed_sale(&app, 2, 1).await;
    for u in ["a", "b"] {
        assert_eq!(app.claim(id, &app.token(u), None).await.0, 201);
    }
    // Sold out, here and on another api instance (each arms its sold-out flag).
    let mut second = TestApp::start(&deps.config()).await;
    for a in [&app, &second] {
        let (status, body) = a.claim(id, &a.token("late"), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("sold_out"))
        );
    }
    // Within a second of pay_by plus the sweep, the units are back and sell again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bought = None;
    while bought.is_none() {
        assert!(Instant::now() < deadline, "the restocked units never sold");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, body) = second.claim(id, &second.token("late"), None).await;
        if status == 201 {
            bought = Some(body);
        }
    }
    let v: Value = app
        .http
        .get(app.url(&format!("/v1/campaigns/{id}")))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(v["remaining"].as_u64().expect("remaining") <= 1, "{v}");
    // Everything expires: the whole stock is back.
    let s = settled(&app, id, Duration::from_secs(15)).await;
    assert_eq!(
        (s["remaining"].as_u64(), s["expired_orders"].as_u64()),
        (Some(2), Some(3)),
        "{s}"
    );
    second.stop().await;
    app.stop().await;
}

/// Claims made "in the past" (the store is told the time), so their orders are due at once.
async fn due_orders(deps: &Deps, n: u64) -> u64 {
    let engine = build_engine(&deps.config()).await.expect("engine");
    let long_ago = now_ms() - 3_600_000;
    let (campaign, _) = engine
        .create_campaign(&NewCampaign {
            kind: "flash_sale".into(),
            name: "due".into(),
            stock: Some(n as i64),
            price_cents: Some(PRICE as i64),
            payment_window_secs: Some(60),
            starts_at: Some(to_rfc3339(long_ago)),
            ..Default::default()
        })
        .await
        .expect("campaign");
    for chunk in 0..n / 500 {
        let requests: Vec<ClaimRequest> = (0..500)
            .map(|i| ClaimRequest {
                user_id: format!("u{}", chunk * 500 + i),
                quantity: 1,
                request_id: None,
            })
            .collect();
        for o in engine
            .store
            .claim_batch(campaign.id, long_ago + 1_000, &requests)
            .await
            .expect("claims")
        {
            assert!(matches!(o, ClaimOutcome::Accepted(_)), "{o:?}");
        }
    }
    campaign.id
}

/// Every worker down past pay_by: the orders wait; a worker SIGKILLed while sweeping
/// them; another one finishes. Each order expires exactly once, its units back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_survives_dead_sweepers_and_happens_once() {
    let deps = Deps::new(Backend::Redis).await;
    let config = deps.config();
    const N: u64 = 20_000;
    let api = Process::start(&config, "api", &[]).await;
    let app = TestApp::external(api.addr.expect("serves"));
    let id = due_orders(&deps, N).await;
    // No worker runs: nothing expires, however overdue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = app.admin_get(&stats_path(id)).await;
    assert_eq!(
        (s["pending_orders"].as_u64(), s["remaining"].as_u64()),
        (Some(N), Some(0)),
        "{s}"
    );
    // A worker starts sweeping and is killed as soon as it has begun.
    let mut first = Process::start(&config, "worker", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = app.admin_get(&stats_path(id)).await;
        if s["expired_orders"].as_u64() > Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker never swept: {s}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let mid = app.admin_get(&stats_path(id)).await;
    // Another worker returns and finishes, once.
    let _second = Process::start(&config, "worker", &[]).await;
    let s = settled(&app, id, Duration::from_secs(60)).await;
    let n = |k: &str| s[k].as_u64().expect(k);
    assert_eq!(
        (n("expired_orders"), n("pending_orders"), n("paid_orders")),
        (N, 0, 0),
        "{s}"
    );
    assert_eq!((n("remaining"), n("accepted_quantity")), (N, 0), "{s}");
    let export = app.export(id).await;
    assert_eq!(export.len() as u64, N);
    assert!(export.iter().all(|c| c["order"]["status"] == "expired"));
    eprintln!(
        "killed the first sweeper at {} expired of {N}",
        mid["expired_orders"]
    );
}

/// `stampede-loadgen flash --payment-window 1s --pay-share 0.7` against the real engine:
/// winners pay (some late, some twice, some with a second payment), cancel or let their
/// orders expire, a second wave buys what comes back, and the load generator's audit
/// (units sold = paid + pending at every sample, every unit paid or back in stock, the
/// refunds exactly the payments that lost) passes.
async fn the_load_generators_order_audit_passes(backend: Backend) {
    use stampede_loadgen::scenario::orders::OrderFlags;
    use stampede_loadgen::scenario::{Common, Crowd};
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let args = stampede_loadgen::scenario::flash::FlashArgs {
        common: Common {
            target: vec![format!("http://{}", app.addr)],
            jwt_secret: Some(common::JWT_SECRET.into()),
            admin_token: Some(common::ADMIN_TOKEN.into()),
            concurrency: Some(32),
            threads: None,
            client: stampede_loadgen::client::ClientKind::Lean,
            timeout: Duration::from_secs(10),
            json: true,
            plot: None,
            quiet: true,
        },
        crowd: Crowd {
            users: 600,
            dup_fraction: 0.2,
            seed: 7,
            rate: None,
            user_prefix: None,
        },
        stock: 200,
        per_user: 1,
        quantity: 1,
        drain_timeout: Duration::from_secs(60),
        buckets: 1,
        orders: OrderFlags {
            payment_window: Some(Duration::from_secs(1)),
            pay_share: 0.7,
            payment_secret: Some(PAYMENT_SECRET.into()),
            price_cents: 1_000,
            second_wave: Some(400),
            expiry_grace: Duration::from_secs(5),
        },
    };
    let report = stampede_loadgen::scenario::flash::run(&args)
        .await
        .expect("loadgen flash");
    assert!(
        report.passed(),
        "the load generator's audit: {:?}",
        report.audit
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_load_generators_order_audit_passes_on_redis_and_postgres() {
    the_load_generators_order_audit_passes(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_load_generators_order_audit_passes_embedded() {
    the_load_generators_order_audit_passes(Backend::Embedded).await;
}
