//! The database: the source of truth for campaigns and persisted claims.
//!
//! PostgreSQL in production, SQLite embedded. Both schemas keep instants as unix
//! milliseconds, so every query but the batched claim insert has one text that both
//! run: [`on_pool!`] dispatches it to whichever pool is open. The insert differs:
//! PostgreSQL takes a batch as arrays through `UNNEST` in one statement, SQLite as
//! multi-row `VALUES`. Both are `ON CONFLICT DO NOTHING`, so a redelivered event is a
//! no-op: the queue is at-least-once, the table exactly-once.
//!
//! Every query's time is recorded in `stampede_db_duration_seconds{op}`, `op` being the
//! method's name.

mod rows;

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, QueryBuilder, SqlitePool};

use crate::campaign::{Campaign, ValidCampaign};
use crate::claim::Claim;
use crate::error::Result;
use crate::signin::{previous_day, Month, SigninRecord, SigninRules};
use crate::telemetry::Timings;
use rows::{CampaignRow, ClaimRow};

/// Runs the same expression against whichever pool is open.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Postgres($pool) => $body,
            Database::Sqlite($pool) => $body,
        }
    };
}

const CLAIM_COLUMNS: &str =
    "campaign_id, claim_id, user_id, quantity, amount_cents, packet_idx, accepted_at_ms";

#[derive(Clone, Debug)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The `op` labels of `stampede_db_duration_seconds`: one per query method, the
/// worker's batch insert first.
const OPS: &[&str] = &[
    "persist_claims",
    "ping",
    "insert_campaign",
    "campaign",
    "campaigns",
    "close_campaign",
    "persisted_count",
    "campaign_totals",
    "claim_exists",
    "campaign_claims",
    "user_campaign_claims",
    "user_claims",
    "award_signin",
    "signin_days",
    "points",
    "block",
    "unblock",
    "blocklist",
];

/// Query times, registered on first use (see [`crate::telemetry`]).
fn timings() -> &'static Timings {
    static TIMINGS: OnceLock<Timings> = OnceLock::new();
    TIMINGS.get_or_init(|| Timings::new("stampede_db_duration_seconds", OPS))
}

/// Rows of SQLite's multi-row insert per statement: 8 values a row stays far under
/// SQLite's 32,766 bound variables.
const SQLITE_ROWS_PER_STATEMENT: usize = 1_000;

