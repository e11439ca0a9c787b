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

/// A claim event as the queue carries it: the accepted claim, and the id of the
/// request that made it (absent in events written before request ids existed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEvent {
    pub claim: Claim,
    pub request_id: Option<RequestId>,
}

impl ClaimEvent {
    /// The event's one stream field, as `lua/claim.lua` writes it:
    /// `campaign id|claim id|user id|quantity|amount|packet idx|accepted ms[|request id]`.
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
        let request_id = match f.next() {
            None => None,
            Some(r) => Some(RequestId::parse(r)?),
        };
        f.next()
            .is_none()
            .then_some(ClaimEvent { claim, request_id })
    }
}

/// Formats a claim id; see [`Claim::id`].
pub fn claim_id(campaign_id: u64, seq: u64) -> String {
    format!("c{campaign_id}-{seq:010}")
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
        };
        let bare = ClaimEvent {
            claim: c.clone(),
            request_id: None,
        };
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
        for bad in [
            "",
            "1|2",
            "x|c1|u|1|0|-1|5",
            "1|c1|u|1|0|-1|5|",
            "1|c1|u|1|0|-1|5|not safe",
            "1|c1|u|1|0|-1|5|rid|extra",
        ] {
            assert_eq!(ClaimEvent::decode(bad), None, "{bad:?}");
        }
    }
}
