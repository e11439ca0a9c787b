//! The engine's JSON shapes the load generator reads, as `docs/api.md`
//! defines them. Lenient on purpose: unknown fields are ignored and optional ones default,
//! so the engine can add fields without breaking the audit.

use serde::{Deserialize, Serialize};

/// A claim, as a 201/200 reply and the admin export carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Claim {
    pub id: String,
    pub campaign_id: u64,
    pub user_id: String,
    /// Flash sale only; the contract's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// Red packet only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<u64>,
    #[serde(default)]
    pub persisted: bool,
    /// A flash sale with a payment window only: the order this claim became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

impl Claim {
    /// Units of stock this claim takes: its quantity (flash sale, default 1).
    pub fn units(&self) -> u64 {
        self.quantity.unwrap_or(1)
    }

    /// Units this claim still holds: none once its order expired or was cancelled (they
    /// went back to stock), else all of them.
    pub fn held_units(&self) -> u64 {
        match &self.order {
            Some(order) if order.released() => 0,
            _ => self.units(),
        }
    }
}

/// The order of a claim in a flash sale with a payment window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Order {
    /// `pending_payment`, `paid`, `expired` or `cancelled` (see the constants below).
    pub status: String,
    /// RFC 3339: when the payment window closes.
    #[serde(default)]
    pub pay_by: Option<String>,
    #[serde(default)]
    pub paid_at: Option<String>,
    /// The payment that paid it.
    #[serde(default)]
    pub payment_id: Option<String>,
}

impl Order {
    pub const PENDING: &'static str = "pending_payment";
    pub const PAID: &'static str = "paid";
    pub const EXPIRED: &'static str = "expired";
    pub const CANCELLED: &'static str = "cancelled";

    /// Expired or cancelled: the units went back to stock.
    pub fn released(&self) -> bool {
        self.status == Self::EXPIRED || self.status == Self::CANCELLED
    }

    /// `pay_by` as a point in time, when it is there and parses.
    pub fn pay_by_time(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339(self.pay_by.as_deref()?).ok()
    }
}

/// `{"status": "accepted" | "already_claimed", "claim": Claim}`.
#[derive(Debug, Deserialize)]
pub struct ClaimReply {
    pub claim: Claim,
}

/// The Campaign object; only what the load generator needs.
#[derive(Clone, Debug, Deserialize)]
pub struct Campaign {
    pub id: u64,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub total: Option<u64>,
}

/// `GET /v1/admin/campaigns/{id}/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Stats {
    pub campaign_id: u64,
    pub accepted_claims: u64,
    pub accepted_quantity: u64,
    pub persisted_claims: u64,
    pub remaining: u64,
    pub queue_backlog: u64,
    pub dead_letters: u64,
    pub claimed_cents: u64,
    /// The order counters of a flash sale with a payment window; absent elsewhere (and
    /// from engines that predate orders).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_orders: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_orders: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_orders: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_orders: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunds_required: Option<u64>,
}

impl Stats {
    /// Everything accepted is in the database and nothing is queued.
    pub fn drained(&self) -> bool {
        self.queue_backlog == 0 && self.persisted_claims == self.accepted_claims
    }
}

/// One page of `GET /v1/admin/campaigns/{id}/claims`.
#[derive(Debug, Deserialize)]
pub struct ExportPage {
    pub claims: Vec<Claim>,
    #[serde(default)]
    pub next: Option<String>,
}

/// `200 {"status": "paid", "claim": Claim}` from `POST /v1/payments/notify`.
#[derive(Debug, Deserialize)]
pub struct PaidReply {
    #[serde(default)]
    pub status: String,
    pub claim: Claim,
}

/// The Claim a cancel answers with: the contract says "200 with the Claim", which reads
/// as the bare object; the `{"claim": Claim}` envelope of the other replies is taken too.
pub fn cancel_reply_claim(body: &[u8]) -> Option<Claim> {
    #[derive(Deserialize)]
    struct Envelope {
        claim: Claim,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.claim)
        .or_else(|_| serde_json::from_slice::<Claim>(body))
        .ok()
}

