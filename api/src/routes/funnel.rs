//! `GET /v1/admin/campaigns/{id}/funnel?minutes=60` (admin): the campaign's live funnel,
//! one entry per minute of the window, oldest first, the current minute last, zeros
//! included (see `stampede_engine::funnel`). Each entry has `at` (the minute's start),
//! the five stages `view`, `ticket`, `claim`, `accepted`, `paid`, and any other client
//! event type counted in that minute.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use stampede_engine::clock::to_rfc3339;
use stampede_engine::funnel::MAX_MINUTES;

use crate::error::ApiError;
use crate::extract::{Admin, CampaignPath, QueryParams};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct FunnelQuery {
    minutes: Option<String>,
}

/// The window when the query names none.
const DEFAULT_MINUTES: u32 = 60;

pub async fn funnel(
    _: Admin,
    State(state): State<AppState>,
    CampaignPath(id): CampaignPath,
    QueryParams(q): QueryParams<FunnelQuery>,
) -> Result<Json<Value>, ApiError> {
    let minutes = match q.minutes.as_deref() {
        None => DEFAULT_MINUTES,
        Some(m) => m
            .parse::<u32>()
            .ok()
            .filter(|m| (1..=MAX_MINUTES).contains(m))
            .ok_or_else(|| {
                ApiError::Invalid(format!("minutes must be between 1 and {MAX_MINUTES}."))
            })?,
    };
    let rows = state.engine.funnel(id, minutes).await?;
    let minutes: Vec<Value> = rows
        .into_iter()
        .map(|m| {
            let mut entry = Map::new();
            entry.insert("at".into(), Value::String(to_rfc3339(m.at_ms)));
            for (kind, n) in m.counts {
                entry.insert(kind, json!(n));
            }
            Value::Object(entry)
        })
        .collect();
    Ok(Json(json!({ "campaign_id": id, "minutes": minutes })))
}
