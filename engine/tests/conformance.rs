//! The store conformance suite: every test runs against the in-process store, the
//! Redis store on a redis-server of its own, and the Redis store on a Redis Cluster of
//! its own (3 masters, 3 replicas), which must all behave the same.
//! Each invariant of the README's "Guarantees" that lives in the store has a test here that would
//! catch its breach: no oversell, the per-user limit, no gap between deduct and
//! enqueue (the queue holds exactly the accepted claims), red packets adding up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use stampede_engine::campaign::{Campaign, CampaignKind};
use stampede_engine::claim::{Claim, ClaimEvent, ClaimOutcome, ClaimRequest};
use stampede_engine::queue::memory::MemoryQueue;
use stampede_engine::queue::redis::RedisQueue;
use stampede_engine::queue::{Delivery, Queue};
use stampede_engine::rebuild::live_state;
use stampede_engine::redis_conn::RedisTarget;
use stampede_engine::request_id::RequestId;
use stampede_engine::store::memory::MemoryStore;
use stampede_engine::store::redis::{connect, RedisStore};
use stampede_engine::store::Store;
use stampede_engine::testkit::{TestCluster, TestRedis};

const NOW: i64 = 1_800_000_000_000;

/// A store and its queue, and the Redis server behind them (if any).
struct Harness {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    _redis: Option<TestRedis>,
    _cluster: Option<TestCluster>,
}

async fn memory() -> Harness {
    let q = Arc::new(MemoryQueue::default());
    Harness {
        store: Arc::new(MemoryStore::new(q.clone())),
        queue: Arc::new(q),
        _redis: None,
        _cluster: None,
    }
}

async fn redis() -> Harness {
    let server = TestRedis::start();
    let conn = connect(&server.url(), Duration::from_secs(2))
        .await
        .expect("connect");
    Harness {
        store: Arc::new(RedisStore::new(conn.clone())),
        queue: Arc::new(RedisQueue::single(
            &server.url(),
            Duration::from_secs(2),
            conn,
        )),
        _redis: Some(server),
        _cluster: None,
    }
}

async fn cluster() -> Harness {
    let cluster = tokio::task::spawn_blocking(TestCluster::start)
        .await
        .expect("cluster");
    let (store, queue) = cluster_store(&cluster).await;
    Harness {
        store: Arc::new(store),
        queue: Arc::new(queue),
        _redis: None,
        _cluster: Some(cluster),
    }
}

/// A store and a queue on `cluster`, as one api process has them. The bound on each call
/// (which on a cluster also bounds its re-sends) is 10 s, not the 2 s of one Redis: the
/// races here fire thousands of claims at the store at once, uncoalesced, and on a
/// bucketed campaign each may take many round trips to six servers on two cores.
async fn cluster_store(cluster: &TestCluster) -> (RedisStore, RedisQueue) {
    let target = RedisTarget::Cluster(cluster.seeds());
    let conn = target
        .connect(Duration::from_secs(10))
        .await
        .expect("connect");
    (
        RedisStore::new(conn.clone()),
        RedisQueue::new(target, Duration::from_secs(10), conn),
    )
}

/// Another api process's Redis store on the harness's Redis or cluster (for the calls
/// only the Redis store has).
async fn redis_store_of(h: &Harness) -> RedisStore {
    RedisStore::new(raw_conn(h).await)
}

/// A connection of the test's own to the harness's Redis or cluster.
async fn raw_conn(h: &Harness) -> stampede_engine::redis_conn::RedisConn {
    let target = match (&h._redis, &h._cluster) {
        (Some(r), _) => RedisTarget::Single(r.url()),
        (_, Some(c)) => RedisTarget::Cluster(c.seeds()),
        _ => panic!("a Redis harness"),
    };
    // 10 s, as `cluster_store` says why.
    target
        .connect(Duration::from_secs(10))
        .await
        .expect("connect")
}

/// Runs one test body once per named backend (the harness functions above), each as
/// its own test: `mod NAME { fn memory, fn redis, fn cluster }`.
macro_rules! on_backends {
    ($name:ident, $body:ident, [$($backend:ident),+]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $backend() {
                    super::$body(super::$backend().await).await;
                }
            )+
        }
    };
}

/// Runs one conformance test against every store.
macro_rules! conformance {
    ($name:ident, $body:ident) => {
        on_backends!($name, $body, [memory, redis, cluster]);
    };
}

/// Runs one Redis-only test (what the in-process store has no counterpart of) on one
/// Redis and on a cluster.
macro_rules! on_redis_and_cluster {
    ($name:ident, $body:ident) => {
        on_backends!($name, $body, [redis, cluster]);
    };
}

/// The claim a delivery carries (these tests queue claims only).
fn claim_in(d: &Delivery) -> &Claim {
    d.claim().expect("a claim event")
}

fn flash(id: u64, stock: u64, limit: u64) -> Campaign {
    Campaign {
        id,
        kind: CampaignKind::FlashSale,
        name: "flash".into(),
        total: stock,
        per_user_limit: limit,
        price_cents: 100,
        total_cents: 0,
        min_cents: 0,
        split_seed: 0,
        starts_at_ms: NOW - 1_000,
        ends_at_ms: NOW + 3_600_000,
        created_at_ms: NOW - 2_000,
        ticket_required: false,
        ticket_lead_secs: 5,
        buckets: 1,
        payment_window_secs: None,
    }
}

fn red_packet(id: u64, total_cents: u64, count: u64) -> Campaign {
    Campaign {
        kind: CampaignKind::RedPacket,
        per_user_limit: 1,
        total: count,
        total_cents,
        min_cents: 1,
        split_seed: 12345,
        ..flash(id, count, 1)
    }
}

