//! The audit: did the engine keep its promises during the run?
//!
//! Pure functions over three witnesses that do not trust each other:
//! - what the run **saw** (the claims it was told were accepted with a 201, and how many
//!   requests got no reply at all),
//! - the engine's **stats** (its own counters),
//! - the **export** (the claims actually in the database).
//!
//! The checks are the contract's invariants: no oversell, nobody over the per-user limit,
//! every accepted claim persisted exactly once (nothing lost, nothing duplicated), and for
//! red packets every amount at least the minimum with the amounts adding up. No I/O here,
//! so each check is unit-tested against fabricated evidence below.
//!
//! A flash sale with a payment window adds the order audit ([`orders`]); here its claims
//! count only the units they still hold (an expired or cancelled order gave them back).
//! A crowd that reported behaviour events before claiming adds the funnel audit
//! ([`funnel`]).

pub mod funnel;
pub mod orders;

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::wire::{Claim, Stats};
use funnel::FunnelAudit;
use orders::OrdersAudit;

/// The rules of the campaign under test, as the load generator created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    FlashSale {
        stock: u64,
        per_user_limit: u64,
    },
    RedPacket {
        count: u64,
        total_cents: u64,
        min_cents: u64,
    },
}

/// What the run itself observed.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The claims of every 201 reply, in arrival order.
    pub accepted: Vec<Claim>,
    /// 200 `already_claimed` replies.
    pub already_claimed: u64,
    /// Requests whose outcome is unknown: no reply (timeout, reset) or a 201 whose claim
    /// could not be read. The engine may have accepted any of them.
    pub unanswered: u64,
    /// 201 replies whose body held no readable claim (a contract breach in itself).
    pub malformed: u64,
}

/// The audit's verdict; the JSON report's `audit` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClaimsAudit {
    pub passed: bool,
    /// Distinct claims the run saw accepted (201).
    pub accepted: u64,
    /// Distinct claims in the export.
    pub persisted: u64,
    /// Stock units (flash sale) or packets (red packet) taken, by the largest witness.
    pub taken: u64,
    /// The stock or the packet count.
    pub limit: u64,
    /// Units accepted beyond the limit.
    pub oversold: u64,
    /// Users holding more than their share.
    pub over_limit: u64,
    /// Claims accepted (201, or counted by the engine's stats) but missing from the export.
    pub lost: u64,
    /// Extra copies: export rows repeating a claim id, plus 201s repeating a claim id.
    pub duplicates: u64,
    /// Exported claims the run never saw a 201 for (allowed up to `unanswered`).
    pub unacknowledged: u64,
    pub unanswered: u64,
    pub already_claimed: u64,
    /// The engine's own counters at the end of the drain wait.
    pub stats: Stats,
    /// Whether the queue drained before `--drain-timeout`.
    pub drained: bool,
    /// Red packet: packets below `min_cents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below_min: Option<u64>,
    /// Red packet: the sum of the amounts taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum_cents: Option<u64>,
    /// Red packet: what they must add up to when all are taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_cents: Option<u64>,
    /// One sentence per broken promise; empty when `passed`.
    pub violations: Vec<String>,
    /// A flash sale with a payment window: the order audit's figures (boxed: most audits
    /// have none, and it is most of the audit's size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<Box<OrdersAudit>>,
    /// A flash sale with a payment window: one sentence per broken order promise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_violations: Vec<String>,
    /// A crowd that reported behaviour events: the campaign's funnel against what the run
    /// sent (its own `passed` and `violations`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funnel: Option<Box<FunnelAudit>>,
}

impl ClaimsAudit {
    /// Adds the order audit of a payment-window sale; the verdict needs both clean.
    pub fn with_orders(mut self, orders: OrdersAudit, violations: Vec<String>) -> Self {
        self.orders = Some(Box::new(orders));
        self.order_violations = violations;
        self.passed = self.verdict();
        self
    }

    /// Adds the funnel audit of a crowd that reported events; the verdict needs it to pass.
    pub fn with_funnel(mut self, funnel: FunnelAudit) -> Self {
        self.funnel = Some(Box::new(funnel));
        self.passed = self.verdict();
        self
    }

    /// Every part of the audit that ran is clean.
    fn verdict(&self) -> bool {
        self.violations.is_empty()
            && self.order_violations.is_empty()
            && self.funnel.as_ref().is_none_or(|f| f.passed)
    }
}

