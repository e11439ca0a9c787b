//! Stampede on a Redis Cluster of the test's own (3 masters, 3 replicas) and PostgreSQL,
//! with real processes: many `stampede api` and `stampede worker` processes against one
//! cluster sell exactly the stock and persist it once; a master SIGKILLed in the middle
//! of a crowd costs 503s for the seconds of the failover and nothing that was answered.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, Deps, Process, TestApp};
use serde_json::{json, Value};
use stampede_engine::store::keys;
use tokio::sync::Semaphore;

/// The tests here each run a 6-node cluster and several engines, and two of them judge
/// when 503s may happen: one at a time, so a 2-core machine is not running three at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Claims from `users` users, each `per_user` times, spread round-robin over `apps`,
/// at most 128 at once. A claim answered 503 (the engine shedding or a store call past
/// its bound on a loaded machine) is retried, as the contract tells clients to: retrying
/// a claim is always safe. Returns the final (status, body) per claim.
async fn crowd(
    apps: &[Arc<TestApp>],
    campaign: u64,
    users: usize,
    per_user: usize,
) -> Vec<(u16, Value)> {
    let gate = Arc::new(Semaphore::new(128));
    let mut tasks = Vec::new();
    for round in 0..per_user {
        for u in 0..users {
            let app = apps[(u + round) % apps.len()].clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("gate");
                let token = app.token(&format!("user{u}"));
                let mut reply = app.claim(campaign, &token, None).await;
                for _ in 0..10 {
                    if reply.0 != 503 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    reply = app.claim(campaign, &token, None).await;
                }
                reply
            }));
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("claim task"));
    }
    out
}

/// Every persisted claim id of the campaign, checked to be there once each.
async fn persisted_once(app: &TestApp, campaign: u64) -> Vec<Value> {
    app.wait_drained(campaign).await;
    let rows = app.export(campaign).await;
    let ids: HashSet<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "no claim is persisted twice");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apis_and_two_workers_on_a_cluster_sell_exactly_the_stock_and_persist_it_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let deps = Deps::new(Backend::Cluster).await;
    let config = deps.config();
    let _workers = [
        Process::start(&config, "worker", &[]).await,
        Process::start(&config, "worker", &[]).await,
    ];
    let apis = [
        Process::start(&config, "api", &[]).await,
        Process::start(&config, "api", &[]).await,
    ];
    let apps: Vec<Arc<TestApp>> = apis
        .iter()
        .map(|p| Arc::new(TestApp::external(p.addr.expect("serves"))))
        .collect();

    // A flash sale in 3 buckets: 8,000 claims from 4,000 users for 3,000 units, 2 each.
    let cluster = deps.cluster.as_ref().expect("cluster");
    let before = cluster.calls_per_master("evalsha");
    let sale = apps[0]
        .create(json!({"kind": "flash_sale", "name": "cluster sale", "stock": 3000, "per_user_limit": 2, "buckets": 3}))
        .await;
    let replies = crowd(&apps, sale, 4_000, 2).await;
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut accepted = HashSet::new();
    for (status, body) in &replies {
        match status {
            201 => {
                let claim = &body["claim"];
                *held
                    .entry(claim["user_id"].as_str().unwrap_or("").into())
                    .or_default() += claim["quantity"].as_u64().unwrap_or(0);
                accepted.insert(claim["id"].as_str().unwrap_or("").to_string());
            }
            409 => assert_eq!(body["error"]["code"], "sold_out"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted.len(), 3_000, "exactly the stock is accepted");
    assert!(held.values().all(|&q| q <= 2), "nobody holds more than 2");
    let after = cluster.calls_per_master("evalsha");
    for (master, calls) in &after {
        let ran = calls - before.get(master).copied().unwrap_or(0);
        assert!(
            ran > 0,
            "the claim script ran on master {master}: {before:?} -> {after:?}"
        );
    }
    assert_eq!(after.len(), 3, "three masters");
    let rows = persisted_once(&apps[1], sale).await;
    let persisted: HashSet<String> = rows
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    assert_eq!(
        persisted, accepted,
        "every accepted claim is persisted, and only those"
    );
    for app in &apps {
        let c = app.admin_get(&format!("/v1/campaigns/{sale}")).await;
        assert_eq!(c["remaining"], 0);
        assert_eq!(c["buckets"], 3, "the campaign echoes its buckets");
    }

    // A red packet in 3 buckets: 1,000 packets for 2,000 users; the amounts add up.
    let packet = apps[1]
        .create(json!({"kind": "red_packet", "name": "cluster packet", "total_cents": 500_000, "count": 1000, "buckets": 3}))
        .await;
    let replies = crowd(&apps, packet, 2_000, 1).await;
    let won: Vec<&Value> = replies
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| &b["claim"])
        .collect();
    assert_eq!(won.len(), 1_000, "every packet is handed out, once");
    let rows = persisted_once(&apps[0], packet).await;
    assert_eq!(rows.len(), 1_000);
    let cents: u64 = rows.iter().filter_map(|r| r["amount_cents"].as_u64()).sum();
    assert_eq!(cents, 500_000, "the packets sum exactly to the total");

    // The load generator drives both apis at once (--target twice) and audits the sale.
    let report = stampede_loadgen::scenario::flash::run(&loadgen_flash(&apis))
        .await
        .expect("loadgen flash");
    assert!(
        report.passed(),
        "the load generator's audit: {:?}",
        report.audit
    );
}

