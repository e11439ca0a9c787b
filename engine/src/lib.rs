//! Stampede's engine: everything between an HTTP request and a database row.
//!
//! The claim path, in the order a request travels it:
//!
//! - [`auth`] verifies the caller (HS256 user JWTs, the admin token), remembering
//!   verified tokens in [`verified_tokens`].
//! - [`service::Engine::claim`] hands the claim to the [`store`] (through the
//!   [`coalescer`], which batches concurrent claims of a campaign): ONE atomic step
//!   (a Lua script in Redis, one critical section in the in-process store) checks the
//!   time window, the per-user limit and the stock, deducts, records the user and
//!   enqueues a [`claim::ClaimEvent`] on the [`queue`].
//! - The worker crate drains the [`queue`] into the [`db`] in idempotent batches.
//!
//! Around it: [`campaign`] (the campaign model and its validation; [`campaign_rows`],
//! the rows a process keeps), [`red_packet`]
//! (the split done at creation), [`signin`] (the daily
//! sign-in and points), [`rebuild`] (live state recomputed from the database),
//! [`error`] (the engine's error type), [`clock`], [`telemetry`] (metric handles) and
//! [`striped`] (the hot path's counts, kept per thread),
//! [`request_id`] (the id that ties a request's logs to its claim's); for reads and
//! failures, [`live_cache`] (the hot read cache) and [`circuit_breaker`] (a dead store
//! fails fast); for audits, [`reconcile`] (the store's counters against the database);
//! against abuse, [`ticket`] (claim tickets) and [`blocklist`] (blocked users and
//! addresses); [`no_null`] (optional request fields that refuse `null`).

pub mod auth;
pub mod backlog;
pub mod behaviour;
pub mod blocklist;
pub mod buckets;
pub mod campaign;
pub mod campaign_rows;
pub mod circuit_breaker;
pub mod claim;
pub mod claim_lists;
pub mod clock;
pub mod coalescer;
pub mod db;
pub mod error;
pub mod funnel;
pub mod live_cache;
pub mod no_null;
pub mod order;
pub mod queue;
pub mod rebuild;
pub mod reconcile;
pub mod red_packet;
pub mod redis_conn;
pub mod request_id;
pub mod service;
pub mod signals;
pub mod signin;
pub mod sold_out;
pub mod store;
pub mod striped;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod ticket;
pub mod verified_tokens;

pub use error::{EngineError, Result};
