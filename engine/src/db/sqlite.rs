//! SQLite, the embedded database: multi-row `VALUES` in one transaction for the claim
//! batch, and the sign-in award as separate statements in one transaction (the insert
//! comes first, so the transaction takes the single write lock at once).

use sqlx::{QueryBuilder, SqlitePool};

use super::CLAIM_COLUMNS;
use crate::claim::Claim;
use crate::error::Result;
use crate::signin::SigninRules;

/// Rows of SQLite's multi-row insert per statement: 8 values a row stays far under
/// SQLite's 32,766 bound variables.
const ROWS_PER_STATEMENT: usize = 1_000;

/// The batch in one transaction of multi-row `INSERT ... ON CONFLICT DO NOTHING`.
/// Returns how many rows were new.
pub(super) async fn persist_claims(p: &SqlitePool, claims: &[Claim], now_ms: i64) -> Result<u64> {
    let mut tx = p.begin().await?;
    let mut inserted = 0;
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::new(format!(
            "INSERT INTO claims ({CLAIM_COLUMNS}, persisted_at_ms) "
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
        q.push(" ON CONFLICT DO NOTHING");
        inserted += q.build().execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Awards `day`'s sign-in: the day's row, then the ledger row and the balance, in one
/// transaction. `None`: the row already existed. (LEAST is PostgreSQL's; a CASE does
/// the cap here.)
pub(super) async fn award_signin(
    p: &SqlitePool,
    user_id: &str,
    day: &str,
    yesterday: &str,
    rules: &SigninRules,
    now_ms: i64,
) -> Result<Option<(i64, i64, i64)>> {
    let mut tx = p.begin().await?;
    let inserted: Option<(i64, i64)> = sqlx::query_as(
        "INSERT INTO signins (user_id, day, streak, points, signed_at_ms) \
         SELECT $1, $2, prev.s, $3 + CASE WHEN $4 * (prev.s - 1) > $5 THEN $5 ELSE $4 * (prev.s - 1) END, $6 \
         FROM (SELECT COALESCE((SELECT streak FROM signins WHERE user_id = $1 AND day = $7), 0) + 1 AS s) AS prev \
         WHERE true ON CONFLICT DO NOTHING RETURNING streak, points",
    )
    .bind(user_id)
    .bind(day)
    .bind(rules.base_points as i64)
    .bind(rules.streak_step as i64)
    .bind(rules.bonus_cap as i64)
    .bind(now_ms)
    .bind(yesterday)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((streak, points)) = inserted else {
        tx.rollback().await?;
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO points_ledger (user_id, reason, delta, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(format!("signin:{day}"))
    .bind(points)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    let balance: i64 = sqlx::query_scalar(
        "INSERT INTO points_balances (user_id, balance) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET balance = points_balances.balance + excluded.balance \
         RETURNING balance",
    )
    .bind(user_id)
    .bind(points)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((streak, points, balance)))
}