async fn load(h: &Harness, c: &Campaign) {
    h.store.load(&live_state(c, &[])).await.expect("load");
}

fn req(user: &str, quantity: u64) -> ClaimRequest {
    ClaimRequest {
        user_id: user.to_string(),
        quantity,
        request_id: None,
    }
}

/// Fires all requests at once, each as its own task, and collects the outcomes.
async fn race(h: &Harness, campaign_id: u64, requests: Vec<ClaimRequest>) -> Vec<ClaimOutcome> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let store = h.store.clone();
            tokio::spawn(async move { store.claim(campaign_id, NOW, r).await.expect("claim") })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Everything in the queue, taken by one consumer and acknowledged.
async fn drain(h: &Harness) -> Vec<Delivery> {
    let mut consumer = h.queue.consumer("test-drain").await.expect("consumer");
    let mut all = Vec::new();
    loop {
        let batch = consumer
            .fetch(1_000, Duration::from_millis(200))
            .await
            .expect("fetch");
        if batch.is_empty() {
            break;
        }
        consumer.ack(&batch).await.expect("ack");
        all.extend(batch);
    }
    all
}

fn accepted(outcomes: &[ClaimOutcome]) -> Vec<Claim> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            ClaimOutcome::Accepted(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

async fn racing_claims_never_oversell_and_every_accepted_claim_is_queued(h: Harness) {
    let c = flash(1, 500, 1);
    load(&h, &c).await;
    let mut requests: Vec<ClaimRequest> = (0..2_000)
        .flat_map(|u| [req(&format!("u{u}"), 1), req(&format!("u{u}"), 1)])
        .collect();
    requests.shuffle(&mut rand::rng());
    let outcomes = race(&h, 1, requests).await;
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 500, "exactly the stock is accepted");
    let users: HashSet<&str> = won.iter().map(|c| c.user_id.as_str()).collect();
    assert_eq!(users.len(), 500, "no user wins twice");
    let ids: HashSet<&str> = won.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 500, "claim ids are unique");
    for o in &outcomes {
        assert!(
            matches!(
                o,
                ClaimOutcome::Accepted(_) | ClaimOutcome::AlreadyClaimed(_) | ClaimOutcome::SoldOut
            ),
            "unexpected {o:?}"
        );
    }
    let k = h.store.counters(1).await.expect("counters").expect("state");
    assert_eq!((k.remaining, k.claims, k.sold), (0, 500, 500));
    assert_eq!(h.queue.backlog(1).await.expect("backlog"), 500);
    let queued: Vec<Claim> = drain(&h)
        .await
        .into_iter()
        .map(|d| claim_in(&d).clone())
        .collect();
    let mut queued_sorted = queued.clone();
    queued_sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut won_sorted = won.clone();
    won_sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        queued_sorted, won_sorted,
        "the queue holds exactly the accepted claims"
    );
    assert_eq!(
        h.queue.backlog(1).await.expect("backlog"),
        0,
        "acknowledged events leave the backlog"
    );
}
conformance!(
    flash_race,
    racing_claims_never_oversell_and_every_accepted_claim_is_queued
);

async fn red_packets_add_up_exactly(h: Harness) {
    let c = red_packet(2, 100_000, 300);
    load(&h, &c).await;
    let requests: Vec<ClaimRequest> = (0..1_000).map(|u| req(&format!("u{u}"), 1)).collect();
    let outcomes = race(&h, 2, requests).await;
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 300);
    assert_eq!(won.iter().map(|c| c.amount_cents).sum::<u64>(), 100_000);
    assert!(won.iter().all(|c| c.amount_cents >= 1 && c.quantity == 1));
    let packets: HashSet<i64> = won.iter().map(|c| c.packet_idx).collect();
    assert_eq!(packets.len(), 300, "each packet handed out once");
    let k = h.store.counters(2).await.expect("counters").expect("state");
    assert_eq!((k.remaining, k.cents), (0, 100_000));
    assert_eq!(drain(&h).await.len(), 300);
}
conformance!(red_packet_race, red_packets_add_up_exactly);

async fn a_per_user_limit_above_one_holds_under_racing_requests(h: Harness) {
    let c = flash(3, 1_000, 3);
    load(&h, &c).await;
    let outcomes = race(&h, 3, (0..40).map(|_| req("racer", 1)).collect()).await;
    assert_eq!(accepted(&outcomes).len(), 3);
    let dup = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::AlreadyClaimed(_)))
        .count();
    assert_eq!(dup, 37);
    let rec = h
        .store
        .user_record(3, "racer")
        .await
        .expect("record")
        .expect("exists");
    assert_eq!(rec.held, 3);
    // Quantities race too: 2 + 2 can never both pass a limit of 3.
    let outcomes = race(&h, 3, (0..20).map(|_| req("pair", 2)).collect()).await;
    assert_eq!(accepted(&outcomes).len(), 1);
    assert!(outcomes.contains(&ClaimOutcome::OverLimit { may_take: 1 }));
}
conformance!(
    per_user_limit_race,
    a_per_user_limit_above_one_holds_under_racing_requests
);

async fn a_retry_repeats_the_original_claim(h: Harness) {
    load(&h, &flash(4, 10, 1)).await;
    let first = h.store.claim(4, NOW, req("u1", 1)).await.expect("claim");
    let ClaimOutcome::Accepted(claim) = first else {
        panic!("{first:?}")
    };
    assert_eq!(claim.id, "c4-0000000001");
    let again = h
        .store
        .claim(4, NOW + 5, req("u1", 1))
        .await
        .expect("claim");
    assert_eq!(again, ClaimOutcome::AlreadyClaimed(claim));
}
conformance!(retry, a_retry_repeats_the_original_claim);

