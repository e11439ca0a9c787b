//! `stampede-loadgen events` against the real engine: a few hundred users each report ten
//! behaviour events (eight views, two adds to cart) and then claim a flash sale. The load
//! generator's audit — the sale's, plus the funnel polled until each event type shows
//! exactly the events answered 202 and the claim stages what the claims were answered —
//! must pass, and the funnel read here, independently of the load generator, must hold
//! the same counts. On Redis + PostgreSQL, and embedded (no Redis).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Deps, TestApp};
use stampede_loadgen::report::Audit;
use stampede_loadgen::scenario::events::{self, parse_mix, EventFlags, EventsArgs};
use stampede_loadgen::scenario::{Common, Crowd};

const USERS: usize = 300;
const STOCK: u64 = 100;
/// 300 users, 20 % of them twice.
const CLAIMS: u64 = 360;
const VIEWS: u64 = USERS as u64 * 8;
const CARTS: u64 = USERS as u64 * 2;

fn args(app: &TestApp) -> EventsArgs {
    EventsArgs {
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
            users: USERS,
            dup_fraction: 0.2,
            seed: 5,
            rate: None,
            user_prefix: None,
        },
        stock: STOCK,
        per_user: 1,
        quantity: 1,
        drain_timeout: Duration::from_secs(30),
        buckets: 1,
        events: EventFlags {
            events_per_user: 10,
            event_batch: 4,
            types: parse_mix("view:8,add_to_cart:2").expect("mix"),
        },
    }
}

async fn the_load_generators_funnel_audit_passes(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let report = events::run(&args(&app)).await.expect("loadgen events");
    let Some(Audit::Claims(audit)) = &report.audit else {
        panic!("a claims audit: {:?}", report.audit);
    };
    assert!(
        report.passed(),
        "the load generator's audit: {:?} {:?}",
        audit.violations,
        audit.funnel
    );
    assert_eq!(audit.accepted, STOCK);

    // Every batch was taken: nothing refused, nothing unanswered.
    let e = report.events.as_ref().expect("the events phase");
    assert_eq!(
        (e.sent, e.accepted, e.unanswered),
        (VIEWS + CARTS, VIEWS + CARTS, 0)
    );
    assert!(e.refused.is_empty(), "{:?}", e.refused);
    assert_eq!(e.requests, USERS as u64 * 3, "10 events in batches of 4");
    assert_eq!(e.per_type["view"].accepted, VIEWS);
    assert_eq!(e.per_type["add_to_cart"].accepted, CARTS);

    // The funnel the audit saw: exactly what the run did.
    let f = audit.funnel.as_ref().expect("the funnel audit");
    let seen = |k: &str| (f.keys[k].seen, f.keys[k].expected, f.keys[k].at_most);
    assert_eq!(seen("view"), (VIEWS, VIEWS, None));
    assert_eq!(seen("add_to_cart"), (CARTS, CARTS, None));
    assert_eq!(report.requests, CLAIMS);
    assert_eq!(
        seen("claim"),
        (CLAIMS, CLAIMS, None),
        "every claim reached the step"
    );
    assert_eq!(seen("accepted"), (STOCK, STOCK, None));
    assert_eq!((seen("ticket").0, seen("paid").0), (0, 0));

    // And read here, by the contract's route: the same counts.
    let id = report.campaign_id.expect("campaign");
    let deadline = Instant::now() + Duration::from_secs(10);
    let sums = loop {
        let funnel = app
            .admin_get(&format!("/v1/admin/campaigns/{id}/funnel?minutes=10"))
            .await;
        let minutes = funnel["minutes"].as_array().expect("minutes").clone();
        assert_eq!(minutes.len(), 10);
        let sum = |k: &str| minutes.iter().filter_map(|m| m[k].as_u64()).sum::<u64>();
        let sums = [
            sum("view"),
            sum("add_to_cart"),
            sum("claim"),
            sum("accepted"),
        ];
        if sums == [VIEWS, CARTS, CLAIMS, STOCK] || Instant::now() > deadline {
            break sums;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sums, [VIEWS, CARTS, CLAIMS, STOCK]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_load_generators_funnel_audit_passes_on_redis_and_postgres() {
    the_load_generators_funnel_audit_passes(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_load_generators_funnel_audit_passes_embedded() {
    the_load_generators_funnel_audit_passes(Backend::Embedded).await;
}
