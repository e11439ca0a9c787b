//! The routes, one file per area; paths mirror the contract's URLs.

pub mod admin;
pub mod campaigns;
pub mod claims;
pub mod ops;
pub mod signin;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/campaigns",
            post(campaigns::create).get(campaigns::list),
        )
        .route("/v1/campaigns/{id}", get(campaigns::get))
        .route("/v1/campaigns/{id}/claims", post(claims::claim))
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
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
