//! `stampede-loadgen events` and `flash --with-events` against the in-test mock engine,
//! whose funnel counts the events only on a later read (as workers would): the honest
//! mock passes once the funnel has caught up, refused batches count for nothing, and a
//! funnel that drops a view or counts a refused batch fails the audit (exit status 3).

mod mock;

use std::time::Duration;

use mock::Faults;
use stampede_loadgen::audit::ClaimsAudit;
use stampede_loadgen::client::ClientKind;
use stampede_loadgen::report::{Audit, Report};
use stampede_loadgen::scenario::events::{self, parse_mix, EventFlags, EventsArgs};
use stampede_loadgen::scenario::flash::FlashCommand;
use stampede_loadgen::scenario::{Common, Crowd};

const USERS: usize = 60;
const STOCK: u64 = 20;
/// 60 users and 30 % of them twice.
const CLAIMS: u64 = 78;

fn args(target: &str) -> EventsArgs {
    EventsArgs {
        common: Common {
            target: vec![target.to_owned()],
            jwt_secret: Some(mock::SECRET.to_owned()),
            admin_token: Some(mock::ADMIN.to_owned()),
            concurrency: Some(16),
            threads: None,
            client: ClientKind::Lean,
            timeout: Duration::from_secs(5),
            json: false,
            plot: None,
            quiet: true,
        },
        crowd: Crowd {
            users: USERS,
            dup_fraction: 0.3,
            seed: 7,
            rate: None,
            user_prefix: None,
        },
        stock: STOCK,
        per_user: 1,
        quantity: 1,
        drain_timeout: Duration::from_secs(2),
        buckets: 1,
        // 7 events a user, in batches of 3: 6 views, then an add to cart.
        events: EventFlags {
            events_per_user: 7,
            event_batch: 3,
            types: parse_mix("view:8,add_to_cart:2").expect("mix"),
        },
    }
}

