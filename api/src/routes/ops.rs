//! Operations: liveness, readiness (really asks the store and the database, each
//! within a second), the Prometheus metrics, and the contract as an OpenAPI document.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// How long readiness waits for each dependency.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let (store_ok, db_ok) = readiness(&state).await;
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let status = if store_ok && db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "store": word(store_ok), "database": word(db_ok) })),
    )
        .into_response()
}

/// Whether the store and the database answer (asked at once, each within
/// [`READY_TIMEOUT`]); records the verdict in `stampede_ready` (1 ready, 0 not).
async fn readiness(state: &AppState) -> (bool, bool) {
    let engine = &state.engine;
    let (store, db) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, engine.store.ping()),
        tokio::time::timeout(READY_TIMEOUT, engine.db.ping()),
    );
    let (store_ok, db_ok) = (matches!(store, Ok(Ok(()))), matches!(db, Ok(Ok(()))));
    let ready = if store_ok && db_ok { 1.0 } else { 0.0 };
    metrics::gauge!("stampede_ready").set(ready);
    (store_ok, db_ok)
}

/// Renders the metrics, first sampling what only a question to the store, the queue
/// or the database tells, all at once and each within [`READY_TIMEOUT`]: the queue
/// backlog (one pipelined read of the streams' lengths) into `stampede_queue_backlog`,
/// the dead letters into `stampede_dead_letters`, and readiness into `stampede_ready`
/// (so that it is fresh at every scrape, whether or not anything probes `/readyz`).
pub async fn metrics(State(state): State<AppState>) -> String {
    let queue = &state.engine.queue;
    let (backlog, dead, _) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, queue.total_backlog()),
        tokio::time::timeout(READY_TIMEOUT, queue.total_dead_letters()),
        readiness(&state),
    );
    match backlog {
        Ok(Ok(n)) => metrics::gauge!("stampede_queue_backlog").set(n as f64),
        _ => tracing::warn!("could not sample the queue backlog for /metrics"),
    }
    match dead {
        Ok(Ok(n)) => metrics::gauge!("stampede_dead_letters").set(n as f64),
        _ => tracing::warn!("could not count the dead letters for /metrics"),
    }
    crate::telemetry::render(&state.metrics)
}

/// The contract as an OpenAPI 3.0 document, written by hand and embedded in the binary.
/// `tests/openapi.rs` keeps its (method, path) list equal to [`super::route_table`].
const OPENAPI: &str = include_str!("../../assets/openapi.json");

/// `GET /openapi.json` (public). It only changes with the binary; a short cache time
/// lets a new deployment's document show within a minute.
pub async fn openapi() -> Response {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "public, max-age=60"),
        ],
        OPENAPI,
    )
        .into_response()
}
