//! The order audit of a flash sale with a payment window: did every order meet exactly
//! one fate, and does the stock add up at every moment and at the end?
//!
//! Four witnesses, as in the claims audit: what the run **did** to each order (every
//! payment notification and cancel it sent, and the answer), the **samples** of the
//! engine's stats taken during the run, the **export** (each claim's order as the database
//! recorded it) and the **refunds** the engine listed. The contract's promises checked:
//!
//! - at every sample: `remaining + accepted_quantity == stock` and
//!   `accepted_quantity == (paid_orders + pending_orders) × quantity`;
//! - at the end: nothing pending, `remaining + paid_orders × quantity == stock` (a unit is
//!   never both paid and back in stock), and the engine's order counters equal the export's;
//! - one fate per order: exactly the claims the run saw paid are `paid`, those it saw
//!   cancelled are `cancelled`, and those nobody paid or cancelled are `expired`; no order
//!   accepted two different payments, or a payment and a cancel;
//! - a payment answered `409` is listed as a refund exactly once, and no other is;
//! - a notification repeated with the same `payment_id` gets the same answer;
//! - a payment sent after the order must have expired (`pay_by` + the expiry grace) is
//!   never answered `paid`.
//!
//! An order the run is unsure about (a request without a reply, or a `503`/`429`) may have
//! gone either way, so it is excused from the checks that depend on that answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::wire::{Claim, Order, Refund, Stats};

/// How far past the expiry grace a payment must go out before a `paid` answer to it is a
/// breach rather than a race with the sweeper (clock skew, the request's own latency).
pub const LATE_MARGIN: Duration = Duration::from_secs(1);

/// The `409` codes a notification may get; each means "refund this payment".
pub const REFUND_CODES: [&str; 3] = ["order_expired", "order_cancelled", "order_paid"];

/// At most this many sample failures are quoted in the violations.
const QUOTED_SAMPLES: usize = 3;

/// The sale as the load generator created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRules {
    pub stock: u64,
    /// Units every claim asks for (the same for the whole run).
    pub quantity: u64,
    pub price_cents: u64,
    /// The contract's bound on how late an unpaid order expires after `pay_by` (5 s).
    pub expiry_grace: Duration,
}

impl OrderRules {
    /// What one order costs.
    pub fn amount_cents(&self) -> u64 {
        self.price_cents * self.quantity
    }
}

/// What the run did to an order.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// A payment notification; `after_pay_by` is how long after the order's `pay_by` it was
    /// sent (negative: in time).
    Pay {
        payment_id: String,
        after_pay_by: f64,
    },
    /// `POST /v1/claims/{id}/cancel` with the owner's token.
    Cancel,
}

/// One request the run sent about an order, and the engine's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub claim_id: String,
    pub act: Act,
    /// `None`: no reply (timeout, reset).
    pub status: Option<u16>,
    /// The error code of a non-2xx reply.
    pub code: Option<String>,
    /// The `status` word of a 200 payment reply (`paid`).
    pub reply_status: Option<String>,
    /// The claim in a 200 reply.
    pub claim: Option<Claim>,
}

impl Attempt {
    /// The answer does not tell what the engine did.
    fn uncertain(&self) -> bool {
        matches!(self.status, None | Some(429) | Some(503))
    }

    fn ok(&self) -> bool {
        self.status == Some(200)
    }

    fn refused(&self) -> bool {
        self.status == Some(409)
    }
}

