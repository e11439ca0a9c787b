//! The api's one error type: each variant is a row of the contract's error table, and
//! the reply is always `{"error": {"code", "message"}}`. Engine failures are logged
//! with their detail here and answered with a fixed sentence, so no SQL, Redis reply
//! or path ever reaches a client.

use axum::body::Body;
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

/// An error whose code and message never change, with its reply's body written out at
/// compile time (by `fixed!`): refusals are most of a flash crowd's replies, and these
/// need no formatting, no allocation and no copy.
#[derive(Debug)]
pub struct Fixed {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
    body: &'static str,
}

/// `fixed!(STATUS, "code", "message")`: a `&'static Fixed`. Codes and messages are
/// literals with nothing JSON would escape (a test holds every one to serde's output).
macro_rules! fixed {
    ($status:ident, $code:literal, $message:literal) => {
        &Fixed {
            status: StatusCode::$status,
            code: $code,
            message: $message,
            body: concat!(
                r#"{"error":{"code":""#,
                $code,
                r#"","message":""#,
                $message,
                r#""}}"#
            ),
        }
    };
}

/// `NAME = STATUS, "code", "message";`, each a private `&Fixed` constant: the replies
/// of the unit variants (the public constants are `fixed_errors!`'s, below).
macro_rules! fixed_replies {
    ($($name:ident = $status:ident, $code:literal, $message:literal;)*) => {
        $(const $name: &Fixed = fixed!($status, $code, $message);)*
    };
}

fixed_replies! {
    UNAUTHORIZED = UNAUTHORIZED, "unauthorized",
        "Missing, malformed, wrongly signed or expired credentials.";
    FORBIDDEN = FORBIDDEN, "forbidden", "These credentials may not use this route.";
    NOT_FOUND = NOT_FOUND, "not_found", "No such route or campaign.";
    METHOD_NOT_ALLOWED = METHOD_NOT_ALLOWED, "method_not_allowed",
        "This route does not take that method.";
    PAYLOAD_TOO_LARGE = PAYLOAD_TOO_LARGE, "payload_too_large",
        "The body is larger than 16 KiB.";
    UNSUPPORTED_MEDIA_TYPE = UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
        "Send the body as application/json.";
    RATE_LIMITED = TOO_MANY_REQUESTS, "rate_limited", "Too many requests; slow down.";
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
    /// A refusal whose code and message never change: the business refusals (409:
    /// `sold_out`, `not_started`, `ended`, the orders' ends) and the refusals of valid
    /// credentials for who or what the caller is (403: `blocked`, `ticket_required`,
    /// `risk_rejected`); see the constants below.
    Fixed(&'static Fixed),
    PayloadTooLarge,
    UnsupportedMediaType,
    Invalid(String),
    Unavailable(&'static str),
    /// A 409 whose message is built at run time (engine text that is safe to show).
    Refused(&'static str, String),
    /// Over the rate limit; retry after this many seconds.
    RateLimited(u64),
}

/// What an error's reply is made of.
enum Reply<'a> {
    Fixed(&'static Fixed),
    /// A message made at run time: the status, the code and the message.
    Made(StatusCode, &'static str, &'a str),
}

impl ApiError {
    fn reply(&self) -> Reply<'_> {
        use ApiError::*;
        Reply::Fixed(match self {
            Unauthorized => UNAUTHORIZED,
            Forbidden => FORBIDDEN,
            NotFound => NOT_FOUND,
            MethodNotAllowed => METHOD_NOT_ALLOWED,
            PayloadTooLarge => PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE,
            RateLimited(_) => RATE_LIMITED,
            Fixed(f) => f,
            MalformedJson(m) => {
                return Reply::Made(StatusCode::BAD_REQUEST, "malformed_json", m.as_str())
            }
            Invalid(m) => {
                return Reply::Made(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    m.as_str(),
                )
            }
            Unavailable(m) => {
                return Reply::Made(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            Refused(code, m) => return Reply::Made(StatusCode::CONFLICT, code, m.as_str()),
        })
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
        let json = [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        // The body as `Body`, not `&str` or `Vec`: those set a content type of their
        // own first.
        let (status, body) = match self.reply() {
            Reply::Fixed(f) => (f.status, Body::from(f.body)),
            Reply::Made(status, code, message) => (status, Body::from(error_json(code, message))),
        };
        let mut res = (status, json, body).into_response();
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

/// `NAME = STATUS, "code", "message";`, each a public `ApiError` constant of a fixed
/// error, and `ApiError::NAMED`, every one of them (for the test of their bodies).
macro_rules! fixed_errors {
    ($($(#[$doc:meta])* $name:ident = $status:ident, $code:literal, $message:literal;)*) => {
        impl ApiError {
            $(
                $(#[$doc])*
                pub const $name: ApiError = ApiError::Fixed(fixed!($status, $code, $message));
            )*

            #[cfg(test)]
            const NAMED: &'static [ApiError] = &[$(Self::$name),*];
        }
    };
}

fixed_errors! {
    /// `403 blocked`: the user or the address is on the blocklist.
    BLOCKED = FORBIDDEN, "blocked", "This account or address is blocked.";
    /// `403 ticket_required`: the campaign needs a valid claim ticket.
    TICKET_REQUIRED = FORBIDDEN, "ticket_required",
        "This campaign needs a valid claim ticket (X-Claim-Ticket).";
    /// `403 risk_rejected`: a risk rule refused the claim.
    RISK_REJECTED = FORBIDDEN, "risk_rejected", "The claim was refused by a risk check.";
    /// `409 sold_out`.
    SOLD_OUT = CONFLICT, "sold_out", "The campaign is sold out.";
    /// `409 not_started` of a claim.
    NOT_STARTED = CONFLICT, "not_started", "The campaign has not started yet.";
    /// `409 not_started` of a ticket asked for too early.
    TICKETS_NOT_YET = CONFLICT, "not_started",
        "Tickets are handed out only shortly before the campaign starts.";
    /// `409 ended`.
    ENDED = CONFLICT, "ended", "The campaign has ended.";
    /// `409 order_paid`: the order ended, paid, before this.
    ORDER_PAID = CONFLICT, "order_paid", "The order is paid.";
    /// `409 order_expired`.
    ORDER_EXPIRED = CONFLICT, "order_expired", "The order expired before it was paid.";
    /// `409 order_cancelled`.
    ORDER_CANCELLED = CONFLICT, "order_cancelled", "The order was cancelled.";
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

    #[test]
    fn fixed_bodies_are_the_json_serde_writes() {
        use ApiError::*;
        let unit = [
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited(1),
        ];
        let all: Vec<&super::Fixed> = unit
            .iter()
            .chain(ApiError::NAMED)
            .filter_map(|e| match e.reply() {
                Reply::Fixed(f) => Some(f),
                Reply::Made(..) => None,
            })
            .collect();
        assert_eq!(all.len(), unit.len() + ApiError::NAMED.len(), "all fixed");
        for f in all {
            let want = serde_json::to_string(&ErrorBody {
                error: ErrorFields {
                    code: f.code,
                    message: f.message,
                },
            })
            .expect("serializes");
            assert_eq!(f.body, want, "{}", f.code);
        }
    }
}
