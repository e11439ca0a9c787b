//! Criterion micro-benchmarks of the engine's CPU-bound pieces: the claim step in the
//! in-process store (the embedded engine's critical section), user JWT verification
//! (on every claim), and the red-packet split (at creation).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stampede_engine::auth::Auth;
use stampede_engine::campaign::{Campaign, CampaignKind};
use stampede_engine::claim::ClaimRequest;
use stampede_engine::queue::memory::MemoryQueue;
use stampede_engine::rebuild::live_state;
use stampede_engine::red_packet::split;
use stampede_engine::store::memory::MemoryStore;
use stampede_engine::store::Store;

fn memory_claims(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let queue = Arc::new(MemoryQueue::default());
    let store = MemoryStore::new(queue.clone());
    let campaign = Campaign {
        id: 1,
        kind: CampaignKind::FlashSale,
        name: "bench".into(),
        total: 1_000_000_000,
        per_user_limit: 1_000,
        price_cents: 0,
        total_cents: 0,
        min_cents: 0,
        split_seed: 0,
        starts_at_ms: 0,
        ends_at_ms: i64::MAX,
        created_at_ms: 0,
        ticket_required: false,
        ticket_lead_secs: 5,
        buckets: 1,
        payment_window_secs: None,
    };
    rt.block_on(store.load(&live_state(&campaign, &[])))
        .expect("load");
    let users: Vec<String> = (0..100_000).map(|u| format!("user{u}")).collect();
    let mut i = 0usize;
    let mut group = c.benchmark_group("memory_store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("accepted_claim", |b| {
        b.iter(|| {
            i = (i + 1) % users.len();
            let req = ClaimRequest {
                user_id: users[i].clone(),
                quantity: 1,
                request_id: None,
            };
            rt.block_on(store.claim(1, 1, req)).expect("claim")
        })
    });
    group.finish();
    // The bench pushes events nobody consumes; drop them with the queue.
    drop(queue);
}

fn jwt(c: &mut Criterion) {
    let auth = Auth::new("bench-secret-0123456789abcdef", "admin-token-0123456789");
    let token = auth.mint("user12345", 3600).expect("mint");
    c.bench_function("jwt_verify", |b| {
        b.iter(|| auth.verify_user(&token).expect("valid"))
    });
}

fn red_packet_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("red_packet_split");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k_packets", |b| {
        b.iter(|| split(1_000_000, 10_000, 1, 42))
    });
    group.finish();
}

criterion_group!(benches, memory_claims, jwt, red_packet_split);
criterion_main!(benches);
