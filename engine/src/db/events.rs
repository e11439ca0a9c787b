//! Behaviour events in the database: the table `events`, partitioned by UTC day, and
//! the per-minute counts `event_minutes` the event writers keep beside it.
//!
//! `day` is an event's UTC day as the integer `YYYYMMDD` (from its `at_ms`, which never
//! changes), and the key is `(day, id)`: a redelivered batch skips what is there
//! (`ON CONFLICT DO NOTHING`, MySQL's `INSERT IGNORE`), so every event lands once.
//! How the days are kept apart (the migrations `0006_events.sql`):
//! - **PostgreSQL**: declarative partitioning, `PARTITION BY RANGE (day)`, one partition
//!   a day, `events_YYYYMMDD` holding `FROM (day) TO (day + 1)`. The workers make the
//!   partitions of today and [`DAYS_AHEAD`] days ahead ([`Database::prepare_event_days`]);
//!   a batch that meets a day without one (an old event on a fresh database) makes it
//!   and runs again. Retention drops whole partitions: instant, where deleting rows is
//!   not.
//! - **MySQL/MariaDB and SQLite**: one table, the day leading the key; retention deletes
//!   the old days' rows (MySQL in chunks of [`DELETE_CHUNK`], so no lock is held long).
//!   MySQL's own `PARTITION BY RANGE` would make the drop instant too, but its ranges
//!   only ever grow at the top: a day older than the first partition (an event a day
//!   old on a fresh database) would share a partition with newer days, and could not
//!   be dropped alone.
//!
//! **The counts.** The writer adds the rows new to `events` (not those already there)
//! to their (campaign, minute, type) counts in `event_minutes`, in the same transaction:
//! on PostgreSQL one statement whose insert returns the new rows, which the same
//! statement counts; elsewhere an insert per group and its `rows_affected`. The counts
//! are exactly the stored rows, however often a batch is delivered, and the funnel reads
//! them without touching the raw table.
//!
//! Columns of `events`: `id` (16 hex digits), `day`, `campaign_id`, `user_id`, `type`,
//! `at_ms` (when it happened), `props` (the client's JSON object as text, nullable: the
//! same type on the three databases), `received_at_ms` (when the api took it); an index
//! on `(campaign_id, at_ms)`.

use std::collections::BTreeMap;

use sqlx::QueryBuilder;

use super::{timings, Database};
use crate::behaviour::{day_of, BehaviourEvent};
use crate::error::{EngineError, Result};

/// Rows per multi-row statement (8 placeholders a row: far under every limit).
const ROWS: usize = 1_000;
/// Days past today whose partitions the workers make ahead.
pub const DAYS_AHEAD: i64 = 2;
/// The prefix of every PostgreSQL day partition's name.
pub const TABLE_PREFIX: &str = "events_";
/// Rows deleted per statement by MySQL's retention.
pub const DELETE_CHUNK: u32 = 10_000;
/// How many times a partition is made when another process makes it at the same time.
const DDL_ATTEMPTS: usize = 3;

/// The PostgreSQL partition of `day` (`YYYYMMDD`).
pub fn table(day: &str) -> String {
    format!("{TABLE_PREFIX}{day}")
}

/// The day (`YYYYMMDD`) of a PostgreSQL day partition's name; `None` for any other table.
pub fn day_of_table(name: &str) -> Option<&str> {
    let day = name.strip_prefix(TABLE_PREFIX)?;
    (day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit())).then_some(day)
}

/// The day `YYYYMMDD` as the integer of the `day` column; `None` when it is not one.
fn day_number(day: &str) -> Option<i32> {
    (day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()))
        .then(|| day.parse().ok())
        .flatten()
}

/// The start of the minute of `ms` (unix ms).
fn minute_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

/// Whether PostgreSQL refused a row for want of a partition for its day.
fn is_missing_partition(e: &EngineError) -> bool {
    match e {
        // PostgreSQL: 'no partition of relation "events" found for row'.
        EngineError::Database(sqlx::Error::Database(db)) => db.message().contains("no partition"),
        _ => false,
    }
}

