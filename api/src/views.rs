//! The JSON shapes of the contract's Campaign and Claim objects.

use serde_json::{json, Value};
use stampede_engine::campaign::{Campaign, CampaignKind, LiveCounters};
use stampede_engine::claim::Claim;
use stampede_engine::clock::{now_ms, to_rfc3339};

pub fn campaign(c: &Campaign, k: &LiveCounters) -> Value {
    let ends_at_ms = c.ends_at_ms.min(k.ends_at_ms);
    let live = Campaign {
        ends_at_ms,
        ..c.clone()
    };
    let mut v = json!({
        "id": c.id,
        "kind": c.kind.as_str(),
        "name": c.name,
        "status": live.status(now_ms(), k.remaining).as_str(),
        "total": c.total,
        "remaining": k.remaining,
        "starts_at": to_rfc3339(c.starts_at_ms),
        "ends_at": to_rfc3339(ends_at_ms),
        "created_at": to_rfc3339(c.created_at_ms),
    });
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

/// A claim; `quantity` for a flash sale, `amount_cents` for a red packet.
pub fn claim(c: &Claim, persisted: bool) -> Value {
    let mut v = json!({
        "id": c.id,
        "campaign_id": c.campaign_id,
        "user_id": c.user_id,
        "accepted_at": to_rfc3339(c.accepted_at_ms),
        "persisted": persisted,
    });
    if c.packet_idx >= 0 {
        v["amount_cents"] = json!(c.amount_cents);
    } else {
        v["quantity"] = json!(c.quantity);
    }
    v
}
