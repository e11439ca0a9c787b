//! The engine's JSON shapes the load generator reads, as the contract (shared/api.md)
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
}

impl Claim {
    /// Units of stock this claim takes: its quantity (flash sale, default 1).
    pub fn units(&self) -> u64 {
        self.quantity.unwrap_or(1)
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

/// `{"error": {"code": ..., "message": ...}}`, for readable failures.
#[derive(Debug, Deserialize)]
pub struct ErrorReply {
    pub error: ErrorBody,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}
