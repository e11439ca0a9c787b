//! Request extractors that answer in the contract's error shape: the user and admin
//! credentials, a campaign id from the path, and a strict JSON body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The largest body the api reads (contract: 16 KiB, else 413).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest a declared body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// True when the request declares a body over [`MAX_BODY_BYTES`]: it gets 413 before a
/// byte of it is read (else a client declaring a large body and sending nothing holds
/// the request open until it gives up).
pub fn declared_too_large(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_LENGTH).is_some_and(too_large)
}

/// Whether a `Content-Length` value declares more than [`MAX_BODY_BYTES`].
fn too_large(length: &HeaderValue) -> bool {
    length
        .to_str()
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case, the
/// blanks around the token trimmed), as bytes: a remembered token is found by them, and
/// only a token the cache does not hold is read as text (`Auth::verify`).
pub fn bearer_token(value: &HeaderValue) -> Option<&[u8]> {
    let v = value.as_bytes();
    let space = v.iter().position(|&b| b == b' ')?;
    v[..space]
        .eq_ignore_ascii_case(b"bearer")
        .then(|| v[space + 1..].trim_ascii())
}

fn bearer(parts: &Parts) -> Option<&[u8]> {
    bearer_token(parts.headers.get(AUTHORIZATION)?)
}

/// A caller with a valid user JWT; holds the user id.
pub struct User(pub String);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        state
            .auth
            .verify_user(token)
            .map(User)
            .map_err(|_| ApiError::Unauthorized)
    }
}

/// A read's `If-None-Match` header, when there is one readable as text: the only header
/// the campaign read needs (taking the whole `HeaderMap` would copy every header).
pub struct IfNoneMatch(pub Option<axum::http::HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get(axum::http::header::IF_NONE_MATCH)
                .cloned(),
        ))
    }
}

/// The claim route's optional headers: `X-Claim-Ticket` (see
/// `stampede_engine::ticket`) and `X-Device-Id` (for the risk rules: 1 to 128 visible
/// ASCII characters, else 422).
pub struct ClaimHeaders {
    pub ticket: Option<String>,
    pub device: Option<String>,
}

/// The longest `X-Device-Id` taken.
const MAX_DEVICE_ID: usize = 128;

// Made once: looking a header up by a `&str` parses the name on every request.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl ClaimHeaders {
    /// From the two headers' values: a ticket that is not text is no ticket (the route
    /// answers 403 when one is needed); a device id must be 1 to 128 visible ASCII
    /// characters, else 422.
    pub fn from_values(
        ticket: Option<&HeaderValue>,
        device: Option<&HeaderValue>,
    ) -> Result<Self, ApiError> {
        let text = |v: &HeaderValue| v.to_str().map(|s| s.trim().to_string());
        let ticket = ticket.and_then(|t| text(t).ok());
        let device = match device.map(text) {
            None => None,
            Some(Ok(d))
                if (1..=MAX_DEVICE_ID).contains(&d.len())
                    && d.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(d)
            }
            Some(_) => {
                return Err(ApiError::Invalid(format!(
                    "X-Device-Id must be 1 to {MAX_DEVICE_ID} visible ASCII characters."
                )))
            }
        };
        Ok(ClaimHeaders { ticket, device })
    }
}

/// A caller with the admin token. A valid user JWT gets 403, anything else 401.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        if state.auth.is_admin(token) {
            Ok(Admin)
        } else if state.auth.verify_user(token).is_ok() {
            Err(ApiError::Forbidden)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The client's address: the connection's peer (present whenever the server runs with
/// connection info, as it always does outside unit tests), or behind a trusted proxy
/// the address `X-Forwarded-For` names (see [`crate::client_ip`]).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl ClientIp {
    /// The connection's peer, or behind a trusted proxy the address the request's first
    /// `X-Forwarded-For` names. The header is asked for only then (anyone else's is
    /// ignored), so the common request, straight from its client, does not look it up.
    pub fn of<'a>(
        parts: &'a Parts,
        state: &AppState,
        forwarded_for: impl FnOnce() -> Option<&'a HeaderValue>,
    ) -> Self {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        ClientIp(peer.map(|p| {
            if !state.proxies.trusts(p) {
                return p;
            }
            state
                .proxies
                .client(p, forwarded_for().and_then(|v| v.to_str().ok()))
        }))
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let parts = &*parts;
        Ok(ClientIp::of(parts, state, || {
            parts.headers.get(&X_FORWARDED_FOR)
        }))
    }
}

/// A page size from the query: `default` when absent, else an integer in `1..=max`.
pub fn page_limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::Invalid(format!(
                "limit must be between 1 and {max}."
            ))),
        },
    }
}

/// A claim id from the query (`after`, the id in a `before` cursor): opaque, at most 64
/// characters (as the document's maxLength counts), and free of control characters
/// (PostgreSQL refuses a NUL in text, which would turn a bad input into a database
/// error).
pub fn is_claim_id(raw: &str) -> bool {
    raw.chars().count() <= 64 && !raw.chars().any(char::is_control)
}

/// Client text quoted in an error message, kept to one line and `max` characters:
/// control characters are escaped (`\n`), and anything longer is cut with an ellipsis.
fn quoted(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A campaign id from the path: a positive integer below 2^53, else the campaign is
/// simply not found.
pub fn campaign_id(raw: &str) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 && id < (1 << 53) => Ok(id),
        _ => Err(ApiError::NotFound),
    }
}

