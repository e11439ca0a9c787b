//! Stampede's HTTP api and process wiring.
//!
//! - [`routes`]: the contract's routes (`routes/claims.rs` holds the claim hot path,
//!   [`claim_request`] what it reads from a request).
//! - [`extract`]: credentials and strict JSON bodies; [`error`]: the one error type;
//!   [`request_id`]: the id every request gets, carried into the worker's logs.
//! - [`startup`]: builds the engine from the [`config`] and runs the api, the worker
//!   or both until shutdown; [`telemetry`]: logs and metrics.
//! - Against abuse: [`rate_limit`] (per user and address), [`client_ip`] (who the
//!   caller is behind trusted proxies), [`risk`] (the risk rules); the blocklist and
//!   claim tickets are the engine's (`stampede_engine::{blocklist, ticket}`).
//! - [`dashboard`]: the operators' live page's data ([`live_stats`]: per-campaign claim
//!   figures; [`dashboard_session`]: its login cookie); `routes/dashboard.rs` serves it.
//! - [`catalog`]: `stampede export-catalog`, the campaigns as static files for a CDN.

pub mod campaign_reply;
pub mod catalog;
pub mod claim_request;
pub mod client_ip;
pub mod config;
pub mod dashboard;
pub mod dashboard_session;
pub mod error;
pub mod extract;
pub mod live_stats;
pub mod payment_signature;
pub mod rate_limit;
pub mod request_id;
pub mod risk;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod views;

pub use routes::router as app;
