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
    let engine = &state.engine;
    let (store, db) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, engine.store.ping()),
        tokio::time::timeout(READY_TIMEOUT, engine.db.ping()),
    );
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let (store_ok, db_ok) = (matches!(store, Ok(Ok(()))), matches!(db, Ok(Ok(()))));
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

/// Renders the metrics, first sampling the queue backlog (one pipelined read of the
/// streams' lengths per scrape) into `stampede_queue_backlog`.
pub async fn metrics(State(state): State<AppState>) -> String {
    match tokio::time::timeout(READY_TIMEOUT, state.engine.queue.total_backlog()).await {
        Ok(Ok(n)) => metrics::gauge!("stampede_queue_backlog").set(n as f64),
        _ => tracing::warn!("could not sample the queue backlog for /metrics"),
    }
    state.metrics.render()
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
