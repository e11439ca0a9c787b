//! The database: the source of truth for campaigns and persisted claims.
//!
//! PostgreSQL or MySQL/MariaDB in production, SQLite embedded. Every schema keeps
//! instants as unix milliseconds, so most queries have one text that all three run:
//! [`on_pool!`] dispatches it to whichever pool is open, and [`Database::sql`] gives
//! MySQL its `?` placeholders. What a dialect does its own way (the batched claim
//! insert, the sign-in award) is in its module: [`postgres`], [`mysql`], [`sqlite`].
//! Every claim insert skips rows already there, so a redelivered event is a no-op: the
//! queue is at-least-once, the table exactly-once.
//!
//! Every query's time is recorded in `stampede_db_duration_seconds{op}`, `op` being the
//! method's name.

mod mysql;
mod postgres;
mod rows;
mod sqlite;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{MySqlPool, PgPool, SqlitePool};

use crate::campaign::{Campaign, LiveCounters, ValidCampaign};
use crate::claim::Claim;
use crate::error::Result;
use crate::signin::{previous_day, Month, SigninRecord, SigninRules};
use crate::telemetry::Timings;
use rows::{CampaignRow, ClaimRow};

/// Runs the same expression against whichever pool is open.
/// The longest [`Database::close`] waits for the pool's connections.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Postgres($pool) => $body,
            Database::Mysql($pool) => $body,
            Database::Sqlite($pool) => $body,
        }
    };
}

mod events;
mod orders;
pub use events::{day_of_table, table as event_table};
pub use orders::OrderWrites;

const CLAIM_COLUMNS: &str =
    "campaign_id, claim_id, user_id, quantity, amount_cents, packet_idx, accepted_at_ms";

#[derive(Clone, Debug)]
pub enum Database {
    Postgres(PgPool),
    /// MySQL 8 or MariaDB 10.11+.
    Mysql(MySqlPool),
    Sqlite(SqlitePool),
}

/// The kind of database a URL names: `"postgres"`, `"mysql"` or `"sqlite"` (what
/// [`Database::connect`] opens for it).
pub fn kind_of(url: &str) -> &'static str {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "postgres"
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        "mysql"
    } else {
        "sqlite"
    }
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
    "persist_orders",
    "orders_between",
    "user_orders",
    "order_counts",
    "refunds",
    "persist_events",
    "event_days",
    "drop_event_day",
    "event_count",
    "event_minutes",
];

/// Query times, registered on first use (see [`crate::telemetry`]).
fn timings() -> &'static Timings {
    static TIMINGS: OnceLock<Timings> = OnceLock::new();
    TIMINGS.get_or_init(|| Timings::new("stampede_db_duration_seconds", OPS))
}

