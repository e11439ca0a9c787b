//! Stampede's load generator: drives a running engine the way a crowd would, measures
//! it, and audits what the engine did.
//!
//! How the pieces fit:
//! - [`client`] — one HTTP/1.1 keep-alive connection per worker: the lean httparse
//!   connection (default, as fast as wrk) or hyper 1's client connection; [`admin`] makes
//!   the few calls around a run with hyper.
//! - [`tokens`] — user JWTs, all minted before the run.
//! - [`crowd`] — the burst's arrival order: every user once, some twice, racing.
//! - [`driver`] — the run loop: burst, closed loop or open loop (with
//!   coordinated-omission correction) over N connections; [`recorder`] and [`histogram`]
//!   measure, [`progress`] prints the live line.
//! - [`scenario`] — `flash`, `events`, `red-packet`, `signin`, `http`, one file each.
//! - [`audit`] — the invariants checked after a campaign run: pure functions (orders of a
//!   payment-window sale in [`audit::orders`], the funnel of a crowd that reported
//!   behaviour events in [`audit::funnel`]); [`sampler`] takes the stats samples some of
//!   them are checked on during the run.
//! - [`payments`] — the payment provider's signed notification.
//! - [`report`] and [`plot`] — the table, the JSON and the SVG chart.
//! - [`capacity`] — the DAU-to-instances estimate, optionally with a measured instance.
//! - [`hello`] — a trivial target for comparing the client with wrk.
//! - [`wire`] — the engine's JSON shapes; [`error`] — the library's error type.

pub mod admin;
pub mod audit;
pub mod capacity;
pub mod client;
pub mod crowd;
pub mod driver;
pub mod error;
pub mod hello;
pub mod histogram;
pub mod payments;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod tokens;
pub mod wire;

pub use error::{Error, Result};

/// Exit status when a run completed but its audit found a violation (1 is any error).
pub const EXIT_AUDIT_FAILED: i32 = 3;
