//! The behaviour event queue (the claim queue's machinery over other streams) on every
//! backend: what is appended is delivered, a dead consumer's events are reclaimed, an
//! acknowledged event leaves the backlog, and the claim queue never sees any of it.

use std::collections::HashSet;

use stampede_engine::behaviour::BehaviourEvent;
use stampede_engine::queue::{Event, EventLog};

use super::*;

/// The behaviour queue beside the harness's claim queue, on the same backend.
async fn behaviour_queue(h: &Harness) -> (Arc<dyn Queue>, Arc<dyn EventLog>) {
    let target = match (&h._redis, &h._cluster) {
        (Some(r), _) => RedisTarget::Single(r.url()),
        (_, Some(c)) => RedisTarget::Cluster(c.seeds()),
        _ => {
            let q = Arc::new(MemoryQueue::default());
            return (Arc::new(q.clone()), Arc::new(q));
        }
    };
    let conn = raw_conn(h).await;
    let q = Arc::new(RedisQueue::new(target, Duration::from_secs(10), conn).behaviour());
    (q.clone(), q)
}

fn events(campaign_id: u64, n: usize) -> Vec<BehaviourEvent> {
    (0..n)
        .map(|i| {
            BehaviourEvent::new(
                i,
                &format!("u{i}"),
                "view",
                campaign_id,
                Some(NOW),
                None,
                NOW,
            )
            .expect("valid")
        })
        .collect()
}

fn ids(v: &[Delivery]) -> HashSet<String> {
    v.iter()
        .map(|d| match &d.event {
            Event::Behaviour(b) => b.id.clone(),
            other => panic!("not a behaviour event: {other:?}"),
        })
        .collect()
}

async fn behaviour_events_travel_their_own_queue_at_least_once(h: Harness) {
    let (queue, log) = behaviour_queue(&h).await;
    let (a, b) = (events(61, 120), events(62, 80));
    // Campaign 62 has 3 buckets: with Redis its events spread over 3 streams.
    let buckets = std::collections::HashMap::from([(62, 3)]);
    log.append(&a, &Default::default()).await.expect("append");
    log.append(&b, &buckets).await.expect("append");
    let all: HashSet<String> = a.iter().chain(&b).map(|e| e.id.clone()).collect();
    assert_eq!(queue.backlog(61).await.expect("backlog"), 120);
    assert_eq!(queue.backlog(62).await.expect("backlog"), 80);
    assert_eq!(queue.total_backlog().await.expect("backlog"), 200);
    assert_eq!(
        h.queue.total_backlog().await.expect("claims"),
        0,
        "the claim queue carries none"
    );
    let mut dead = queue.consumer("dead").await.expect("consumer");
    // The first read of a new stream may find its consumer group missing and make it.
    let mut taken = Vec::new();
    for _ in 0..20 {
        taken = dead
            .fetch(50, Duration::from_millis(200))
            .await
            .expect("fetch");
        if !taken.is_empty() {
            break;
        }
    }
    assert!(!taken.is_empty());
    drop(dead); // never acknowledges
    let mut alive = queue.consumer("alive").await.expect("consumer");
    let mut seen = Vec::new();
    let reclaimed = alive
        .reclaim(Duration::from_millis(0), 1_000)
        .await
        .expect("reclaim");
    if h._redis.is_some() || h._cluster.is_some() {
        assert_eq!(
            ids(&reclaimed),
            ids(&taken),
            "a dead consumer's events are taken over"
        );
    } else {
        // In process, a consumer lives as long as the queue: what it took is gone with
        // it only when the process is (and then the queue too).
        seen.extend(taken.clone());
    }
    alive.ack(&reclaimed).await.expect("ack");
    seen.extend(reclaimed);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ids(&seen).len() < all.len() {
        let batch = alive
            .fetch(1_000, Duration::from_millis(200))
            .await
            .expect("fetch");
        alive.ack(&batch).await.expect("ack");
        seen.extend(batch);
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {}",
            ids(&seen).len(),
            all.len()
        );
    }
    if h._redis.is_none() && h._cluster.is_none() {
        alive.ack(&taken).await.expect("ack");
    }
    assert_eq!(ids(&seen), all);
    assert_eq!(queue.total_backlog().await.expect("backlog"), 0);
    assert_eq!(queue.backlog(62).await.expect("backlog"), 0);
    assert_eq!(h.queue.total_backlog().await.expect("claims"), 0);
}
conformance!(
    behaviour_queue_delivers,
    behaviour_events_travel_their_own_queue_at_least_once
);