async fn the_time_window_and_close_are_enforced(h: Harness) {
    let c = flash(5, 10, 1);
    load(&h, &c).await;
    assert_eq!(
        h.store
            .claim(5, c.starts_at_ms - 1, req("u", 1))
            .await
            .expect("claim"),
        ClaimOutcome::NotStarted
    );
    assert_eq!(
        h.store
            .claim(5, c.ends_at_ms, req("u", 1))
            .await
            .expect("claim"),
        ClaimOutcome::Ended
    );
    h.store.close(5, NOW).await.expect("close");
    assert_eq!(
        h.store.claim(5, NOW, req("u", 1)).await.expect("claim"),
        ClaimOutcome::Ended
    );
    // Closing never moves the end later.
    h.store.close(5, NOW + 10_000).await.expect("close");
    assert_eq!(
        h.store.counters(5).await.expect("c").expect("s").ends_at_ms,
        NOW
    );
    // Closing an unknown campaign creates nothing.
    h.store.close(99, NOW).await.expect("close");
    assert_eq!(h.store.counters(99).await.expect("c"), None);
}
conformance!(window, the_time_window_and_close_are_enforced);

async fn quantities_are_checked_against_limit_and_stock(h: Harness) {
    load(&h, &flash(6, 5, 4)).await;
    assert_eq!(
        h.store.claim(6, NOW, req("a", 5)).await.expect("claim"),
        ClaimOutcome::OverLimit { may_take: 4 }
    );
    assert!(matches!(
        h.store.claim(6, NOW, req("a", 3)).await.expect("claim"),
        ClaimOutcome::Accepted(_)
    ));
    assert_eq!(
        h.store.claim(6, NOW, req("b", 3)).await.expect("claim"),
        ClaimOutcome::SoldOut
    );
    assert!(matches!(
        h.store.claim(6, NOW, req("b", 2)).await.expect("claim"),
        ClaimOutcome::Accepted(_)
    ));
    assert_eq!(
        h.store.claim(6, NOW, req("c", 1)).await.expect("claim"),
        ClaimOutcome::SoldOut
    );
    // A winner who retries after the sell-out still hears about their claim.
    assert!(matches!(
        h.store.claim(6, NOW, req("a", 1)).await.expect("claim"),
        ClaimOutcome::Accepted(_) | ClaimOutcome::SoldOut
    ));
}
conformance!(quantities, quantities_are_checked_against_limit_and_stock);

async fn an_unknown_campaign_is_missing(h: Harness) {
    assert_eq!(
        h.store.claim(77, NOW, req("u", 1)).await.expect("claim"),
        ClaimOutcome::Missing
    );
    assert_eq!(h.store.counters(77).await.expect("counters"), None);
}
conformance!(missing, an_unknown_campaign_is_missing);

async fn a_batch_is_decided_in_order_in_one_step(h: Harness) {
    load(&h, &flash(8, 2, 1)).await;
    let out = h
        .store
        .claim_batch(
            8,
            NOW,
            &[req("a", 1), req("a", 1), req("b", 1), req("c", 1)],
        )
        .await
        .expect("batch");
    assert!(matches!(out[0], ClaimOutcome::Accepted(_)));
    assert!(matches!(out[1], ClaimOutcome::AlreadyClaimed(_)));
    assert!(matches!(out[2], ClaimOutcome::Accepted(_)));
    assert_eq!(out[3], ClaimOutcome::SoldOut);
    assert_eq!(drain(&h).await.len(), 2);
}
conformance!(batch, a_batch_is_decided_in_order_in_one_step);

async fn a_reload_keeps_winners_and_continues_the_sequence(h: Harness) {
    let c = flash(9, 3, 1);
    load(&h, &c).await;
    let ClaimOutcome::Accepted(first) = h.store.claim(9, NOW, req("w", 1)).await.expect("claim")
    else {
        panic!("first claim refused")
    };
    // As after a store loss: rebuild from the (persisted) claims.
    h.store
        .load(&live_state(&c, std::slice::from_ref(&first)))
        .await
        .expect("reload");
    assert_eq!(
        h.store.claim(9, NOW, req("w", 1)).await.expect("claim"),
        ClaimOutcome::AlreadyClaimed(first)
    );
    let ClaimOutcome::Accepted(next) = h.store.claim(9, NOW, req("x", 1)).await.expect("claim")
    else {
        panic!("second claim refused")
    };
    assert_eq!(next.id, "c9-0000000002");
    assert_eq!(
        h.store.counters(9).await.expect("c").expect("s").remaining,
        1
    );
}
conformance!(reload, a_reload_keeps_winners_and_continues_the_sequence);

async fn a_dead_consumers_events_are_reclaimed_by_another(h: Harness) {
    load(&h, &flash(10, 50, 1)).await;
    for u in 0..50 {
        h.store
            .claim(10, NOW, req(&format!("u{u}"), 1))
            .await
            .expect("claim");
    }
    let mut dead = h.queue.consumer("dead").await.expect("consumer");
    let taken = dead
        .fetch(20, Duration::from_millis(200))
        .await
        .expect("fetch");
    assert_eq!(taken.len(), 20);
    drop(dead); // never acknowledges
    let mut alive = h.queue.consumer("alive").await.expect("consumer");
    let reclaimed = alive
        .reclaim(Duration::from_millis(0), 1_000)
        .await
        .expect("reclaim");
    let ids = |v: &[Delivery]| {
        v.iter()
            .map(|d| claim_in(d).id.clone())
            .collect::<HashSet<_>>()
    };
    assert_eq!(ids(&reclaimed), ids(&taken));
    alive.ack(&reclaimed).await.expect("ack");
    let rest = alive
        .fetch(1_000, Duration::from_millis(200))
        .await
        .expect("fetch");
    assert_eq!(rest.len(), 30);
    alive.ack(&rest).await.expect("ack");
    assert_eq!(h.queue.backlog(10).await.expect("backlog"), 0);
    let by_user: HashMap<String, usize> =
        reclaimed
            .iter()
            .chain(&rest)
            .fold(HashMap::new(), |mut m, d| {
                *m.entry(claim_in(d).user_id.clone()).or_default() += 1;
                m
            });
    assert_eq!(by_user.len(), 50);
}
on_redis_and_cluster!(reclaim, a_dead_consumers_events_are_reclaimed_by_another);