/// The `{id}` of a campaign route: a positive integer below 2^53. Anything else, a
/// path that is not even UTF-8 included, is simply an unknown campaign (404).
pub struct CampaignPath(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for CampaignPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // The parameter as the router matched it (percent-decoded), borrowed: no
        // `String` made to parse a number.
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let (_, raw) = params.iter().next().ok_or(ApiError::NotFound)?;
        campaign_id(raw).map(CampaignPath)
    }
}

/// A claim (order) id from the path: anything that cannot be one, undecodable bytes
/// included, is an unknown claim (404).
pub struct ClaimPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClaimPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::NotFound)?;
        if !stampede_engine::order::valid_id(&raw) {
            return Err(ApiError::NotFound);
        }
        Ok(ClaimPath(raw))
    }
}

/// Query parameters; a query string that does not parse (a repeated key, say) is 422.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|_| ApiError::Invalid("The query string is invalid.".into()))
    }
}

/// A JSON object body: not JSON or not an object is 400, a rule broken by a field is
/// 422 naming the field, a wrong media type 415, too large 413. `Option` when the body
/// may be empty.
pub struct JsonBody<T>(pub Option<T>);

/// What a `Content-Type` value says: JSON (`application/json` or `+json`) or not;
/// `None` when there is none, or none readable as text.
fn is_json_type(v: Option<&HeaderValue>) -> Option<bool> {
    v.and_then(|v| v.to_str().ok()).map(|v| {
        let mime = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        mime == "application/json" || mime.ends_with("+json")
    })
}

/// A body read whole, as [`JsonBody`] takes it: `None` when empty, 415 unless declared
/// JSON, 400 unless a JSON object, 422 naming the field a rule broke.
pub fn parse_json<T: DeserializeOwned>(
    json_type: Option<bool>,
    bytes: &[u8],
) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if json_type != Some(true) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::MalformedJson("The body is not valid JSON.".into()))?;
    if !value.is_object() {
        return Err(ApiError::MalformedJson(
            "The body must be a JSON object.".into(),
        ));
    }
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|e| {
            // Both may quote the client's own text (an unknown field's name, a
            // string given for a number), which must not break the message's line.
            let path = quoted(&e.path().to_string(), 64);
            let inner = quoted(&e.into_inner().to_string(), 200);
            ApiError::Invalid(if path == "." {
                format!("The body is invalid: {inner}.")
            } else {
                format!("{path} is invalid: {inner}.")
            })
        })
}

/// A body read whole and unparsed, with whether it is declared JSON: for a route that
/// must see the exact bytes (a signed payment notification), then [`parse_json`] them.
pub struct RawJson {
    pub json_type: Option<bool>,
    pub bytes: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let raw = RawJson::from_request(req, state).await?;
        parse_json(raw.json_type, &raw.bytes).map(JsonBody)
    }
}

/// What a request's headers say of its body, taken before the body is read.
pub struct BodyHeaders {
    /// `Content-Length` over [`MAX_BODY_BYTES`]: 413 before a byte is read.
    too_large: bool,
    /// A body is declared (a non-zero length, or `Transfer-Encoding`): it is read
    /// within [`BODY_READ_TIMEOUT`].
    declared: bool,
    json_type: Option<bool>,
}

impl BodyHeaders {
    pub fn from_values(
        length: Option<&HeaderValue>,
        transfer_encoding: bool,
        content_type: Option<&HeaderValue>,
    ) -> Self {
        BodyHeaders {
            too_large: length.is_some_and(too_large),
            declared: length.is_some_and(|v| v.as_bytes() != b"0") || transfer_encoding,
            json_type: is_json_type(content_type),
        }
    }

    fn of(headers: &HeaderMap) -> Self {
        Self::from_values(
            headers.get(CONTENT_LENGTH),
            headers.contains_key(TRANSFER_ENCODING),
            headers.get(CONTENT_TYPE),
        )
    }
}

impl RawJson {
    /// Reads the body whole, as `headers` (the request's) declared it.
    pub async fn read(
        req: Request,
        headers: BodyHeaders,
        state: &AppState,
    ) -> Result<RawJson, ApiError> {
        if headers.too_large {
            return Err(ApiError::PayloadTooLarge);
        }
        let json_type = headers.json_type;
        // Nothing to read (a bodiless request): no collecting, no timer.
        if axum::body::HttpBody::is_end_stream(req.body()) {
            return Ok(RawJson {
                json_type,
                bytes: Bytes::new(),
            });
        }
        // A declared body is read within BODY_READ_TIMEOUT: the claim route runs outside
        // the per-request timer, and a client that declares a body and sends it slowly
        // (or never) must not hold its connection and task forever.
        let read = Bytes::from_request(req, state);
        let read = if headers.declared {
            tokio::time::timeout(BODY_READ_TIMEOUT, read)
                .await
                .map_err(|_| ApiError::Unavailable("The body took too long to arrive."))?
        } else {
            read.await
        };
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson("The body could not be read.".into())
            }
        })?;
        Ok(RawJson { json_type, bytes })
    }
}

impl FromRequest<AppState> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let headers = BodyHeaders::of(req.headers());
        RawJson::read(req, headers, state).await
    }
}
