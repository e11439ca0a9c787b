//! `/v1/campaigns`: create (admin), read one (with ETag), list, and close (admin).

use axum::extract::State;
use axum::http::header::ETAG;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use stampede_engine::campaign::{CampaignStatus, NewCampaign};
use stampede_engine::clock::now_ms;
use stampede_engine::live_cache::Freshness;

use crate::error::ApiError;
use crate::extract::{Admin, CampaignPath, IfNoneMatch, JsonBody, QueryParams};
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

/// Set on a read served from the last counters known while the store cannot be
/// reached (contract extension): `remaining` and `status` may be older than the TTL.
pub const STALE_HEADER: &str = "x-stampede-stale";

pub async fn get(
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response, ApiError> {
    let (c, k, freshness) = state.engine.campaign_live_cached(id).await?;
    let reply = state.campaign_replies.reply(&c, &k, now_ms())?;
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| reply.matches(v));
    let mut res = if matches {
        (StatusCode::NOT_MODIFIED, [(ETAG, reply.etag.clone())]).into_response()
    } else {
        (
            [
                (ETAG, reply.etag.clone()),
                (
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
            ],
            reply.body.clone(),
        )
            .into_response()
    };
    mark_stale(&mut res, freshness);
    Ok(res)
}

fn mark_stale(res: &mut Response, freshness: Freshness) {
    if freshness == Freshness::Stale {
        res.headers_mut()
            .insert(STALE_HEADER, HeaderValue::from_static("true"));
    }
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
) -> Result<Response, ApiError> {
    // An empty `status=` is outside the enum like any other word: 422, not "all".
    let wanted = match q.status.as_deref() {
        None => None,
        Some(s) => Some(CampaignStatus::parse(s).ok_or_else(|| {
            ApiError::Invalid("status must be one of scheduled, active, sold_out, ended.".into())
        })?),
    };
    let now = now_ms();
    let live = state
        .engine
        .campaigns(
            wanted.is_none_or(|w| w == CampaignStatus::Ended),
            LIST_LIMIT,
        )
        .await?;
    let campaigns: Vec<_> = live
        .iter()
        .filter(|(c, k, _)| wanted.is_none_or(|w| c.live_status(now, k) == w))
        .map(|(c, k, _)| views::campaign(c, k))
        .collect();
    let mut res = Json(json!({ "campaigns": campaigns })).into_response();
    if live.iter().any(|(_, _, f)| *f == Freshness::Stale) {
        mark_stale(&mut res, Freshness::Stale);
    }
    Ok(res)
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