async fn coalesced_racing_claims_keep_every_invariant(h: Harness) {
    use stampede_engine::coalescer::Coalescer;
    // The coalescer stamps claims with the real clock.
    let now = stampede_engine::clock::now_ms();
    let c = Campaign {
        starts_at_ms: now - 1_000,
        ends_at_ms: now + 3_600_000,
        ..flash(11, 300, 2)
    };
    load(&h, &c).await;
    let coalescer = Arc::new(Coalescer::new(
        h.store.clone(),
        16,
        2,
        Duration::from_secs(5),
    ));
    let mut requests: Vec<ClaimRequest> = (0..400)
        .flat_map(|u| {
            [
                req(&format!("u{u}"), 1),
                req(&format!("u{u}"), 1),
                req(&format!("u{u}"), 1),
            ]
        })
        .collect();
    requests.shuffle(&mut rand::rng());
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let co = coalescer.clone();
            tokio::spawn(async move { co.claim(11, 0, r).await.expect("claim") })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 300);
    let mut per_user: HashMap<&str, u64> = HashMap::new();
    for w in &won {
        *per_user.entry(w.user_id.as_str()).or_default() += w.quantity;
    }
    assert!(per_user.values().all(|&n| n <= 2), "nobody over the limit");
    assert_eq!(drain(&h).await.len(), 300);
}
conformance!(coalesced_race, coalesced_racing_claims_keep_every_invariant);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_script_is_reloaded_after_a_script_flush() {
    let h = redis().await;
    load(&h, &flash(12, 5, 1)).await;
    assert!(matches!(
        h.store.claim(12, NOW, req("a", 1)).await.expect("claim"),
        ClaimOutcome::Accepted(_)
    ));
    let url = h._redis.as_ref().map(TestRedis::url).unwrap_or_default();
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("flush");
    // EVALSHA now answers NOSCRIPT; the store loads the script again and goes on.
    assert!(matches!(
        h.store.claim(12, NOW, req("b", 1)).await.expect("claim"),
        ClaimOutcome::Accepted(_)
    ));
}

async fn the_signin_step_tells_the_first_request_from_repeats(h: Harness) {
    use stampede_engine::signin::{Month, SigninRecord};
    use stampede_engine::store::SigninMark;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
    let month = Month::of(day);
    assert_eq!(
        h.store.signin_calendar("u1", month).await.expect("cal"),
        None
    );
    assert_eq!(
        h.store.signin_mark("u1", day).await.expect("mark"),
        SigninMark::First
    );
    assert_eq!(
        h.store.signin_mark("u1", day).await.expect("mark"),
        SigninMark::Pending
    );
    let rec = SigninRecord {
        day,
        points_awarded: 15,
        streak: 2,
        balance: 25,
    };
    h.store.signin_remember("u1", &rec).await.expect("remember");
    assert_eq!(
        h.store.signin_mark("u1", day).await.expect("mark"),
        SigninMark::Done(rec)
    );
    // The bitmap the sign-in step created is not known to be complete yet.
    assert_eq!(
        h.store.signin_calendar("u1", month).await.expect("cal"),
        None
    );
    h.store
        .signin_calendar_fill("u1", month, &[1, 21, 31])
        .await
        .expect("fill");
    assert_eq!(
        h.store.signin_calendar("u1", month).await.expect("cal"),
        Some(vec![1, 21, 22, 31])
    );
    // The next day: first again, and the complete bitmap stays complete.
    let next = day.succ_opt().expect("next");
    assert_eq!(
        h.store.signin_mark("u1", next).await.expect("mark"),
        SigninMark::First
    );
    assert_eq!(
        h.store.signin_calendar("u1", month).await.expect("cal"),
        Some(vec![1, 21, 22, 23, 31])
    );
    // Users do not see each other.
    assert_eq!(
        h.store.signin_mark("u2", day).await.expect("mark"),
        SigninMark::First
    );
    assert_eq!(
        h.store.signin_calendar("u2", month).await.expect("cal"),
        None
    );
}
conformance!(
    signin_marks,
    the_signin_step_tells_the_first_request_from_repeats
);

async fn a_campaign_closed_before_its_start_has_ended(h: Harness) {
    let c = Campaign {
        starts_at_ms: NOW + 60_000,
        ..flash(13, 5, 1)
    };
    load(&h, &c).await;
    assert_eq!(
        h.store
            .claim(13, NOW, req("early", 1))
            .await
            .expect("claim"),
        ClaimOutcome::NotStarted
    );
    h.store.close(13, NOW).await.expect("close");
    assert_eq!(
        h.store
            .claim(13, NOW, req("early", 1))
            .await
            .expect("claim"),
        ClaimOutcome::Ended
    );
}
conformance!(closed_early, a_campaign_closed_before_its_start_has_ended);

