//! MySQL/MariaDB: a worker batch that InnoDB picks as a deadlock's victim is run again,
//! and every claim ends in the table exactly once.
//!
//! The deadlock is real: another transaction holds one of the batch's rows, the batch
//! writes its first row and waits for that one, and the other transaction then asks for
//! the batch's first row. InnoDB rolls back the lighter of the two; the other one has
//! written 2,000 rows beforehand, so that is the batch.

use std::time::{Duration, Instant};

use sqlx::{Executor, MySqlPool};
use stampede_engine::claim::Claim;
use stampede_engine::db::Database;
use stampede_engine::testkit::TestMysql;

fn claim(id: &str) -> Claim {
    Claim {
        id: id.into(),
        campaign_id: 1,
        user_id: format!("user-{id}"),
        quantity: 1,
        amount_cents: 0,
        packet_idx: -1,
        accepted_at_ms: 1,
    }
}

async fn insert_claim(conn: &mut sqlx::MySqlConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO claims (campaign_id, claim_id, user_id, quantity, amount_cents, \
         packet_idx, accepted_at_ms, persisted_at_ms) VALUES (1, ?, 'other', 1, 0, -1, 1, 1)",
    )
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Waits until the batch's insert has been running for a while in this test's
/// database: with two rows to write, it is then waiting for the lock on "b".
/// (MariaDB's `information_schema.innodb_trx` does not always list a waiting
/// transaction; the process list does show its statement.)
async fn wait_for_lock_wait(pool: &MySqlPool, db_name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while seen < 3 {
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE db = ? AND info LIKE 'INSERT IGNORE INTO claims%'",
        )
        .bind(db_name)
        .fetch_one(pool)
        .await
        .expect("processlist");
        seen = if running > 0 { seen + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "the batch never waited for the row lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_deadlocked_batch_is_retried_and_nothing_is_lost_or_doubled() {
    let test_db = TestMysql::create().await;
    let db = Database::connect(&test_db.url(), 4).await.expect("connect");
    db.migrate().await.expect("migrate");
    let Database::Mysql(pool) = db.clone() else {
        unreachable!("a mysql:// URL opens MySQL")
    };
    pool.execute("CREATE TABLE ballast (n INT PRIMARY KEY)")
        .await
        .expect("ballast table");

    // The other transaction: heavy, and holding row "b".
    let mut other = pool.begin().await.expect("begin");
    let mut ballast = sqlx::QueryBuilder::<sqlx::MySql>::new("INSERT INTO ballast (n) ");
    ballast.push_values(0..2_000, |mut row, n| {
        row.push_bind(n);
    });
    ballast
        .build()
        .execute(&mut *other)
        .await
        .expect("ballast rows");
    insert_claim(&mut other, "b").await.expect("other holds b");

    // The batch writes "a", then waits for "b".
    let batch = {
        let db = db.clone();
        tokio::spawn(async move { db.persist_claims(&[claim("a"), claim("b")], 2).await })
    };
    wait_for_lock_wait(&pool, &test_db.name).await;

    // The other transaction asks for "a": a cycle. InnoDB rolls the batch back, so this
    // insert gets "a" and succeeds; then the other transaction gives everything up.
    insert_claim(&mut other, "a")
        .await
        .expect("the other transaction, the heavier, is not the victim");
    other.rollback().await.expect("rollback");

    let written = tokio::time::timeout(Duration::from_secs(30), batch)
        .await
        .expect("the batch finishes")
        .expect("the batch's task")
        .expect("the deadlocked batch is retried, not failed");
    assert_eq!(written, 2, "both claims written by the retry");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(claim_id AS CHAR), CAST(user_id AS CHAR) FROM claims ORDER BY claim_id",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            ("a".to_string(), "user-a".to_string()),
            ("b".to_string(), "user-b".to_string())
        ],
        "each claim once, as the batch wrote it"
    );
    db.close().await;
}
