//! The routes, one file per area; paths mirror the contract's URLs.

pub mod admin;
pub mod blocklist;
pub mod campaigns;
pub mod claims;
pub mod dashboard;
pub mod dead_letters;
pub mod events;
pub mod funnel;
pub mod ops;
pub mod orders;
pub mod signin;
pub mod tickets;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;

use crate::error::ApiError;
use crate::extract::{declared_too_large, MAX_BODY_BYTES};
use crate::state::AppState;

/// A router under construction that also records each (method, path) it is given, so
/// the list of routes exists once: here. `route_table()` hands it to the test that
/// keeps `assets/openapi.json` in step with it.
struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// One method on one path. Two calls on the same path merge into one route (axum
    /// merges the method routers, and panics on the same method twice).
    fn route<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} {path}: axum cannot route that method"));
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }
}

/// The claim, the hot path, alone: it runs outside [`guard`] (see [`router`]).
fn unguarded() -> Routes {
    Routes::new().route(Method::POST, "/v1/campaigns/{id}/claims", claims::claim)
}

/// Every other route; [`router`] wraps them all in [`guard`].
fn guarded() -> Routes {
    Routes::new()
        .route(Method::POST, "/v1/campaigns", campaigns::create)
        .route(Method::GET, "/v1/campaigns", campaigns::list)
        .route(Method::GET, "/v1/campaigns/{id}", campaigns::get)
        .route(Method::GET, "/v1/campaigns/{id}/ticket", tickets::ticket)
        .route(
            Method::GET,
            "/v1/campaigns/{id}/claims/me",
            claims::mine_in_campaign,
        )
        .route(Method::GET, "/v1/me/claims", claims::mine)
        .route(Method::POST, "/v1/claims/{claim_id}/cancel", orders::cancel)
        .route(Method::POST, "/v1/payments/notify", orders::notify)
        .route(Method::GET, "/v1/admin/refunds", orders::refunds)
        .route(Method::POST, "/v1/events", events::ingest)
        .route(Method::POST, "/v1/signin", signin::signin)
        .route(Method::GET, "/v1/me/points", signin::points)
        .route(Method::GET, "/v1/me/signins", signin::calendar)
        .route(
            Method::POST,
            "/v1/admin/campaigns/{id}/close",
            campaigns::close,
        )
        .route(Method::POST, "/v1/admin/blocklist", blocklist::block)
        .route(Method::DELETE, "/v1/admin/blocklist", blocklist::unblock)
        .route(Method::GET, "/v1/admin/blocklist", blocklist::list)
        .route(Method::GET, "/v1/admin/campaigns/{id}/stats", admin::stats)
        .route(
            Method::GET,
            "/v1/admin/campaigns/{id}/funnel",
            funnel::funnel,
        )
        .route(
            Method::GET,
            "/v1/admin/campaigns/{id}/claims",
            admin::export,
        )
        .route(
            Method::POST,
            "/v1/admin/campaigns/{id}/rebuild",
            admin::rebuild,
        )
        .route(
            Method::GET,
            "/v1/admin/campaigns/{id}/reconcile",
            admin::reconcile,
        )
        .route(
            Method::GET,
            "/v1/admin/campaigns/{id}/dead-letters",
            dead_letters::list,
        )
        .route(
            Method::POST,
            "/v1/admin/campaigns/{id}/dead-letters/replay",
            dead_letters::replay,
        )
        .route(Method::GET, "/healthz", ops::healthz)
        .route(Method::GET, "/readyz", ops::readyz)
        .route(Method::GET, "/metrics", ops::metrics)
        .route(Method::GET, "/openapi.json", ops::openapi)
        .route(Method::GET, "/dashboard", dashboard::page)
        .route(Method::GET, "/dashboard/events", dashboard::events)
        .route(Method::GET, "/dashboard/dashboard.js", dashboard::script)
        .route(Method::GET, "/dashboard/dashboard.css", dashboard::style)
}

/// Every (method, path) the router serves, as registered (a `GET` also answers `HEAD`,
/// as axum does for every `GET`). The OpenAPI test compares it with the document.
pub fn route_table() -> Vec<(Method, &'static str)> {
    let mut table = unguarded().table;
    table.extend(guarded().table);
    table
}

pub fn router(state: AppState) -> Router {
    // Every route but the claim is guarded by [`guard`]. The claim, the hot path, is
    // left out: each of its waits is bounded on its own (the coalescer's deadline, the
    // Redis timeouts, the 100 ms persisted lookup, the campaign-row read), and its body
    // limit is enforced where it is read; the per-request timer costs it measurably.
    let inner = guarded().router.layer(middleware::from_fn(guard));
    unguarded()
        .router
        .merge(inner)
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
    if declared_too_large(req.headers()) {
        return ApiError::PayloadTooLarge.into_response();
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            ApiError::Unavailable("The request took too long; retry shortly.").into_response()
        }
    }
}
