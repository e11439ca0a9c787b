//! `/v1/campaigns`: create (admin), read one (with ETag), list, and close (admin).

use std::hash::{Hash, Hasher};

use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use stampede_engine::campaign::{CampaignStatus, NewCampaign};
use stampede_engine::clock::now_ms;

use crate::error::ApiError;
use crate::extract::{Admin, CampaignPath, JsonBody, QueryParams};
use crate::state::AppState;
use crate::views;

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewCampaign>,
) -> Result<Response, ApiError> {
    let req = body.ok_or_else(|| ApiError::Invalid("kind is required.".into()))?;
    let (c, k) = state.engine.create_campaign(&req).await?;
    tracing::info!(
        campaign = c.id,
        kind = c.kind.as_str(),
        total = c.total,
        "campaign created"
    );
    Ok((StatusCode::CREATED, Json(views::campaign(&c, &k))).into_response())
}

/// A strong ETag over the exact bytes of the reply: equal bytes, equal tag.
fn etag(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

pub async fn get(
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (c, k) = state.engine.campaign_live(id).await?;
    let body = serde_json::to_vec(&views::campaign(&c, &k))
        .map_err(|_| ApiError::Unavailable("Try again."))?;
    let tag = etag(&body);
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let tag = HeaderValue::from_str(&tag).map_err(|_| ApiError::Unavailable("Try again."))?;
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, tag)]).into_response());
    }
    Ok((
        [
            (ETAG, tag),
            (
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

/// How many campaigns a list reply holds at most.
const LIST_LIMIT: i64 = 500;

pub async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let wanted = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(CampaignStatus::parse(s).ok_or_else(|| {
            ApiError::Invalid("status must be one of scheduled, active, sold_out, ended.".into())
        })?),
    };
    let now = now_ms();
    let campaigns: Vec<_> = state
        .engine
        .campaigns(
            wanted.is_none_or(|w| w == CampaignStatus::Ended),
            LIST_LIMIT,
        )
        .await?
        .iter()
        .filter(|(c, k)| wanted.is_none_or(|w| c.live_status(now, k) == w))
        .map(|(c, k)| views::campaign(c, k))
        .collect();
    Ok(Json(json!({ "campaigns": campaigns })))
}

pub async fn close(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (c, k) = state.engine.close(id).await?;
    tracing::info!(campaign = c.id, "campaign closed");
    Ok(Json(views::campaign(&c, &k)))
}
