//! `GET /v1/campaigns/{id}/ticket` (user): a claim ticket, from the campaign's
//! `ticket_lead_secs` before its start, never earlier (see `stampede_engine::ticket`).

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use stampede_engine::clock::{now_ms, to_rfc3339};
use stampede_engine::funnel::Stage;
use stampede_engine::ticket::NotIssued;

use crate::error::ApiError;
use crate::extract::{CampaignPath, ClientIp, User};
use crate::state::AppState;

pub async fn ticket(
    State(state): State<AppState>,
    User(user): User,
    ClientIp(ip): ClientIp,
    CampaignPath(id): CampaignPath,
) -> Result<Response, ApiError> {
    let now = now_ms();
    state.admit_caller(&user, ip)?;
    let campaign = state.engine.campaign(id).await?;
    let ticket = state
        .tickets
        .issue(&campaign, &user, now)
        .map_err(|e| match e {
            NotIssued::TooEarly => ApiError::TICKETS_NOT_YET,
            NotIssued::Ended => ApiError::ENDED,
        })?;
    state.engine.funnel.count(id, Stage::Ticket);
    let mut res = Json(json!({
        "ticket": ticket.token,
        "campaign_id": id,
        "expires_at": to_rfc3339(ticket.expires_at_ms),
    }))
    .into_response();
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
