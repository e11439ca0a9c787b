//! The routes, one file per area; paths mirror the contract's URLs.

pub mod admin;
pub mod campaigns;
pub mod claims;
pub mod dashboard;
pub mod dead_letters;
pub mod ops;
pub mod signin;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    // Every route but the claim is guarded by [`guard`]. The claim, the hot path, is
    // left out: each of its waits is bounded on its own (the coalescer's deadline, the
    // Redis timeouts, the 100 ms persisted lookup, the campaign-row read), and its body
    // limit is enforced where it is read; the per-request timer costs it measurably.
    let guarded = Router::new()
        .route(
            "/v1/campaigns",
            post(campaigns::create).get(campaigns::list),
        )
        .route("/v1/campaigns/{id}", get(campaigns::get))
        .route(
            "/v1/campaigns/{id}/claims/me",
            get(claims::mine_in_campaign),
        )
        .route("/v1/me/claims", get(claims::mine))
        .route("/v1/signin", post(signin::signin))
        .route("/v1/me/points", get(signin::points))
        .route("/v1/me/signins", get(signin::calendar))
        .route("/v1/admin/campaigns/{id}/close", post(campaigns::close))
        .route("/v1/admin/campaigns/{id}/stats", get(admin::stats))
        .route("/v1/admin/campaigns/{id}/claims", get(admin::export))
        .route("/v1/admin/campaigns/{id}/rebuild", post(admin::rebuild))
        .route("/v1/admin/campaigns/{id}/reconcile", get(admin::reconcile))
        .route(
            "/v1/admin/campaigns/{id}/dead-letters",
            get(dead_letters::list),
        )
        .route(
            "/v1/admin/campaigns/{id}/dead-letters/replay",
            post(dead_letters::replay),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/events", get(dashboard::events))
        .route("/dashboard/dashboard.js", get(dashboard::script))
        .route("/dashboard/dashboard.css", get(dashboard::style))
        .layer(middleware::from_fn(guard));
    Router::new()
        .route("/v1/campaigns/{id}/claims", post(claims::claim))
        .merge(guarded)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost, so every reply (a 404, a 413 from the guard) carries the id.
        .layer(middleware::from_fn(crate::request_id::assign))
        .with_state(state)
}

/// The longest a request may take; past it the reply is a 503 (the engine's own bound on
/// Redis calls is far shorter: this catches anything else, such as a stalled database).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Every request: a declared body over 16 KiB is refused (413) on every route, also those
/// that never read a body, and the whole request is bounded by [`REQUEST_TIMEOUT`].
async fn guard(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            ApiError::Unavailable("The request took too long; retry shortly.").into_response()
        }
    }
}
