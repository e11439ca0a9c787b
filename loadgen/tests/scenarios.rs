//! End-to-end runs of the scenarios through the library API (and the binary, for the exit
//! status) against the in-test mock engine: an honest mock passes every audit, and each
//! switchable fault fails it in the expected field.

mod mock;

use std::time::Duration;

use mock::Faults;
use stampede_loadgen::capacity::{self, CapacityArgs};
use stampede_loadgen::client::ClientKind;
use stampede_loadgen::report::{Audit, Report};
use stampede_loadgen::scenario::flash::{self, FlashArgs};
use stampede_loadgen::scenario::http::{self, HttpArgs};
use stampede_loadgen::scenario::orders::OrderFlags;
use stampede_loadgen::scenario::red_packet::{self, RedPacketArgs};
use stampede_loadgen::scenario::signin::{self, SigninArgs};
use stampede_loadgen::scenario::{Common, Crowd};
use stampede_loadgen::wire::Claim;

fn common(target: &str) -> Common {
    Common {
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
    }
}

fn crowd(users: usize) -> Crowd {
    Crowd {
        users,
        dup_fraction: 0.3,
        seed: 7,
        rate: None,
        user_prefix: None,
    }
}

fn flash_args(target: &str, stock: u64, users: usize) -> FlashArgs {
    FlashArgs {
        common: common(target),
        crowd: crowd(users),
        stock,
        per_user: 1,
        quantity: 1,
        drain_timeout: Duration::from_secs(1),
        buckets: 1,
        orders: OrderFlags::default(),
    }
}