/// `stampede-loadgen flash --target API1 --target API2 --buckets 3` as a library call.
fn loadgen_flash(apis: &[Process]) -> stampede_loadgen::scenario::flash::FlashArgs {
    use stampede_loadgen::scenario::{Common, Crowd};
    stampede_loadgen::scenario::flash::FlashArgs {
        common: Common {
            target: apis
                .iter()
                .map(|p| format!("http://{}", p.addr.expect("serves")))
                .collect(),
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
            users: 2_000,
            dup_fraction: 0.3,
            seed: 11,
            rate: None,
            user_prefix: None,
        },
        stock: 500,
        per_user: 1,
        quantity: 1,
        drain_timeout: Duration::from_secs(30),
        buckets: 3,
        orders: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_during_a_crowd_loses_nothing_answered_and_refuses_only_during_the_failover(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut deps = Deps::new(Backend::Cluster).await;
    let mut config = deps.config();
    config.redis_wait_replicas = 1;
    let app = Arc::new(TestApp::start(&config).await);
    let sale = app
        .create(json!({"kind": "flash_sale", "name": "failover", "stock": 1_000_000}))
        .await;
    let cluster = deps.cluster.as_mut().expect("cluster");
    let victim = cluster.master_of(&keys::state(sale));
    // A fresh cluster's replicas may still be syncing, and with WAIT 1 a claim then
    // answers 503: the crowd starts once one claim goes through, so that a 503 before the
    // kill means what the test says.
    let deadline = Instant::now() + Duration::from_secs(30);
    // (200: an earlier try was accepted though its WAIT timed out.)
    while !matches!(
        app.claim(sale, &app.token("warm-up"), None).await.0,
        200 | 201
    ) {
        assert!(Instant::now() < deadline, "the cluster never took a claim");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A steady crowd of new users for 14 s; the campaign's master dies after 4 s.
    let started = Instant::now();
    let crowd_for = Duration::from_secs(16);
    let mut tasks = Vec::new();
    for lane in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut n = 0;
            while started.elapsed() < crowd_for {
                let token = app.token(&format!("l{lane}-{n}"));
                n += 1;
                let sent = Instant::now();
                let (status, body) = app.claim(sale, &token, None).await;
                seen.push((status, body, sent.elapsed(), started.elapsed()));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.kill(victim);
    let killed_at = started.elapsed();
    // Its replica takes over; with STAMPEDE_REDIS_WAIT_REPLICAS=1 claims then wait for
    // the new master to have a replica again: the killed node rejoins as one.
    tokio::task::block_in_place(|| {
        cluster.wait_for_failover(victim, Duration::from_secs(30));
        cluster.restart(victim);
        cluster.wait_for_replicas(Duration::from_secs(30));
    });
    let recovered_at = started.elapsed();
    eprintln!("killed at {killed_at:?}, replicated again at {recovered_at:?}");

    let mut answered = HashSet::new();
    let mut unavailable = Vec::new();
    let mut accepted_after = 0;
    // Statuses per second of the run, printed for whoever reads a failure.
    let mut timeline: std::collections::BTreeMap<(u64, u16), u64> = Default::default();
    for t in tasks {
        for (status, body, took, at) in t.await.expect("lane") {
            *timeline.entry((at.as_secs(), status)).or_default() += 1;
            assert!(took < Duration::from_secs(3), "a claim hung for {took:?}");
            match status {
                201 => {
                    answered.insert(body["claim"]["id"].as_str().unwrap_or("").to_string());
                    if at > recovered_at + Duration::from_secs(2) {
                        accepted_after += 1;
                    }
                }
                503 => unavailable.push(at),
                other => panic!("unexpected {other} at {at:?}: {body}"),
            }
        }
    }
    eprintln!("statuses by second: {timeline:?}");
    assert!(accepted_after > 0, "claims go on after the failover");
    for at in &unavailable {
        assert!(
            *at + Duration::from_secs(1) >= killed_at
                && *at <= recovered_at + Duration::from_secs(3),
            "a 503 at {at:?} outside the failover ({killed_at:?}..{recovered_at:?})"
        );
    }
    let rows = persisted_once(&app, sale).await;
    let persisted: HashSet<String> = rows
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    let lost: Vec<&String> = answered.difference(&persisted).collect();
    assert!(
        lost.is_empty(),
        "claims answered 201 and lost in the failover: {lost:?}"
    );
    assert!(rows.len() <= 1_000_000);
}

/// The sold-out flag crosses api processes on a cluster too (a plain PUBLISH reaches the
/// subscribers of every node): once one api sees a bucketed sale sell out, the other
/// refuses newcomers without running the claim script on any master.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sold_out_flag_reaches_another_api_over_the_cluster() {
    let _one = ONE_AT_A_TIME.lock().await;
    let deps = Deps::new(Backend::Cluster).await;
    let mut config = deps.config();
    // Long enough that the flag the signal armed is still trusted when the test asks.
    config.sold_out_ttl_ms = 30_000;
    let first = TestApp::start(&config).await;
    let second = TestApp::start_in(&config, stampede_api::startup::Mode::Api, None).await;
    let sale = first
        .create(json!({"kind": "flash_sale", "name": "flag", "stock": 20, "buckets": 3}))
        .await;
    // The second instance reads the campaign once, so it holds its row.
    let (status, _) = second.claim(sale, &second.token("early"), None).await;
    assert_eq!(status, 201);
    let mut sold = 1;
    for u in 0..60 {
        let (status, body) = first
            .claim(sale, &first.token(&format!("u{u}")), None)
            .await;
        match status {
            201 => sold += 1,
            409 => assert_eq!(body["error"]["code"], "sold_out"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(sold, 20, "exactly the stock");
    let cluster = deps.cluster.as_ref().expect("cluster");
    // The second instance has not asked the store since the sale sold out: only the
    // signal can tell it. Its very first refusals must cost no claim script. The first
    // instance's workers run scripts of their own (acks, claim lists) while they drain
    // the 20 claims: let them finish, so that only claims can move the count.
    first.wait_drained(sale).await;
    let before = quiet_script_calls(cluster).await;
    for u in 0..50 {
        let (status, body) = second
            .claim(sale, &second.token(&format!("late{u}")), None)
            .await;
        assert_eq!(status, 409, "{body}");
    }
    let after: u64 = cluster.calls_per_master("evalsha").values().sum();
    assert_eq!(
        after - before,
        0,
        "the second api refused from its flag, told over pub/sub"
    );
    // A holder still reaches the store and hears already_claimed.
    let (status, _) = second.claim(sale, &second.token("early"), None).await;
    assert_eq!(status, 200);
    // The user's claim page, filled and refreshed across processes, shows the claim.
    let page = second.user_get("early", "/v1/me/claims").await;
    assert_eq!(page["claims"].as_array().map(Vec::len), Some(1), "{page}");
}

/// The scripts run on the cluster's masters so far, once the count has stood still for
/// half a second (the workers are done with what they had).
async fn quiet_script_calls(cluster: &stampede_engine::testkit::TestCluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: u64 = cluster.calls_per_master("evalsha").values().sum();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now: u64 = cluster.calls_per_master("evalsha").values().sum();
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "scripts kept running on the cluster"
        );
        last = now;
    }
}
