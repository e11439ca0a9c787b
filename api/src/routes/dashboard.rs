//! The operators' dashboard (contract: "Administration and operations", `GET /dashboard`).
//!
//! - `GET /dashboard?token=<admin token>`: logs the browser in (an HttpOnly session
//!   cookie, see `dashboard_session.rs`) and redirects to `/dashboard`, so the token
//!   leaves the address bar and the history. A wrong token gets the login page, 401.
//! - `GET /dashboard`: the page with a valid session; else the login page, 401, and no
//!   data.
//! - `GET /dashboard/events`: Server-Sent Events, one `snapshot` event (JSON, see
//!   `dashboard.rs`) per tick; 401 without a session.
//! - `GET /dashboard/dashboard.js`, `/dashboard/dashboard.css`: the page's assets.
//!
//! Everything is embedded in the binary and served from this origin only: the page
//! loads nothing from elsewhere (its Content-Security-Policy forbids it).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::state::AppState;

const PAGE: &str = include_str!("../../assets/dashboard.html");
const LOGIN: &str = include_str!("../../assets/login.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");

/// Only this origin's script, style and event stream; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
}

/// A reply that no cache keeps and no referrer leaks.
fn private(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    res
}

fn login_page(message: &str) -> Response {
    private(
        StatusCode::UNAUTHORIZED,
        "text/html; charset=utf-8",
        LOGIN.replace("{{message}}", message),
    )
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<LoginQuery>,
) -> Response {
    let session = &state.dashboard.session;
    match q.token {
        Some(token) if state.auth.is_admin(&token) => {
            let mut res = private(
                StatusCode::SEE_OTHER,
                "text/plain; charset=utf-8",
                String::new(),
            );
            res.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/dashboard"));
            if let Ok(cookie) = HeaderValue::from_str(&session.set_cookie()) {
                res.headers_mut().insert(SET_COOKIE, cookie);
            }
            res
        }
        Some(_) => login_page("That is not the admin token."),
        None if session.logged_in(&headers) => {
            private(StatusCode::OK, "text/html; charset=utf-8", PAGE.to_string())
        }
        None => login_page("Log in with the admin token to see the dashboard."),
    }
}

pub async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.dashboard.session.logged_in(&headers) {
        return ApiError::Unauthorized.into_response();
    }
    let mut snapshots = state.dashboard.subscribe();
    // The latest snapshot, if there is one yet, goes out at once.
    snapshots.mark_changed();
    let stream = futures::stream::unfold(snapshots, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            let snapshot = rx.borrow_and_update().clone();
            if !snapshot.is_empty() {
                let event = Event::default().event("snapshot").data(&*snapshot);
                return Some((Ok::<_, Infallible>(event), rx));
            }
        }
    })
    .take_until(state.dashboard.shutdown.clone().cancelled_owned());
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn asset(
    state: &AppState,
    headers: &HeaderMap,
    content_type: &'static str,
    body: &str,
) -> Response {
    if !state.dashboard.session.logged_in(headers) {
        return ApiError::Unauthorized.into_response();
    }
    private(StatusCode::OK, content_type, body.to_string())
}

pub async fn script(State(state): State<AppState>, headers: HeaderMap) -> Response {
    asset(&state, &headers, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style(State(state): State<AppState>, headers: HeaderMap) -> Response {
    asset(&state, &headers, "text/css; charset=utf-8", STYLE)
}
