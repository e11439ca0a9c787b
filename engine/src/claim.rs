//! Claims: what a user asks for, what the atomic claim step answers, and the event
//! it enqueues for the workers (the same record becomes the database row).

use serde::{Deserialize, Serialize};

use crate::request_id::RequestId;

/// One user's request to claim from a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub user_id: String,
    /// Units wanted (flash sale); always 1 for a red packet.
    pub quantity: u64,
    /// The HTTP request's id, carried in the claim event so that the worker's log of
    /// the claim can be found from the api's.
    pub request_id: Option<RequestId>,
}

/// An accepted claim. It travels the queue as the claim event and is the database row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// `c{campaign}-{sequence}`, the sequence zero-padded to 10 digits so that string
    /// order is acceptance order (the admin export pages in this order).
    pub id: String,
    pub campaign_id: u64,
    pub user_id: String,
    /// Units (flash sale); 1 for a red packet.
    pub quantity: u64,
    /// The packet's amount (red packet); 0 for a flash sale.
    pub amount_cents: u64,
    /// The packet's index in the split (red packet); -1 for a flash sale.
    pub packet_idx: i64,
    pub accepted_at_ms: i64,
}

/// A claim event as the queue carries it: the accepted claim, the id of the request
/// that made it (absent in events written before request ids existed), and, for a
/// flash sale with a payment window, when its order must be paid by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEvent {
    pub claim: Claim,
    pub request_id: Option<RequestId>,
    pub pay_by_ms: Option<i64>,
}

impl ClaimEvent {
    /// The event's one stream field, as `lua/claim.lua` writes it:
    /// `campaign id|claim id|user id|quantity|amount|packet idx|accepted ms[|request id]`,
    /// and with a payment window `...|accepted ms|request id or empty|pay by ms`.
    pub fn encode(&self) -> String {
        let c = &self.claim;
        let mut s = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            c.campaign_id,
            c.id,
            c.user_id,
            c.quantity,
            c.amount_cents,
            c.packet_idx,
            c.accepted_at_ms
        );
        if let Some(r) = &self.request_id {
            s.push('|');
            s.push_str(r.as_str());
        }
        if let Some(by) = self.pay_by_ms {
            if self.request_id.is_none() {
                s.push('|');
            }
            s.push('|');
            s.push_str(&by.to_string());
        }
        s
    }

    /// Parses [`ClaimEvent::encode`]'s format, with or without the request id (events
    /// queued by an older version have none); `None` for anything else.
    pub fn decode(s: &str) -> Option<ClaimEvent> {
        let mut f = s.split('|');
        let claim = Claim {
            campaign_id: f.next()?.parse().ok()?,
            id: f.next()?.to_string(),
            user_id: f.next()?.to_string(),
            quantity: f.next()?.parse().ok()?,
            amount_cents: f.next()?.parse().ok()?,
            packet_idx: f.next()?.parse().ok()?,
            accepted_at_ms: f.next()?.parse().ok()?,
        };
        let (request_id, pay_by_ms) = match (f.next(), f.next()) {
            (None, _) => (None, None),
            (Some(r), None) => (Some(RequestId::parse(r)?), None),
            (Some(""), Some(by)) => (None, Some(by.parse().ok()?)),
            (Some(r), Some(by)) => (Some(RequestId::parse(r)?), Some(by.parse().ok()?)),
        };
        f.next().is_none().then_some(ClaimEvent {
            claim,
            request_id,
            pay_by_ms,
        })
    }
}

/// Formats a claim id; see [`Claim::id`].
pub fn claim_id(campaign_id: u64, seq: u64) -> String {
    format!("c{campaign_id}-{seq:010}")
}

/// The campaign a claim id names (`c17-...`), if it is one of ours.
pub fn campaign_of(id: &str) -> Option<u64> {
    id.strip_prefix('c')?.split('-').next()?.parse().ok()
}

/// The sequence number inside a claim id, if it is one of ours.
pub fn claim_seq(id: &str) -> Option<u64> {
    id.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// What the atomic claim step decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A new claim, deducted and enqueued.
    Accepted(Claim),
    /// The user already holds the per-user limit; their latest claim.
    AlreadyClaimed(Claim),
    SoldOut,
    NotStarted,
    Ended,
    /// The quantity is more than the user may still take (`may_take` units).
    OverLimit {
        may_take: u64,
    },
    /// The store holds no live state for the campaign (unknown, or lost).
    Missing,
}

impl ClaimOutcome {
    /// The label of the `stampede_claims_total{outcome}` metric.
    pub fn label(&self) -> &'static str {
        match self {
            ClaimOutcome::Accepted(_) => "accepted",
            ClaimOutcome::AlreadyClaimed(_) => "already_claimed",
            ClaimOutcome::SoldOut => "sold_out",
            ClaimOutcome::NotStarted => "not_started",
            ClaimOutcome::Ended => "ended",
            ClaimOutcome::OverLimit { .. } => "rejected",
            ClaimOutcome::Missing => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_and_without_a_request_id_and_garbage_is_refused() {
        let c = Claim {
            id: claim_id(17, 42),
            campaign_id: 17,
            user_id: "u.1-x_y".into(),
            quantity: 2,
            amount_cents: 0,
            packet_idx: -1,
            accepted_at_ms: 1_800_000_000_123,
        };
        let traced = ClaimEvent {
            claim: c.clone(),
            request_id: RequestId::parse("0123456789abcdef"),
            pay_by_ms: None,
        };
        let bare = ClaimEvent {
            claim: c.clone(),
            request_id: None,
            pay_by_ms: None,
        };
        let ordered = ClaimEvent {
            pay_by_ms: Some(1_800_000_060_123),
            ..bare.clone()
        };
        let traced_order = ClaimEvent {
            pay_by_ms: Some(7),
            ..traced.clone()
        };
        assert_eq!(
            ordered.encode(),
            "17|c17-0000000042|u.1-x_y|2|0|-1|1800000000123||1800000060123"
        );
        assert_eq!(ClaimEvent::decode(&ordered.encode()), Some(ordered));
        assert_eq!(
            ClaimEvent::decode(&traced_order.encode()),
            Some(traced_order)
        );
        assert_eq!(
            traced.encode(),
            "17|c17-0000000042|u.1-x_y|2|0|-1|1800000000123|0123456789abcdef"
        );
        assert_eq!(ClaimEvent::decode(&traced.encode()), Some(traced));
        // The seven-field form of events queued before request ids existed.
        assert_eq!(
            bare.encode(),
            "17|c17-0000000042|u.1-x_y|2|0|-1|1800000000123"
        );
        assert_eq!(ClaimEvent::decode(&bare.encode()), Some(bare));
        assert_eq!(claim_seq(&c.id), Some(42));
        assert_eq!(campaign_of(&c.id), Some(17));
        assert_eq!(campaign_of("c17-b2-0000000001"), Some(17));
        assert_eq!(campaign_of("x17-1"), None);
        for bad in [
            "",
            "1|2",
            "x|c1|u|1|0|-1|5",
            "1|c1|u|1|0|-1|5|",
            "1|c1|u|1|0|-1|5|not safe",
            "1|c1|u|1|0|-1|5|rid|extra",
            "1|c1|u|1|0|-1|5||",
            "1|c1|u|1|0|-1|5||7|8",
        ] {
            assert_eq!(ClaimEvent::decode(bad), None, "{bad:?}");
        }
    }
}