/// The order audit's figures; the JSON report's `audit.orders`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OrdersAudit {
    /// Orders by final status, from the export.
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
    /// Exported claims still pending at the end (must be 0).
    pub pending: u64,
    /// Exported claims without an order (must be 0).
    pub without_order: u64,
    /// The campaign's refunds as the engine lists them.
    pub refunds: u64,
    /// Distinct payments answered `409` (each one must be a refund).
    pub refunds_expected: u64,
    /// Payments answered `409` but not listed.
    pub refunds_missing: u64,
    /// Refunds listed for payments that were answered `paid`, or never sent.
    pub refunds_unexpected: u64,
    /// Payment notifications sent (repeats included).
    pub notifications: u64,
    /// Distinct payment ids sent.
    pub payments: u64,
    /// Notifications answered `200 paid`.
    pub paid_replies: u64,
    /// Notifications answered `409` with a refund code.
    pub refused_replies: u64,
    /// Notifications with no reply, or `503` / `429`.
    pub unanswered_notifications: u64,
    /// Notifications sent after `pay_by`, and how many of those were answered `paid`.
    pub late_notifications: u64,
    pub late_paid: u64,
    /// Cancels sent, answered `200`, and answered `409`.
    pub cancels: u64,
    pub cancelled_replies: u64,
    pub cancel_refused: u64,
    /// Stats samples taken during the run, how many broke an invariant, and how many
    /// calls failed.
    pub samples: u64,
    pub failed_samples: u64,
    pub sample_errors: u64,
}

/// What is wrong with one stats sample, if anything.
pub fn sample_violation(rules: &OrderRules, stats: &Stats) -> Option<String> {
    let (Some(pending), Some(paid)) = (stats.pending_orders, stats.paid_orders) else {
        return Some("the stats carry no pending_orders / paid_orders".to_owned());
    };
    if stats.remaining + stats.accepted_quantity != rules.stock {
        return Some(format!(
            "remaining {} + accepted_quantity {} != stock {}",
            stats.remaining, stats.accepted_quantity, rules.stock
        ));
    }
    let held = (paid + pending) * rules.quantity;
    if stats.accepted_quantity != held {
        return Some(format!(
            "accepted_quantity {} != (paid {paid} + pending {pending}) x {} = {held}",
            stats.accepted_quantity, rules.quantity
        ));
    }
    None
}

/// Checks every sample; returns how many failed and the violations to report.
pub fn audit_samples(rules: &OrderRules, samples: &[Stats]) -> (u64, Vec<String>) {
    if samples.is_empty() {
        return (
            0,
            vec!["no stats sample was taken during the run, so the stock was never checked".into()],
        );
    }
    let failures: Vec<(usize, String)> = samples
        .iter()
        .enumerate()
        .filter_map(|(i, s)| sample_violation(rules, s).map(|v| (i, v)))
        .collect();
    let mut violations = Vec::new();
    if !failures.is_empty() {
        violations.push(format!(
            "{} of {} stats sample(s) broke the stock arithmetic",
            failures.len(),
            samples.len()
        ));
        for (i, v) in failures.iter().take(QUOTED_SAMPLES) {
            violations.push(format!("sample {}: {v}", i + 1));
        }
    }
    (failures.len() as u64, violations)
}

/// Everything the run knows about one claim's order.
#[derive(Default)]
struct Told<'a> {
    /// Payment ids answered `200 paid`.
    paid_by: Vec<&'a str>,
    cancelled: bool,
    /// Some request about it got no telling answer.
    uncertain: bool,
}

