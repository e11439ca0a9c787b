//! MySQL 8 and MariaDB 10.11+: what their dialect needs of its own.
//!
//! - `?` placeholders: the shared query texts number theirs `$1, $2, ...` in binding
//!   order, and [`placeholders`] turns them into `?`.
//! - No `RETURNING` in MySQL 8: an insert reads its row back by `LAST_INSERT_ID()`.
//! - No `ON CONFLICT DO NOTHING`: the claim batch is `INSERT IGNORE`. sqlx sets
//!   `CLIENT_FOUND_ROWS`, so an `ON DUPLICATE KEY UPDATE` no-op would count a skipped row
//!   as affected; `INSERT IGNORE` counts only the rows it wrote, as PostgreSQL does. The
//!   leniency `IGNORE` adds (a too-long text cut to fit) cannot be reached: the engine
//!   refuses ids over 64 characters, the columns' width, before a claim is accepted.
//! - InnoDB deadlocks: two transactions that wait on each other's row locks, one is
//!   rolled back with error 1213 (or waits out `innodb_lock_wait_timeout`, 1205). Both
//!   are retried here, the whole transaction again, with a jittered backoff: a rolled
//!   back transaction wrote nothing, and the rows it retries are skipped if another
//!   wrote them meanwhile.
//! - Connections run at READ COMMITTED, PostgreSQL's default: each statement sees what
//!   has committed before it, and InnoDB takes no gap locks for the batched inserts.

use std::borrow::Cow;
use std::time::Duration;

use rand::Rng;
use sqlx::{Executor, MySql, MySqlPool, QueryBuilder};

use super::CLAIM_COLUMNS;
use crate::claim::Claim;
use crate::error::{EngineError, Result};
use crate::signin::SigninRules;

/// Rows per multi-row `INSERT`: 8 placeholders a row keeps a statement far under the
/// 65,535 a prepared statement may have, and a row of at most ~250 bytes keeps 1,000
/// of them (~250 KB) far under `max_allowed_packet` (MariaDB's default 16 MB, MySQL 8's
/// 64 MB; no server allows less than 1 MB).
pub(super) const ROWS_PER_STATEMENT: usize = 1_000;

/// Times a transaction is tried when InnoDB picks it as a deadlock's victim.
const DEADLOCK_ATTEMPTS: u32 = 8;

/// The session settings every pooled connection gets before its first query.
pub(super) async fn prepare(conn: &mut sqlx::MySqlConnection) -> sqlx::Result<()> {
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .map(|_| ())
}

/// `sql` with each `$N` placeholder as `?`. The texts shared with the other databases
/// use each number once, in binding order, which is what `?` binds by.
pub(super) fn placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut expected = 1u32;
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0u32;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n * 10 + d;
                chars.next();
            }
            debug_assert_eq!(n, expected, "placeholders out of binding order in {sql}");
            expected += 1;
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A deadlock victim (1213) or a lock wait that timed out (1205): the transaction was
/// rolled back and may simply run again.
fn is_lock_conflict(e: &EngineError) -> bool {
    match e {
        EngineError::Database(sqlx::Error::Database(db)) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| matches!(m.number(), 1213 | 1205)),
        _ => false,
    }
}

