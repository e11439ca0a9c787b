//! The payment-window flash sale (`flash --payment-window`) against the mock engine: the
//! load generator pays as the provider does (the mock verifies every signature with its
//! own HMAC), cancels with the owner's token, claims the units that come back, and its
//! audit passes on an honest engine and catches a unit sold twice and a refund dropped.

mod mock;

use std::time::Duration;

use mock::{Faults, Watch};
use stampede_loadgen::audit::ClaimsAudit;
use stampede_loadgen::client::ClientKind;
use stampede_loadgen::report::{Audit, Report};
use stampede_loadgen::scenario::flash::{self, FlashArgs};
use stampede_loadgen::scenario::orders::OrderFlags;
use stampede_loadgen::scenario::{Common, Crowd};

/// A short window, and the mock expires orders the moment pay_by passes, so a 1 s grace
/// is plenty and the run takes seconds, not the contract's minutes.
fn args(target: &str, stock: u64, users: usize) -> FlashArgs {
    FlashArgs {
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
            users,
            dup_fraction: 0.3,
            seed: 7,
            rate: None,
            user_prefix: None,
        },
        stock,
        per_user: 1,
        quantity: 1,
        drain_timeout: Duration::from_secs(3),
        buckets: 1,
        orders: OrderFlags {
            payment_window: Some(Duration::from_secs(1)),
            pay_share: 0.7,
            payment_secret: Some(mock::PAYMENT_SECRET.to_owned()),
            price_cents: 1000,
            second_wave: Some(stock as usize * 2),
            expiry_grace: Duration::from_secs(1),
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
async fn an_honest_engine_gives_every_order_one_fate_and_passes() {
    let (target, watch) = mock::spawn_watched(Faults::default()).await;
    let report = flash::run(&args(&target, 20, 60)).await.expect("run");
    let audit = claims_audit(&report);
    assert!(
        audit.passed,
        "{:?} {:?}",
        audit.violations, audit.order_violations
    );
    let orders = audit.orders.as_ref().expect("an order audit");

    // Every fate happened, and the stock adds up: what is not paid is back on sale.
    assert!(
        orders.paid > 0 && orders.expired > 0 && orders.cancelled > 0,
        "{orders:?}"
    );
    assert_eq!(orders.pending, 0);
    assert_eq!(audit.stats.remaining + orders.paid, 20);
    assert!(
        orders.refunds > 0,
        "late and double payments are refunds: {orders:?}"
    );
    assert_eq!(orders.refunds, orders.refunds_expected);
    assert!(orders.late_notifications > 0 && orders.cancel_refused + orders.cancelled_replies > 0);
    assert!(
        orders.samples > 3 && orders.failed_samples == 0,
        "{orders:?}"
    );

    // The provider's notifications all verified; cancels came from the owners.
    assert_eq!(Watch::get(&watch.signatures_bad), 0);
    assert_eq!(Watch::get(&watch.signatures_ok), orders.notifications);
    assert_eq!(Watch::get(&watch.wrong_amounts), 0);
    assert_eq!(Watch::get(&watch.cancels_by_others), 0);
    assert_eq!(Watch::get(&watch.cancels_by_owner), orders.cancels);
    assert!(orders.cancels > 0);

    // The second wave bought what came back; the pay phase was measured.
    let wave = report.second_wave.as_ref().expect("second wave");
    assert!(wave.accepted > 0, "{wave:?}");
    assert_eq!(audit.accepted, 20 + wave.accepted);
    let pay = report.pay_phase.as_ref().expect("pay phase");
    assert!(pay.paid > 0 && pay.paid_per_sec > 0.0, "{pay:?}");
    assert!(report.passed());
    let table = report.table();
    assert!(
        table.contains("pay phase") && table.contains("paid/s"),
        "{table}"
    );
}

#[tokio::test]
async fn an_engine_that_sells_an_expired_orders_unit_twice_fails_the_audit() {
    let target = mock::spawn(Faults {
        pay_expired: true,
        ..Faults::default()
    })
    .await;
    let report = flash::run(&args(&target, 40, 80)).await.expect("run");
    let audit = claims_audit(&report);
    assert!(!audit.passed);
    let v = &audit.order_violations;
    let has = |words: &str| v.iter().any(|x| x.contains(words));
    assert!(has("broke the stock arithmetic"), "{v:?}");
    assert!(has("units are paid and back in stock"), "{v:?}");
    assert!(has("when the order must have expired"), "{v:?}");
    assert!(!report.passed());
}

#[tokio::test]
async fn refused_payments_missing_from_the_refunds_fail_the_audit() {
    let target = mock::spawn(Faults {
        drop_refunds: true,
        ..Faults::default()
    })
    .await;
    let report = flash::run(&args(&target, 20, 40)).await.expect("run");
    let audit = claims_audit(&report);
    let orders = audit.orders.as_ref().expect("an order audit");
    assert!(orders.refunds_missing > 0, "{orders:?}");
    assert_eq!(orders.refunds, 0);
    assert!(!audit.passed);
}

#[tokio::test]
async fn notifications_signed_with_the_wrong_secret_fail_the_audit() {
    let (target, watch) = mock::spawn_watched(Faults::default()).await;
    let mut wrong = args(&target, 10, 20);
    wrong.orders.payment_secret = Some("not-the-engines-secret".to_owned());
    wrong.orders.second_wave = Some(0);
    let report = flash::run(&wrong).await.expect("run");
    let audit = claims_audit(&report);
    assert!(!audit.passed);
    assert!(
        audit
            .order_violations
            .iter()
            .any(|v| v.contains("notify: 401 unauthorized")),
        "{:?}",
        audit.order_violations
    );
    assert_eq!(Watch::get(&watch.signatures_ok), 0);
    assert!(Watch::get(&watch.signatures_bad) > 0);
}

#[tokio::test]
async fn flags_that_cannot_describe_a_payment_window_are_refused() {
    let target = mock::spawn(Faults::default()).await;
    let mut a = args(&target, 5, 5);
    a.orders.payment_window = Some(Duration::from_millis(1500));
    assert!(flash::run(&a).await.is_err());
    let mut a = args(&target, 5, 5);
    a.orders.payment_secret = None;
    assert!(flash::run(&a).await.is_err());
    let mut a = args(&target, 5, 5);
    a.orders.pay_share = 1.5;
    assert!(flash::run(&a).await.is_err());
}

/// Runs the real binary; returns its exit code, stdout and stderr.
async fn binary(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stampede-loadgen"))
        .args(args)
        .env("STAMPEDE_JWT_SECRET", mock::SECRET)
        .env("STAMPEDE_ADMIN_TOKEN", mock::ADMIN)
        .env("STAMPEDE_PAYMENT_SECRET", mock::PAYMENT_SECRET)
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
async fn the_binary_runs_a_payment_window_sale_and_reports_the_pay_phase() {
    let target = mock::spawn(Faults::default()).await;
    let (code, stdout, stderr) = binary(&[
        "flash",
        "--target",
        &target,
        "--stock",
        "10",
        "--users",
        "30",
        "--concurrency",
        "8",
        "--payment-window",
        "1s",
        "--expiry-grace",
        "1s",
        "--pay-share",
        "0.7",
        "--second-wave",
        "20",
        "--drain-timeout",
        "3s",
        "--json",
        "--quiet",
    ])
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(json["audit"]["passed"], true);
    for key in ["paid", "expired", "cancelled", "refunds", "samples"] {
        assert!(json["audit"]["orders"].get(key).is_some(), "missing {key}");
    }
    assert!(json["pay_phase"]["paid_per_sec"]
        .as_f64()
        .is_some_and(|r| r > 0.0));
    assert!(json["second_wave"].get("accepted").is_some());
}

#[tokio::test]
async fn the_order_flags_need_a_payment_window() {
    let (code, _, stderr) = binary(&[
        "flash",
        "--stock",
        "1",
        "--users",
        "1",
        "--pay-share",
        "0.5",
    ])
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--payment-window"), "{stderr}");
    let (code, stdout, _) = binary(&["flash", "--help"]).await;
    assert_eq!(code, Some(0));
    for flag in [
        "--payment-window",
        "--pay-share",
        "--payment-secret",
        "--price-cents",
        "--second-wave",
        "--expiry-grace",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
}
