//! Administration: a campaign's stats, the audit export of persisted claims, the
//! rebuild of its live state from the database, and the reconciliation of the two.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{is_claim_id, page_limit, Admin, CampaignPath, QueryParams};
use crate::state::AppState;
use crate::views;

pub async fn stats(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let stats = state.engine.stats(id).await?;
    Ok(Json(json!(stats)))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// The largest export page.
const MAX_EXPORT_PAGE: i64 = 10_000;

pub async fn export(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
    QueryParams(q): QueryParams<ExportQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let campaign = state.engine.campaign(id).await?;
    let limit = page_limit(q.limit.as_deref(), 1_000, MAX_EXPORT_PAGE)?;
    let after = q.after.unwrap_or_default();
    if !is_claim_id(&after) {
        return Err(ApiError::Invalid("after must be a claim id.".into()));
    }
    let claims = state
        .engine
        .export_claims(id, &after, limit)
        .await
        .map_err(ApiError::from)?;
    let next = (claims.len() as i64 == limit)
        .then(|| claims.last().map(|c| c.id.clone()))
        .flatten();
    let orders = state.engine.persisted_orders(&campaign, &claims).await?;
    let views: Vec<_> = claims
        .iter()
        .map(|c| views::claim_with_order(c, true, orders.get(&c.id)))
        .collect();
    Ok(Json(json!({ "claims": views, "next": next })))
}

pub async fn rebuild(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (persisted, remaining) = state.engine.rebuild(id).await?;
    tracing::warn!(
        campaign = id,
        persisted,
        remaining,
        "campaign live state rebuilt from the database"
    );
    Ok(Json(
        json!({ "campaign_id": id, "persisted_claims": persisted, "remaining": remaining }),
    ))
}

/// The store's counters against the database (see `stampede_engine::reconcile`).
pub async fn reconcile(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = state.engine.reconcile(id).await?;
    if !r.consistent {
        tracing::warn!(campaign = id, drift = ?r.drift, settled = r.settled, "reconciliation found drift");
    }
    Ok(Json(json!(r)))
}
