//! `POST /v1/events` (user): behaviour events, 1 to 100 a request, validated
//! (`stampede_engine::behaviour`), queued for the workers, counted in the live funnel,
//! answered `202 {"accepted": n}` once queued. The gates of every user write route go
//! first (the blocklist, the rate limits); a campaign the engine does not know is 404,
//! and a request with any bad event stores none of them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use stampede_engine::behaviour::{BehaviourEvent, MAX_EVENTS};
use stampede_engine::clock::{now_ms, parse_rfc3339};

use crate::error::ApiError;
use crate::extract::{ClientIp, JsonBody, User};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsBody {
    events: Vec<EventIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    #[serde(rename = "type")]
    kind: String,
    campaign_id: u64,
    // Optional, never `null` (see `stampede_engine::no_null`).
    #[serde(default, deserialize_with = "stampede_engine::no_null::present")]
    at: Option<String>,
    #[serde(default, deserialize_with = "stampede_engine::no_null::present")]
    props: Option<serde_json::Map<String, serde_json::Value>>,
}

pub async fn ingest(
    State(state): State<AppState>,
    User(user): User,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<EventsBody>,
) -> Result<Response, ApiError> {
    state.admit_caller(&user, ip)?;
    let body = body.ok_or_else(|| ApiError::Invalid("events is required.".into()))?;
    if body.events.is_empty() || body.events.len() > MAX_EVENTS {
        return Err(ApiError::Invalid(format!(
            "events must hold 1 to {MAX_EVENTS} events."
        )));
    }
    let now = now_ms();
    let mut events = Vec::with_capacity(body.events.len());
    for (i, e) in body.events.iter().enumerate() {
        let at_ms = match &e.at {
            None => None,
            Some(at) => Some(parse_rfc3339(at).ok_or_else(|| {
                ApiError::Invalid(format!("events[{i}].at must be an RFC 3339 time."))
            })?),
        };
        let event = BehaviourEvent::new(
            i,
            &user,
            &e.kind,
            e.campaign_id,
            at_ms,
            e.props.as_ref(),
            now,
        )
        .map_err(|why| ApiError::Invalid(why.0))?;
        events.push(event);
    }
    // Every campaign named must exist: ids out of the contract's range here, the rest
    // by `ingest_events`, which reads their (cached) rows anyway.
    if events
        .iter()
        .any(|e| e.campaign_id == 0 || e.campaign_id >= 1 << 53)
    {
        return Err(ApiError::NotFound);
    }
    state.engine.ingest_events(&events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": events.len() })),
    )
        .into_response())
}
