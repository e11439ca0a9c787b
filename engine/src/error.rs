//! The engine's error type. Variants say what kind of failure happened so the api can
//! map each to the contract's status; the `Display` text of infrastructure variants
//! is for logs only and never reaches a client.

use thiserror::Error;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum EngineError {
    /// Input that breaks a rule of the contract; the message names the field and is
    /// safe to show to the client.
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    /// The store does not hold this campaign's live state although the database has
    /// the campaign: the store lost its data and needs a rebuild.
    #[error("campaign {0} has no live state in the store")]
    StateMissing(u64),
    #[error("store: {0}")]
    Store(String),
    /// The store did not answer: the connection is down, refused or timed out. Counts
    /// against the store's circuit breaker; reads fall back to their last value.
    #[error("store unreachable: {0}")]
    Unreachable(String),
    /// The store's circuit breaker is open: calls fail at once, without touching it.
    #[error("store circuit open")]
    CircuitOpen,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("queue: {0}")]
    Queue(String),
    /// A rebuild that must not run (the live state is present, or another rebuild is
    /// running); the message says which and is safe to show.
    #[error("{0}")]
    RebuildRefused(String),
    /// A dependency did not answer in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// More accepted claims wait unpersisted than the backlog cap allows.
    #[error("queue backlog over its cap")]
    Shedding,
}

impl EngineError {
    /// The store could not be reached (rather than answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, EngineError::Unreachable(_) | EngineError::CircuitOpen)
    }

    /// The database refused the data itself (a constraint, a value it cannot store),
    /// so writing the same rows again will fail again; anything else (a lost
    /// connection, a timeout, a server shutting down) may pass on a retry.
    pub fn is_data_error(&self) -> bool {
        match self {
            EngineError::Database(sqlx::Error::Encode(_)) => true,
            EngineError::Database(sqlx::Error::Database(e)) => {
                if let Some(pg) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    // SQLSTATE classes 22 (data exception), 23 (constraint violation).
                    pg.code().starts_with("22") || pg.code().starts_with("23")
                } else if let Some(my) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                    // The same SQLSTATE classes (a trigger's SIGNAL names its own).
                    my.code()
                        .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
                } else if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // Primary result codes 18 (too big), 19 (constraint, also a
                    // trigger's RAISE) and 20 (type mismatch), under any extended code.
                    e.code()
                        .and_then(|c| c.parse::<i64>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 18..=20))
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

impl From<redis::RedisError> for EngineError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            // Up but not answering: loading its data, blocked by a script, no master.
            || matches!(
                e.code(),
                Some("LOADING" | "BUSY" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN")
            )
        {
            EngineError::Unreachable(e.to_string())
        } else {
            EngineError::Store(e.to_string())
        }
    }
}