/// Audits a flash sale or red packet run. `campaign` is the campaign's id, `drained`
/// whether the drain wait ended with an empty queue.
pub fn audit_claims(
    campaign: u64,
    rules: &Rules,
    seen: &Seen,
    stats: &Stats,
    export: &[Claim],
    drained: bool,
) -> ClaimsAudit {
    let mut violations = Vec::new();

    // Exported rows by id; a second row with the same id is a duplicate write.
    let mut exported: HashMap<&str, &Claim> = HashMap::with_capacity(export.len());
    let mut duplicate_rows = 0u64;
    let mut foreign = 0u64;
    for claim in export {
        if claim.campaign_id != campaign {
            foreign += 1;
        }
        if exported.insert(claim.id.as_str(), claim).is_some() {
            duplicate_rows += 1;
        }
    }
    // 201s by id; the same id accepted twice is a duplicate acceptance.
    let mut acknowledged: HashMap<&str, &Claim> = HashMap::with_capacity(seen.accepted.len());
    let mut duplicate_acks = 0u64;
    for claim in &seen.accepted {
        if claim.campaign_id != campaign {
            foreign += 1;
        }
        if acknowledged.insert(claim.id.as_str(), claim).is_some() {
            duplicate_acks += 1;
        }
    }
    let persisted = exported.len() as u64;
    let accepted = acknowledged.len() as u64;

    if duplicate_rows > 0 {
        violations.push(format!(
            "{duplicate_rows} export row(s) repeat a claim id: written to the database more than once"
        ));
    }
    if duplicate_acks > 0 {
        violations.push(format!(
            "{duplicate_acks} 201 repl(ies) repeat a claim id already accepted"
        ));
    }
    if foreign > 0 {
        violations.push(format!(
            "{foreign} claim(s) name another campaign than {campaign}"
        ));
    }
    if seen.malformed > 0 {
        violations.push(format!(
            "{} 201 repl(ies) carried no readable claim",
            seen.malformed
        ));
    }

    // Lost: acknowledged but not exported, or counted by the engine but not exported.
    let missing = acknowledged
        .keys()
        .filter(|id| !exported.contains_key(*id))
        .count() as u64;
    let missing_by_stats = stats.accepted_claims.saturating_sub(persisted);
    let lost = missing.max(missing_by_stats);
    if missing > 0 {
        violations.push(format!(
            "{missing} claim(s) answered 201 are missing from the export (lost)"
        ));
    }
    if missing_by_stats > missing {
        violations.push(format!(
            "the engine counts {} accepted claim(s) but only {persisted} are persisted",
            stats.accepted_claims
        ));
    }
    if stats.accepted_claims < accepted {
        violations.push(format!(
            "the engine counts {} accepted claim(s), fewer than the {accepted} answered 201",
            stats.accepted_claims
        ));
    }
    if stats.persisted_claims != persisted {
        violations.push(format!(
            "the engine reports {} persisted claim(s) but the export holds {persisted}",
            stats.persisted_claims
        ));
    }
    if accepted == 0 && persisted == 0 && stats.accepted_claims == 0 {
        // Vacuously clean: every claim was refused (wrong secret, unknown route, ...).
        violations.push("no claim was accepted, so nothing was audited".to_owned());
    }
    if !drained {
        violations.push(format!(
            "the queue did not drain in time (backlog {}, {} of {} accepted persisted)",
            stats.queue_backlog, stats.persisted_claims, stats.accepted_claims
        ));
    }

    // Exported claims nobody was told about: only the unanswered requests can explain them.
    let unacknowledged = exported
        .keys()
        .filter(|id| !acknowledged.contains_key(*id))
        .count() as u64;
    if unacknowledged > seen.unanswered {
        violations.push(format!(
            "{unacknowledged} exported claim(s) were never answered 201, but only {} request(s) went unanswered",
            seen.unanswered
        ));
    }

    // Every claim any witness knows of, once: the export, plus 201s missing from it.
    let mut known: Vec<&Claim> = exported.values().copied().collect();
    known.extend(
        acknowledged
            .iter()
            .filter(|(id, _)| !exported.contains_key(*id))
            .map(|(_, c)| *c),
    );

    let mut audit = ClaimsAudit {
        accepted,
        persisted,
        lost,
        duplicates: duplicate_rows + duplicate_acks,
        unacknowledged,
        unanswered: seen.unanswered,
        already_claimed: seen.already_claimed,
        stats: stats.clone(),
        drained,
        ..ClaimsAudit::default()
    };

    match *rules {
        Rules::FlashSale {
            stock,
            per_user_limit,
        } => {
            // Units held now: a claim whose order expired or was cancelled gave its units
            // back (and its user may claim again), so it counts against neither limit.
            let known_units: u64 = known.iter().map(|c| c.held_units()).sum();
            audit.limit = stock;
            audit.taken = known_units.max(stats.accepted_quantity);
            let mut per_user: HashMap<&str, u64> = HashMap::new();
            for claim in &known {
                *per_user.entry(claim.user_id.as_str()).or_default() += claim.held_units();
            }
            audit.over_limit = per_user.values().filter(|&&q| q > per_user_limit).count() as u64;
            if audit.over_limit > 0 {
                violations.push(format!(
                    "{} user(s) hold more than the per-user limit of {per_user_limit}",
                    audit.over_limit
                ));
            }
        }
        Rules::RedPacket {
            count,
            total_cents,
            min_cents,
        } => {
            audit.limit = count;
            audit.taken = (known.len() as u64).max(stats.accepted_claims);
            let mut per_user: HashSet<&str> = HashSet::new();
            let mut holders_over = HashSet::new();
            for claim in &known {
                if !per_user.insert(claim.user_id.as_str()) {
                    holders_over.insert(claim.user_id.as_str());
                }
            }
            audit.over_limit = holders_over.len() as u64;
            if audit.over_limit > 0 {
                violations.push(format!(
                    "{} user(s) hold more than one packet",
                    audit.over_limit
                ));
            }
            let without_amount = known.iter().filter(|c| c.amount_cents.is_none()).count();
            if without_amount > 0 {
                violations.push(format!("{without_amount} packet(s) carry no amount_cents"));
            }
            let below = known
                .iter()
                .filter(|c| c.amount_cents.is_some_and(|a| a < min_cents))
                .count() as u64;
            if below > 0 {
                violations.push(format!(
                    "{below} packet(s) hold less than the minimum of {min_cents} cents"
                ));
            }
            let sum: u64 = known.iter().filter_map(|c| c.amount_cents).sum();
            if audit.taken >= count {
                if sum != total_cents {
                    violations.push(format!(
                        "all {count} packets were taken but they add up to {sum} cents, not {total_cents}"
                    ));
                }
            } else if sum > total_cents {
                violations.push(format!(
                    "the packets taken add up to {sum} cents, more than the total of {total_cents}"
                ));
            }
            audit.below_min = Some(below);
            audit.sum_cents = Some(sum);
            audit.total_cents = Some(total_cents);
        }
    }

    audit.oversold = audit.taken.saturating_sub(audit.limit);
    if audit.oversold > 0 {
        violations.push(format!(
            "{} accepted against a limit of {}: oversold by {}",
            audit.taken, audit.limit, audit.oversold
        ));
    }
    audit.passed = violations.is_empty();
    audit.violations = violations;
    audit
}