impl Database {
    /// Makes the partition of `day` (`YYYYMMDD`) unless it is there (PostgreSQL; the
    /// others have nothing to make). Safe to run from many processes at once.
    pub async fn ensure_event_day(&self, day: &str) -> Result<()> {
        let Some(n) = day_number(day) else {
            return Err(EngineError::Invalid(format!("not a day: {day:?}")));
        };
        let mut attempt = 1;
        loop {
            let done = match self {
                Database::Postgres(p) => {
                    let sql = format!(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF events \
                         FOR VALUES FROM ({n}) TO ({})",
                        table(day),
                        n + 1
                    );
                    sqlx::query(&sql).execute(p).await.map(|_| ())
                }
                Database::Mysql(_) | Database::Sqlite(_) => Ok(()),
            };
            match done {
                Ok(()) => return Ok(()),
                // Two processes making the same partition: one may be refused (the
                // catalog's unique key); it looks again.
                Err(e) if attempt < DDL_ATTEMPTS => {
                    tracing::debug!(error = %e, day, "making an event partition; again");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes the partitions of the day of `now_ms` and of [`DAYS_AHEAD`] days after it,
    /// in order (the workers, at start and hourly).
    pub async fn prepare_event_days(&self, now_ms: i64) -> Result<()> {
        for d in 0..=DAYS_AHEAD {
            self.ensure_event_day(&day_of(now_ms + d * 86_400_000))
                .await?;
        }
        Ok(())
    }

    /// Writes a batch of behaviour events in ONE transaction, skipping any already
    /// written, and adds the new rows to their minutes' counts. Returns how many rows
    /// were new. PostgreSQL: one statement (`postgres::persist_events`); a day without
    /// its partition is made, and the batch runs again. MySQL and SQLite: see
    /// [`Database::persist_events_grouped`].
    pub async fn persist_events(&self, events: &[BehaviourEvent]) -> Result<u64> {
        let _t = timings().start("persist_events");
        if events.is_empty() {
            return Ok(0);
        }
        let Database::Postgres(p) = self else {
            return self.persist_events_grouped(events).await;
        };
        match super::postgres::persist_events(p, events).await {
            Err(e) if is_missing_partition(&e) => {
                let mut days: Vec<String> = events.iter().map(BehaviourEvent::day).collect();
                days.sort();
                days.dedup();
                for day in &days {
                    self.ensure_event_day(day).await?;
                }
                super::postgres::persist_events(p, events).await
            }
            other => other,
        }
    }

    /// MySQL and SQLite: a multi-row insert per (campaign, minute, type) group, in key
    /// order (concurrent writers then lock the count rows in one order), and one upsert
    /// of each group's count of new rows, in one transaction.
    async fn persist_events_grouped(&self, events: &[BehaviourEvent]) -> Result<u64> {
        let mut groups: BTreeMap<(u64, i64, &str), Vec<&BehaviourEvent>> = BTreeMap::new();
        for e in events {
            groups
                .entry((e.campaign_id, minute_start(e.at_ms), e.kind.as_str()))
                .or_default()
                .push(e);
        }
        let (head, tail, upsert) = match self {
            Database::Mysql(_) => (
                "INSERT IGNORE INTO",
                "",
                " ON DUPLICATE KEY UPDATE events = events + VALUES(events)",
            ),
            _ => (
                "INSERT INTO",
                " ON CONFLICT DO NOTHING",
                " ON CONFLICT (campaign_id, minute_ms, type) \
                 DO UPDATE SET events = event_minutes.events + excluded.events",
            ),
        };
        macro_rules! write {
            ($pool:expr, $db:ty) => {{
                let mut tx = $pool.begin().await?;
                let mut new_rows: Vec<((u64, i64, &str), u64)> = Vec::new();
                for (key, rows) in &groups {
                    let mut inserted = 0;
                    for chunk in rows.chunks(ROWS) {
                        let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                            "{head} events \
                             (id, day, campaign_id, user_id, type, at_ms, props, received_at_ms) "
                        ));
                        q.push_values(chunk, |mut row, e| {
                            row.push_bind(e.id.as_str())
                                .push_bind(e.day_number())
                                .push_bind(e.campaign_id as i64)
                                .push_bind(e.user_id.as_str())
                                .push_bind(e.kind.as_str())
                                .push_bind(e.at_ms)
                                .push_bind(e.props.as_deref())
                                .push_bind(e.received_at_ms);
                        });
                        q.push(tail);
                        inserted += q.build().execute(&mut *tx).await?.rows_affected();
                    }
                    if inserted > 0 {
                        new_rows.push((*key, inserted));
                    }
                }
                if !new_rows.is_empty() {
                    let mut q: QueryBuilder<$db> = QueryBuilder::new(
                        "INSERT INTO event_minutes (campaign_id, minute_ms, type, events) ",
                    );
                    q.push_values(&new_rows, |mut row, ((campaign, minute, kind), n)| {
                        row.push_bind(*campaign as i64)
                            .push_bind(*minute)
                            .push_bind(*kind)
                            .push_bind(*n as i64);
                    });
                    q.push(upsert);
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<u64, EngineError>(new_rows.iter().map(|(_, n)| n).sum())
            }};
        }
        match self {
            Database::Mysql(p) => {
                super::mysql::retrying_deadlocks("persist_events", || async {
                    write!(p, sqlx::MySql)
                })
                .await
            }
            Database::Sqlite(p) => write!(p, sqlx::Sqlite),
            // Not reached (`persist_events` gives PostgreSQL its own statement); if it
            // were, that statement is the right write.
            Database::Postgres(p) => super::postgres::persist_events(p, events).await,
        }
    }

    /// The days (`YYYYMMDD`) that have a partition (MySQL and SQLite: that have
    /// events), oldest first.
    pub async fn event_days(&self) -> Result<Vec<String>> {
        let _t = timings().start("event_days");
        let mut days: Vec<String> = match self {
            Database::Postgres(p) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::TEXT FROM pg_inherits i \
                     JOIN pg_class c ON c.oid = i.inhrelid \
                     WHERE i.inhparent = 'events'::regclass",
                )
                .fetch_all(p)
                .await?;
                names
                    .iter()
                    .filter_map(|n| day_of_table(n).map(str::to_string))
                    .collect()
            }
            Database::Mysql(_) | Database::Sqlite(_) => {
                let days: Vec<i64> = on_pool!(self, p => sqlx::query_scalar(
                    "SELECT DISTINCT CAST(day AS SIGNED) FROM events ORDER BY 1",
                )
                .fetch_all(p)
                .await)?;
                days.iter().map(|d| format!("{d:08}")).collect()
            }
        };
        days.sort();
        Ok(days)
    }

    /// Drops the events of the days older than `retention_days` days before the day of
    /// `now_ms` (that day and the `retention_days` before it stay), whole partitions at a
    /// time (MySQL and SQLite: their rows), and their minutes' counts. Any number of
    /// workers may run it at once. Returns the days dropped.
    pub async fn drop_expired_event_days(
        &self,
        retention_days: u32,
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let cutoff_ms = now_ms - retention_days as i64 * 86_400_000;
        let oldest_kept = day_of(cutoff_ms);
        let mut dropped = Vec::new();
        for day in self.event_days().await? {
            if day.as_str() >= oldest_kept.as_str() {
                continue;
            }
            let _t = timings().start("drop_event_day");
            match self {
                Database::Postgres(p) => {
                    let sql = format!("DROP TABLE IF EXISTS {}", table(&day));
                    sqlx::query(&sql).execute(p).await?;
                }
                Database::Mysql(p) => loop {
                    let gone = sqlx::query("DELETE FROM events WHERE day = ? LIMIT ?")
                        .bind(day_number(&day).unwrap_or(0))
                        .bind(DELETE_CHUNK)
                        .execute(p)
                        .await?
                        .rows_affected();
                    if gone < u64::from(DELETE_CHUNK) {
                        break;
                    }
                },
                Database::Sqlite(p) => {
                    sqlx::query("DELETE FROM events WHERE day = $1")
                        .bind(day_number(&day).unwrap_or(0))
                        .execute(p)
                        .await?;
                }
            }
            dropped.push(day);
        }
        // The counts of the days dropped: whatever lies before the oldest kept day.
        let oldest_kept_ms = cutoff_ms - cutoff_ms.rem_euclid(86_400_000);
        let sql = self.sql("DELETE FROM event_minutes WHERE minute_ms < $1");
        on_pool!(self, p => sqlx::query(&sql).bind(oldest_kept_ms).execute(p).await.map(|_| ()))?;
        Ok(dropped)
    }

    /// How many events of the campaign the day `day` holds, and how many distinct ids
    /// (audits and tests).
    pub async fn event_count(&self, day: &str, campaign_id: u64) -> Result<(u64, u64)> {
        let _t = timings().start("event_count");
        let sql = self.sql(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM events WHERE day = $1 AND campaign_id = $2",
        );
        let (n, distinct): (i64, i64) = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(day_number(day).unwrap_or(0))
            .bind(campaign_id as i64)
            .fetch_one(p)
            .await)?;
        Ok((n as u64, distinct as u64))
    }

