//! Claims: the hot path `POST /v1/campaigns/{id}/claims` (its gates, then the engine's
//! claim step), and the user's claim lists.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use stampede_engine::auth::Verified;
use stampede_engine::campaign::Campaign;
use stampede_engine::claim::ClaimOutcome;
use stampede_engine::order::Order;
use stampede_engine::request_id::RequestId;

use crate::claim_request::ClaimRequest;
use crate::error::ApiError;
use crate::extract::{is_claim_id, page_limit, CampaignPath, ClaimHeaders, QueryParams, User};
use crate::risk::ClaimSignals;
use crate::state::AppState;
use crate::telemetry::risk_refusal;
use crate::views::{self, ClaimReply};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    // May be left out, never sent as `null` (see `stampede_engine::no_null`).
    #[serde(default, deserialize_with = "stampede_engine::no_null::present")]
    quantity: Option<i64>,
}

pub async fn claim(
    State(state): State<AppState>,
    ClaimRequest {
        caller,
        ip,
        headers,
        request_id,
        campaign_id: id,
        body,
        now_ms: now,
    }: ClaimRequest<ClaimBody>,
) -> Response {
    // quanta: the processor's counter, about half the cost of a `clock_gettime` here.
    let started = quanta::Instant::now();
    let user = caller.user.as_str();
    let result = match admit(&state, &caller, ip, &headers, id, now).await {
        Ok(campaign) => claim_inner(&state, user, &campaign, body, request_id, now).await,
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok((label, _)) => *label,
        Err(ApiError::RateLimited(_)) => "rate_limited",
        Err(ApiError::Fixed(f)) if f.status == StatusCode::CONFLICT => f.code,
        Err(ApiError::Unavailable(_)) => "unavailable",
        Err(_) => "rejected",
    };
    let elapsed = started.elapsed();
    crate::telemetry::claim_metrics().record(outcome, elapsed);
    state.dashboard.live.record(id, outcome, elapsed);
    match result {
        Ok((_, res)) => res,
        Err(e) => e.into_response(),
    }
}

/// The gates before the claim step, cheapest first: the blocklist (403 blocked), the
/// rate limits (429), the campaign's ticket (403 ticket_required), the risk rules
/// (403 risk_rejected). None of them calls the store. Passed, the campaign's row.
async fn admit(
    state: &AppState,
    caller: &Verified,
    ip: Option<IpAddr>,
    headers: &ClaimHeaders,
    campaign_id: u64,
    now: i64,
) -> Result<Arc<Campaign>, ApiError> {
    let user = caller.user.as_str();
    state.admit_caller_at(user, ip, now)?;
    let campaign = state.engine.campaign(campaign_id).await?;
    let ticket_issued_at_ms = if campaign.ticket_required {
        match state
            .tickets
            .verify(headers.ticket.as_deref(), campaign_id, user, now)
        {
            Ok(issued) => Some(issued),
            Err(why) => {
                risk_refusal("ticket", "refuse");
                tracing::debug!(
                    user,
                    campaign = campaign_id,
                    reason = why.as_str(),
                    "claim without a valid ticket"
                );
                return Err(ApiError::TICKET_REQUIRED);
            }
        }
    } else {
        None
    };
    state
        .risk
        .assess(&ClaimSignals {
            user,
            ip,
            device: headers.device.as_deref(),
            account_created_at: caller.account_created_at,
            ticket_issued_at_ms,
            now_ms: now,
        })
        .map_err(|_| ApiError::RISK_REJECTED)?;
    Ok(campaign)
}

