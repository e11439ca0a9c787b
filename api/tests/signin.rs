//! The daily sign-in over HTTP: exactly one award per user and day under races, after a
//! store wipe, and across simulated days (streaks, the missed-day reset, the bonus cap,
//! midnight in a non-UTC zone).

mod common;

use std::sync::Arc;

use common::{Backend, Deps, TestApp};
use futures::future::join_all;
use serde_json::Value;
use stampede_engine::clock::{Clock, ManualClock};

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn sixty_racing_signins_award_once(backend: Backend) {
    let deps = Deps::new(backend).await;
    let mut app = TestApp::start(&deps.config()).await;
    let replies = join_all((0..60).map(|_| app.signin("racer"))).await;
    let created: Vec<&Value> = replies
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    let repeats: Vec<&Value> = replies
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "one award: {replies:?}");
    assert_eq!(repeats.len(), 59);
    let award = created[0];
    assert_eq!(award["status"], "signed_in");
    assert_eq!(award["points_awarded"], 10);
    assert_eq!(award["streak"], 1);
    for r in &repeats {
        assert_eq!(r["status"], "already_signed_in");
        for field in ["day", "points_awarded", "streak", "balance"] {
            assert_eq!(
                r[field], award[field],
                "every reply reports the same award ({field})"
            );
        }
    }
    let points = app.user_get("racer", "/v1/me/points").await;
    assert_eq!(points["balance"], 10);
    assert_eq!(points["signed_in_today"], true);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_racing_signins_award_once_on_redis() {
    sixty_racing_signins_award_once(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_racing_signins_award_once_embedded() {
    sixty_racing_signins_award_once(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_racing_signins_award_once_on_mysql() {
    sixty_racing_signins_award_once(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_users_at_once_get_five_hundred_awards() {
    let deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    let users: Vec<String> = (0..500).map(|u| format!("morning{u}")).collect();
    let replies = join_all(users.iter().map(|u| app.signin(u))).await;
    assert!(
        replies
            .iter()
            .all(|(s, b)| *s == 201 && b["points_awarded"] == 10),
        "{replies:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_store_awards_nothing_twice() {
    let deps = Deps::new(Backend::Redis).await;
    let mut app = TestApp::start(&deps.config()).await;
    let (status, first) = app.signin("wiped").await;
    assert_eq!(status, 201);
    let url = deps.redis.as_ref().map(|r| r.url()).unwrap_or_default();
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    // The test owns this redis-server: wiping it touches nobody else.
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flushall");
    let (status, again) = app.signin("wiped").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["points_awarded"], first["points_awarded"]);
    assert_eq!(again["balance"], first["balance"]);
    let points = app.user_get("wiped", "/v1/me/points").await;
    assert_eq!(points["balance"], 10, "the balance is unchanged");
    let day: u32 = first["day"]
        .as_str()
        .and_then(|d| d.get(8..10))
        .and_then(|d| d.parse().ok())
        .expect("day");
    let calendar = app.user_get("wiped", "/v1/me/signins").await;
    assert_eq!(
        calendar["days"],
        serde_json::json!([day]),
        "the calendar comes back from the database"
    );
    app.stop().await;
}

/// Signs `user` in on the clock's current day and returns (status, points, streak, balance).
async fn day(app: &TestApp, user: &str) -> (u16, u64, u64, u64) {
    let (s, b) = app.signin(user).await;
    let n = |f: &str| b[f].as_u64().unwrap_or(u64::MAX);
    (s, n("points_awarded"), n("streak"), n("balance"))
}

async fn streaks_over_simulated_days(backend: Backend, timezone: &str, start_ms: i64) {
    let deps = Deps::new(backend).await;
    let mut config = deps.config();
    config.timezone = timezone.into();
    let clock = Arc::new(ManualClock::new(start_ms));
    let mut app = TestApp::start_with_clock(&config, Some(clock.clone() as Arc<dyn Clock>)).await;

    assert_eq!(day(&app, "walker").await, (201, 10, 1, 10));
    assert_eq!(
        day(&app, "walker").await,
        (200, 10, 1, 10),
        "the same day awards nothing"
    );
    clock.advance(DAY_MS);
    assert_eq!(day(&app, "walker").await, (201, 15, 2, 25));
    clock.advance(DAY_MS);
    assert_eq!(day(&app, "walker").await, (201, 20, 3, 45));
    clock.advance(2 * DAY_MS); // a missed day
    assert_eq!(app.user_get("walker", "/v1/me/points").await["streak"], 0);
    assert_eq!(
        day(&app, "walker").await,
        (201, 10, 1, 55),
        "a missed day resets the streak"
    );
    let mut balance = 55;
    for streak in 2..=13u64 {
        clock.advance(DAY_MS);
        let points = 10 + (5 * (streak - 1)).min(50);
        balance += points;
        assert_eq!(
            day(&app, "walker").await,
            (201, points, streak, balance),
            "day {streak} of the streak"
        );
    }
    let points = app.user_get("walker", "/v1/me/points").await;
    assert_eq!(
        (points["balance"].as_u64(), points["streak"].as_u64()),
        (Some(balance), Some(13))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaks_build_reset_and_cap_in_utc() {
    // 2026-11-01T12:00:00Z
    streaks_over_simulated_days(Backend::Embedded, "UTC", 1_793_534_400_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaks_build_reset_and_cap_in_shanghai() {
    streaks_over_simulated_days(Backend::Redis, "Asia/Shanghai", 1_793_534_400_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_turns_at_midnight_in_shanghai_not_utc() {
    let deps = Deps::new(Backend::Redis).await;
    let mut config = deps.config();
    config.timezone = "Asia/Shanghai".into();
    // 2026-11-22T15:59:58Z is 23:59:58 in Shanghai.
    let clock = Arc::new(ManualClock::new(1_795_363_198_000));
    let mut app = TestApp::start_with_clock(&config, Some(clock.clone() as Arc<dyn Clock>)).await;
    let (s, b) = app.signin("night").await;
    assert_eq!((s, b["day"].as_str()), (201, Some("2026-11-22")));
    clock.advance(4_000); // 00:00:02 on the 23rd in Shanghai, still the 22nd in UTC
    let (s, b) = app.signin("night").await;
    assert_eq!(
        (s, b["day"].as_str(), b["streak"].as_u64()),
        (201, Some("2026-11-23"), Some(2))
    );
    let calendar = app.user_get("night", "/v1/me/signins?month=2026-11").await;
    assert_eq!(calendar["days"], serde_json::json!([22, 23]));
    assert_eq!(calendar["month"], "2026-11");
    app.stop().await;
}
