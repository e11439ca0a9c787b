//! `/v1/admin/blocklist` (admin): block a user or an address (optionally for
//! `ttl_secs`), lift a block, list the blocks in force. Blocked callers get
//! `403 blocked` on the claim, ticket and sign-in routes (see
//! `stampede_engine::blocklist`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stampede_engine::blocklist::{Block, Subject, MAX_TTL_SECS};
use stampede_engine::clock::{now_ms, to_rfc3339};

use crate::error::ApiError;
use crate::extract::{Admin, JsonBody};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    // Each may be left out, never sent as `null` (see `stampede_engine::no_null`).
    #[serde(default, deserialize_with = "stampede_engine::no_null::present")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "stampede_engine::no_null::present")]
    ip: Option<String>,
    #[serde(default, deserialize_with = "stampede_engine::no_null::present")]
    ttl_secs: Option<i64>,
}

/// `ttl_secs`: absent (until lifted), else 1 to a year. Checked on a lift too, where it
/// is then ignored: the lift takes "the same body", and the document has one schema.
fn ttl(body: &BlockBody) -> Result<Option<u64>, ApiError> {
    match body.ttl_secs {
        None => Ok(None),
        Some(t) if (1..=MAX_TTL_SECS as i64).contains(&t) => Ok(Some(t as u64)),
        Some(_) => Err(ApiError::Invalid(format!(
            "ttl_secs must be a positive number of seconds, at most {MAX_TTL_SECS} (a year)."
        ))),
    }
}

/// Exactly one of `user_id` and `ip`.
fn subject(body: &BlockBody) -> Result<Subject, ApiError> {
    let subject = match (&body.user_id, &body.ip) {
        (Some(u), None) => Subject::user(u),
        (None, Some(ip)) => Subject::ip(ip),
        _ => {
            return Err(ApiError::Invalid(
                "Give exactly one of user_id and ip.".into(),
            ))
        }
    };
    Ok(subject?)
}

fn view(b: &Block) -> Value {
    let mut v = match &b.subject {
        Subject::User(u) => json!({ "user_id": u }),
        Subject::Ip(ip) => json!({ "ip": ip.to_string() }),
    };
    v["expires_at"] = json!(b.expires_at_ms.map(to_rfc3339));
    v
}

pub async fn block(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BlockBody>,
) -> Result<Response, ApiError> {
    let body = body.ok_or_else(|| ApiError::Invalid("user_id or ip is required.".into()))?;
    let subject = subject(&body)?;
    let ttl = ttl(&body)?;
    let block = state.engine.block(&subject, ttl).await?;
    tracing::warn!(subject = %subject.key(), ttl_secs = ?ttl, "blocked");
    Ok((StatusCode::CREATED, Json(view(&block))).into_response())
}

pub async fn unblock(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BlockBody>,
) -> Result<Json<Value>, ApiError> {
    // "The same body" as the block (contract): a valid `ttl_secs` in it is ignored.
    let body = body.ok_or_else(|| ApiError::Invalid("user_id or ip is required.".into()))?;
    let subject = subject(&body)?;
    ttl(&body)?;
    let removed = state.engine.unblock(&subject).await?;
    tracing::warn!(subject = %subject.key(), removed, "block lifted");
    Ok(Json(json!({ "removed": removed })))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let entries = state.engine.blocklist.entries(now_ms()).await?;
    let views: Vec<Value> = entries.iter().map(view).collect();
    Ok(Json(json!({ "entries": views })))
}
