//! Database rows and their conversion to the domain types. Every number is `BIGINT`
//! (`i64`) in both databases; conversion to the domain's unsigned types happens here.

use crate::campaign::{Campaign, CampaignKind};
use crate::claim::Claim;
use crate::error::{EngineError, Result};

#[derive(sqlx::FromRow)]
pub(super) struct CampaignRow {
    id: i64,
    kind: String,
    name: String,
    total: i64,
    per_user_limit: i64,
    price_cents: i64,
    total_cents: i64,
    min_cents: i64,
    split_seed: i64,
    starts_at_ms: i64,
    ends_at_ms: i64,
    created_at_ms: i64,
    ticket_required: bool,
    ticket_lead_secs: i64,
    buckets: i64,
    payment_window_secs: Option<i64>,
}

impl CampaignRow {
    pub(super) fn into_campaign(self) -> Result<Campaign> {
        let kind = CampaignKind::parse(&self.kind).ok_or_else(|| {
            EngineError::Store(format!(
                "campaign {} has unknown kind {:?}",
                self.id, self.kind
            ))
        })?;
        Ok(Campaign {
            id: self.id as u64,
            kind,
            name: self.name,
            total: self.total as u64,
            per_user_limit: self.per_user_limit as u64,
            price_cents: self.price_cents as u64,
            total_cents: self.total_cents as u64,
            min_cents: self.min_cents as u64,
            split_seed: self.split_seed as u64,
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: self.ends_at_ms,
            created_at_ms: self.created_at_ms,
            ticket_required: self.ticket_required,
            ticket_lead_secs: self.ticket_lead_secs.max(0) as u64,
            buckets: self.buckets.max(1) as u64,
            payment_window_secs: self.payment_window_secs.map(|w| w.max(1) as u64),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ClaimRow {
    campaign_id: i64,
    claim_id: String,
    user_id: String,
    quantity: i64,
    amount_cents: i64,
    packet_idx: i64,
    accepted_at_ms: i64,
}

impl ClaimRow {
    pub(super) fn into_claim(self) -> Claim {
        Claim {
            id: self.claim_id,
            campaign_id: self.campaign_id as u64,
            user_id: self.user_id,
            quantity: self.quantity as u64,
            amount_cents: self.amount_cents as u64,
            packet_idx: self.packet_idx,
            accepted_at_ms: self.accepted_at_ms,
        }
    }
}
