//! The behaviour events' tables on each database (`engine/src/db/events.rs`): rows and
//! their per-minute counts written exactly once however often a batch comes (also by
//! two writers at once), a day without its partition made on the way, the partitions
//! made ahead, and retention dropping the old days and nothing newer.

use std::collections::BTreeMap;

use stampede_engine::behaviour::{day_of, BehaviourEvent};
use stampede_engine::clock::now_ms;
use stampede_engine::db::Database;
use stampede_engine::testkit::{TestMysql, TestPg, TestSqlite};

const DAY_MS: i64 = 86_400_000;

/// What drops a test database afterwards.
type Guard = Box<dyn std::any::Any + Send>;

/// A database of each kind, migrated, with its guard.
async fn databases() -> Vec<(&'static str, Database, Guard)> {
    let pg = TestPg::create().await;
    let my = TestMysql::create().await;
    let lite = TestSqlite::create();
    let mut out = Vec::new();
    for (name, url, guard) in [
        ("postgres", pg.url(), Box::new(pg) as Guard),
        ("mysql", my.url(), Box::new(my) as Guard),
        ("sqlite", lite.url(), Box::new(lite) as Guard),
    ] {
        let db = Database::connect(&url, 8).await.expect("connect");
        db.migrate().await.expect("migrate");
        out.push((name, db, guard));
    }
    out
}

/// An event as the api makes it, but at any instant (the api refuses `at` older than a
/// day; the tables take any).
fn event(campaign_id: u64, kind: &str, at_ms: i64) -> BehaviourEvent {
    BehaviourEvent {
        id: stampede_engine::behaviour::new_id(),
        campaign_id,
        user_id: "u1".into(),
        kind: kind.into(),
        at_ms,
        props: Some("{\"k\":1}".into()),
        received_at_ms: at_ms,
    }
}

/// Every count of the campaign over `[from, to]`, summed by type.
async fn counted(db: &Database, campaign: u64, from: i64, to: i64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (_, kind, n) in db.event_minutes(campaign, from, to).await.expect("counts") {
        *out.entry(kind).or_default() += n;
    }
    out
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_and_counts_are_written_once_however_often_a_batch_comes() {
    let now = now_ms();
    for (name, db, _guard) in databases().await {
        // Today and a day back: the day back has no partition yet (none made ahead).
        let mut batch: Vec<BehaviourEvent> = (0..1_500)
            .map(|i| event(7, if i % 3 == 0 { "share" } else { "view" }, now - i))
            .collect();
        batch.extend((0..20).map(|i| event(7, "view", now - DAY_MS - i)));
        batch.push(event(8, "view", now));
        assert_eq!(
            db.persist_events(&batch).await.expect("write"),
            1_521,
            "{name}"
        );
        // Redelivered, whole and in parts, and by two writers at once.
        let (a, b) = batch.split_at(700);
        let (x, y, z) = tokio::join!(
            db.persist_events(&batch),
            db.persist_events(a),
            db.persist_events(b)
        );
        assert_eq!(
            (x.expect("again"), y.expect("part"), z.expect("part")),
            (0, 0, 0),
            "{name}"
        );
        let today = day_of(now);
        let yesterday = day_of(now - DAY_MS);
        let in_today = batch
            .iter()
            .filter(|e| e.campaign_id == 7 && e.day() == today)
            .count() as u64;
        assert_eq!(
            db.event_count(&today, 7).await.expect("count"),
            (in_today, in_today),
            "{name}"
        );
        assert_eq!(
            db.event_count(&yesterday, 7).await.expect("count").0,
            1_521 - 1 - in_today,
            "{name}"
        );
        let days = db.event_days().await.expect("days");
        assert!(
            days.contains(&today) && days.contains(&yesterday),
            "{name}: {days:?}"
        );
        // The counts are the rows, by type, each once.
        assert_eq!(
            counted(&db, 7, now - 2 * DAY_MS, now).await,
            map(&[("share", 500), ("view", 1_020)]),
            "{name}"
        );
        assert_eq!(
            counted(&db, 8, now - 60_000, now).await,
            map(&[("view", 1)])
        );
        // Per minute: the minute starts, each with its own count.
        let minutes = db.event_minutes(7, now - 2 * DAY_MS, now).await.expect("m");
        assert!(minutes.iter().all(|(m, _, _)| m % 60_000 == 0), "{name}");
        assert!(
            minutes
                .windows(2)
                .all(|w| (w[0].0, &w[0].1) < (w[1].0, &w[1].1)),
            "{name}: by minute, then type"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_are_made_ahead_and_retention_drops_old_days_only() {
    let now = now_ms();
    for (name, db, _guard) in databases().await {
        db.prepare_event_days(now).await.expect("ahead");
        db.prepare_event_days(now)
            .await
            .expect("ahead again: a no-op");
        let (old, older, kept) = (now - 40 * DAY_MS, now - 31 * DAY_MS, now - 29 * DAY_MS);
        let batch: Vec<BehaviourEvent> = [old, older, kept, now, now + DAY_MS]
            .iter()
            .map(|at| event(3, "view", *at))
            .collect();
        assert_eq!(db.persist_events(&batch).await.expect("write"), 5, "{name}");
        let days = db.event_days().await.expect("days");
        for at in [old, older, kept, now, now + DAY_MS] {
            assert!(days.contains(&day_of(at)), "{name}: {days:?}");
        }
        if name == "postgres" {
            // Made ahead, before any event of theirs.
            assert!(days.contains(&day_of(now + 2 * DAY_MS)), "{name}: {days:?}");
        }
        let dropped = db
            .drop_expired_event_days(30, now)
            .await
            .expect("retention");
        assert_eq!(dropped, vec![day_of(old), day_of(older)], "{name}");
        let days = db.event_days().await.expect("days");
        assert!(
            !days.contains(&day_of(old)) && !days.contains(&day_of(older)),
            "{name}: {days:?}"
        );
        for at in [kept, now, now + DAY_MS] {
            assert_eq!(
                db.event_count(&day_of(at), 3).await.expect("count").0,
                1,
                "{name}: {} kept",
                day_of(at)
            );
        }
        assert_eq!(db.event_count(&day_of(old), 3).await.expect("count").0, 0);
        // Their counts went with them; the kept days' stay.
        assert_eq!(
            counted(&db, 3, old - DAY_MS, now + DAY_MS).await,
            map(&[("view", 3)]),
            "{name}"
        );
        // Again, or by many workers at once: nothing more goes.
        let (a, b) = tokio::join!(
            db.drop_expired_event_days(30, now),
            db.drop_expired_event_days(30, now)
        );
        assert!(
            a.expect("again").is_empty() && b.expect("again").is_empty(),
            "{name}"
        );
        assert_eq!(
            counted(&db, 3, old - DAY_MS, now + DAY_MS).await,
            map(&[("view", 3)]),
            "{name}"
        );
    }
}