async fn claim_inner(
    state: &AppState,
    user: &str,
    campaign: &Campaign,
    body: Option<ClaimBody>,
    request_id: Option<RequestId>,
    now: i64,
) -> Result<(&'static str, Response), ApiError> {
    let quantity = match body.and_then(|b| b.quantity) {
        None => None,
        Some(q) if q < 1 => return Err(ApiError::Invalid("quantity must be at least 1.".into())),
        Some(q) => Some(q as u64),
    };
    let outcome = state
        .engine
        .claim_in(campaign, user, quantity, request_id, now)
        .await?;
    let label = outcome.label();
    let window = campaign.payment_window_ms();
    let res = match outcome {
        ClaimOutcome::Accepted(c) => {
            // A new order is due one window after its claim (lua/claim.lua).
            let order = (window > 0).then(|| Order::pending(&c, c.accepted_at_ms + window));
            (
                StatusCode::CREATED,
                Json(ClaimReply {
                    status: "accepted",
                    claim: views::claim_with_order(&c, false, order.as_ref()),
                }),
            )
                .into_response()
        }
        // Boxed: its lookups' futures are large, and the handler's future (allocated
        // and moved per request, refusals included) would carry them.
        ClaimOutcome::AlreadyClaimed(c) => Box::pin(already_claimed(state, campaign, c)).await?,
        ClaimOutcome::SoldOut => return Err(ApiError::SOLD_OUT),
        ClaimOutcome::NotStarted => return Err(ApiError::NOT_STARTED),
        ClaimOutcome::Ended => return Err(ApiError::ENDED),
        // The contract's 422 (`invalid_request`, naming `quantity`), though what the user
        // already holds (and, on a red packet, the campaign's kind) is what decides it:
        // the document says so, and the schemathesis hooks know it.
        ClaimOutcome::OverLimit { may_take } => {
            return Err(ApiError::Invalid(format!(
                "quantity is more than you may still take ({may_take})."
            )))
        }
        ClaimOutcome::Missing => {
            return Err(ApiError::Unavailable(
                "The campaign is being restored; retry shortly.",
            ))
        }
    };
    Ok((label, res))
}

/// The reply to a user who already holds the claim: it, whether it is persisted, and
/// its order when the campaign has a payment window.
async fn already_claimed(
    state: &AppState,
    campaign: &Campaign,
    c: stampede_engine::claim::Claim,
) -> Result<Response, ApiError> {
    let persisted = state.engine.persisted(&c).await;
    let order = if campaign.payment_window_ms() > 0 {
        state.engine.store.order(campaign.id, &c.id).await?
    } else {
        None
    };
    Ok((
        StatusCode::OK,
        Json(ClaimReply {
            status: "already_claimed",
            claim: views::claim_with_order(&c, persisted, order.as_ref()),
        }),
    )
        .into_response())
}

pub async fn mine_in_campaign(
    State(state): State<AppState>,
    User(user): User,
    CampaignPath(id): CampaignPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let claims = state.engine.user_campaign_claims(id, &user).await?;
    let views: Vec<_> = claims
        .iter()
        .map(|v| views::claim_with_order(&v.claim, v.persisted, v.order.as_ref()))
        .collect();
    Ok(Json(json!({ "claims": views })))
}

#[derive(Deserialize)]
pub struct MineQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// The cursor of `/v1/me/claims`: `{accepted ms}.{claim id}` of the last claim given.
/// The milliseconds are 1 to 18 ASCII digits (no sign: the document's pattern), so they
/// always fit an `i64`.
fn parse_cursor(s: &str) -> Option<(i64, &str)> {
    let (ms, id) = s.split_once('.')?;
    if ms.is_empty() || ms.len() > 18 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !is_claim_id(id) {
        return None;
    }
    Some((ms.parse().ok()?, id))
}

pub async fn mine(
    State(state): State<AppState>,
    User(user): User,
    QueryParams(q): QueryParams<MineQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 40, 100)?;
    // An empty `before=` is no cursor: 422, not the first page.
    let before = match q.before.as_deref() {
        None => None,
        Some(c) => Some(
            parse_cursor(c)
                .ok_or_else(|| ApiError::Invalid("before is not a valid cursor.".into()))?,
        ),
    };
    let claims = state.engine.user_claims(&user, before, limit).await?;
    let next = (claims.len() as i64 == limit)
        .then(|| {
            claims
                .last()
                .map(|c| format!("{}.{}", c.accepted_at_ms, c.id))
        })
        .flatten();
    let orders = orders_of(&state, &claims).await?;
    let views: Vec<_> = claims
        .iter()
        .map(|c| views::claim_with_order(c, true, orders.get(&c.id)))
        .collect();
    Ok(Json(json!({ "claims": views, "next": next })))
}

/// The orders of the claims that have one (their campaign has a payment window).
async fn orders_of(
    state: &AppState,
    claims: &[stampede_engine::claim::Claim],
) -> Result<std::collections::HashMap<String, Order>, ApiError> {
    let mut by_campaign: std::collections::BTreeMap<u64, Vec<stampede_engine::claim::Claim>> =
        Default::default();
    for c in claims {
        by_campaign
            .entry(c.campaign_id)
            .or_default()
            .push(c.clone());
    }
    let mut out = std::collections::HashMap::new();
    for (id, list) in by_campaign {
        let campaign = state.engine.campaign(id).await?;
        out.extend(state.engine.live_orders(&campaign, &list).await?);
    }
    Ok(out)
}