/// One row of `GET /v1/admin/refunds`: a payment that arrived for an order that had
/// already ended, so the money must go back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Refund {
    pub payment_id: String,
    pub claim_id: String,
    pub campaign_id: u64,
    #[serde(default)]
    pub amount_cents: u64,
    /// Why (the engine's word; not checked).
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub recorded_at: Option<String>,
}

/// One page of `GET /v1/admin/refunds`, paged by payment id.
#[derive(Debug, Deserialize)]
pub struct RefundPage {
    pub refunds: Vec<Refund>,
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /v1/admin/campaigns/{id}/funnel?minutes=N`: one object per minute, oldest first,
/// with `at` and a count per key (the stages and every client event type seen).
#[derive(Debug, Deserialize)]
pub struct FunnelReply {
    pub campaign_id: u64,
    pub minutes: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `202 {"accepted": n}` from `POST /v1/events`.
#[derive(Debug, Deserialize)]
pub struct EventsReply {
    pub accepted: u64,
}

/// The `code` of an error reply: `{"error": {"code": ...}}` as the contract's "Errors"
/// section has it, or a bare `{"error": "<code>"}` (read too, leniently).
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Flat {
        error: String,
    }
    serde_json::from_slice::<ErrorReply>(body)
        .map(|e| e.error.code)
        .or_else(|_| serde_json::from_slice::<Flat>(body).map(|f| f.error))
        .ok()
}

/// `{"error": {"code": ..., "message": ...}}`, for readable failures.
#[derive(Debug, Deserialize)]
pub struct ErrorReply {
    pub error: ErrorBody,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_with_an_order_reads_and_releases_its_units_when_the_order_ends() {
        let mut claim: Claim = serde_json::from_str(
            r#"{"id": "c17-1", "campaign_id": 17, "user_id": "u1", "quantity": 2,
                "accepted_at": "2026-11-22T20:00:00.000Z", "persisted": true,
                "order": {"status": "pending_payment", "pay_by": "2026-11-22T20:00:05.250Z",
                          "paid_at": null, "payment_id": null}}"#,
        )
        .expect("contract example");
        let order = claim.order.clone().expect("order");
        assert_eq!(claim.held_units(), 2);
        let pay_by = order.pay_by_time().expect("RFC 3339");
        let secs = pay_by
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!((secs - 1_795_377_605.25).abs() < 1e-3, "{secs}");
        for (status, held) in [("paid", 2), ("expired", 0), ("cancelled", 0)] {
            claim.order = Some(Order {
                status: status.into(),
                ..order.clone()
            });
            assert_eq!(claim.held_units(), held, "{status}");
        }
    }

    #[test]
    fn error_codes_read_from_the_contracts_shape_and_a_bare_string() {
        assert_eq!(
            error_code(br#"{"error": {"code": "order_expired", "message": "Too late."}}"#),
            Some("order_expired".into())
        );
        assert_eq!(
            error_code(br#"{"error": "order_paid"}"#),
            Some("order_paid".into())
        );
        assert_eq!(error_code(b"not json"), None);
    }

    #[test]
    fn a_cancel_reply_is_read_bare_or_in_an_envelope() {
        let bare = br#"{"id": "c1", "campaign_id": 1, "user_id": "u",
                        "order": {"status": "cancelled"}}"#;
        let wrapped = br#"{"status": "cancelled", "claim": {"id": "c1", "campaign_id": 1,
                           "user_id": "u", "order": {"status": "cancelled"}}}"#;
        for body in [&bare[..], &wrapped[..]] {
            let claim = cancel_reply_claim(body).expect("a claim");
            assert_eq!(claim.order.map(|o| o.status), Some("cancelled".into()));
        }
    }
}