/// A dead letter leaves the backlog, is counted and listed with its reason, and a
/// replay puts exactly that claim back in the queue.
async fn a_dead_letter_is_set_aside_and_replayed(h: Harness) {
    load(&h, &flash(11, 10, 1)).await;
    for u in 0..3 {
        h.store
            .claim(11, NOW, req(&format!("u{u}"), 1))
            .await
            .expect("claim");
    }
    let mut c = h.queue.consumer("w").await.expect("consumer");
    let batch = c
        .fetch(10, Duration::from_millis(200))
        .await
        .expect("fetch");
    assert_eq!(batch.len(), 3);
    c.dead_letter(&batch[1], "refused by the database")
        .await
        .expect("set aside");
    c.ack(&[batch[0].clone(), batch[2].clone()])
        .await
        .expect("ack");
    assert_eq!(h.queue.backlog(11).await.expect("backlog"), 0);
    assert_eq!(h.queue.dead_letters(11).await.expect("dead"), 1);
    assert_eq!(h.queue.total_dead_letters().await.expect("all dead"), 1);
    let listed = h.queue.dead_letter_list(11, 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason, "refused by the database");
    assert_eq!(
        ClaimEvent::decode(&listed[0].event)
            .map(|e| e.claim)
            .as_ref(),
        Some(claim_in(&batch[1]))
    );
    assert_eq!(
        h.queue.replay_dead_letters(11, 10).await.expect("replay"),
        1
    );
    assert_eq!(h.queue.dead_letters(11).await.expect("dead"), 0);
    assert_eq!(h.queue.total_dead_letters().await.expect("all dead"), 0);
    assert_eq!(h.queue.backlog(11).await.expect("backlog"), 1);
    let again = c
        .fetch(10, Duration::from_millis(500))
        .await
        .expect("fetch");
    assert_eq!(again.len(), 1);
    assert_eq!(claim_in(&again[0]), claim_in(&batch[1]));
    c.ack(&again).await.expect("ack");
    assert_eq!(h.queue.backlog(11).await.expect("backlog"), 0);
}
conformance!(dead_letters, a_dead_letter_is_set_aside_and_replayed);

/// An entry a worker cannot read, or one naming another campaign than its stream's,
/// goes to the dead letters at once instead of blocking the stream.
async fn unreadable_events_go_to_the_dead_letters(h: Harness) {
    load(&h, &flash(12, 10, 1)).await;
    h.store.claim(12, NOW, req("good", 1)).await.expect("claim");
    let mut conn = raw_conn(&h).await;
    let stream = stampede_engine::store::keys::stream(12);
    for event in ["garbage", "13|c13-0000000001|x|1|0|-1|1"] {
        let _: String = redis::AsyncCommands::xadd(&mut conn, &stream, "*", &[("e", event)])
            .await
            .expect("xadd");
    }
    let mut c = h.queue.consumer("w").await.expect("consumer");
    let batch = c
        .fetch(10, Duration::from_millis(200))
        .await
        .expect("fetch");
    assert_eq!(batch.len(), 1);
    assert_eq!(claim_in(&batch[0]).user_id, "good");
    assert_eq!(h.queue.dead_letters(12).await.expect("dead"), 2);
    let listed = h.queue.dead_letter_list(12, 10).await.expect("list");
    assert!(listed.iter().all(|d| d.reason == "unreadable event"));
}
on_redis_and_cluster!(unreadable, unreadable_events_go_to_the_dead_letters);
async fn the_request_id_travels_with_the_claim_event(h: Harness) {
    let c = flash(14, 10, 1);
    load(&h, &c).await;
    let traced = RequestId::parse("req-14.a_B").expect("id");
    let requests = vec![
        ClaimRequest {
            request_id: Some(traced),
            ..req("traced", 1)
        },
        req("bare", 1),
        // Refused claims enqueue nothing, with or without an id.
        ClaimRequest {
            request_id: Some(RequestId::generate()),
            ..req("traced", 1)
        },
    ];
    let outcomes = h
        .store
        .claim_batch(14, NOW, &requests)
        .await
        .expect("claims");
    assert_eq!(accepted(&outcomes).len(), 2, "{outcomes:?}");
    let mut events: Vec<(String, Option<RequestId>)> = drain(&h)
        .await
        .into_iter()
        .map(|d| (claim_in(&d).user_id.clone(), d.request_id()))
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        events,
        vec![
            ("bare".to_string(), None),
            ("traced".to_string(), Some(traced))
        ]
    );
}
conformance!(request_ids, the_request_id_travels_with_the_claim_event);

/// A Redis store of its own on `server`: another api process's view of the same Redis.
async fn process_on(server: &TestRedis) -> RedisStore {
    let conn = connect(&server.url(), Duration::from_secs(2))
        .await
        .expect("connect");
    RedisStore::new(conn)
}

/// The keys' values as `DUMP` has them: a snapshot to put back with [`restore_keys`],
/// so the store comes back older than a process saw it.
async fn dump_keys<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    keys: impl IntoIterator<Item = String>,
) -> Vec<(String, Vec<u8>)> {
    let mut snapshot = Vec::new();
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("DUMP");
        snapshot.push((key, dump));
    }
    snapshot
}

async fn restore_keys<C: redis::aio::ConnectionLike>(conn: &mut C, snapshot: &[(String, Vec<u8>)]) {
    for (key, dump) in snapshot {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(dump.as_slice())
            .arg("REPLACE")
            .query_async(conn)
            .await
            .expect("RESTORE");
    }
}

async fn accepted_on(store: &dyn Store, campaign_id: u64, user: &str) -> Claim {
    match store
        .claim(campaign_id, NOW, req(user, 1))
        .await
        .expect("claim")
    {
        ClaimOutcome::Accepted(c) => c,
        other => panic!("{user} refused: {other:?}"),
    }
}

