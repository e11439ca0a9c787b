//! Request extractors that answer in the contract's error shape: the user and admin
//! credentials, a campaign id from the path, and a strict JSON body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The largest body the api reads (contract: 16 KiB, else 413).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
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

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(ClientIp(peer.map(|p| state.proxies.client(p, forwarded))))
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
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::NotFound)?;
        campaign_id(&raw).map(CampaignPath)
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

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson("The body could not be read.".into())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        if json_type != Some(true) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::MalformedJson("The body is not valid JSON.".into()))?;
        if !value.is_object() {
            return Err(ApiError::MalformedJson(
                "The body must be a JSON object.".into(),
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(|v| JsonBody(Some(v)))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                ApiError::Invalid(if path == "." {
                    format!("The body is invalid: {inner}.")
                } else {
                    format!("{path} is invalid: {inner}.")
                })
            })
    }
}
