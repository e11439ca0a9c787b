//! The library's error type: every way a load run can fail before it has a report.
//!
//! Failures *during* the run (a refused connection, a timed-out request) are not errors:
//! they are counted in the report, because a load generator that stops at the first
//! hiccup tells the operator nothing about the hiccups. These variants are for the steps
//! around the run — parsing the target, creating the campaign, fetching stats and the
//! export — where going on makes no sense.

use hyper::StatusCode;

/// What went wrong, by layer. Messages name the step so the binary's `anyhow` chain reads
/// like a sentence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `--target` / `--url` could not be used.
    #[error("invalid target URL {url:?}: {reason}")]
    InvalidTarget { url: String, reason: String },

    /// Name resolution or the TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// The HTTP exchange itself broke (connection reset, malformed reply).
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),

    /// Reading or writing the socket failed (reset, broken pipe).
    #[error("connection failed: {0}")]
    Transport(#[source] std::io::Error),

    /// The server's reply broke HTTP/1.1 framing.
    #[error("protocol error: {0}")]
    Protocol(&'static str),

    /// A request took longer than the configured timeout.
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),

    /// The engine answered, but not with the status the step needs.
    #[error("{step}: unexpected status {status}: {body}")]
    Status {
        step: &'static str,
        status: StatusCode,
        body: String,
    },

    /// The engine's reply was not the JSON the contract promises.
    #[error("{step}: reply is not the expected JSON: {source}")]
    Json {
        step: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// Minting a user token failed (only a broken secret can cause this).
    #[error("cannot mint a user token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),

    /// A flag combination that cannot describe a run.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Writing the plot or another local file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