fn claims_audit(report: &Report) -> &ClaimsAudit {
    match &report.audit {
        Some(Audit::Claims(a)) => a,
        other => panic!("expected a claims audit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_crowd_that_views_before_it_claims_passes_once_the_funnel_caught_up() {
    let target = mock::spawn(Faults::default()).await;
    let report = events::run(&args(&target)).await.expect("run");
    assert_eq!(report.scenario, "events");
    let audit = claims_audit(&report);
    assert!(report.passed(), "{:?} {:?}", audit.violations, audit.funnel);
    assert_eq!(audit.accepted, STOCK);

    let e = report.events.as_ref().expect("the events phase");
    assert_eq!((e.users, e.requests), (USERS as u64, USERS as u64 * 3));
    assert_eq!((e.sent, e.accepted, e.unanswered), (420, 420, 0));
    assert!(e.refused.is_empty());
    assert_eq!(e.statuses.get("202"), Some(&180));
    assert_eq!(e.per_type["view"].accepted, 360);
    assert_eq!(e.per_type["add_to_cart"].accepted, 60);

    let f = audit.funnel.as_ref().expect("the funnel audit");
    assert!(f.passed && f.settled, "{f:?}");
    assert!(
        f.polls >= 2,
        "the mock counts events only on a later read: {f:?}"
    );
    let seen = |k: &str| (f.keys[k].seen, f.keys[k].expected, f.keys[k].at_most);
    assert_eq!(seen("view"), (360, 360, None));
    assert_eq!(seen("add_to_cart"), (60, 60, None));
    assert_eq!(
        seen("claim"),
        (CLAIMS, CLAIMS, None),
        "every claim reached the step"
    );
    assert_eq!(seen("accepted"), (STOCK, STOCK, None));
    assert_eq!(seen("paid"), (0, 0, None));
    assert_eq!(report.requests, CLAIMS, "the report's load is the claims'");
}

#[tokio::test]
async fn flash_with_events_runs_the_same_phase_under_the_flash_name() {
    let target = mock::spawn(Faults::default()).await;
    let a = args(&target);
    let command = FlashCommand {
        sale: a.sale(),
        with_events: true,
        events: a.events.clone(),
    };
    let report = command.run().await.expect("run");
    assert_eq!(report.scenario, "flash");
    assert!(report.passed(), "{:?}", claims_audit(&report).funnel);
    assert_eq!(report.events.as_ref().map(|e| e.accepted), Some(420));
    // Without --with-events: the plain sale, no funnel audit.
    let plain = FlashCommand {
        with_events: false,
        ..command
    };
    let report = plain.run().await.expect("run");
    assert!(report.events.is_none() && claims_audit(&report).funnel.is_none());
}

#[tokio::test]
async fn a_funnel_that_never_counts_one_view_fails_the_audit() {
    let target = mock::spawn(Faults {
        funnel_drops_a_view: true,
        ..Faults::default()
    })
    .await;
    let report = events::run(&args(&target)).await.expect("run");
    let audit = claims_audit(&report);
    assert!(audit.violations.is_empty(), "the sale itself is clean");
    let f = audit.funnel.as_ref().expect("the funnel audit");
    assert!(!f.passed && !f.settled);
    assert_eq!((f.keys["view"].seen, f.keys["view"].expected), (359, 360));
    assert!(
        f.violations[0].contains("359 view, expected 360"),
        "{:?}",
        f.violations
    );
    assert!(!report.passed());
}

#[tokio::test]
async fn refused_batches_are_reported_and_count_for_nothing() {
    let target = mock::spawn(Faults {
        shed_events: true,
        ..Faults::default()
    })
    .await;
    let report = events::run(&args(&target)).await.expect("run");
    let e = report.events.as_ref().expect("the events phase");
    // Every third of the 180 batches is answered 503: 60 batches of 3 or 1 events.
    assert_eq!(e.statuses.get("503"), Some(&60));
    let refused = e.refused["503"];
    assert!(refused >= 60, "{e:?}");
    assert_eq!(e.accepted + refused, e.sent);
    let per_type: u64 = e.per_type.values().map(|c| c.refused).sum();
    assert_eq!(per_type, refused);
    let audit = claims_audit(&report);
    assert!(report.passed(), "{:?}", audit.funnel);
    let f = audit.funnel.as_ref().expect("the funnel audit");
    assert_eq!(f.keys["view"].seen, e.per_type["view"].accepted);
}

#[tokio::test]
async fn a_funnel_that_counts_a_refused_batch_fails_the_audit() {
    let target = mock::spawn(Faults {
        shed_events: true,
        funnel_counts_refused: true,
        ..Faults::default()
    })
    .await;
    // A minute to settle, which it never would: the counts only grow, so the audit stops
    // at the first read past them (the mock's second: its first reports before counting).
    let mut a = args(&target);
    a.drain_timeout = Duration::from_secs(60);
    let report = events::run(&a).await.expect("run");
    let f = claims_audit(&report).funnel.as_ref().expect("funnel audit");
    assert!(!f.passed && !f.settled);
    let over = |k: &str| f.keys[k].seen > f.keys[k].expected;
    assert!(over("view") || over("add_to_cart"), "{f:?}");
    assert_eq!(f.polls, 2, "stopped at the read that overshot: {f:?}");
    assert!(
        f.violations.iter().all(|v| !v.contains("in time")),
        "{:?}",
        f.violations
    );
}

/// Runs the real binary; returns its exit code, stdout and stderr.
async fn binary(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stampede-loadgen"))
        .args(args)
        .env("STAMPEDE_JWT_SECRET", mock::SECRET)
        .env("STAMPEDE_ADMIN_TOKEN", mock::ADMIN)
        .output()
        .await
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_exits_three_when_the_funnel_is_off_and_reports_both_in_json() {
    let run = |target: String| async move {
        binary(&[
            "events",
            "--target",
            &target,
            "--stock",
            "10",
            "--users",
            "30",
            "--events-per-user",
            "4",
            "--types",
            "view:3,add_to_cart",
            "--concurrency",
            "8",
            "--drain-timeout",
            "2s",
            "--json",
            "--quiet",
        ])
        .await
    };
    let (code, stdout, stderr) = run(mock::spawn(Faults::default()).await).await;
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(json["scenario"], "events");
    assert_eq!(json["events"]["accepted"], 120);
    assert_eq!(json["events"]["per_type"]["view"]["accepted"], 90);
    assert_eq!(json["audit"]["funnel"]["passed"], true);
    assert_eq!(json["audit"]["funnel"]["keys"]["view"]["seen"], 90);
    assert_eq!(
        json["audit"]["funnel"]["keys"]["add_to_cart"]["expected"],
        30
    );

    let broken = mock::spawn(Faults {
        funnel_drops_a_view: true,
        ..Faults::default()
    })
    .await;
    let (code, stdout, _) = run(broken).await;
    assert_eq!(code, Some(stampede_loadgen::EXIT_AUDIT_FAILED), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(json["audit"]["passed"], false);
    assert_eq!(json["audit"]["funnel"]["keys"]["view"]["seen"], 89);
}

#[tokio::test]
async fn bad_event_flags_are_usage_errors() {
    for args in [
        &["flash", "--stock", "1", "--users", "1", "--types", "view"][..],
        &[
            "flash",
            "--stock",
            "1",
            "--users",
            "1",
            "--with-events",
            "--payment-window",
            "5s",
        ],
        &["events", "--stock", "1", "--users", "1", "--types", "claim"],
        &[
            "events", "--stock", "1", "--users", "1", "--types", "view:0",
        ],
        &[
            "events",
            "--stock",
            "1",
            "--users",
            "1",
            "--event-batch",
            "101",
        ],
        &[
            "events",
            "--stock",
            "1",
            "--users",
            "1",
            "--events-per-user",
            "0",
        ],
    ] {
        let (code, _, stderr) = binary(args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
