//! Reconciliation: the store's live counters of a campaign against the database's
//! persisted claims, accounting for what is still on its way (the queue backlog) or set
//! aside (the dead letters). Any difference left is drift: claims the store counted that
//! will never reach the database, or rows the store does not know of (after Redis lost
//! writes it had acknowledged, for instance).
//!
//! The claim count reconciles at any moment (up to claims accepted or persisted while
//! the figures are read: re-run to confirm). Units and cents reconcile once the backlog
//! is empty (`settled`), because queued events are counted, not read.

use serde::Serialize;

use crate::campaign::{Campaign, CampaignKind, LiveCounters};
use crate::claim::Claim;

/// Claims, units and cents as one side sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub claims: u64,
    pub sold: u64,
    pub cents: u64,
}

/// Store minus (database + backlog + dead letters), per figure; 0 is consistent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub claims: i64,
    /// `None` until settled.
    pub sold: Option<i64>,
    pub cents: Option<i64>,
    /// The store against itself: what it has left against what its total minus what
    /// it handed out says it should have.
    pub remaining: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub campaign_id: u64,
    pub store: StoreSide,
    pub database: Totals,
    pub queue_backlog: u64,
    /// Of the backlog, the orders' changes and refunds (not claims) still queued, so the
    /// claim count reconciles while they wait (0 without a payment window).
    pub order_changes_queued: u64,
    pub dead_letters: Totals,
    /// No claim events wait in the queue: every figure is comparable.
    pub settled: bool,
    pub drift: Drift,
    /// Every drift figure that could be computed is zero.
    pub consistent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreSide {
    pub claims: u64,
    pub sold: u64,
    pub cents: u64,
    pub remaining: u64,
}

fn diff(a: u64, b: u64) -> i64 {
    (a as i128 - b as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl Reconciliation {
    /// Compares the figures of one campaign. `dead` are the claims among its dead
    /// letters (accepted, not persisted, kept for a replay).
    pub fn compute(
        campaign: &Campaign,
        store: &LiveCounters,
        database: Totals,
        queue_backlog: u64,
        dead: &[Claim],
    ) -> Reconciliation {
        Self::compute_with_orders(campaign, store, database, queue_backlog, 0, dead)
    }

    /// [`Reconciliation::compute`] for a campaign whose queue also carries its orders'
    /// changes: `order_changes_queued` of the backlog are not claims.
    pub fn compute_with_orders(
        campaign: &Campaign,
        store: &LiveCounters,
        database: Totals,
        queue_backlog: u64,
        order_changes_queued: u64,
        dead: &[Claim],
    ) -> Reconciliation {
        let claims_backlog = queue_backlog.saturating_sub(order_changes_queued);
        let dead_letters = Totals {
            claims: dead.len() as u64,
            sold: dead.iter().map(|c| c.quantity).sum(),
            cents: dead.iter().map(|c| c.amount_cents).sum(),
        };
        let settled = queue_backlog == 0;
        let handed_out = match campaign.kind {
            CampaignKind::FlashSale => store.sold,
            CampaignKind::RedPacket => store.claims,
        };
        let drift = Drift {
            claims: diff(
                store.claims,
                database.claims + claims_backlog + dead_letters.claims,
            ),
            sold: settled.then(|| diff(store.sold, database.sold + dead_letters.sold)),
            cents: settled.then(|| diff(store.cents, database.cents + dead_letters.cents)),
            remaining: diff(campaign.total.saturating_sub(handed_out), store.remaining),
        };
        let consistent = drift.claims == 0
            && drift.remaining == 0
            && drift.sold.unwrap_or(0) == 0
            && drift.cents.unwrap_or(0) == 0;
        Reconciliation {
            campaign_id: campaign.id,
            store: StoreSide {
                claims: store.claims,
                sold: store.sold,
                cents: store.cents,
                remaining: store.remaining,
            },
            database,
            queue_backlog,
            order_changes_queued,
            dead_letters,
            settled,
            drift,
            consistent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(total: u64) -> Campaign {
        Campaign {
            id: 1,
            kind: CampaignKind::FlashSale,
            name: "s".into(),
            total,
            per_user_limit: 5,
            price_cents: 0,
            total_cents: 0,
            min_cents: 0,
            split_seed: 0,
            starts_at_ms: 0,
            ends_at_ms: i64::MAX,
            created_at_ms: 0,
            ticket_required: false,
            ticket_lead_secs: 5,
            buckets: 1,
            payment_window_secs: None,
        }
    }

    fn counters(claims: u64, sold: u64, remaining: u64) -> LiveCounters {
        LiveCounters {
            remaining,
            claims,
            sold,
            cents: 0,
            ends_at_ms: i64::MAX,
        }
    }

    fn db(claims: u64, sold: u64) -> Totals {
        Totals {
            claims,
            sold,
            cents: 0,
        }
    }

    #[test]
    fn a_draining_campaign_reconciles_its_claims_and_waits_for_units() {
        let r = Reconciliation::compute(&sale(10), &counters(4, 7, 3), db(3, 5), 1, &[]);
        assert_eq!(r.drift.claims, 0);
        assert_eq!(r.drift.sold, None, "units are compared once settled");
        assert!(r.consistent && !r.settled);
    }

    #[test]
    fn lost_writes_and_dead_letters_show() {
        // The store forgot two claims the database has (a Redis failover lost them).
        let r = Reconciliation::compute(&sale(10), &counters(2, 2, 8), db(4, 4), 0, &[]);
        assert_eq!((r.drift.claims, r.drift.sold), (-2, Some(-2)));
        assert!(!r.consistent);
        // A dead letter accounts for the claim the database lacks.
        let dead = Claim {
            id: "c1-0000000003".into(),
            campaign_id: 1,
            user_id: "u".into(),
            quantity: 2,
            amount_cents: 0,
            packet_idx: -1,
            accepted_at_ms: 0,
        };
        let r = Reconciliation::compute(&sale(10), &counters(3, 4, 6), db(2, 2), 0, &[dead]);
        assert!(r.consistent, "{r:?}");
        assert_eq!(r.dead_letters.sold, 2);
    }

    #[test]
    fn a_store_whose_remaining_disagrees_with_its_own_sales_drifts() {
        let r = Reconciliation::compute(&sale(10), &counters(3, 3, 9), db(3, 3), 0, &[]);
        assert_eq!(r.drift.remaining, -2);
        assert!(!r.consistent);
    }

    #[test]
    fn queued_order_changes_are_not_counted_as_claims() {
        // 4 claims accepted and persisted; 2 orders expired (units back: 2 sold, 8
        // left), their changes still queued: the backlog of 2 holds no claim.
        let r =
            Reconciliation::compute_with_orders(&sale(10), &counters(4, 2, 8), db(4, 4), 2, 2, &[]);
        assert_eq!(r.drift.claims, 0, "{r:?}");
        assert_eq!(r.drift.sold, None, "units are compared once settled");
        // Counted as claims, the same figures would show drift.
        let naive = Reconciliation::compute(&sale(10), &counters(4, 2, 8), db(4, 4), 2, &[]);
        assert_eq!(naive.drift.claims, -2);
    }
}
