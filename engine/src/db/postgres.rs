//! PostgreSQL: the statements its dialect does in one step.
//!
//! The claim batch and the behaviour event batch go as arrays through `UNNEST` in one
//! statement each (one round trip whatever the batch's size), and the sign-in award is
//! one statement of data-modifying CTEs, its own transaction.

use sqlx::PgPool;

use super::CLAIM_COLUMNS;
use crate::behaviour::BehaviourEvent;
use crate::claim::Claim;
use crate::error::Result;
use crate::signin::SigninRules;

/// The batch in one `INSERT ... SELECT FROM UNNEST ... ON CONFLICT DO NOTHING`.
/// Returns how many rows were new.
pub(super) async fn persist_claims(p: &PgPool, claims: &[Claim], now_ms: i64) -> Result<u64> {
    let sql = format!(
        "INSERT INTO claims ({CLAIM_COLUMNS}, persisted_at_ms) \
         SELECT *, $8 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
         $5::bigint[], $6::bigint[], $7::bigint[]) ON CONFLICT DO NOTHING"
    );
    let col = |f: fn(&Claim) -> i64| claims.iter().map(f).collect::<Vec<i64>>();
    let text = |f: fn(&Claim) -> &str| {
        claims
            .iter()
            .map(|c| f(c).to_string())
            .collect::<Vec<String>>()
    };
    let done = sqlx::query(&sql)
        .bind(col(|c| c.campaign_id as i64))
        .bind(text(|c| &c.id))
        .bind(text(|c| &c.user_id))
        .bind(col(|c| c.quantity as i64))
        .bind(col(|c| c.amount_cents as i64))
        .bind(col(|c| c.packet_idx))
        .bind(col(|c| c.accepted_at_ms))
        .bind(now_ms)
        .execute(p)
        .await?;
    Ok(done.rows_affected())
}

/// The behaviour events in ONE statement: the insert skips rows already there and
/// returns the new ones, which the same statement adds to their minutes' counts (in key
/// order, so concurrent writers lock the count rows in one order). Returns how many
/// rows were new.
pub(super) async fn persist_events(p: &PgPool, events: &[BehaviourEvent]) -> Result<u64> {
    let text = |f: fn(&BehaviourEvent) -> &str| {
        events
            .iter()
            .map(|e| f(e).to_string())
            .collect::<Vec<String>>()
    };
    let int = |f: fn(&BehaviourEvent) -> i64| events.iter().map(f).collect::<Vec<i64>>();
    let days: Vec<i32> = events.iter().map(BehaviourEvent::day_number).collect();
    let props: Vec<Option<String>> = events.iter().map(|e| e.props.clone()).collect();
    let new: i64 = sqlx::query_scalar(
        "WITH ins AS (INSERT INTO events \
           (id, day, campaign_id, user_id, type, at_ms, props, received_at_ms) \
           SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[], \
           $6::bigint[], $7::text[], $8::bigint[]) \
           ON CONFLICT DO NOTHING RETURNING campaign_id, at_ms, type), \
         counted AS (INSERT INTO event_minutes (campaign_id, minute_ms, type, events) \
           SELECT campaign_id, at_ms - at_ms % 60000, type, COUNT(*) FROM ins \
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
           ON CONFLICT (campaign_id, minute_ms, type) \
           DO UPDATE SET events = event_minutes.events + excluded.events) \
         SELECT COUNT(*) FROM ins",
    )
    .bind(text(|e| &e.id))
    .bind(days)
    .bind(int(|e| e.campaign_id as i64))
    .bind(text(|e| &e.user_id))
    .bind(text(|e| &e.kind))
    .bind(int(|e| e.at_ms))
    .bind(props)
    .bind(int(|e| e.received_at_ms))
    .fetch_one(p)
    .await?;
    Ok(new.max(0) as u64)
}

/// Awards `day`'s sign-in in ONE statement. A racing insert of the same user and day
/// waits for this one to commit and then finds the row. `None`: the row already existed.
pub(super) async fn award_signin(
    p: &PgPool,
    user_id: &str,
    day: &str,
    yesterday: &str,
    rules: &SigninRules,
    now_ms: i64,
) -> Result<Option<(i64, i64, i64)>> {
    let awarded = sqlx::query_as(
        "WITH prev AS (SELECT COALESCE((SELECT streak FROM signins WHERE user_id = $1 AND day = $7), 0) + 1 AS s), \
         ins AS (INSERT INTO signins (user_id, day, streak, points, signed_at_ms) \
           SELECT $1, $2, s, $3 + LEAST($4 * (s - 1), $5), $6 FROM prev \
           ON CONFLICT DO NOTHING RETURNING streak, points), \
         led AS (INSERT INTO points_ledger (user_id, reason, delta, created_at_ms) \
           SELECT $1, 'signin:' || $2, points, $6 FROM ins), \
         bal AS (INSERT INTO points_balances (user_id, balance) SELECT $1, points FROM ins \
           ON CONFLICT (user_id) DO UPDATE SET balance = points_balances.balance + excluded.balance \
           RETURNING balance) \
         SELECT ins.streak, ins.points, bal.balance FROM ins, bal",
    )
    .bind(user_id)
    .bind(day)
    .bind(rules.base_points as i64)
    .bind(rules.streak_step as i64)
    .bind(rules.bonus_cap as i64)
    .bind(now_ms)
    .bind(yesterday)
    .fetch_optional(p)
    .await?;
    Ok(awarded)
}
