//! A campaign's live state computed from the database: remaining stock is the total
//! minus what persisted claims took, the per-user records come from the persisted
//! claims, and a red packet's unclaimed packets are regenerated from its seed.
//!
//! Used when a campaign is created (no claims yet), when the embedded engine starts
//! (the in-process store starts empty), and by the admin rebuild after the store lost
//! its data.

use std::collections::{HashMap, HashSet};

use crate::campaign::{Campaign, CampaignKind, LiveCounters};
use crate::claim::{claim_seq, Claim};
use crate::order::{Order, OrderCounts};
use crate::red_packet;
use crate::store::{LiveState, UserRecord};

/// The live state of `campaign` given all its persisted `claims` (and no orders).
pub fn live_state(campaign: &Campaign, claims: &[Claim]) -> LiveState {
    live_state_with_orders(campaign, claims, &HashMap::new(), 0)
}

/// The live state of a campaign with a payment window: its claims, their orders by
/// claim id and how many payments it has recorded for refund. A claim whose order
/// expired or was cancelled gave its units back: they count as remaining again and the
/// user no longer holds them. A claim without an order row (written before its order
/// was) is a pending order due at the end of its window.
pub fn live_state_with_orders(
    campaign: &Campaign,
    claims: &[Claim],
    orders: &HashMap<String, Order>,
    refunds: u64,
) -> LiveState {
    let window = campaign.payment_window_ms();
    let mut kept = Vec::new();
    let mut counts = OrderCounts {
        refunds_required: refunds,
        ..OrderCounts::default()
    };
    for c in claims.iter().filter(|_| window > 0) {
        let o = orders
            .get(&c.id)
            .cloned()
            .unwrap_or_else(|| Order::pending(c, c.accepted_at_ms + window));
        counts.count(o.status);
        kept.push(o);
    }
    let restocked: HashSet<&str> = kept
        .iter()
        .filter(|o| o.status.restocks())
        .map(|o| o.claim_id.as_str())
        .collect();
    let mut users: HashMap<&str, UserRecord> = HashMap::new();
    let mut counters = LiveCounters {
        ends_at_ms: campaign.ends_at_ms,
        ..LiveCounters::default()
    };
    let mut seq = 0;
    let mut taken_packets = HashSet::new();
    for c in claims {
        counters.claims += 1;
        seq = seq.max(claim_seq(&c.id).unwrap_or(0));
        if restocked.contains(c.id.as_str()) {
            // The user's latest claim stays their record (an `already_claimed` reply
            // repeats it), holding nothing.
            let rec = users
                .entry(c.user_id.as_str())
                .or_insert_with(|| UserRecord {
                    held: 0,
                    last: c.clone(),
                });
            if claim_seq(&c.id) >= claim_seq(&rec.last.id) {
                rec.last = c.clone();
            }
            continue;
        }
        counters.sold += c.quantity;
        counters.cents += c.amount_cents;
        if c.packet_idx >= 0 {
            taken_packets.insert(c.packet_idx as u64);
        }
        let rec = users
            .entry(c.user_id.as_str())
            .or_insert_with(|| UserRecord {
                held: 0,
                last: c.clone(),
            });
        rec.held += c.quantity;
        if claim_seq(&c.id) >= claim_seq(&rec.last.id) {
            rec.last = c.clone();
        }
    }
    counters.remaining = campaign.total.saturating_sub(counters.sold);
    let packets = match campaign.kind {
        CampaignKind::FlashSale => Vec::new(),
        CampaignKind::RedPacket => red_packet::split(
            campaign.total_cents,
            campaign.total,
            campaign.min_cents,
            campaign.split_seed,
        )
        .into_iter()
        .filter(|p| !taken_packets.contains(&p.idx))
        .collect(),
    };
    LiveState {
        campaign: campaign.clone(),
        counters,
        seq,
        users: users.into_values().collect(),
        packets,
        orders: kept,
        order_counts: counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::claim_id;

    fn packet_campaign() -> Campaign {
        Campaign {
            id: 4,
            kind: CampaignKind::RedPacket,
            name: "rp".into(),
            total: 10,
            per_user_limit: 1,
            price_cents: 0,
            total_cents: 1_000,
            min_cents: 1,
            split_seed: 99,
            starts_at_ms: 0,
            ends_at_ms: 10,
            created_at_ms: 0,
            ticket_required: false,
            ticket_lead_secs: 5,
            buckets: 1,
            payment_window_secs: None,
        }
    }

    #[test]
    fn a_rebuild_removes_exactly_the_claimed_packets() {
        let c = packet_campaign();
        let split = red_packet::split(1_000, 10, 1, 99);
        let claims: Vec<Claim> = [3usize, 7]
            .iter()
            .enumerate()
            .map(|(i, &p)| Claim {
                id: claim_id(4, i as u64 + 1),
                campaign_id: 4,
                user_id: format!("u{i}"),
                quantity: 1,
                amount_cents: split[p].amount_cents,
                packet_idx: p as i64,
                accepted_at_ms: 1,
            })
            .collect();
        let s = live_state(&c, &claims);
        assert_eq!(s.counters.remaining, 8);
        assert_eq!(s.counters.claims, 2);
        assert_eq!(s.seq, 2);
        assert_eq!(s.packets.len(), 8);
        assert!(s.packets.iter().all(|p| p.idx != 3 && p.idx != 7));
        let left: u64 = s.packets.iter().map(|p| p.amount_cents).sum();
        assert_eq!(left + s.counters.cents, 1_000);
    }
}