    /// The campaign's event counts of the minutes starting from `from_ms` to `to_ms`
    /// (both minute starts, unix ms): (minute start, type, count), by minute.
    pub async fn event_minutes(
        &self,
        campaign_id: u64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, String, u64)>> {
        let _t = timings().start("event_minutes");
        // MySQL reads a column of a binary collation as bytes: cast it to text.
        let kind = match self {
            Database::Mysql(_) => "CAST(type AS CHAR)",
            Database::Postgres(_) | Database::Sqlite(_) => "type",
        };
        let sql = self
            .sql(&format!(
                "SELECT minute_ms, {kind}, events FROM event_minutes \
             WHERE campaign_id = $1 AND minute_ms >= $2 AND minute_ms <= $3 \
             ORDER BY minute_ms, type"
            ))
            .into_owned();
        let rows: Vec<(i64, String, i64)> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(campaign_id as i64)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(m, t, n)| (m, t, n.max(0) as u64))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_partitions_are_named_by_their_utc_day() {
        assert_eq!(table("20261203"), "events_20261203");
        assert_eq!(day_of_table("events_20261203"), Some("20261203"));
        for other in [
            "events",
            "events_2026120",
            "events_2026120x",
            "claims",
            "events_20261203_x",
        ] {
            assert_eq!(day_of_table(other), None, "{other}");
        }
        assert_eq!(day_number("20261203"), Some(20_261_203));
        assert_eq!(day_number("2026120x"), None);
        assert_eq!(minute_start(120_001), 120_000);
    }
}
