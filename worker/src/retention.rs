//! The behaviour events' partitions over time: at start and then every [`CHECK_EVERY`],
//! each worker process makes the day partitions of today and the next days ahead
//! ([`stampede_engine::db::Database::prepare_event_days`]) and drops those older than
//! `STAMPEDE_EVENTS_RETENTION_DAYS`, with their minutes' counts. Both steps are safe
//! from many processes at once.

use std::time::Duration;

use stampede_engine::clock::now_ms;
use stampede_engine::db::Database;
use tokio_util::sync::CancellationToken;

/// How often the day partitions are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(3_600);

/// One check: makes the coming days' partitions, drops the days past `retention_days`;
/// returns the days dropped.
pub async fn run_once(db: &Database, retention_days: u32) -> stampede_engine::Result<Vec<String>> {
    let now = now_ms();
    db.prepare_event_days(now).await?;
    let dropped = db.drop_expired_event_days(retention_days, now).await?;
    if !dropped.is_empty() {
        tracing::info!(
            ?dropped,
            retention_days,
            "dropped behaviour event days past their retention"
        );
    }
    Ok(dropped)
}

/// Checks at once and every [`CHECK_EVERY`] until `shutdown`.
pub fn spawn(db: Database, retention_days: u32, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = run_once(&db, retention_days).await {
                tracing::warn!(error = %e, "behaviour event partitions: check failed; next in an hour");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    });
}
