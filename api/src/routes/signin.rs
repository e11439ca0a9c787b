//! The daily sign-in: `POST /v1/signin`, `GET /v1/me/points`, `GET /v1/me/signins`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stampede_engine::signin::{Month, SigninRecord};

use crate::error::ApiError;
use crate::extract::{ClientIp, QueryParams, User};
use crate::state::AppState;

#[derive(Serialize)]
struct SigninReply {
    status: &'static str,
    #[serde(flatten)]
    record: SigninRecord,
}

pub async fn signin(
    State(state): State<AppState>,
    User(user): User,
    ClientIp(ip): ClientIp,
) -> Response {
    if let Err(e) = state.admit_caller(&user, ip) {
        let outcome = match e {
            ApiError::RateLimited(_) => "rate_limited",
            _ => "blocked",
        };
        metrics::counter!("stampede_signins_total", "outcome" => outcome).increment(1);
        return e.into_response();
    }
    let result = state.engine.signin(&user).await;
    let outcome = match &result {
        Ok((_, true)) => "signed_in",
        Ok((_, false)) => "already_signed_in",
        Err(_) => "unavailable",
    };
    metrics::counter!("stampede_signins_total", "outcome" => outcome).increment(1);
    match result {
        Ok((record, true)) => (
            StatusCode::CREATED,
            Json(SigninReply {
                status: "signed_in",
                record,
            }),
        )
            .into_response(),
        Ok((record, false)) => (
            StatusCode::OK,
            Json(SigninReply {
                status: "already_signed_in",
                record,
            }),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn points(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(state.engine.points(&user).await?)))
}

#[derive(Deserialize)]
pub struct CalendarQuery {
    month: Option<String>,
}

pub async fn calendar(
    State(state): State<AppState>,
    User(user): User,
    QueryParams(q): QueryParams<CalendarQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // An empty `month=` is not `YYYY-MM`: 422, not the current month.
    let month = match q.month.as_deref() {
        None => None,
        Some(m) => Some(
            Month::parse(m).ok_or_else(|| ApiError::Invalid("month must be YYYY-MM.".into()))?,
        ),
    };
    let (month, days) = state.engine.signin_calendar(&user, month).await?;
    let streak = state.engine.points(&user).await?.streak;
    Ok(Json(
        json!({ "month": month.to_string(), "days": days, "streak": streak }),
    ))
}