/// A store that comes back older than it was (an RDB snapshot, a lagging AOF, a failover
/// to a replica that missed writes) would sell again what it forgot and hand out claim
/// ids the database already holds. Here the campaign's keys are put back as they were
/// after two of four claims (DUMP, RESTORE), as a restart from a snapshot would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_older_than_a_process_saw_refuses_claims_until_reloaded() {
    use stampede_engine::store::keys;
    let server = TestRedis::start();
    let a = process_on(&server).await;
    let c = flash(21, 5, 1);
    a.load(&live_state(&c, &[])).await.expect("load");
    let mut sold = vec![
        accepted_on(&a, 21, "u1").await,
        accepted_on(&a, 21, "u2").await,
    ];

    let mut raw = redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let snapshot = dump_keys(&mut raw, [keys::state(21), keys::users(21)]).await;
    sold.push(accepted_on(&a, 21, "u3").await);
    sold.push(accepted_on(&a, 21, "u4").await);
    restore_keys(&mut raw, &snapshot).await;

    assert_eq!(
        a.claim(21, NOW, req("u5", 1)).await.expect("claim"),
        ClaimOutcome::Missing,
        "the process that saw seq 4 refuses a state at seq 2"
    );
    // A process that never saw the newer state is refused too: the state is marked.
    let b = process_on(&server).await;
    assert_eq!(
        b.claim(21, NOW, req("u6", 1)).await.expect("claim"),
        ClaimOutcome::Missing
    );
    assert_eq!(a.counters(21).await.expect("counters"), None, "as if lost");
    assert_eq!(b.counters(21).await.expect("counters"), None);

    // The rebuild from the database (which holds all four) makes it claimable again,
    // with exactly the one unit left.
    b.load(&live_state(&c, &sold)).await.expect("rebuild");
    let fifth = accepted_on(&a, 21, "u5").await;
    assert_eq!(
        fifth.id, "c21-0000000005",
        "no claim id is handed out twice"
    );
    assert_eq!(
        b.claim(21, NOW, req("u6", 1)).await.expect("claim"),
        ClaimOutcome::SoldOut
    );
}

/// A rebuild by another process may lower the sequence (claims the database never got
/// are gone with the store): that is a new state, not a rollback, and claims go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_lower_sequence_by_another_process_is_not_a_rollback() {
    let server = TestRedis::start();
    let a = process_on(&server).await;
    let b = process_on(&server).await;
    let c = flash(22, 10, 1);
    a.load(&live_state(&c, &[])).await.expect("load");
    let first = accepted_on(&a, 22, "u1").await;
    accepted_on(&a, 22, "u2").await;
    accepted_on(&a, 22, "u3").await;
    b.load(&live_state(&c, std::slice::from_ref(&first)))
        .await
        .expect("rebuild");
    let next = accepted_on(&a, 22, "u4").await;
    assert_eq!(next.id, "c22-0000000002");
    assert_eq!(
        a.counters(22)
            .await
            .expect("counters")
            .expect("live")
            .remaining,
        8
    );
}

/// Invariant 8: the same claim batch sent twice (as a client library re-sends a call whose
/// reply it lost) accepts nothing the second time and answers what the first run did,
/// also for a user whose limit leaves room for more.
async fn a_repeated_claim_batch_accepts_nothing_twice(h: Harness) {
    let (store, h) = (redis_store_of(&h).await, &h);
    let c = flash(30, 10, 3);
    load(h, &c).await;
    let batch = vec![req("u1", 1), req("u1", 1), req("u2", 2)];
    let first = store
        .claim_batch_as(30, NOW, &batch, "batch-1")
        .await
        .expect("first run");
    assert_eq!(accepted(&first).len(), 3);
    let again = store
        .claim_batch_as(30, NOW, &batch, "batch-1")
        .await
        .expect("the same batch again");
    assert_eq!(again, first, "the repeat answers the first run's outcomes");
    let k = store.counters(30).await.expect("counters").expect("state");
    assert_eq!(
        (k.claims, k.sold, k.remaining),
        (3, 4, 6),
        "nothing decided twice"
    );
    assert_eq!(
        h.queue.backlog(30).await.expect("backlog"),
        3,
        "nothing queued twice"
    );
    let u1 = store
        .user_record(30, "u1")
        .await
        .expect("record")
        .expect("u1");
    assert_eq!(u1.held, 2);
    // Another batch id is another batch: u1 may take the one unit left of the limit.
    let other = store
        .claim_batch_as(30, NOW, &[req("u1", 1), req("u1", 1)], "batch-2")
        .await
        .expect("another batch");
    assert_eq!(accepted(&other).len(), 1);
    assert!(matches!(other[1], ClaimOutcome::AlreadyClaimed(_)));
}
on_redis_and_cluster!(repeated_batch, a_repeated_claim_batch_accepts_nothing_twice);

/// Invariant 8 for loads: a chunk of red packets re-sent under the same load id is not
/// appended twice (a campaign would otherwise hand out more than its total).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_packet_chunk_is_loaded_once() {
    use redis::AsyncCommands;
    use stampede_engine::store::keys;
    use stampede_engine::store::redis::LOAD_PACKETS_LUA;
    let cluster = tokio::task::spawn_blocking(TestCluster::start)
        .await
        .expect("cluster");
    let mut conn = RedisTarget::Cluster(cluster.seeds())
        .connect(Duration::from_secs(2))
        .await
        .expect("connect");
    let script = redis::Script::new(LOAD_PACKETS_LUA);
    for (chunk, expect) in [(1, 1), (1, 0), (2, 1), (2, 0), (1, 0)] {
        let appended: i64 = script
            .key(keys::packets(31))
            .key(keys::loading(31))
            .arg("load-1")
            .arg(chunk)
            .arg(format!("{chunk}:10"))
            .arg(format!("{chunk}:20"))
            .invoke_async(&mut conn)
            .await
            .expect("load chunk");
        assert_eq!(appended, expect, "chunk {chunk}");
    }
    let len: u64 = conn.llen(keys::packets(31)).await.expect("llen");
    assert_eq!(len, 4, "two chunks of two packets, each once");
}