/// Audits the orders at the end of the run. `winners` are the claims the run was told were
/// accepted (201), `attempts` everything it sent about them, `stats` the engine's
/// counters once settled, `export` and `refunds` (this campaign's) as the engine listed
/// them. Returns the figures and one sentence per broken promise.
pub fn audit_orders(
    rules: &OrderRules,
    winners: &[Claim],
    attempts: &[Attempt],
    stats: &Stats,
    export: &[Claim],
    refunds: &[Refund],
) -> (OrdersAudit, Vec<String>) {
    let mut v = Vec::new();
    let mut audit = OrdersAudit::default();

    let without_order = winners.iter().filter(|c| c.order.is_none()).count();
    if without_order > 0 {
        v.push(format!(
            "{without_order} claim(s) answered 201 carry no order (was payment_window_secs ignored?)"
        ));
    }

    // What the run did, by claim and by payment.
    let mut fates: HashMap<&str, Told> = HashMap::new();
    let mut answers: BTreeMap<&str, Vec<&Attempt>> = BTreeMap::new();
    let mut payment_claim: HashMap<&str, &str> = HashMap::new();
    let mut unexpected: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad_replies = 0u64;
    let mut too_late_paid = 0u64;
    let too_late = (rules.expiry_grace + LATE_MARGIN).as_secs_f64();
    for a in attempts {
        let fate = fates.entry(a.claim_id.as_str()).or_default();
        fate.uncertain |= a.uncertain();
        match &a.act {
            Act::Pay {
                payment_id,
                after_pay_by,
            } => {
                audit.notifications += 1;
                answers.entry(payment_id.as_str()).or_default().push(a);
                payment_claim.insert(payment_id.as_str(), a.claim_id.as_str());
                if *after_pay_by > 0.0 {
                    audit.late_notifications += 1;
                }
                if a.uncertain() {
                    audit.unanswered_notifications += 1;
                } else if a.ok() {
                    audit.paid_replies += 1;
                    if !fate.paid_by.contains(&payment_id.as_str()) {
                        fate.paid_by.push(payment_id.as_str());
                    }
                    if *after_pay_by > 0.0 {
                        audit.late_paid += 1;
                    }
                    if *after_pay_by >= too_late {
                        too_late_paid += 1;
                    }
                    let order = a.claim.as_ref().and_then(|c| c.order.as_ref());
                    if a.reply_status.as_deref() != Some("paid")
                        || order.map(|o| o.status.as_str()) != Some(Order::PAID)
                    {
                        bad_replies += 1;
                    }
                } else if a.refused() && a.code.as_deref().is_some_and(is_refund_code) {
                    audit.refused_replies += 1;
                } else {
                    let what = match (&a.status, &a.code) {
                        (Some(s), Some(c)) => format!("{s} {c}"),
                        (Some(s), None) => s.to_string(),
                        (None, _) => "no reply".to_owned(),
                    };
                    *unexpected.entry(format!("notify: {what}")).or_default() += 1;
                }
            }
            Act::Cancel => {
                audit.cancels += 1;
                if a.ok() {
                    audit.cancelled_replies += 1;
                    fate.cancelled = true;
                    let order = a.claim.as_ref().and_then(|c| c.order.as_ref());
                    if order.map(|o| o.status.as_str()) != Some(Order::CANCELLED) {
                        bad_replies += 1;
                    }
                } else if a.refused()
                    && matches!(a.code.as_deref(), Some("order_paid" | "order_expired"))
                {
                    audit.cancel_refused += 1;
                } else if !a.uncertain() {
                    let what = match &a.code {
                        Some(c) => format!("{} {c}", a.status.unwrap_or(0)),
                        None => a.status.unwrap_or(0).to_string(),
                    };
                    *unexpected.entry(format!("cancel: {what}")).or_default() += 1;
                }
            }
        }
    }
    audit.payments = answers.len() as u64;
    if !unexpected.is_empty() {
        let list: Vec<String> = unexpected
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        v.push(format!("replies outside the contract: {}", list.join(", ")));
    }
    if bad_replies > 0 {
        v.push(format!(
            "{bad_replies} 200 repl(ies) to a payment or cancel do not show the order paid / cancelled"
        ));
    }
    if too_late_paid > 0 {
        v.push(format!(
            "{too_late_paid} payment(s) sent more than {too_late:.0} s after pay_by (when the order must have expired) were answered paid"
        ));
    }

    // The same payment id must get the same answer every time.
    let mut inconsistent = 0u64;
    let mut expected_refunds: HashSet<&str> = HashSet::new();
    let mut maybe_refunds: HashSet<&str> = HashSet::new();
    let mut paid_payments: HashSet<&str> = HashSet::new();
    for (payment, sent) in &answers {
        let told: HashSet<u16> = sent
            .iter()
            .filter(|a| !a.uncertain())
            .filter_map(|a| a.status)
            .collect();
        if told.len() > 1 {
            inconsistent += 1;
        }
        if told.contains(&409) {
            expected_refunds.insert(payment);
        } else if told.contains(&200) {
            paid_payments.insert(payment);
        } else {
            maybe_refunds.insert(payment);
        }
    }
    if inconsistent > 0 {
        v.push(format!(
            "{inconsistent} payment id(s) sent more than once got different answers"
        ));
    }

    // One fate per order, as the run saw it.
    let two_payments = fates.values().filter(|f| f.paid_by.len() > 1).count();
    if two_payments > 0 {
        v.push(format!(
            "{two_payments} order(s) accepted two different payments (one must be refunded)"
        ));
    }
    let paid_and_cancelled = fates
        .values()
        .filter(|f| f.cancelled && !f.paid_by.is_empty())
        .count();
    if paid_and_cancelled > 0 {
        v.push(format!(
            "{paid_and_cancelled} order(s) were answered both paid and cancelled"
        ));
    }

    // The export: every order ended, and ended the way the run was told.
    let mut exported: HashMap<&str, &Claim> = HashMap::new();
    for claim in export {
        exported.insert(claim.id.as_str(), claim);
        match &claim.order {
            None => audit.without_order += 1,
            Some(o) => match o.status.as_str() {
                Order::PAID => audit.paid += 1,
                Order::EXPIRED => audit.expired += 1,
                Order::CANCELLED => audit.cancelled += 1,
                _ => audit.pending += 1,
            },
        }
    }
    if audit.without_order > 0 {
        v.push(format!(
            "{} exported claim(s) carry no order",
            audit.without_order
        ));
    }
    if audit.pending > 0 {
        v.push(format!(
            "{} exported order(s) are not paid, expired or cancelled after every window passed",
            audit.pending
        ));
    }
    let status_of = |id: &str| {
        exported
            .get(id)
            .and_then(|c| c.order.as_ref())
            .map(|o| o.status.as_str())
    };
    let (mut paid_not_exported, mut paid_wrong_payment, mut cancelled_not_exported) = (0, 0, 0);
    let mut should_have_expired = 0;
    let mut unique_winners: HashSet<&str> = HashSet::new();
    for claim in winners {
        if !unique_winners.insert(claim.id.as_str()) {
            continue;
        }
        let fate = fates.get(claim.id.as_str());
        let status = status_of(&claim.id);
        if status.is_none() {
            continue; // missing from the export: the claims audit reports it lost
        }
        match fate {
            Some(f) if !f.paid_by.is_empty() => {
                if status != Some(Order::PAID) {
                    paid_not_exported += 1;
                } else if let Some(recorded) = exported
                    .get(claim.id.as_str())
                    .and_then(|c| c.order.as_ref())
                    .and_then(|o| o.payment_id.as_deref())
                {
                    if !f.paid_by.contains(&recorded) {
                        paid_wrong_payment += 1;
                    }
                }
            }
            Some(f) if f.cancelled => {
                if status != Some(Order::CANCELLED) {
                    cancelled_not_exported += 1;
                }
            }
            Some(f) if f.uncertain => {}
            _ => {
                if status != Some(Order::EXPIRED) {
                    should_have_expired += 1;
                }
            }
        }
    }
    if paid_not_exported > 0 {
        v.push(format!(
            "{paid_not_exported} order(s) answered paid are not paid in the export"
        ));
    }
    if paid_wrong_payment > 0 {
        v.push(format!(
            "{paid_wrong_payment} paid order(s) record another payment_id than the one answered paid"
        ));
    }
    if cancelled_not_exported > 0 {
        v.push(format!(
            "{cancelled_not_exported} order(s) answered cancelled are not cancelled in the export"
        ));
    }
    if should_have_expired > 0 {
        v.push(format!(
            "{should_have_expired} order(s) nobody paid or cancelled are not expired in the export"
        ));
    }
    let paid_unseen = export
        .iter()
        .filter(|c| c.order.as_ref().is_some_and(|o| o.status == Order::PAID))
        .filter(|c| {
            fates
                .get(c.id.as_str())
                .is_none_or(|f| f.paid_by.is_empty() && !f.uncertain)
        })
        .count();
    if paid_unseen > 0 {
        v.push(format!(
            "{paid_unseen} exported order(s) are paid though no payment for them was answered paid"
        ));
    }

    // Refunds: exactly the payments answered 409, once each, for the right claim and sum.
    audit.refunds = refunds.len() as u64;
    audit.refunds_expected = expected_refunds.len() as u64;
    let mut listed: HashSet<&str> = HashSet::new();
    let (mut repeated, mut wrong_claim, mut wrong_amount, mut unexpected_refunds) = (0, 0, 0, 0);
    for r in refunds {
        if !listed.insert(r.payment_id.as_str()) {
            repeated += 1;
            continue;
        }
        let known = expected_refunds.contains(r.payment_id.as_str())
            || maybe_refunds.contains(r.payment_id.as_str());
        if !known {
            unexpected_refunds += 1;
        }
        if let Some(claim) = payment_claim.get(r.payment_id.as_str()) {
            if *claim != r.claim_id {
                wrong_claim += 1;
            }
        }
        if r.amount_cents != rules.amount_cents() {
            wrong_amount += 1;
        }
    }
    audit.refunds_unexpected = unexpected_refunds;
    audit.refunds_missing = expected_refunds
        .iter()
        .filter(|p| !listed.contains(*p))
        .count() as u64;
    if audit.refunds_missing > 0 {
        v.push(format!(
            "{} payment(s) answered 409 are not listed as refunds (money kept for nothing)",
            audit.refunds_missing
        ));
    }
    if unexpected_refunds > 0 {
        let paid_too = refunds
            .iter()
            .filter(|r| paid_payments.contains(r.payment_id.as_str()))
            .count();
        v.push(format!(
            "{unexpected_refunds} refund(s) are listed for payments never refused ({paid_too} of them answered paid)"
        ));
    }
    if repeated > 0 {
        v.push(format!("{repeated} refund(s) are listed more than once"));
    }
    if wrong_claim > 0 {
        v.push(format!(
            "{wrong_claim} refund(s) name another claim than the payment was for"
        ));
    }
    if wrong_amount > 0 {
        v.push(format!(
            "{wrong_amount} refund(s) are not for {} cents",
            rules.amount_cents()
        ));
    }

    // The engine's counters once everything settled.
    match (
        stats.pending_orders,
        stats.paid_orders,
        stats.expired_orders,
        stats.cancelled_orders,
        stats.refunds_required,
    ) {
        (Some(pending), Some(paid), Some(expired), Some(cancelled), Some(refunds_required)) => {
            if pending != 0 {
                v.push(format!(
                    "{pending} order(s) still pending after every window passed"
                ));
            }
            if stats.remaining + paid * rules.quantity != rules.stock {
                v.push(format!(
                    "at the end remaining {} + paid {paid} x {} != stock {}: units are paid and back in stock, or gone",
                    stats.remaining, rules.quantity, rules.stock
                ));
            }
            for (name, engine, export) in [
                ("paid", paid, audit.paid),
                ("expired", expired, audit.expired),
                ("cancelled", cancelled, audit.cancelled),
                ("refunds", refunds_required, audit.refunds),
            ] {
                if engine != export {
                    v.push(format!(
                        "the engine counts {engine} {name} but the {} holds {export}",
                        if name == "refunds" {
                            "refund list"
                        } else {
                            "export"
                        }
                    ));
                }
            }
        }
        _ => v.push("the final stats lack the order counters".to_owned()),
    }

    (audit, v)
}

