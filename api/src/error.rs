//! The api's one error type: each variant is a row of the contract's error table, and
//! the reply is always `{"error": {"code", "message"}}`. Engine failures are logged
//! with their detail here and answered with a fixed sentence, so no SQL, Redis reply
//! or path ever reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stampede_engine::EngineError;

/// The reply's body, serialized as it stands (no JSON map is built per error: sold-out
/// refusals are most of a flash crowd's replies).
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(serde::Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

#[derive(Debug)]
pub enum ApiError {
    MalformedJson(String),
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// A business refusal (409): `sold_out`, `not_started`, `ended`.
    Conflict(&'static str, &'static str),
    PayloadTooLarge,
    UnsupportedMediaType,
    Invalid(String),
    Unavailable(&'static str),
    /// A 409 whose message is built at run time (engine text that is safe to show).
    Refused(&'static str, String),
    /// Over the rate limit; retry after this many seconds.
    RateLimited(u64),
    /// A refusal of valid credentials for who or what the caller is (403): `blocked`,
    /// `ticket_required`, `risk_rejected`.
    Denied(&'static str, &'static str),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        use ApiError::*;
        match self {
            MalformedJson(m) => (StatusCode::BAD_REQUEST, "malformed_json", m.as_str()),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing, malformed, wrongly signed or expired credentials.",
            ),
            Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "These credentials may not use this route.",
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "No such route or campaign.",
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This route does not take that method.",
            ),
            Conflict(code, m) => (StatusCode::CONFLICT, code, *m),
            Denied(code, m) => (StatusCode::FORBIDDEN, code, *m),
            Refused(code, m) => (StatusCode::CONFLICT, code, m.as_str()),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The body is larger than 16 KiB.",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as application/json.",
            ),
            Invalid(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                m.as_str(),
            ),
            Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", *m),
            RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests; slow down.",
            ),
        }
    }
}

/// The error body's JSON. The codes and most messages are the engine's own text with
/// nothing to escape: those are written straight out (a refusal is the hot path of a
/// sold-out crowd), anything else goes through serde_json.
fn error_json(code: &str, message: &str) -> Vec<u8> {
    let plain = |s: &str| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    if plain(code) && plain(message) {
        let parts = [
            r#"{"error":{"code":""#,
            code,
            r#"","message":""#,
            message,
            r#""}}"#,
        ];
        // Exactly the length: the body becomes `Bytes` without a copy or another
        // allocation only when the vector is full.
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
        return out;
    }
    // A struct of two strings always serializes.
    serde_json::to_vec(&ErrorBody {
        error: ErrorFields { code, message },
    })
    .unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut res = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            error_json(code, message),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if let ApiError::RateLimited(secs) = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiError::Invalid(m),
            EngineError::NotFound => ApiError::NotFound,
            EngineError::RebuildRefused(m) => ApiError::Refused("rebuild_refused", m),
            EngineError::Shedding => {
                ApiError::Unavailable("The engine is shedding load; retry shortly.")
            }
            EngineError::StateMissing(id) => {
                tracing::warn!(
                    campaign = id,
                    "campaign has no live state in the store: rebuild needed"
                );
                ApiError::Unavailable("The campaign is being restored; retry shortly.")
            }
            EngineError::CircuitOpen => {
                ApiError::Unavailable("A dependency is unavailable; retry shortly.")
            }
            EngineError::Unreachable(e) => {
                tracing::warn!(error = %e, "store unreachable");
                ApiError::Unavailable("A dependency is unavailable; retry shortly.")
            }
            other => {
                tracing::error!(error = %other, "dependency failure");
                ApiError::Unavailable("A dependency is unavailable; retry shortly.")
            }
        }
    }
}

impl ApiError {
    /// `403 blocked`: the user or the address is on the blocklist.
    pub const BLOCKED: ApiError =
        ApiError::Denied("blocked", "This account or address is blocked.");
    /// `403 ticket_required`: the campaign needs a valid claim ticket.
    pub const TICKET_REQUIRED: ApiError = ApiError::Denied(
        "ticket_required",
        "This campaign needs a valid claim ticket (X-Claim-Ticket).",
    );
    /// `403 risk_rejected`: a risk rule refused the claim.
    pub const RISK_REJECTED: ApiError =
        ApiError::Denied("risk_rejected", "The claim was refused by a risk check.");
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn error_bodies_are_the_json_serde_writes_with_or_without_escapes() {
        for (code, message) in [
            ("sold_out", "The campaign has no stock left."),
            (
                "invalid_request",
                "events[0].props must be \"an object\"\\ or absent.\n",
            ),
            ("x", ""),
        ] {
            let want = serde_json::to_vec(&ErrorBody {
                error: ErrorFields { code, message },
            })
            .expect("serializes");
            let body = error_json(code, message);
            assert_eq!(body, want, "{message:?}");
            if !message.contains(['"', '\\', '\n']) {
                assert_eq!(
                    body.len(),
                    body.capacity(),
                    "{message:?}: allocated exactly"
                );
            }
            let v: serde_json::Value =
                serde_json::from_slice(&error_json(code, message)).expect("valid JSON");
            assert_eq!(v["error"]["message"], message);
        }
    }
}