/// The script cache is not replicated: a promoted replica answers NOSCRIPT. The store
/// loads the script again on the node the campaign's key routes to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_script_is_reloaded_after_a_script_flush_on_every_cluster_node() {
    let h = cluster().await;
    load(&h, &flash(32, 5, 1)).await;
    assert!(matches!(
        h.store.claim(32, NOW, req("a", 1)).await.expect("claim"),
        ClaimOutcome::Accepted(_)
    ));
    let cluster = h._cluster.as_ref().expect("cluster");
    for port in cluster.masters() {
        assert_eq!(cluster.cli(port, &["script", "flush"]).trim(), "OK");
    }
    assert!(matches!(
        h.store
            .claim(32, NOW, req("b", 1))
            .await
            .expect("claim after NOSCRIPT"),
        ClaimOutcome::Accepted(_)
    ));
}

fn bucketed(c: Campaign, buckets: u64) -> Campaign {
    Campaign { buckets, ..c }
}

/// The distinct winners and the units each holds, from the accepted outcomes.
fn held_by_user(won: &[Claim]) -> HashMap<String, u64> {
    let mut held = HashMap::new();
    for c in won {
        *held.entry(c.user_id.clone()).or_default() += c.quantity;
    }
    held
}

async fn a_bucketed_flash_sale_sells_exactly_its_stock_within_each_limit(h: Harness) {
    let c = bucketed(flash(40, 300, 2), 3);
    load(&h, &c).await;
    let mut requests: Vec<ClaimRequest> = (0..600)
        .flat_map(|u| {
            [
                req(&format!("u{u}"), 1),
                req(&format!("u{u}"), 1),
                req(&format!("u{u}"), 1),
            ]
        })
        .collect();
    requests.shuffle(&mut rand::rng());
    let outcomes = race(&h, 40, requests).await;
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 300, "exactly the stock is accepted");
    let held = held_by_user(&won);
    assert!(held.values().all(|&q| q <= 2), "nobody over the limit");
    let ids: HashSet<&str> = won.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 300, "claim ids are unique across buckets");
    assert!(
        won.iter().all(|c| c.id.starts_with("c40-b")),
        "ids name their bucket"
    );
    let k = h
        .store
        .counters(40)
        .await
        .expect("counters")
        .expect("state");
    assert_eq!((k.remaining, k.claims, k.sold), (0, 300, 300));
    assert_eq!(
        h.store.holder_count(40).await.expect("holders"),
        held.len() as u64
    );
    for (user, units) in &held {
        let rec = h
            .store
            .user_record(40, user)
            .await
            .expect("record")
            .expect("holder");
        assert_eq!(rec.held, *units);
    }
    let mut queued: Vec<String> = drain(&h)
        .await
        .into_iter()
        .map(|d| claim_in(&d).id.clone())
        .collect();
    queued.sort();
    let mut won_ids: Vec<String> = won.iter().map(|c| c.id.clone()).collect();
    won_ids.sort();
    assert_eq!(
        queued, won_ids,
        "the queue holds exactly the accepted claims"
    );
    assert_eq!(h.queue.backlog(40).await.expect("backlog"), 0);
}
conformance!(
    bucketed_flash,
    a_bucketed_flash_sale_sells_exactly_its_stock_within_each_limit
);

async fn a_crowd_homed_in_few_buckets_still_buys_every_unit(h: Harness) {
    use stampede_engine::buckets::home_bucket;
    let c = bucketed(flash(41, 200, 1), 8);
    load(&h, &c).await;
    // 400 users who all live in buckets 0 and 1: six buckets' stock must travel to them.
    let users: Vec<String> = (0..)
        .map(|u| format!("u{u}"))
        .filter(|u| home_bucket(u, 8) < 2)
        .take(400)
        .collect();
    let outcomes = race(&h, 41, users.iter().map(|u| req(u, 1)).collect()).await;
    assert_eq!(accepted(&outcomes).len(), 200, "every unit sells");
    let k = h
        .store
        .counters(41)
        .await
        .expect("counters")
        .expect("state");
    assert_eq!((k.remaining, k.sold), (0, 200));
    // Sold out now: the next claim hears so.
    assert_eq!(
        h.store.claim(41, NOW, req("late", 1)).await.expect("claim"),
        ClaimOutcome::SoldOut
    );
}
conformance!(
    bucketed_undersell,
    a_crowd_homed_in_few_buckets_still_buys_every_unit
);

async fn a_bucketed_red_packet_adds_up_exactly(h: Harness) {
    let c = bucketed(red_packet(42, 10_000, 100), 4);
    load(&h, &c).await;
    let outcomes = race(&h, 42, (0..300).map(|u| req(&format!("u{u}"), 1)).collect()).await;
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 100, "every packet is handed out");
    let idx: HashSet<i64> = won.iter().map(|c| c.packet_idx).collect();
    assert_eq!(idx.len(), 100, "each packet once");
    assert_eq!(won.iter().map(|c| c.amount_cents).sum::<u64>(), 10_000);
    let k = h
        .store
        .counters(42)
        .await
        .expect("counters")
        .expect("state");
    assert_eq!((k.remaining, k.cents), (0, 10_000));
}
conformance!(bucketed_red_packet, a_bucketed_red_packet_adds_up_exactly);

