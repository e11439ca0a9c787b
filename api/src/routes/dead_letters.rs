//! A campaign's dead letters (admin): claim events the database kept refusing, set
//! aside so the rest of the queue flows on. Listed for operators, and replayed into the
//! queue once the cause is fixed (a rewrite of a claim already persisted is a no-op).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stampede_engine::claim::ClaimEvent;
use stampede_engine::clock::to_rfc3339;

use crate::error::ApiError;
use crate::extract::{page_limit, Admin, CampaignPath, QueryParams};
use crate::state::AppState;
use crate::views;

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
}

/// The most dead letters one request lists or replays.
const MAX_PAGE: i64 = 10_000;

/// `GET /v1/admin/campaigns/{id}/dead-letters?limit=100`: oldest first, each with the
/// claim it holds (when its event can be read), why it was set aside, and when.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
    QueryParams(q): QueryParams<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, MAX_PAGE)?;
    let total = state.engine.queue.dead_letters(id).await?;
    let letters = state.engine.dead_letters(id, limit as usize).await?;
    let letters: Vec<Value> = letters
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "event": d.event,
                "claim": ClaimEvent::decode(&d.event).map(|e| json!(views::claim(&e.claim, false))),
                "reason": d.reason,
                "failed_at": to_rfc3339(d.failed_at_ms),
            })
        })
        .collect();
    Ok(Json(
        json!({ "campaign_id": id, "count": total, "dead_letters": letters }),
    ))
}

/// `POST /v1/admin/campaigns/{id}/dead-letters/replay?limit=1000`: moves dead letters
/// back into the queue, oldest first.
pub async fn replay(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
    QueryParams(q): QueryParams<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 1_000, MAX_PAGE)?;
    let replayed = state.engine.replay_dead_letters(id, limit as usize).await?;
    tracing::warn!(
        campaign = id,
        replayed,
        "dead letters replayed into the queue"
    );
    Ok(Json(json!({ "campaign_id": id, "replayed": replayed })))
}