/// The sign-in audit's verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SigninAudit {
    pub passed: bool,
    pub users: u64,
    /// 201 `signed_in` replies.
    pub accepted: u64,
    /// 200 `already_signed_in` replies.
    pub already_signed_in: u64,
    /// Users awarded more than once (two 201s): points given twice.
    pub over_limit: u64,
    /// Users who got exactly one 201.
    pub awarded_once: u64,
    /// Users who got no 201 (their requests failed, or they had signed in already today).
    pub without_award: u64,
    pub unanswered: u64,
    pub violations: Vec<String>,
}

/// Audits a sign-in rush: `created[u]` is how many 201s user `u` got. It passes when
/// nobody was awarded twice — and somebody was awarded at all.
pub fn audit_signin(created: &[u32], already_signed_in: u64, unanswered: u64) -> SigninAudit {
    let over_limit = created.iter().filter(|&&c| c > 1).count() as u64;
    let awarded_once = created.iter().filter(|&&c| c == 1).count() as u64;
    let without_award = created.iter().filter(|&&c| c == 0).count() as u64;
    let mut violations = Vec::new();
    if awarded_once + over_limit == 0 {
        violations.push("no sign-in was accepted (201), so nothing was audited".to_owned());
    }
    if over_limit > 0 {
        violations.push(format!(
            "{over_limit} user(s) were awarded the same day's sign-in more than once"
        ));
    }
    SigninAudit {
        passed: violations.is_empty(),
        users: created.len() as u64,
        accepted: created.iter().map(|&c| u64::from(c)).sum(),
        already_signed_in,
        over_limit,
        awarded_once,
        without_award,
        unanswered,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMPAIGN: u64 = 17;

    fn claim(id: &str, user: &str) -> Claim {
        Claim {
            id: id.to_owned(),
            campaign_id: CAMPAIGN,
            user_id: user.to_owned(),
            quantity: Some(1),
            amount_cents: None,
            persisted: true,
            order: None,
        }
    }

    fn packet(id: &str, user: &str, cents: u64) -> Claim {
        Claim {
            quantity: None,
            amount_cents: Some(cents),
            ..claim(id, user)
        }
    }

    /// Stats consistent with `export` having been fully drained.
    fn stats_for(export: &[Claim]) -> Stats {
        Stats {
            campaign_id: CAMPAIGN,
            accepted_claims: export.len() as u64,
            accepted_quantity: export.iter().map(Claim::units).sum(),
            persisted_claims: export.len() as u64,
            claimed_cents: export.iter().filter_map(|c| c.amount_cents).sum(),
            ..Stats::default()
        }
    }

    fn seen(accepted: &[Claim]) -> Seen {
        Seen {
            accepted: accepted.to_vec(),
            ..Seen::default()
        }
    }

    const FLASH: Rules = Rules::FlashSale {
        stock: 3,
        per_user_limit: 1,
    };

    fn clean_flash() -> Vec<Claim> {
        vec![claim("c1", "u1"), claim("c2", "u2"), claim("c3", "u3")]
    }

    /// The audit of [`clean_flash`], fully drained and every claim answered.
    fn clean_flash_audit() -> ClaimsAudit {
        let export = clean_flash();
        audit_claims(
            CAMPAIGN,
            &FLASH,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        )
    }

    #[test]
    fn a_clean_flash_sale_passes() {
        let audit = clean_flash_audit();
        assert!(audit.passed, "{:?}", audit.violations);
        assert_eq!((audit.accepted, audit.persisted, audit.taken), (3, 3, 3));
        assert_eq!(
            audit.oversold + audit.lost + audit.duplicates + audit.over_limit,
            0
        );
    }

    #[test]
    fn claims_whose_orders_ended_hold_no_stock() {
        use crate::wire::Order;
        let ended = |id: &str, user: &str, status: &str| Claim {
            order: Some(Order {
                status: status.into(),
                ..Order::default()
            }),
            ..claim(id, user)
        };
        // Stock 3: two orders came back and were sold again, one of them to the same user.
        let mut export = clean_flash();
        export[0] = ended("c1", "u1", Order::EXPIRED);
        export[1] = ended("c2", "u2", Order::CANCELLED);
        export.push(ended("c4", "u1", Order::PAID));
        export.push(ended("c5", "u5", Order::PENDING));
        let mut stats = stats_for(&export);
        stats.accepted_quantity = 3;
        let audit = audit_claims(CAMPAIGN, &FLASH, &seen(&export), &stats, &export, true);
        assert!(audit.passed, "{:?}", audit.violations);
        assert_eq!((audit.taken, audit.over_limit), (3, 0));
        // A paid order on top of them is one unit too many.
        export.push(ended("c6", "u6", Order::PAID));
        let audit = audit_claims(CAMPAIGN, &FLASH, &seen(&export), &stats, &export, true);
        assert_eq!(audit.oversold, 1);
    }

    #[test]
    fn the_order_audit_joins_the_verdict() {
        let audit = clean_flash_audit();
        let clean = audit.clone().with_orders(OrdersAudit::default(), vec![]);
        assert!(clean.passed);
        let broken = audit.with_orders(OrdersAudit::default(), vec!["oversold".into()]);
        assert!(!broken.passed);
        let json = serde_json::to_value(&broken).expect("json");
        assert_eq!(json["order_violations"][0], "oversold");
        assert!(json["orders"].get("refunds").is_some());
    }

    #[test]
    fn the_funnel_audit_joins_the_verdict() {
        let audit = clean_flash_audit();
        assert!(serde_json::to_value(&audit)
            .expect("json")
            .get("funnel")
            .is_none());
        let clean = audit.clone().with_funnel(FunnelAudit {
            passed: true,
            ..FunnelAudit::default()
        });
        assert!(clean.passed);
        let broken = audit.with_funnel(FunnelAudit {
            passed: false,
            violations: vec!["the funnel counts 1 view, expected 2".into()],
            ..FunnelAudit::default()
        });
        assert!(!broken.passed);
        let json = serde_json::to_value(&broken).expect("json");
        assert_eq!(json["funnel"]["passed"], false);
        assert_eq!(json["passed"], false);
    }

    #[test]
    fn overselling_is_caught() {
        let mut export = clean_flash();
        export.push(claim("c4", "u4"));
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(!audit.passed);
        assert_eq!(audit.oversold, 1);
    }

    #[test]
    fn overselling_seen_only_in_the_engines_counters_is_caught() {
        let export = clean_flash();
        let mut stats = stats_for(&export);
        stats.accepted_quantity = 5;
        let audit = audit_claims(CAMPAIGN, &FLASH, &seen(&export), &stats, &export, true);
        assert_eq!(audit.oversold, 2);
        assert!(!audit.passed);
    }

    #[test]
    fn a_user_over_the_limit_is_caught() {
        let export = vec![claim("c1", "u1"), claim("c2", "u1")];
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(!audit.passed);
        assert_eq!(audit.over_limit, 1);
        assert_eq!(audit.oversold, 0);
    }

    #[test]
    fn quantities_count_towards_the_per_user_limit() {
        let rules = Rules::FlashSale {
            stock: 10,
            per_user_limit: 2,
        };
        let mut big = claim("c1", "u1");
        big.quantity = Some(2);
        let ok = vec![big.clone(), claim("c2", "u2")];
        let audit = audit_claims(CAMPAIGN, &rules, &seen(&ok), &stats_for(&ok), &ok, true);
        assert!(audit.passed, "{:?}", audit.violations);
        let over = vec![big, claim("c3", "u1")];
        let audit = audit_claims(
            CAMPAIGN,
            &rules,
            &seen(&over),
            &stats_for(&over),
            &over,
            true,
        );
        assert_eq!(audit.over_limit, 1);
    }

    #[test]
    fn a_lost_claim_is_caught() {
        let acknowledged = clean_flash();
        let export = acknowledged[..2].to_vec();
        let mut stats = stats_for(&acknowledged);
        stats.persisted_claims = 2;
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &seen(&acknowledged),
            &stats,
            &export,
            true,
        );
        assert!(!audit.passed);
        assert_eq!(audit.lost, 1);
    }

    #[test]
    fn a_claim_the_engine_counted_but_never_persisted_is_lost_even_if_its_reply_was_lost() {
        let export = clean_flash()[..2].to_vec();
        let mut stats = stats_for(&clean_flash());
        stats.persisted_claims = 2;
        let run = Seen {
            accepted: export.clone(),
            unanswered: 1,
            ..Seen::default()
        };
        let audit = audit_claims(CAMPAIGN, &FLASH, &run, &stats, &export, true);
        assert_eq!(audit.lost, 1);
        assert!(!audit.passed);
    }

    #[test]
    fn a_duplicate_row_in_the_export_is_caught() {
        let mut export = clean_flash();
        export.push(claim("c2", "u2"));
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &seen(&clean_flash()),
            &stats_for(&clean_flash()),
            &export,
            true,
        );
        assert!(!audit.passed);
        assert_eq!(audit.duplicates, 1);
        assert_eq!(audit.persisted, 3);
    }

    #[test]
    fn a_queue_that_did_not_drain_fails_the_audit() {
        let export = clean_flash();
        let mut stats = stats_for(&export);
        stats.queue_backlog = 4;
        let audit = audit_claims(CAMPAIGN, &FLASH, &seen(&export), &stats, &export, false);
        assert!(!audit.passed);
        assert!(!audit.drained);
    }

    #[test]
    fn claims_whose_reply_was_lost_are_tolerated_only_up_to_the_unanswered_count() {
        let export = clean_flash();
        let partial = Seen {
            accepted: export[..2].to_vec(),
            unanswered: 1,
            ..Seen::default()
        };
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &partial,
            &stats_for(&export),
            &export,
            true,
        );
        assert!(audit.passed, "{:?}", audit.violations);
        assert_eq!(audit.unacknowledged, 1);
        let nobody_asked = Seen {
            unanswered: 0,
            ..partial
        };
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &nobody_asked,
            &stats_for(&export),
            &export,
            true,
        );
        assert!(!audit.passed);
    }

    const PACKETS: Rules = Rules::RedPacket {
        count: 3,
        total_cents: 100,
        min_cents: 1,
    };

    fn clean_packets() -> Vec<Claim> {
        vec![
            packet("c1", "u1", 50),
            packet("c2", "u2", 30),
            packet("c3", "u3", 20),
        ]
    }

    #[test]
    fn a_clean_red_packet_passes() {
        let export = clean_packets();
        let audit = audit_claims(
            CAMPAIGN,
            &PACKETS,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(audit.passed, "{:?}", audit.violations);
        assert_eq!(audit.sum_cents, Some(100));
    }

    #[test]
    fn a_partly_taken_red_packet_may_sum_below_the_total() {
        let export = clean_packets()[..2].to_vec();
        let audit = audit_claims(
            CAMPAIGN,
            &PACKETS,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(audit.passed, "{:?}", audit.violations);
        assert_eq!(audit.sum_cents, Some(80));
    }

    #[test]
    fn red_packets_that_do_not_add_up_are_caught() {
        let mut export = clean_packets();
        export[0].amount_cents = Some(49);
        let audit = audit_claims(
            CAMPAIGN,
            &PACKETS,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(!audit.passed);
        assert_eq!(audit.sum_cents, Some(99));
    }

    #[test]
    fn a_partly_taken_red_packet_above_the_total_is_caught() {
        let export = vec![packet("c1", "u1", 80), packet("c2", "u2", 30)];
        let audit = audit_claims(
            CAMPAIGN,
            &PACKETS,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(!audit.passed);
    }

    #[test]
    fn a_packet_below_the_minimum_is_caught() {
        let rules = Rules::RedPacket {
            count: 3,
            total_cents: 100,
            min_cents: 10,
        };
        let export = vec![
            packet("c1", "u1", 85),
            packet("c2", "u2", 10),
            packet("c3", "u3", 5),
        ];
        let audit = audit_claims(
            CAMPAIGN,
            &rules,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert!(!audit.passed);
        assert_eq!(audit.below_min, Some(1));
    }

    #[test]
    fn two_packets_for_one_user_are_caught() {
        let export = vec![packet("c1", "u1", 50), packet("c2", "u1", 30)];
        let audit = audit_claims(
            CAMPAIGN,
            &PACKETS,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert_eq!(audit.over_limit, 1);
        assert!(!audit.passed);
    }

    #[test]
    fn more_packets_than_the_count_is_overselling() {
        let mut export = clean_packets();
        export.push(packet("c4", "u4", 1));
        let audit = audit_claims(
            CAMPAIGN,
            &PACKETS,
            &seen(&export),
            &stats_for(&export),
            &export,
            true,
        );
        assert_eq!(audit.oversold, 1);
        assert!(!audit.passed);
    }

    #[test]
    fn a_run_where_every_claim_was_refused_audits_nothing_and_fails() {
        let audit = audit_claims(
            CAMPAIGN,
            &FLASH,
            &Seen::default(),
            &Stats::default(),
            &[],
            true,
        );
        assert!(!audit.passed);
        let audit = audit_signin(&[0, 0], 0, 0);
        assert!(!audit.passed);
    }

    #[test]
    fn the_signin_audit_passes_when_nobody_is_awarded_twice() {
        let audit = audit_signin(&[1, 1, 0], 4, 0);
        assert!(audit.passed);
        assert_eq!(audit.accepted, 2);
        assert_eq!(audit.awarded_once, 2);
        assert_eq!(audit.without_award, 1);
    }

    #[test]
    fn the_signin_audit_fails_when_someone_is_awarded_twice() {
        let audit = audit_signin(&[1, 2, 1], 0, 0);
        assert!(!audit.passed);
        assert_eq!(audit.over_limit, 1);
    }
}