fn is_refund_code(code: &str) -> bool {
    REFUND_CODES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMPAIGN: u64 = 17;

    const RULES: OrderRules = OrderRules {
        stock: 4,
        quantity: 1,
        price_cents: 1000,
        expiry_grace: Duration::from_secs(5),
    };

    fn order(status: &str, payment: Option<&str>) -> Order {
        Order {
            status: status.to_owned(),
            pay_by: Some("2026-11-22T20:00:05.000Z".to_owned()),
            paid_at: None,
            payment_id: payment.map(str::to_owned),
        }
    }

    fn claim(id: &str, status: &str, payment: Option<&str>) -> Claim {
        Claim {
            id: id.to_owned(),
            campaign_id: CAMPAIGN,
            user_id: format!("u-{id}"),
            quantity: Some(1),
            amount_cents: None,
            persisted: true,
            order: Some(order(status, payment)),
        }
    }

    fn pay(claim_id: &str, payment: &str, after: f64, status: Option<u16>) -> Attempt {
        let (code, reply_status, reply) = match status {
            Some(200) => (
                None,
                Some("paid".to_owned()),
                Some(claim(claim_id, Order::PAID, Some(payment))),
            ),
            Some(409) => (Some("order_expired".to_owned()), None, None),
            _ => (None, None, None),
        };
        Attempt {
            claim_id: claim_id.to_owned(),
            act: Act::Pay {
                payment_id: payment.to_owned(),
                after_pay_by: after,
            },
            status,
            code,
            reply_status,
            claim: reply,
        }
    }

    fn cancel(claim_id: &str, status: u16) -> Attempt {
        Attempt {
            claim_id: claim_id.to_owned(),
            act: Act::Cancel,
            status: Some(status),
            code: (status == 409).then(|| "order_paid".to_owned()),
            reply_status: None,
            claim: (status == 200).then(|| claim(claim_id, Order::CANCELLED, None)),
        }
    }

    fn refund(payment: &str, claim_id: &str) -> Refund {
        Refund {
            payment_id: payment.to_owned(),
            claim_id: claim_id.to_owned(),
            campaign_id: CAMPAIGN,
            amount_cents: 1000,
            reason: "order_expired".to_owned(),
            recorded_at: None,
        }
    }

    fn stats(remaining: u64, accepted: u64, pending: u64, paid: u64) -> Stats {
        Stats {
            campaign_id: CAMPAIGN,
            remaining,
            accepted_quantity: accepted,
            pending_orders: Some(pending),
            paid_orders: Some(paid),
            expired_orders: Some(0),
            cancelled_orders: Some(0),
            refunds_required: Some(0),
            ..Stats::default()
        }
    }

    /// Four orders: c1 paid (with a retried notification), c2 paid late and refunded, c3
    /// cancelled, c4 left to expire; c1 also got a second payment, refused and refunded.
    struct Run {
        winners: Vec<Claim>,
        attempts: Vec<Attempt>,
        export: Vec<Claim>,
        refunds: Vec<Refund>,
        stats: Stats,
    }

    fn clean_run() -> Run {
        let winners = ["c1", "c2", "c3", "c4"]
            .iter()
            .map(|id| claim(id, Order::PENDING, None))
            .collect();
        let mut second = pay("c1", "p-1b", -3.0, Some(409));
        second.code = Some("order_paid".to_owned());
        let attempts = vec![
            pay("c1", "p-1", -4.0, Some(200)),
            pay("c1", "p-1", -4.0, Some(200)),
            second,
            pay("c2", "p-2", 7.0, Some(409)),
            cancel("c3", 200),
        ];
        let export = vec![
            claim("c1", Order::PAID, Some("p-1")),
            claim("c2", Order::EXPIRED, None),
            claim("c3", Order::CANCELLED, None),
            claim("c4", Order::EXPIRED, None),
        ];
        let refunds = vec![refund("p-1b", "c1"), refund("p-2", "c2")];
        let stats = Stats {
            expired_orders: Some(2),
            cancelled_orders: Some(1),
            refunds_required: Some(2),
            ..stats(3, 1, 0, 1)
        };
        Run {
            winners,
            attempts,
            export,
            refunds,
            stats,
        }
    }

    fn audit(run: &Run) -> (OrdersAudit, Vec<String>) {
        audit_orders(
            &RULES,
            &run.winners,
            &run.attempts,
            &run.stats,
            &run.export,
            &run.refunds,
        )
    }

    fn assert_caught(run: &Run, words: &str) {
        let (_, violations) = audit(run);
        assert!(
            violations.iter().any(|v| v.contains(words)),
            "expected a violation with {words:?}, got {violations:?}"
        );
    }

    #[test]
    fn samples_that_add_up_pass() {
        let samples = [
            stats(4, 0, 0, 0),
            stats(0, 4, 4, 0),
            stats(1, 3, 1, 2),
            stats(2, 2, 0, 2),
        ];
        assert_eq!(audit_samples(&RULES, &samples), (0, vec![]));
        let pairs = OrderRules {
            quantity: 2,
            stock: 6,
            ..RULES
        };
        assert_eq!(sample_violation(&pairs, &stats(2, 4, 1, 1)), None);
    }

    #[test]
    fn a_unit_both_sold_and_back_in_stock_fails_the_sample() {
        // An expired order's unit went back to stock but is still counted as sold.
        let v = sample_violation(&RULES, &stats(1, 4, 3, 1)).expect("caught");
        assert!(
            v.contains("remaining 1 + accepted_quantity 4 != stock 4"),
            "{v}"
        );
    }

    #[test]
    fn units_sold_that_no_order_holds_fail_the_sample() {
        let v = sample_violation(&RULES, &stats(1, 3, 1, 1)).expect("caught");
        assert!(
            v.contains("accepted_quantity 3 != (paid 1 + pending 1)"),
            "{v}"
        );
        let pairs = OrderRules {
            quantity: 2,
            stock: 6,
            ..RULES
        };
        assert!(sample_violation(&pairs, &stats(2, 4, 1, 0)).is_some());
    }

    #[test]
    fn stats_without_order_counters_fail_and_no_samples_at_all_fail() {
        let plain = Stats {
            remaining: 4,
            ..Stats::default()
        };
        assert!(sample_violation(&RULES, &plain).is_some());
        let (failed, v) = audit_samples(&RULES, &[]);
        assert_eq!(failed, 0);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn failing_samples_are_counted_and_the_first_ones_quoted() {
        let samples: Vec<Stats> = (0..10)
            .map(|i| {
                if i % 2 == 0 {
                    stats(4, 0, 0, 0)
                } else {
                    stats(4, 1, 1, 0)
                }
            })
            .collect();
        let (failed, v) = audit_samples(&RULES, &samples);
        assert_eq!(failed, 5);
        assert_eq!(v[0], "5 of 10 stats sample(s) broke the stock arithmetic");
        assert_eq!(v.len(), 1 + QUOTED_SAMPLES);
        assert!(v[1].starts_with("sample 2: "), "{}", v[1]);
    }

    #[test]
    fn a_clean_run_of_every_fate_passes() {
        let (orders, violations) = audit(&clean_run());
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            (
                orders.paid,
                orders.expired,
                orders.cancelled,
                orders.refunds
            ),
            (1, 2, 1, 2)
        );
        assert_eq!(orders.notifications, 4);
        assert_eq!(orders.payments, 3);
        assert_eq!(orders.paid_replies, 2);
        assert_eq!(orders.refused_replies, 2);
        assert_eq!(orders.refunds_expected, 2);
        assert_eq!((orders.late_notifications, orders.late_paid), (1, 0));
        assert_eq!((orders.cancels, orders.cancelled_replies), (1, 1));
    }

    #[test]
    fn a_paid_unit_back_in_stock_at_the_end_is_caught() {
        let mut run = clean_run();
        run.stats.remaining = 4;
        assert_caught(&run, "remaining 4 + paid 1 x 1 != stock 4");
    }

    #[test]
    fn an_order_still_pending_at_the_end_is_caught() {
        let mut run = clean_run();
        run.export[3] = claim("c4", Order::PENDING, None);
        run.stats.pending_orders = Some(1);
        assert_caught(&run, "not paid, expired or cancelled");
        assert_caught(&run, "still pending");
    }

    #[test]
    fn a_payment_answered_paid_but_not_paid_in_the_export_is_caught() {
        let mut run = clean_run();
        run.export[0] = claim("c1", Order::EXPIRED, None);
        assert_caught(&run, "answered paid are not paid in the export");
    }

    #[test]
    fn a_paid_order_nobody_was_told_about_is_caught() {
        let mut run = clean_run();
        run.export[3] = claim("c4", Order::PAID, Some("p-ghost"));
        assert_caught(&run, "no payment for them was answered paid");
        assert_caught(&run, "nobody paid or cancelled are not expired");
    }

    #[test]
    fn a_refused_payment_missing_from_the_refunds_is_caught() {
        let mut run = clean_run();
        run.refunds.pop();
        run.stats.refunds_required = Some(1);
        let (orders, _) = audit(&run);
        assert_eq!(orders.refunds_missing, 1);
        assert_caught(&run, "answered 409 are not listed as refunds");
    }

    #[test]
    fn a_refund_for_a_paid_payment_or_listed_twice_is_caught() {
        let mut run = clean_run();
        run.refunds.push(refund("p-1", "c1"));
        run.refunds.push(refund("p-2", "c2"));
        run.stats.refunds_required = Some(4);
        assert_caught(&run, "never refused (1 of them answered paid)");
        assert_caught(&run, "listed more than once");
    }

    #[test]
    fn a_refund_for_the_wrong_claim_or_sum_is_caught() {
        let mut run = clean_run();
        run.refunds[1].claim_id = "c3".to_owned();
        run.refunds[0].amount_cents = 999;
        assert_caught(&run, "name another claim");
        assert_caught(&run, "not for 1000 cents");
    }

    #[test]
    fn two_payments_accepted_for_one_order_are_caught() {
        let mut run = clean_run();
        run.attempts[2] = pay("c1", "p-1b", -3.0, Some(200));
        run.refunds.remove(0);
        run.stats.refunds_required = Some(1);
        assert_caught(&run, "accepted two different payments");
    }

    #[test]
    fn an_order_both_paid_and_cancelled_is_caught() {
        let mut run = clean_run();
        run.attempts.push(cancel("c1", 200));
        assert_caught(&run, "both paid and cancelled");
    }

    #[test]
    fn a_retried_notification_with_another_answer_is_caught() {
        let mut run = clean_run();
        run.attempts[1] = pay("c1", "p-1", -4.0, Some(409));
        assert_caught(&run, "got different answers");
    }

    #[test]
    fn a_payment_accepted_after_the_order_must_have_expired_is_caught() {
        let mut run = clean_run();
        run.attempts[3] = pay("c2", "p-2", 7.0, Some(200));
        run.export[1] = claim("c2", Order::PAID, Some("p-2"));
        assert_caught(&run, "were answered paid");
        // Just after pay_by it is a race with the sweeper, and either answer is allowed.
        run.attempts[3] = pay("c2", "p-2", 2.0, Some(200));
        let (orders, violations) = audit(&run);
        assert_eq!(orders.late_paid, 1);
        assert!(
            !violations.iter().any(|v| v.contains("were answered paid")),
            "{violations:?}"
        );
    }

    #[test]
    fn replies_outside_the_contract_are_caught() {
        let mut run = clean_run();
        let mut bad = pay("c4", "p-4", -1.0, Some(401));
        bad.code = Some("unauthorized".to_owned());
        run.attempts.push(bad);
        assert_caught(&run, "notify: 401 unauthorized x1");
    }

    #[test]
    fn an_unanswered_payment_excuses_either_outcome() {
        let mut run = clean_run();
        run.attempts.push(pay("c4", "p-4", -1.0, None));
        run.export[3] = claim("c4", Order::PAID, Some("p-4"));
        run.stats.paid_orders = Some(2);
        run.stats.expired_orders = Some(1);
        run.stats.remaining = 2;
        let (orders, violations) = audit(&run);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(orders.unanswered_notifications, 1);
    }

    #[test]
    fn engine_counters_that_disagree_with_the_export_are_caught() {
        let mut run = clean_run();
        run.stats.expired_orders = Some(1);
        assert_caught(&run, "the engine counts 1 expired but the export holds 2");
    }

    #[test]
    fn a_201_without_an_order_is_caught() {
        let mut run = clean_run();
        run.winners[0].order = None;
        assert_caught(&run, "carry no order");
    }
}