impl Database {
    /// Opens a pool for a `postgres://` or `sqlite://` URL; `max_connections` bounds it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Database> {
        let acquire = Duration::from_secs(3);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire)
                .connect_lazy_with(opts);
            Ok(Database::Postgres(pool))
        } else {
            // WAL lets readers run beside the one writer; NORMAL sync is durable across
            // process crashes (an OS crash may lose the last transactions).
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire)
                .connect_with(opts)
                .await?;
            Ok(Database::Sqlite(pool))
        }
    }

    /// Applies the migrations of this database's kind.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Database::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
            Database::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        let _t = timings().start("ping");
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }

    pub async fn insert_campaign(
        &self,
        c: &ValidCampaign,
        split_seed: u64,
        now_ms: i64,
    ) -> Result<Campaign> {
        let _t = timings().start("insert_campaign");
        let sql =
            "INSERT INTO campaigns (kind, name, total, per_user_limit, price_cents, total_cents, \
                   min_cents, split_seed, starts_at_ms, ends_at_ms, created_at_ms, \
                   ticket_required, ticket_lead_secs, buckets) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *";
        let row: CampaignRow = on_pool!(self, p => sqlx::query_as(sql)
            .bind(c.kind.as_str())
            .bind(&c.name)
            .bind(c.total as i64)
            .bind(c.per_user_limit as i64)
            .bind(c.price_cents as i64)
            .bind(c.total_cents as i64)
            .bind(c.min_cents as i64)
            .bind(split_seed as i64)
            .bind(c.starts_at_ms)
            .bind(c.ends_at_ms)
            .bind(now_ms)
            .bind(c.ticket_required)
            .bind(c.ticket_lead_secs as i64)
            .bind(c.buckets as i64)
            .fetch_one(p)
            .await)?;
        row.into_campaign()
    }

    pub async fn campaign(&self, id: u64) -> Result<Option<Campaign>> {
        let _t = timings().start("campaign");
        let row: Option<CampaignRow> = on_pool!(self, p => sqlx::query_as("SELECT * FROM campaigns WHERE id = $1")
            .bind(id as i64)
            .fetch_optional(p)
            .await)?;
        row.map(CampaignRow::into_campaign).transpose()
    }

    /// Campaigns whose end is after `ends_after_ms`, newest first, at most `limit`.
    pub async fn campaigns(&self, ends_after_ms: i64, limit: i64) -> Result<Vec<Campaign>> {
        let _t = timings().start("campaigns");
        let rows: Vec<CampaignRow> = on_pool!(self, p => sqlx::query_as(
                "SELECT * FROM campaigns WHERE ends_at_ms > $1 ORDER BY id DESC LIMIT $2")
            .bind(ends_after_ms)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(CampaignRow::into_campaign).collect()
    }

    /// Moves a campaign's end to `ends_at_ms` unless it already ends earlier.
    pub async fn close_campaign(&self, id: u64, ends_at_ms: i64) -> Result<()> {
        let _t = timings().start("close_campaign");
        on_pool!(self, p => sqlx::query("UPDATE campaigns SET ends_at_ms = $2 WHERE id = $1 AND ends_at_ms > $2")
            .bind(id as i64)
            .bind(ends_at_ms)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Writes a batch of claims in ONE transaction, skipping any already written.
    /// Returns how many rows were new.
    pub async fn persist_claims(&self, claims: &[Claim], now_ms: i64) -> Result<u64> {
        let _t = timings().start("persist_claims");
        if claims.is_empty() {
            return Ok(0);
        }
        match self {
            Database::Postgres(p) => {
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
            Database::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let mut inserted = 0;
                for chunk in claims.chunks(SQLITE_ROWS_PER_STATEMENT) {
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
        }
    }

    pub async fn persisted_count(&self, campaign_id: u64) -> Result<u64> {
        let _t = timings().start("persisted_count");
        let n: i64 = on_pool!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM claims WHERE campaign_id = $1")
            .bind(campaign_id as i64)
            .fetch_one(p)
            .await)?;
        Ok(n as u64)
    }

    /// (claims, units, cents) persisted for a campaign: the settled counters of one
    /// that has ended.
    pub async fn campaign_totals(&self, campaign_id: u64) -> Result<(u64, u64, u64)> {
        let _t = timings().start("campaign_totals");
        let (n, units, cents): (i64, i64, i64) = on_pool!(self, p => sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(quantity), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM claims WHERE campaign_id = $1")
            .bind(campaign_id as i64)
            .fetch_one(p)
            .await)?;
        Ok((n as u64, units as u64, cents as u64))
    }

    pub async fn claim_exists(&self, campaign_id: u64, claim_id: &str) -> Result<bool> {
        let _t = timings().start("claim_exists");
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM claims WHERE campaign_id = $1 AND claim_id = $2")
            .bind(campaign_id as i64)
            .bind(claim_id)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// A campaign's persisted claims after `after` in claim-id order, at most `limit`
    /// (the admin export; the rebuild reads them all).
    pub async fn campaign_claims(
        &self,
        campaign_id: u64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Claim>> {
        let _t = timings().start("campaign_claims");
        let sql = format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE campaign_id = $1 AND claim_id > $2 ORDER BY claim_id LIMIT $3"
        );
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(campaign_id as i64)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(ClaimRow::into_claim).collect())
    }

    /// A user's persisted claims in one campaign, in claim-id order.
    pub async fn user_campaign_claims(
        &self,
        campaign_id: u64,
        user_id: &str,
    ) -> Result<Vec<Claim>> {
        let _t = timings().start("user_campaign_claims");
        let sql = format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE campaign_id = $1 AND user_id = $2 ORDER BY claim_id LIMIT 1000"
        );
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(campaign_id as i64)
            .bind(user_id)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(ClaimRow::into_claim).collect())
    }

    /// A user's persisted claims across campaigns, newest first, strictly before the
    /// position `(accepted_at_ms, claim_id)` when given.
    pub async fn user_claims(
        &self,
        user_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Claim>> {
        let _t = timings().start("user_claims");
        let (ms, id) = before.unwrap_or((i64::MAX, ""));
        let sql = format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE user_id = $1 \
             AND (accepted_at_ms < $2 OR (accepted_at_ms = $2 AND claim_id < $3) OR $4) \
             ORDER BY accepted_at_ms DESC, claim_id DESC LIMIT $5"
        );
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(ms)
            .bind(id)
            .bind(before.is_none())
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(ClaimRow::into_claim).collect())
    }

    /// Awards `day`'s sign-in in ONE transaction: the day's row (its streak continues
    /// yesterday's), a ledger row and the balance. When the row already exists nothing
    /// is written and the existing award is returned. Returns the record and whether
    /// this call awarded it.
    ///
    /// In PostgreSQL a racing insert of the same user and day waits for this one to
    /// commit and then finds the row. In SQLite the insert comes first, so the
    /// transaction takes the (single) write lock at once.
    pub async fn award_signin(
        &self,
        user_id: &str,
        day: chrono::NaiveDate,
        rules: &SigninRules,
        now_ms: i64,
    ) -> Result<(SigninRecord, bool)> {
        let _t = timings().start("award_signin");
        let day_s = day.format("%Y-%m-%d").to_string();
        let yesterday = previous_day(day).format("%Y-%m-%d").to_string();
        // (streak, points, balance) as the database returns them.
        let record = |(streak, points, balance): (i64, i64, i64)| SigninRecord {
            day,
            points_awarded: points as u64,
            streak: streak as u64,
            balance: balance as u64,
        };
        // The day's row as it already is, with the user's balance.
        let existing = "SELECT s.streak, s.points, COALESCE(b.balance, 0) FROM signins s \
             LEFT JOIN points_balances b ON b.user_id = s.user_id WHERE s.user_id = $1 AND s.day = $2";
        match self {
            Database::Postgres(p) => {
                // ONE statement (data-modifying CTEs): one round trip, its own transaction.
                // No row back means the day's row was already there.
                let awarded: Option<(i64, i64, i64)> = sqlx::query_as(
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
                .bind(&day_s)
                .bind(rules.base_points as i64)
                .bind(rules.streak_step as i64)
                .bind(rules.bonus_cap as i64)
                .bind(now_ms)
                .bind(&yesterday)
                .fetch_optional(p)
                .await?;
                if let Some(row) = awarded {
                    return Ok((record(row), true));
                }
                let row = sqlx::query_as(existing)
                    .bind(user_id)
                    .bind(&day_s)
                    .fetch_one(p)
                    .await?;
                Ok((record(row), false))
            }
            // SQLite: the same steps as separate statements in one transaction. (LEAST is
            // PostgreSQL's; a CASE does the cap here.)
            Database::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let inserted: Option<(i64, i64)> = sqlx::query_as(
                    "INSERT INTO signins (user_id, day, streak, points, signed_at_ms) \
                     SELECT $1, $2, prev.s, $3 + CASE WHEN $4 * (prev.s - 1) > $5 THEN $5 ELSE $4 * (prev.s - 1) END, $6 \
                     FROM (SELECT COALESCE((SELECT streak FROM signins WHERE user_id = $1 AND day = $7), 0) + 1 AS s) AS prev \
                     WHERE true ON CONFLICT DO NOTHING RETURNING streak, points",
                )
                .bind(user_id)
                .bind(&day_s)
                .bind(rules.base_points as i64)
                .bind(rules.streak_step as i64)
                .bind(rules.bonus_cap as i64)
                .bind(now_ms)
                .bind(&yesterday)
                .fetch_optional(&mut *tx)
                .await?;
                let result = match inserted {
                    Some((streak, points)) => {
                        sqlx::query("INSERT INTO points_ledger (user_id, reason, delta, created_at_ms) VALUES ($1, $2, $3, $4)")
                            .bind(user_id)
                            .bind(format!("signin:{day_s}"))
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
                        (record((streak, points, balance)), true)
                    }
                    None => {
                        let row = sqlx::query_as(existing)
                            .bind(user_id)
                            .bind(&day_s)
                            .fetch_one(&mut *tx)
                            .await?;
                        (record(row), false)
                    }
                };
                tx.commit().await?;
                Ok(result)
            }
        }
    }

    /// The days of `month` the user signed in on.
    pub async fn signin_days(&self, user_id: &str, month: Month) -> Result<Vec<u32>> {
        let _t = timings().start("signin_days");
        let (Some(from), Some(to)) = (month.first_day(), month.end()) else {
            return Ok(Vec::new());
        };
        let days: Vec<String> = on_pool!(self, p => sqlx::query_scalar(
                "SELECT day FROM signins WHERE user_id = $1 AND day >= $2 AND day < $3 ORDER BY day")
            .bind(user_id)
            .bind(from.format("%Y-%m-%d").to_string())
            .bind(to.format("%Y-%m-%d").to_string())
            .fetch_all(p)
            .await)?;
        Ok(days
            .iter()
            .filter_map(|d| d.get(8..10)?.parse().ok())
            .collect())
    }

    /// The user's balance and latest sign-in (day and streak).
    pub async fn points(&self, user_id: &str) -> Result<(u64, Option<(chrono::NaiveDate, u64)>)> {
        let _t = timings().start("points");
        let balance: i64 = on_pool!(self, p => sqlx::query_scalar(
                "SELECT COALESCE((SELECT balance FROM points_balances WHERE user_id = $1), 0)")
            .bind(user_id)
            .fetch_one(p)
            .await)?;
        let latest: Option<(String, i64)> = on_pool!(self, p => sqlx::query_as(
                "SELECT day, streak FROM signins WHERE user_id = $1 ORDER BY day DESC LIMIT 1")
            .bind(user_id)
            .fetch_optional(p)
            .await)?;
        let latest = latest.and_then(|(d, s)| {
            chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .ok()
                .map(|d| (d, s as u64))
        });
        Ok((balance as u64, latest))
    }

    /// Blocks `subject` (`user:<id>` or `ip:<address>`) until `expires_at_ms` (`None`:
    /// until lifted); blocking it again replaces the expiry. Expired rows are pruned.
    pub async fn block(
        &self,
        subject: &str,
        expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let _t = timings().start("block");
        on_pool!(self, p => sqlx::query("DELETE FROM blocklist WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(p)
            .await
            .map(|_| ()))?;
        on_pool!(self, p => sqlx::query(
                "INSERT INTO blocklist (subject, expires_at_ms, created_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, \
                 created_at_ms = excluded.created_at_ms")
            .bind(subject)
            .bind(expires_at_ms)
            .bind(now_ms)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Lifts the block of `subject`; false when it was not blocked.
    pub async fn unblock(&self, subject: &str) -> Result<bool> {
        let _t = timings().start("unblock");
        let done = on_pool!(self, p => sqlx::query("DELETE FROM blocklist WHERE subject = $1")
            .bind(subject)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// The blocks in force at `now_ms`: (subject, expiry), at most `limit`.
    pub async fn blocklist(&self, now_ms: i64, limit: i64) -> Result<Vec<(String, Option<i64>)>> {
        let _t = timings().start("blocklist");
        let rows = on_pool!(self, p => sqlx::query_as(
                "SELECT subject, expires_at_ms FROM blocklist \
                 WHERE expires_at_ms IS NULL OR expires_at_ms > $1 ORDER BY subject LIMIT $2")
            .bind(now_ms)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }
}