impl Database {
    /// Opens a pool for a `postgres://`, `mysql://` (also `mariadb://`) or `sqlite://`
    /// URL; `max_connections` bounds it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Database> {
        let acquire = Duration::from_secs(3);
        let kind = kind_of(url);
        if kind == "postgres" {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire)
                .connect_lazy_with(opts);
            Ok(Database::Postgres(pool))
        } else if kind == "mysql" {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let opts = MySqlConnectOptions::from_str(&format!("mysql://{rest}"))?
                .charset("utf8mb4")
                .collation("utf8mb4_unicode_ci");
            let pool = MySqlPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(acquire)
                .after_connect(|conn, _| Box::pin(mysql::prepare(conn)))
                .connect_lazy_with(opts);
            Ok(Database::Mysql(pool))
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
            Database::Mysql(p) => sqlx::migrate!("./migrations/mysql").run(p).await?,
            Database::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
        }
        Ok(())
    }

    /// A query text shared by every database, in this one's placeholders: the texts
    /// number theirs `$1, $2, ...`, each once and in binding order.
    fn sql<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self {
            Database::Mysql(_) => mysql::placeholders(text),
            Database::Postgres(_) | Database::Sqlite(_) => Cow::Borrowed(text),
        }
    }

    /// `CLAIM_COLUMNS` to select. MySQL's are cast to text: sqlx reads a column of a
    /// binary collation (the ids' `utf8mb4_bin`, which keeps them case-sensitive) as
    /// bytes, not as a string.
    fn claim_select(&self) -> &'static str {
        match self {
            Database::Mysql(_) => {
                "campaign_id, CAST(claim_id AS CHAR) AS claim_id, CAST(user_id AS CHAR) AS user_id, \
                 quantity, amount_cents, packet_idx, accepted_at_ms"
            }
            Database::Postgres(_) | Database::Sqlite(_) => CLAIM_COLUMNS,
        }
    }

    /// The SQL type a 64-bit integer is cast to (`CAST(x AS ...)`): MySQL names it
    /// `SIGNED`, and its `SUM` of integers is a `DECIMAL` without one.
    fn bigint(&self) -> &'static str {
        match self {
            Database::Mysql(_) => "SIGNED",
            Database::Postgres(_) | Database::Sqlite(_) => "BIGINT",
        }
    }

    pub async fn ping(&self) -> Result<()> {
        let _t = timings().start("ping");
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes the pool, waiting at most [`CLOSE_WAIT`] for its connections to come back.
    /// sqlx's close waits for every checked-out connection, and one returned while the
    /// pool closes can be missed (sqlx issues #1773 and #3217: a test's close hung a CI
    /// run); past the wait the rest close as they are dropped.
    pub async fn close(&self) {
        let close = async { on_pool!(self, p => p.close().await) };
        if tokio::time::timeout(CLOSE_WAIT, close).await.is_err() {
            tracing::warn!(
                "the database pool did not close within {CLOSE_WAIT:?}; its last connections close as they are dropped"
            );
        }
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
                   ticket_required, ticket_lead_secs, buckets, payment_window_secs) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
        macro_rules! bound {
            ($q:expr) => {
                $q.bind(c.kind.as_str())
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
                    .bind(c.payment_window_secs.map(|w| w as i64))
            };
        }
        let row: CampaignRow = match self {
            // MySQL 8 has no RETURNING: the row is read back by the id it was given.
            Database::Mysql(p) => {
                let id = bound!(sqlx::query(&self.sql(sql)))
                    .execute(p)
                    .await?
                    .last_insert_id();
                sqlx::query_as("SELECT * FROM campaigns WHERE id = ?")
                    .bind(id as i64)
                    .fetch_one(p)
                    .await?
            }
            Database::Postgres(p) => {
                bound!(sqlx::query_as(&format!("{sql} RETURNING *")))
                    .fetch_one(p)
                    .await?
            }
            Database::Sqlite(p) => {
                bound!(sqlx::query_as(&format!("{sql} RETURNING *")))
                    .fetch_one(p)
                    .await?
            }
        };
        row.into_campaign()
    }

    pub async fn campaign(&self, id: u64) -> Result<Option<Campaign>> {
        let _t = timings().start("campaign");
        let row: Option<CampaignRow> = on_pool!(self, p => sqlx::query_as(&self.sql("SELECT * FROM campaigns WHERE id = $1"))
            .bind(id as i64)
            .fetch_optional(p)
            .await)?;
        row.map(CampaignRow::into_campaign).transpose()
    }

    /// Campaigns whose end is after `ends_after_ms`, newest first, at most `limit`.
    pub async fn campaigns(&self, ends_after_ms: i64, limit: i64) -> Result<Vec<Campaign>> {
        let _t = timings().start("campaigns");
        let rows: Vec<CampaignRow> = on_pool!(self, p => sqlx::query_as(&self.sql(
                "SELECT * FROM campaigns WHERE ends_at_ms > $1 ORDER BY id DESC LIMIT $2"))
            .bind(ends_after_ms)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(CampaignRow::into_campaign).collect()
    }

    /// Moves a campaign's end to `ends_at_ms` unless it already ends earlier.
    pub async fn close_campaign(&self, id: u64, ends_at_ms: i64) -> Result<()> {
        let _t = timings().start("close_campaign");
        on_pool!(self, p => sqlx::query(&self.sql(
                "UPDATE campaigns SET ends_at_ms = $1 WHERE id = $2 AND ends_at_ms > $3"))
            .bind(ends_at_ms)
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
            Database::Postgres(p) => postgres::persist_claims(p, claims, now_ms).await,
            Database::Mysql(p) => mysql::persist_claims(p, claims, now_ms).await,
            Database::Sqlite(p) => sqlite::persist_claims(p, claims, now_ms).await,
        }
    }

    pub async fn persisted_count(&self, campaign_id: u64) -> Result<u64> {
        let _t = timings().start("persisted_count");
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(&self.sql("SELECT COUNT(*) FROM claims WHERE campaign_id = $1"))
            .bind(campaign_id as i64)
            .fetch_one(p)
            .await)?;
        Ok(n as u64)
    }

    /// (claims, units, cents) persisted for a campaign: the settled counters of one
    /// that has ended. Units are those still sold: not those of expired or cancelled orders.
    pub async fn campaign_totals(&self, campaign_id: u64) -> Result<(u64, u64, u64)> {
        let _t = timings().start("campaign_totals");
        let int = self.bigint();
        // Units of orders that expired or were cancelled went back on sale.
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(c.quantity), 0) - COALESCE(SUM(CASE WHEN \
             o.status IN ('expired', 'cancelled') THEN c.quantity ELSE 0 END), 0) AS {int}), \
             CAST(COALESCE(SUM(c.amount_cents), 0) AS {int}) FROM claims c LEFT JOIN orders o \
             ON o.campaign_id = c.campaign_id AND o.claim_id = c.claim_id WHERE c.campaign_id = $1"
        );
        let (n, units, cents): (i64, i64, i64) = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(campaign_id as i64)
            .fetch_one(p)
            .await)?;
        Ok((n as u64, units as u64, cents as u64))
    }

    /// The campaign's counters as the database has them: remaining is the total minus
    /// the units persisted claims still hold ([`Database::campaign_totals`]). The settled
    /// figures of an ended campaign; for one still on sale they lag the store by the
    /// queue backlog (claims accepted, not yet written).
    pub async fn settled_counters(&self, c: &Campaign) -> Result<LiveCounters> {
        let (claims, sold, cents) = self.campaign_totals(c.id).await?;
        Ok(LiveCounters {
            remaining: c.total.saturating_sub(sold),
            claims,
            sold,
            cents,
            ends_at_ms: c.ends_at_ms,
        })
    }

    pub async fn claim_exists(&self, campaign_id: u64, claim_id: &str) -> Result<bool> {
        let _t = timings().start("claim_exists");
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(&self.sql(
                "SELECT COUNT(*) FROM claims WHERE campaign_id = $1 AND claim_id = $2"))
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
            "SELECT {} FROM claims WHERE campaign_id = $1 AND claim_id > $2 ORDER BY claim_id LIMIT $3",
            self.claim_select()
        );
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
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
            "SELECT {} FROM claims WHERE campaign_id = $1 AND user_id = $2 ORDER BY claim_id LIMIT 1000",
            self.claim_select()
        );
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
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
            "SELECT {} FROM claims WHERE user_id = $1 \
             AND (accepted_at_ms < $2 OR (accepted_at_ms = $3 AND claim_id < $4) OR $5) \
             ORDER BY accepted_at_ms DESC, claim_id DESC LIMIT $6",
            self.claim_select()
        );
        let rows: Vec<ClaimRow> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(user_id)
            .bind(ms)
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
    /// A racing award of the same user and day waits for this one's row lock (or, in
    /// SQLite, the single write lock) and then finds the row: each dialect's module
    /// says how.
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
        let awarded = match self {
            Database::Postgres(p) => {
                postgres::award_signin(p, user_id, &day_s, &yesterday, rules, now_ms).await?
            }
            Database::Mysql(p) => {
                mysql::award_signin(p, user_id, &day_s, &yesterday, rules, now_ms).await?
            }
            Database::Sqlite(p) => {
                sqlite::award_signin(p, user_id, &day_s, &yesterday, rules, now_ms).await?
            }
        };
        if let Some(row) = awarded {
            return Ok((record(row), true));
        }
        // The day's row as it already is, with the user's balance: read after the
        // award's transaction ended, so a racing winner's commit is seen.
        let sql = self.sql(
            "SELECT s.streak, s.points, COALESCE(b.balance, 0) FROM signins s \
             LEFT JOIN points_balances b ON b.user_id = s.user_id WHERE s.user_id = $1 AND s.day = $2",
        );
        let row = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(&day_s)
            .fetch_one(p)
            .await)?;
        Ok((record(row), false))
    }

    /// The days of `month` the user signed in on.
    pub async fn signin_days(&self, user_id: &str, month: Month) -> Result<Vec<u32>> {
        let _t = timings().start("signin_days");
        let (Some(from), Some(to)) = (month.first_day(), month.end()) else {
            return Ok(Vec::new());
        };
        let days: Vec<String> = on_pool!(self, p => sqlx::query_scalar(&self.sql(
                "SELECT day FROM signins WHERE user_id = $1 AND day >= $2 AND day < $3 ORDER BY day"))
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
        let balance: i64 = on_pool!(self, p => sqlx::query_scalar(&self.sql(
                "SELECT COALESCE((SELECT balance FROM points_balances WHERE user_id = $1), 0)"))
            .bind(user_id)
            .fetch_one(p)
            .await)?;
        let latest: Option<(String, i64)> = on_pool!(self, p => sqlx::query_as(&self.sql(
                "SELECT day, streak FROM signins WHERE user_id = $1 ORDER BY day DESC LIMIT 1"))
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
        on_pool!(self, p => sqlx::query(&self.sql("DELETE FROM blocklist WHERE expires_at_ms <= $1"))
            .bind(now_ms)
            .execute(p)
            .await
            .map(|_| ()))?;
        let upsert = match self {
            Database::Mysql(_) => {
                "ON DUPLICATE KEY UPDATE expires_at_ms = VALUES(expires_at_ms), \
                 created_at_ms = VALUES(created_at_ms)"
            }
            Database::Postgres(_) | Database::Sqlite(_) => {
                "ON CONFLICT (subject) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, \
                 created_at_ms = excluded.created_at_ms"
            }
        };
        let sql = format!(
            "INSERT INTO blocklist (subject, expires_at_ms, created_at_ms) VALUES ($1, $2, $3) {upsert}"
        );
        on_pool!(self, p => sqlx::query(&self.sql(&sql))
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
        let done = on_pool!(self, p => sqlx::query(&self.sql("DELETE FROM blocklist WHERE subject = $1"))
            .bind(subject)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// The blocks in force at `now_ms`: (subject, expiry), at most `limit`.
    pub async fn blocklist(&self, now_ms: i64, limit: i64) -> Result<Vec<(String, Option<i64>)>> {
        let _t = timings().start("blocklist");
        // MySQL: cast from the binary collation, as for the claims' ids.
        let subject = match self {
            Database::Mysql(_) => "CAST(subject AS CHAR)",
            Database::Postgres(_) | Database::Sqlite(_) => "subject",
        };
        let sql = format!(
            "SELECT {subject}, expires_at_ms FROM blocklist \
             WHERE expires_at_ms IS NULL OR expires_at_ms > $1 ORDER BY subject LIMIT $2"
        );
        let rows = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(now_ms)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod close_tests {
    use super::*;

    /// A connection never given back (what sqlx's race leaves) does not hold the close.
    #[tokio::test]
    async fn close_gives_up_on_a_connection_never_given_back() {
        let dir = crate::testkit::TestSqlite::create();
        let db = Database::connect(&dir.url(), 2).await.expect("sqlite");
        let Database::Sqlite(pool) = &db else {
            unreachable!("a sqlite url")
        };
        let held = pool.acquire().await.expect("a connection");
        let started = std::time::Instant::now();
        // Bounded here too, so that a close that would wait forever fails the test.
        tokio::time::timeout(CLOSE_WAIT * 4, db.close())
            .await
            .expect("close returned with a connection still out");
        assert!(
            started.elapsed() >= CLOSE_WAIT,
            "it waited for the connection first"
        );
        drop(held);
    }
}