/// Runs the transaction `tx` until it is not a deadlock's victim, at most
/// [`DEADLOCK_ATTEMPTS`] times; every retry counts in
/// `stampede_db_deadlock_retries_total{op}`.
pub(super) async fn retrying_deadlocks<T, F, Fut>(op: &'static str, mut tx: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match tx().await {
            Err(e) if attempt < DEADLOCK_ATTEMPTS && is_lock_conflict(&e) => {
                metrics::counter!("stampede_db_deadlock_retries_total", "op" => op).increment(1);
                tracing::info!(error = %e, attempt, op, "lock conflict; running the transaction again");
                let cap = 5u64 << attempt.min(6);
                let wait = rand::rng().random_range(cap / 2..=cap);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The batch in one transaction of multi-row `INSERT IGNORE`s, in key order (two
/// batches that share rows then lock them in the same order, which leaves a deadlock
/// only to transactions from outside). Returns how many rows were new.
pub(super) async fn persist_claims(p: &MySqlPool, claims: &[Claim], now_ms: i64) -> Result<u64> {
    let mut sorted: Vec<&Claim> = claims.iter().collect();
    sorted.sort_unstable_by(|a, b| (a.campaign_id, &a.id).cmp(&(b.campaign_id, &b.id)));
    retrying_deadlocks("persist_claims", || async {
        let mut tx = p.begin().await?;
        let mut inserted = 0;
        for chunk in sorted.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<MySql> = QueryBuilder::new(format!(
                "INSERT IGNORE INTO claims ({CLAIM_COLUMNS}, persisted_at_ms) "
            ));
            q.push_values(chunk, |mut row, c| {
                row.push_bind(c.campaign_id as i64)
                    .push_bind(&c.id)
                    .push_bind(&c.user_id)
                    .push_bind(c.quantity as i64)
                    .push_bind(c.amount_cents as i64)
                    .push_bind(c.packet_idx)
                    .push_bind(c.accepted_at_ms)
                    .push_bind(now_ms);
            });
            inserted += q.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    })
    .await
}

/// Awards `day`'s sign-in in one transaction: the day's row (with yesterday's streak
/// read first), then, only when the row was new, the ledger row and the balance. A
/// racing award of the same user and day waits on the row's lock and then finds it
/// there (the insert writes nothing); it returns the existing award, read after its
/// transaction ends so it sees the winner's commit. `None`: the row already existed.
pub(super) async fn award_signin(
    p: &MySqlPool,
    user_id: &str,
    day: &str,
    yesterday: &str,
    rules: &SigninRules,
    now_ms: i64,
) -> Result<Option<(i64, i64, i64)>> {
    retrying_deadlocks("award_signin", || async {
        let mut tx = p.begin().await?;
        let prev: Option<i64> =
            sqlx::query_scalar("SELECT streak FROM signins WHERE user_id = ? AND day = ?")
                .bind(user_id)
                .bind(yesterday)
                .fetch_optional(&mut *tx)
                .await?;
        let streak = prev.unwrap_or(0) + 1;
        let points = rules.points_for(streak as u64) as i64;
        let new = sqlx::query(
            "INSERT IGNORE INTO signins (user_id, day, streak, points, signed_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(day)
        .bind(streak)
        .bind(points)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !new {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO points_ledger (user_id, reason, delta, created_at_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(format!("signin:{day}"))
        .bind(points)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO points_balances (user_id, balance) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance)",
        )
        .bind(user_id)
        .bind(points)
        .execute(&mut *tx)
        .await?;
        let balance: i64 =
            sqlx::query_scalar("SELECT balance FROM points_balances WHERE user_id = ?")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(Some((streak, points, balance)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn numbered_placeholders_become_question_marks() {
        assert_eq!(
            placeholders("SELECT * FROM t WHERE a = $1 AND b > $2 LIMIT $3"),
            "SELECT * FROM t WHERE a = ? AND b > ? LIMIT ?"
        );
        assert_eq!(placeholders("SELECT 1"), "SELECT 1");
        // A `$` that is not a placeholder stays.
        assert_eq!(placeholders("SELECT '$x' = $1"), "SELECT '$x' = ?");
        let twelve: Vec<String> = (1..=12).map(|n| format!("${n}")).collect();
        assert_eq!(placeholders(&twelve.join(",")), ["?"; 12].join(","));
    }

    #[test]
    #[should_panic(expected = "out of binding order")]
    fn a_placeholder_out_of_order_is_caught() {
        let _ = placeholders("UPDATE t SET a = $2 WHERE id = $1");
    }
}
