//! Orders and payment: a user's cancel, the payment provider's signed notifications,
//! and the admin list of payments to refund (README, "Orders and payment").

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use stampede_engine::campaign::Campaign;
use stampede_engine::clock::{now_ms, to_rfc3339};
use stampede_engine::order::{
    valid_id, CancelOutcome, Order, OrderStatus, PayOutcome, Payment, RefundReason,
};
use stampede_engine::service::claim_of;

use crate::error::ApiError;
use crate::extract::{
    page_limit, parse_json, Admin, ClaimPath, ClientIp, QueryParams, RawJson, User,
};
use crate::state::AppState;
use crate::views::{self, ClaimReply};

/// The header the payment provider signs its notifications in.
pub const SIGNATURE_HEADER: &str = "stampede-signature";

/// `{"status": ..., "claim": Claim}` for an order: the claim rebuilt from it.
async fn order_reply(
    state: &AppState,
    code: StatusCode,
    status: &'static str,
    c: &Campaign,
    o: &Order,
) -> Response {
    let claim = claim_of(c, o);
    let persisted = state.engine.persisted(&claim).await;
    (
        code,
        Json(ClaimReply {
            status,
            claim: views::claim_with_order(&claim, persisted, Some(o)),
        }),
    )
        .into_response()
}

fn ended(status: OrderStatus) -> ApiError {
    match status {
        OrderStatus::Paid => ApiError::ORDER_PAID,
        OrderStatus::Expired => ApiError::ORDER_EXPIRED,
        _ => ApiError::ORDER_CANCELLED,
    }
}

/// `POST /v1/claims/{claim_id}/cancel` (user, own claim only).
pub async fn cancel(
    State(state): State<AppState>,
    User(user): User,
    ClientIp(ip): ClientIp,
    ClaimPath(claim_id): ClaimPath,
) -> Result<Response, ApiError> {
    state.admit_caller(&user, ip)?;
    let (outcome, c) = state.engine.cancel_order(&claim_id, &user).await?;
    match outcome {
        CancelOutcome::Unknown => Err(ApiError::NotFound),
        CancelOutcome::Order(o) if o.status == OrderStatus::Cancelled => {
            Ok(order_reply(&state, StatusCode::OK, "cancelled", &c, &o).await)
        }
        CancelOutcome::Order(o) => Err(ended(o.status)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    payment_id: String,
    claim_id: String,
    amount_cents: u64,
    status: String,
}

/// `POST /v1/payments/notify` (the payment provider; signed, no bearer token). The
/// signature is checked before the body is even parsed: nothing about the body is
/// answered to an unsigned caller.
pub async fn notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: RawJson,
) -> Result<Response, ApiError> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(why) = state
        .payments
        .verify(signature, &body.bytes, now_ms() / 1_000)
    {
        tracing::info!(reason = ?why, "payment notification refused: bad signature");
        metrics::counter!("stampede_payment_notifications_total", "outcome" => "bad_signature")
            .increment(1);
        return Err(ApiError::Unauthorized);
    }
    let n: Notification = parse_json(body.json_type, &body.bytes)?
        .ok_or_else(|| ApiError::Invalid("The body is required.".into()))?;
    if !valid_id(&n.payment_id) {
        return Err(ApiError::Invalid(
            "payment_id must be 1 to 64 characters of [A-Za-z0-9_.:-].".into(),
        ));
    }
    match n.status.as_str() {
        "succeeded" => {}
        // A failed payment changes nothing; acknowledged so the provider stops retrying.
        "failed" => return Ok(Json(json!({ "status": "ignored" })).into_response()),
        _ => {
            return Err(ApiError::Invalid(
                "status must be succeeded or failed.".into(),
            ))
        }
    }
    if !valid_id(&n.claim_id) {
        return Err(ApiError::NotFound);
    }
    let payment = Payment {
        payment_id: n.payment_id,
        claim_id: n.claim_id,
        amount_cents: n.amount_cents,
    };
    let (outcome, c) = state.engine.pay(&payment).await?;
    let label = match &outcome {
        PayOutcome::Paid(_) => "paid",
        PayOutcome::Lost(..) => "refund_required",
        PayOutcome::WrongAmount(_) => "wrong_amount",
        PayOutcome::Unknown => "unknown_claim",
    };
    metrics::counter!("stampede_payment_notifications_total", "outcome" => label).increment(1);
    match outcome {
        PayOutcome::Paid(o) => Ok(order_reply(&state, StatusCode::OK, "paid", &c, &o).await),
        PayOutcome::Lost(_, RefundReason::AlreadyPaid) => Err(ended(OrderStatus::Paid)),
        PayOutcome::Lost(o, _) => Err(ended(o.status)),
        PayOutcome::WrongAmount(expected) => Err(ApiError::Invalid(format!(
            "amount_cents must be the price times the quantity ({expected})."
        ))),
        PayOutcome::Unknown => Err(ApiError::NotFound),
    }
}

#[derive(Deserialize)]
pub struct RefundQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/admin/refunds?after=<payment id>&limit=100` (admin).
pub async fn refunds(
    _: Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<RefundQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page_limit(q.limit.as_deref(), 100, 1_000)?;
    let after = q.after.unwrap_or_default();
    if !after.is_empty() && !valid_id(&after) {
        return Err(ApiError::Invalid("after must be a payment id.".into()));
    }
    let list = state.engine.refunds(&after, limit).await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|r| r.payment_id.clone()))
        .flatten();
    let refunds: Vec<_> = list
        .iter()
        .map(|r| {
            json!({
                "payment_id": r.payment_id,
                "claim_id": r.claim_id,
                "campaign_id": r.campaign_id,
                "amount_cents": r.amount_cents,
                "reason": r.reason.as_str(),
                "recorded_at": to_rfc3339(r.recorded_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "refunds": refunds, "next": next })))
}
