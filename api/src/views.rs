//! The JSON shapes of the contract's Campaign and Claim objects.

use serde::Serialize;
use serde_json::{json, Value};
use stampede_engine::campaign::{Campaign, CampaignKind, LiveCounters};
use stampede_engine::claim::Claim;
use stampede_engine::clock::{now_ms, to_rfc3339};
use stampede_engine::order::{Order, OrderStatus};

pub fn campaign(c: &Campaign, k: &LiveCounters) -> Value {
    campaign_at(c, k, now_ms())
}

/// A campaign as it is at `now_ms` (its status turns with the clock).
pub fn campaign_at(c: &Campaign, k: &LiveCounters, now_ms: i64) -> Value {
    let ends_at_ms = c.live_ends_at_ms(k);
    let mut v = json!({
        "id": c.id,
        "kind": c.kind.as_str(),
        "name": c.name,
        "status": c.live_status(now_ms, k).as_str(),
        "total": c.total,
        "remaining": k.remaining,
        "starts_at": to_rfc3339(c.starts_at_ms),
        "ends_at": to_rfc3339(ends_at_ms),
        "created_at": to_rfc3339(c.created_at_ms),
        "ticket_required": c.ticket_required,
        "ticket_lead_secs": c.ticket_lead_secs,
        "buckets": c.buckets,
    });
    if let Some(w) = c.payment_window_secs {
        v["payment_window_secs"] = json!(w);
    }
    match c.kind {
        CampaignKind::FlashSale => {
            v["per_user_limit"] = json!(c.per_user_limit);
            v["price_cents"] = json!(c.price_cents);
        }
        CampaignKind::RedPacket => {
            v["total_cents"] = json!(c.total_cents);
            v["min_cents"] = json!(c.min_cents);
        }
    }
    v
}

/// A claim: `quantity` for a flash sale, `amount_cents` for a red packet. A typed
/// struct rather than a `Value`: it is on the claim hot path, and serializing it
/// directly costs no map or string allocations.
#[derive(Serialize)]
pub struct ClaimView<'a> {
    pub id: &'a str,
    pub campaign_id: u64,
    pub user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<u64>,
    pub accepted_at: String,
    pub persisted: bool,
    /// A flash sale with a payment window: the claim's order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderView>,
}

/// The contract's order object.
#[derive(Serialize)]
pub struct OrderView {
    pub status: &'static str,
    pub pay_by: String,
    pub paid_at: Option<String>,
    pub payment_id: Option<String>,
}

pub fn order(o: &Order) -> OrderView {
    OrderView {
        status: o.status.as_str(),
        pay_by: to_rfc3339(o.pay_by_ms),
        paid_at: (o.status == OrderStatus::Paid)
            .then_some(o.closed_at_ms)
            .flatten()
            .map(to_rfc3339),
        payment_id: o.payment_id.clone(),
    }
}

pub fn claim(c: &Claim, persisted: bool) -> ClaimView<'_> {
    claim_with_order(c, persisted, None)
}

/// A claim with its order (`None`: the campaign has no payment window).
pub fn claim_with_order<'a>(c: &'a Claim, persisted: bool, o: Option<&Order>) -> ClaimView<'a> {
    let red_packet = c.packet_idx >= 0;
    ClaimView {
        id: &c.id,
        campaign_id: c.campaign_id,
        user_id: &c.user_id,
        quantity: (!red_packet).then_some(c.quantity),
        amount_cents: red_packet.then_some(c.amount_cents),
        accepted_at: to_rfc3339(c.accepted_at_ms),
        persisted,
        order: o.map(order),
    }
}

/// The reply of a claim: `{"status": ..., "claim": ...}`.
#[derive(Serialize)]
pub struct ClaimReply<'a> {
    pub status: &'static str,
    pub claim: ClaimView<'a>,
}