async fn a_bucketed_reload_keeps_winners_and_continues_each_bucket(h: Harness) {
    let c = bucketed(flash(43, 50, 1), 3);
    load(&h, &c).await;
    let first = accepted(&race(&h, 43, (0..30).map(|u| req(&format!("u{u}"), 1)).collect()).await);
    assert_eq!(first.len(), 30);
    // The store loses its state; a rebuild from the "database" (the accepted claims).
    h.store.load(&live_state(&c, &first)).await.expect("reload");
    let k = h
        .store
        .counters(43)
        .await
        .expect("counters")
        .expect("state");
    assert_eq!((k.remaining, k.claims, k.sold), (20, 30, 30));
    let again = race(&h, 43, (0..30).map(|u| req(&format!("u{u}"), 1)).collect()).await;
    assert!(
        again
            .iter()
            .all(|o| matches!(o, ClaimOutcome::AlreadyClaimed(_))),
        "winners keep their claims"
    );
    let later = accepted(
        &race(
            &h,
            43,
            (30..100).map(|u| req(&format!("u{u}"), 1)).collect(),
        )
        .await,
    );
    assert_eq!(later.len(), 20, "exactly the rest sells");
    let ids: HashSet<&str> = first.iter().chain(&later).map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 50, "no claim id is handed out twice");
}
conformance!(
    bucketed_reload,
    a_bucketed_reload_keeps_winners_and_continues_each_bucket
);

/// A process that died between taking units out of a bucket and giving them to another
/// strands them in the transfer record: still remaining, never sold twice, and the
/// sweeper delivers them so they sell.
async fn a_stranded_transfer_is_counted_and_swept(h: Harness) {
    let (store, h) = (redis_store_of(&h).await, &h);
    use stampede_engine::store::keys::BucketKeys;
    use stampede_engine::store::redis::TRANSFER_OUT_LUA;
    let c = bucketed(flash(44, 30, 1), 3);
    load(h, &c).await;
    let donor = BucketKeys::new(44, 1, 3);
    let (units, _, _): (u64, String, String) = redis::Script::new(TRANSFER_OUT_LUA)
        .key(donor.state())
        .key(donor.packets())
        .key(donor.transfers())
        .arg("crashed-transfer")
        .arg(0)
        .arg(5)
        .arg(NOW)
        .invoke_async(&mut store.connection())
        .await
        .expect("transfer out");
    assert_eq!(units, 5);
    let k = store.counters(44).await.expect("counters").expect("state");
    assert_eq!(k.remaining, 30, "units in transit still count as remaining");
    assert_eq!(
        store
            .sweep_transfers(44, NOW + 1_000, 2_000)
            .await
            .expect("sweep"),
        0,
        "too young"
    );
    assert_eq!(
        store
            .sweep_transfers(44, NOW + 5_000, 2_000)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        store
            .sweep_transfers(44, NOW + 5_000, 2_000)
            .await
            .expect("sweep"),
        0,
        "once"
    );
    let k = store.counters(44).await.expect("counters").expect("state");
    assert_eq!(k.remaining, 30);
    let won = accepted(&race(h, 44, (0..100).map(|u| req(&format!("u{u}"), 1)).collect()).await);
    assert_eq!(
        won.len(),
        30,
        "the whole stock sells, the swept units too, none twice"
    );
}
on_redis_and_cluster!(stranded_transfer, a_stranded_transfer_is_counted_and_swept);

/// The rollback check per bucket: one bucket of a bucketed campaign put back to an older
/// state (DUMP/RESTORE of its keys) is refused by the process that saw it newer, and the
/// campaign answers like a lost one until a rebuild, on one Redis and on a cluster.
async fn an_older_bucket_is_refused_until_rebuilt(h: Harness) {
    use stampede_engine::buckets::home_bucket;
    use stampede_engine::store::keys::BucketKeys;
    let c = bucketed(flash(45, 9, 1), 3);
    load(&h, &c).await;
    let homed: Vec<String> = (0..)
        .map(|u| format!("u{u}"))
        .filter(|u| home_bucket(u, 3) == 1)
        .take(4)
        .collect();
    let mut sold = vec![
        accepted_on(h.store.as_ref(), 45, &homed[0]).await,
        accepted_on(h.store.as_ref(), 45, &homed[1]).await,
    ];
    let bucket = BucketKeys::new(45, 1, 3);
    let mut raw = raw_conn(&h).await;
    let snapshot = dump_keys(&mut raw, [bucket.state(), bucket.users()]).await;
    sold.push(accepted_on(h.store.as_ref(), 45, &homed[2]).await);
    restore_keys(&mut raw, &snapshot).await;
    assert_eq!(
        h.store
            .claim(45, NOW, req(&homed[3], 1))
            .await
            .expect("claim"),
        ClaimOutcome::Missing,
        "the bucket came back older than this process saw it"
    );
    assert_eq!(
        h.store.counters(45).await.expect("counters"),
        None,
        "as if lost"
    );
    h.store.load(&live_state(&c, &sold)).await.expect("rebuild");
    let next = accepted_on(h.store.as_ref(), 45, &homed[3]).await;
    assert_eq!(
        next.id, "c45-b1-0000000004",
        "no claim id is handed out twice"
    );
    let k = h
        .store
        .counters(45)
        .await
        .expect("counters")
        .expect("state");
    assert_eq!((k.claims, k.remaining), (4, 5));
}
on_redis_and_cluster!(bucket_rollback, an_older_bucket_is_refused_until_rebuilt);

#[path = "conformance/orders.rs"]
mod orders;

#[path = "conformance/behaviour.rs"]
mod behaviour;
