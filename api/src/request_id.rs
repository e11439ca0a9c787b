//! The request id at the HTTP edge: every request gets one, a client's (or a proxy's)
//! `X-Request-Id` when it is a safe, short token (see [`RequestId::parse`]), else a
//! fresh one. It is echoed in the reply's `X-Request-Id`, recorded in the request's
//! tracing span (so every log line of the request carries it), and left in the
//! request's extensions for the claim route (`crate::claim_request`), which sends it
//! along in the claim event to the worker's logs.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use stampede_engine::request_id::RequestId;
use tracing::Instrument;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Middleware for every route: assigns the id, runs the request in its span, echoes it.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id);
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    res
}