fn claims_audit(report: &Report) -> &stampede_loadgen::audit::ClaimsAudit {
    match &report.audit {
        Some(Audit::Claims(a)) => a,
        other => panic!("expected a claims audit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_flash_sale_on_an_honest_engine_sells_exactly_the_stock_and_passes() {
    for client in [ClientKind::Lean, ClientKind::Hyper] {
        honest_flash_sale(client).await;
    }
}

async fn honest_flash_sale(client: ClientKind) {
    let target = mock::spawn(Faults::default()).await;
    let mut args = flash_args(&target, 50, 80);
    args.common.client = client;
    let report = flash::run(&args).await.expect("run");
    let audit = claims_audit(&report);
    assert!(audit.passed, "{:?}", audit.violations);
    assert_eq!(audit.accepted, 50);
    assert_eq!(audit.persisted, 50);
    assert_eq!(report.statuses.get("201"), Some(&50));
    // 80 users + 24 racing duplicates.
    assert_eq!(report.requests, 104);
    assert_eq!(report.errors, 0);
    assert!(report.statuses.get("409").is_some_and(|&n| n > 0));
    assert!(report.passed());
}

#[tokio::test]
async fn a_flash_sale_on_an_overselling_engine_fails_the_audit() {
    let target = mock::spawn(Faults {
        oversell: true,
        ..Faults::default()
    })
    .await;
    let report = flash::run(&flash_args(&target, 10, 40)).await.expect("run");
    let audit = claims_audit(&report);
    assert!(!audit.passed);
    assert_eq!(audit.oversold, 30);
    assert!(!report.passed());
}

#[tokio::test]
async fn a_claim_that_never_reaches_the_database_is_reported_lost() {
    let target = mock::spawn(Faults {
        lose_one: true,
        ..Faults::default()
    })
    .await;
    let report = flash::run(&flash_args(&target, 5, 10)).await.expect("run");
    let audit = claims_audit(&report);
    assert_eq!(audit.lost, 1);
    assert!(!audit.drained);
    assert!(!audit.passed);
}

#[tokio::test]
async fn a_claim_written_twice_is_reported_duplicated() {
    let target = mock::spawn(Faults {
        duplicate_row: true,
        ..Faults::default()
    })
    .await;
    let report = flash::run(&flash_args(&target, 20, 30)).await.expect("run");
    let audit = claims_audit(&report);
    assert_eq!(audit.duplicates, 1);
    assert_eq!(audit.persisted, 20);
    assert!(!audit.passed);
}

#[tokio::test]
async fn an_audit_that_cannot_run_still_reports_the_load_and_fails() {
    let target = mock::spawn(Faults {
        no_export: true,
        ..Faults::default()
    })
    .await;
    let report = flash::run(&flash_args(&target, 5, 10)).await.expect("run");
    let audit = claims_audit(&report);
    assert!(!audit.passed);
    assert!(
        audit.violations[0].contains("could not run"),
        "{:?}",
        audit.violations
    );
    assert_eq!(report.statuses.get("201"), Some(&5));
}

#[tokio::test]
async fn the_open_loop_charges_queueing_behind_a_slow_reply_to_the_server() {
    let target = mock::spawn(Faults::default()).await;
    let mut one = common(&target);
    one.concurrency = Some(1);
    // 10 requests due every 20 ms on one connection, each served in 40 ms: the last is due
    // at 180 ms but can only start at 360 ms.
    let report = http::run(&HttpArgs {
        common: one,
        url: Some(format!("{target}/slow")),
        duration: Duration::from_millis(200),
        rate: Some(50.0),
    })
    .await
    .expect("open run");
    assert_eq!(report.requests, 10);
    let served_in = mock::SLOW.as_secs_f64() * 1000.0;
    assert!(
        report.latency_ms.max > 4.0 * served_in,
        "the queueing must count: max {} ms",
        report.latency_ms.max
    );
    assert!(report.latency_ms.p50 >= served_in * 0.9);
}

fn red_packet_args(target: &str, users: usize) -> RedPacketArgs {
    RedPacketArgs {
        common: common(target),
        crowd: crowd(users),
        total_cents: 1000,
        count: 12,
        min_cents: 1,
        drain_timeout: Duration::from_secs(1),
        buckets: 1,
    }
}

#[tokio::test]
async fn a_red_packet_taken_whole_adds_up_to_its_total() {
    let target = mock::spawn(Faults::default()).await;
    let report = red_packet::run(&red_packet_args(&target, 30))
        .await
        .expect("run");
    let audit = claims_audit(&report);
    assert!(audit.passed, "{:?}", audit.violations);
    assert_eq!(audit.sum_cents, Some(1000));
    assert_eq!(audit.persisted, 12);
}

#[tokio::test]
async fn a_red_packet_a_cent_short_fails_the_audit() {
    let target = mock::spawn(Faults {
        short_change: true,
        ..Faults::default()
    })
    .await;
    let report = red_packet::run(&red_packet_args(&target, 30))
        .await
        .expect("run");
    let audit = claims_audit(&report);
    assert_eq!(audit.sum_cents, Some(999));
    assert!(!audit.passed);
}

#[tokio::test]
async fn a_signin_rush_awards_each_user_once() {
    let target = mock::spawn(Faults::default()).await;
    let args = SigninArgs {
        common: common(&target),
        crowd: crowd(50),
    };
    let report = signin::run(&args).await.expect("run");
    let Some(Audit::Signin(audit)) = &report.audit else {
        panic!("expected a signin audit");
    };
    assert!(audit.passed, "{:?}", audit.violations);
    assert_eq!(audit.accepted, 50);
    assert_eq!(audit.awarded_once, 50);
    assert_eq!(audit.already_signed_in, 15);
}

#[tokio::test]
async fn a_signin_rush_that_awards_twice_fails() {
    let target = mock::spawn(Faults {
        double_award: true,
        ..Faults::default()
    })
    .await;
    let args = SigninArgs {
        common: common(&target),
        crowd: crowd(50),
    };
    let report = signin::run(&args).await.expect("run");
    let Some(Audit::Signin(audit)) = &report.audit else {
        panic!("expected a signin audit");
    };
    assert_eq!(audit.over_limit, 15);
    assert!(!report.passed());
}

#[tokio::test]
async fn the_http_scenario_runs_closed_and_open_loops() {
    let target = mock::spawn(Faults::default()).await;
    let mut hyper = common(&target);
    hyper.client = ClientKind::Hyper;
    let closed = http::run(&HttpArgs {
        common: hyper,
        url: None,
        duration: Duration::from_millis(300),
        rate: None,
    })
    .await
    .expect("closed run");
    assert!(closed.requests > 10);
    assert_eq!(closed.statuses.get("200"), Some(&closed.requests));
    assert_eq!(closed.mode, "closed");

    let open = http::run(&HttpArgs {
        common: common(&target),
        url: Some(format!("{target}/healthz")),
        duration: Duration::from_millis(500),
        rate: Some(200.0),
    })
    .await
    .expect("open run");
    // 200/s for half a second: 100 requests due, give or take the last one.
    assert!((99..=101).contains(&open.requests), "{}", open.requests);
    assert_eq!(open.rate_rps, Some(200.0));
}

#[tokio::test]
async fn an_unreachable_target_is_an_error_not_a_report() {
    let mut args = HttpArgs {
        common: common("http://127.0.0.1:1"),
        url: None,
        duration: Duration::from_millis(100),
        rate: None,
    };
    args.common.concurrency = Some(1);
    assert!(http::run(&args).await.is_err());
}

#[tokio::test]
async fn capacity_can_probe_a_running_instance() {
    let target = mock::spawn(Faults::default()).await;
    let estimate = capacity::run(&CapacityArgs {
        dau: 2_000_000.0,
        pv_per_user: 30.0,
        peak_share: 0.8,
        peak_hours: 4.8,
        peak_factor: 3.0,
        instance_qps: None,
        probe: Some(format!("{target}/healthz")),
        probe_duration: Duration::from_millis(300),
        concurrency: 4,
        threads: None,
        json: true,
        quiet: true,
    })
    .await
    .expect("probe");
    assert_eq!(estimate.instance_qps_source, "probe");
    assert!(estimate.inputs.instance_qps > 10.0);
    assert!(estimate.instances_peak >= estimate.instances_average);
}

/// Runs the real binary; returns its exit code and stdout.
async fn binary(args: &[&str]) -> (Option<i32>, String) {
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
    )
}

#[tokio::test]
async fn the_binary_exits_zero_on_a_clean_run_and_non_zero_on_an_oversell() {
    let honest = mock::spawn(Faults::default()).await;
    let flags = |target: &str| {
        vec![
            "flash".to_owned(),
            "--target".into(),
            target.to_owned(),
            "--stock".into(),
            "10".into(),
            "--users".into(),
            "30".into(),
            "--concurrency".into(),
            "8".into(),
            "--drain-timeout".into(),
            "2s".into(),
            "--json".into(),
            "--quiet".into(),
        ]
    };
    let args = flags(&honest);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout) = binary(&args).await;
    assert_eq!(code, Some(0), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(json["audit"]["passed"], true);
    assert_eq!(json["audit"]["accepted"], 10);
    for key in [
        "requests",
        "duration_secs",
        "throughput_rps",
        "latency_ms",
        "statuses",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }

    let crooked = mock::spawn(Faults {
        oversell: true,
        ..Faults::default()
    })
    .await;
    let args = flags(&crooked);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout) = binary(&args).await;
    assert_eq!(code, Some(stampede_loadgen::EXIT_AUDIT_FAILED), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(json["audit"]["passed"], false);
    assert_eq!(json["audit"]["oversold"], 20);
}

#[tokio::test]
async fn the_binary_prints_the_capacity_arithmetic() {
    let (code, stdout) = binary(&[
        "capacity",
        "--dau",
        "2000000",
        "--pv-per-user",
        "30",
        "--peak-share",
        "0.8",
        "--peak-hours",
        "4.8",
        "--peak-factor",
        "3",
        "--instance-qps",
        "300",
    ])
    .await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("average 2,778 QPS, peak 8,333 QPS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("10 instance(s) at average, 28 at peak"),
        "{stdout}"
    );
}

#[test]
fn claims_deserialize_from_the_contracts_example() {
    let claim: Claim = serde_json::from_str(
        r#"{"id": "c17-1", "campaign_id": 17, "user_id": "u123", "quantity": 1,
            "accepted_at": "2026-11-22T20:00:00Z", "persisted": true, "extra": 1}"#,
    )
    .expect("contract example");
    assert_eq!(claim.units(), 1);
}
