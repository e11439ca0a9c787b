//! The acceptance scenarios over real HTTP, each on Redis + PostgreSQL and on
//! the embedded engine: racing claims never oversell, never exceed a user's limit,
//! red packets add up, and the database ends up with exactly the accepted claims.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Backend, Deps, TestApp};
use futures::stream::{self, StreamExt};
use rand::seq::SliceRandom;
use serde_json::{json, Value};

/// Fires every (token, body) claim concurrently (up to 256 in flight).
async fn fire(
    app: &TestApp,
    campaign: u64,
    claims: Vec<(String, Option<Value>)>,
) -> Vec<(u16, Value)> {
    stream::iter(claims)
        .map(|(token, body)| async move { app.claim(campaign, &token, body).await })
        .buffer_unordered(256)
        .collect()
        .await
}

async fn flash_sale_race(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.flash(500, 1).await;
    let mut claims: Vec<(String, Option<Value>)> = (0..2_000)
        .flat_map(|u| {
            let t = app.token(&format!("user{u}"));
            [(t.clone(), None), (t, None)]
        })
        .collect();
    claims.shuffle(&mut rand::rng());
    let replies = fire(&app, id, claims).await;

    let accepted: Vec<&Value> = replies
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| &b["claim"])
        .collect();
    assert_eq!(accepted.len(), 500, "exactly the stock is accepted");
    let winners: HashSet<&str> = accepted
        .iter()
        .filter_map(|c| c["user_id"].as_str())
        .collect();
    assert_eq!(winners.len(), 500, "no user accepted twice");
    for (status, body) in &replies {
        match status {
            201 => {}
            200 => assert_eq!(body["status"], "already_claimed"),
            409 => assert_eq!(body["error"]["code"], "sold_out"),
            other => panic!("unexpected {other}: {body}"),
        }
    }

    let stats = app.wait_drained(id).await;
    assert_eq!(stats["accepted_claims"], 500);
    assert_eq!(stats["remaining"], 0);
    let exported = app.export(id).await;
    let ids = |v: &[&Value]| {
        v.iter()
            .filter_map(|c| c["id"].as_str().map(String::from))
            .collect::<HashSet<_>>()
    };
    let exported_refs: Vec<&Value> = exported.iter().collect();
    assert_eq!(
        exported.len(),
        500,
        "the database holds exactly the accepted claims"
    );
    assert_eq!(ids(&exported_refs), ids(&accepted));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_on_redis_sell_exactly_the_stock_and_persist_each_once() {
    flash_sale_race(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_embedded_sell_exactly_the_stock_and_persist_each_once() {
    flash_sale_race(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_on_mysql_sell_exactly_the_stock_and_persist_each_once() {
    flash_sale_race(Backend::Mysql).await;
}

async fn red_packet_race(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app
        .create(json!({"kind": "red_packet", "name": "New year", "total_cents": 100_000, "count": 300, "min_cents": 1}))
        .await;
    let claims: Vec<(String, Option<Value>)> = (0..1_000)
        .map(|u| (app.token(&format!("u{u}")), None))
        .collect();
    let replies = fire(&app, id, claims).await;
    let accepted: Vec<&Value> = replies
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| &b["claim"])
        .collect();
    assert_eq!(accepted.len(), 300);
    let amounts: Vec<u64> = accepted
        .iter()
        .filter_map(|c| c["amount_cents"].as_u64())
        .collect();
    assert_eq!(amounts.len(), 300);
    assert_eq!(
        amounts.iter().sum::<u64>(),
        100_000,
        "packets sum to total_cents exactly"
    );
    assert!(amounts.iter().all(|&a| a >= 1));
    assert!(replies.iter().all(|(s, _)| *s == 201 || *s == 409));

    let stats = app.wait_drained(id).await;
    assert_eq!(stats["claimed_cents"], 100_000);
    let exported = app.export(id).await;
    assert_eq!(exported.len(), 300);
    assert_eq!(
        exported
            .iter()
            .filter_map(|c| c["amount_cents"].as_u64())
            .sum::<u64>(),
        100_000
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn red_packets_on_redis_add_up_exactly() {
    red_packet_race(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn red_packets_embedded_add_up_exactly() {
    red_packet_race(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn red_packets_on_mysql_add_up_exactly() {
    red_packet_race(Backend::Mysql).await;
}

async fn per_user_limit_race(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let id = app.flash(1_000, 3).await;
    // Ten users, each racing 30 requests for one unit and 10 for two.
    let mut claims = Vec::new();
    for u in 0..10 {
        let t = app.token(&format!("racer{u}"));
        claims.extend((0..30).map(|_| (t.clone(), Some(json!({"quantity": 1})))));
        claims.extend((0..10).map(|_| (t.clone(), Some(json!({"quantity": 2})))));
    }
    claims.shuffle(&mut rand::rng());
    let replies = fire(&app, id, claims).await;
    let mut held: HashMap<String, u64> = HashMap::new();
    for (status, body) in &replies {
        assert!(
            [201, 200, 422].contains(status),
            "unexpected {status}: {body}"
        );
        if *status == 201 {
            let c = &body["claim"];
            *held
                .entry(c["user_id"].as_str().unwrap_or("").to_string())
                .or_default() += c["quantity"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(held.len(), 10);
    for (user, n) in &held {
        assert_eq!(*n, 3, "{user} holds exactly the limit");
    }
    app.wait_drained(id).await;
    let exported = app.export(id).await;
    let mut per_user: HashMap<String, u64> = HashMap::new();
    for c in &exported {
        *per_user
            .entry(c["user_id"].as_str().unwrap_or("").to_string())
            .or_default() += c["quantity"].as_u64().unwrap_or(0);
    }
    assert!(per_user.values().all(|&n| n == 3));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_user_limit_above_one_holds_on_redis() {
    per_user_limit_race(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_user_limit_above_one_holds_embedded() {
    per_user_limit_race(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_user_limit_above_one_holds_on_mysql() {
    per_user_limit_race(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_claims_survive_a_restart_of_the_process() {
    let deps = Deps::new(Backend::Embedded).await;
    let config = deps.config();
    let mut app = TestApp::start(&config).await;
    let id = app.flash(5, 1).await;
    let rp = app
        .create(json!({"kind": "red_packet", "name": "rp", "total_cents": 1_000, "count": 4}))
        .await;
    let mut first = HashMap::new();
    for u in ["a", "b", "c"] {
        let (status, body) = app.claim(id, &app.token(u), None).await;
        assert_eq!(status, 201);
        first.insert(u, body["claim"].clone());
        assert_eq!(app.claim(rp, &app.token(u), None).await.0, 201);
    }
    // A graceful stop flushes the queue into SQLite; nothing else is kept.
    app.stop().await;

    let mut app = TestApp::start(&config).await;
    let c: Value = app
        .http
        .get(app.url(&format!("/v1/campaigns/{id}")))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(c["remaining"], 2);
    for u in ["a", "b", "c"] {
        let (status, body) = app.claim(id, &app.token(u), None).await;
        assert_eq!(status, 200, "{u} already claimed before the restart");
        assert_eq!(body["claim"]["id"], first[u]["id"]);
        assert_eq!(body["claim"]["persisted"], true);
    }
    let (status, body) = app.claim(id, &app.token("d"), None).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["claim"]["id"],
        format!("c{id}-0000000004"),
        "the sequence continues"
    );
    // The red packet hands out exactly the one packet left, and the total still adds up.
    let (status, last) = app.claim(rp, &app.token("d"), None).await;
    assert_eq!(status, 201);
    assert_eq!(app.claim(rp, &app.token("e"), None).await.0, 409);
    app.wait_drained(rp).await;
    let exported = app.export(rp).await;
    assert_eq!(exported.len(), 4);
    assert_eq!(
        exported
            .iter()
            .filter_map(|c| c["amount_cents"].as_u64())
            .sum::<u64>(),
        1_000
    );
    assert!(last["claim"]["amount_cents"].as_u64().is_some());
    app.wait_drained(id).await;
    assert_eq!(app.export(id).await.len(), 4);
    app.stop().await;
}
