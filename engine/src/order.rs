//! Orders: what an accepted claim of a flash sale with a payment window becomes (README,
//! "Orders and payment"; invariant 7).
//!
//! An order is `pending_payment` until exactly one of pay, cancel and expire closes it.
//! Each is ONE atomic step in the store, beside the campaign's live state (the claim's
//! bucket: `lua/order.lua`, or the campaign's lock in the embedded store): it decides,
//! gives the units back to stock and releases the user's hold (cancel, expire), and
//! enqueues the change for the workers, all at once. So units sold = paid + pending at
//! every moment, and a unit is never both paid and back on sale.
//!
//! A payment that loses (the order expired, was cancelled, or was already paid by
//! another payment) is recorded as a [`Refund`] in the same step, once per payment id.
//!
//! The workers write the changes idempotently (`orders`, `order_transitions` and
//! `refunds` tables): the order row takes its final state once, whatever the queue
//! redelivers, and in whichever order a claim and its order's change arrive.

use serde::Serialize;

/// An order's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Paid,
    Expired,
    Cancelled,
}

impl OrderStatus {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        Some(match s {
            "pending_payment" => OrderStatus::Pending,
            "paid" => OrderStatus::Paid,
            "expired" => OrderStatus::Expired,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// The one-letter code the store's records use (`lua/order.lua`).
    pub fn code(self) -> &'static str {
        match self {
            OrderStatus::Pending => "p",
            OrderStatus::Paid => "P",
            OrderStatus::Expired => "X",
            OrderStatus::Cancelled => "C",
        }
    }

    pub fn from_code(s: &str) -> Option<OrderStatus> {
        Some(match s {
            "p" => OrderStatus::Pending,
            "P" => OrderStatus::Paid,
            "X" => OrderStatus::Expired,
            "C" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// Expired and cancelled orders gave their units back.
    pub fn restocks(self) -> bool {
        matches!(self, OrderStatus::Expired | OrderStatus::Cancelled)
    }
}

/// One order: the claim it is, and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub claim_id: String,
    pub campaign_id: u64,
    pub user_id: String,
    pub quantity: u64,
    pub status: OrderStatus,
    pub pay_by_ms: i64,
    /// When it left `pending_payment` (the payment's time for a paid order).
    pub closed_at_ms: Option<i64>,
    /// The payment that paid it.
    pub payment_id: Option<String>,
}

impl Order {
    /// A new order for an accepted claim.
    pub fn pending(claim: &crate::claim::Claim, pay_by_ms: i64) -> Order {
        Order {
            claim_id: claim.id.clone(),
            campaign_id: claim.campaign_id,
            user_id: claim.user_id.clone(),
            quantity: claim.quantity,
            status: OrderStatus::Pending,
            pay_by_ms,
            closed_at_ms: None,
            payment_id: None,
        }
    }

    /// The store's record of it (the value in `{c:ID}:orders`):
    /// `status code|pay by ms|user id|quantity|closed ms (0: open)|payment id`.
    pub fn record(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.status.code(),
            self.pay_by_ms,
            self.user_id,
            self.quantity,
            self.closed_at_ms.unwrap_or(0),
            self.payment_id.as_deref().unwrap_or("")
        )
    }

    /// Parses [`Order::record`].
    pub fn from_record(campaign_id: u64, claim_id: &str, rec: &str) -> Option<Order> {
        let mut f = rec.splitn(6, '|');
        let status = OrderStatus::from_code(f.next()?)?;
        let pay_by_ms = f.next()?.parse().ok()?;
        let user_id = f.next()?.to_string();
        let quantity = f.next()?.parse().ok()?;
        let closed: i64 = f.next()?.parse().ok()?;
        let payment = f.next()?;
        Some(Order {
            claim_id: claim_id.to_string(),
            campaign_id,
            user_id,
            quantity,
            status,
            pay_by_ms,
            closed_at_ms: (closed != 0).then_some(closed),
            payment_id: (!payment.is_empty()).then(|| payment.to_string()),
        })
    }

    /// The queue event of this order's change to its final state:
    /// `o|campaign id|claim id|user id|quantity|status code|pay by|closed ms|payment id`.
    pub fn change_event(&self) -> String {
        format!(
            "o|{}|{}|{}|{}|{}|{}|{}|{}",
            self.campaign_id,
            self.claim_id,
            self.user_id,
            self.quantity,
            self.status.code(),
            self.pay_by_ms,
            self.closed_at_ms.unwrap_or(0),
            self.payment_id.as_deref().unwrap_or("")
        )
    }

    /// Parses [`Order::change_event`] (a final state only).
    pub fn from_change_event(s: &str) -> Option<Order> {
        let rest = s.strip_prefix("o|")?;
        let mut f = rest.split('|');
        let campaign_id = f.next()?.parse().ok()?;
        let claim_id = f.next()?.to_string();
        let user_id = f.next()?.to_string();
        let quantity = f.next()?.parse().ok()?;
        let status = OrderStatus::from_code(f.next()?)?;
        let pay_by_ms = f.next()?.parse().ok()?;
        let closed: i64 = f.next()?.parse().ok()?;
        let payment = f.next()?;
        if f.next().is_some() || status == OrderStatus::Pending || claim_id.is_empty() {
            return None;
        }
        Some(Order {
            claim_id,
            campaign_id,
            user_id,
            quantity,
            status,
            pay_by_ms,
            closed_at_ms: Some(closed),
            payment_id: (!payment.is_empty()).then(|| payment.to_string()),
        })
    }
}

/// Why a payment is to be refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// The order expired before the money arrived.
    OrderExpired,
    /// The user cancelled it before the money arrived.
    OrderCancelled,
    /// Another payment had already paid it.
    AlreadyPaid,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::OrderExpired => "order_expired",
            RefundReason::OrderCancelled => "order_cancelled",
            RefundReason::AlreadyPaid => "already_paid",
        }
    }

    pub fn parse(s: &str) -> Option<RefundReason> {
        Some(match s {
            "order_expired" => RefundReason::OrderExpired,
            "order_cancelled" => RefundReason::OrderCancelled,
            "already_paid" => RefundReason::AlreadyPaid,
            _ => return None,
        })
    }
}

/// A payment that lost its order: money to give back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refund {
    pub payment_id: String,
    pub claim_id: String,
    pub campaign_id: u64,
    pub amount_cents: u64,
    pub reason: RefundReason,
    pub recorded_at_ms: i64,
}

impl Refund {
    /// The queue event: `r|campaign id|payment id|claim id|amount|reason|at ms`.
    pub fn event(&self) -> String {
        format!(
            "r|{}|{}|{}|{}|{}|{}",
            self.campaign_id,
            self.payment_id,
            self.claim_id,
            self.amount_cents,
            self.reason.as_str(),
            self.recorded_at_ms
        )
    }

    pub fn from_event(s: &str) -> Option<Refund> {
        let rest = s.strip_prefix("r|")?;
        let mut f = rest.split('|');
        let r = Refund {
            campaign_id: f.next()?.parse().ok()?,
            payment_id: f.next()?.to_string(),
            claim_id: f.next()?.to_string(),
            amount_cents: f.next()?.parse().ok()?,
            reason: RefundReason::parse(f.next()?)?,
            recorded_at_ms: f.next()?.parse().ok()?,
        };
        (f.next().is_none() && !r.payment_id.is_empty()).then_some(r)
    }
}

/// A payment notification, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: String,
    pub claim_id: String,
    pub amount_cents: u64,
}

/// What the store decided for a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    /// Paid, by this payment (now, or already: a repeated notification).
    Paid(Order),
    /// The order had ended (expired, cancelled) or was paid by another payment: this
    /// payment is recorded for a refund. The order as it is.
    Lost(Order, RefundReason),
    /// The amount is not price × quantity; the expected amount.
    WrongAmount(u64),
    /// No such order.
    Unknown,
}

/// What the store decided for a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The order as it is now: cancelled (now or before), or paid or expired, which a
    /// cancel cannot change.
    Order(Order),
    /// No such order of this user.
    Unknown,
}

/// A campaign's orders by state, and the payments recorded for refund.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OrderCounts {
    pub pending_orders: u64,
    pub paid_orders: u64,
    pub expired_orders: u64,
    pub cancelled_orders: u64,
    pub refunds_required: u64,
}

impl OrderCounts {
    /// Counts one order in `status`.
    pub fn count(&mut self, status: OrderStatus) {
        match status {
            OrderStatus::Pending => self.pending_orders += 1,
            OrderStatus::Paid => self.paid_orders += 1,
            OrderStatus::Expired => self.expired_orders += 1,
            OrderStatus::Cancelled => self.cancelled_orders += 1,
        }
    }

    pub fn add(&mut self, o: &OrderCounts) {
        self.pending_orders += o.pending_orders;
        self.paid_orders += o.paid_orders;
        self.expired_orders += o.expired_orders;
        self.cancelled_orders += o.cancelled_orders;
        self.refunds_required += o.refunds_required;
    }
}

/// What one expiry sweep of a campaign did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub orders: u64,
    /// The campaign had nothing left before the sweep gave units back.
    pub restocked: bool,
}

/// A payment or claim id as the store's records can carry it: 1 to 64 characters of
/// `[A-Za-z0-9_.:-]` (never the records' `|`).
pub fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            claim_id: "c7-b2-0000000003".into(),
            campaign_id: 7,
            user_id: "u.1".into(),
            quantity: 2,
            status: OrderStatus::Paid,
            pay_by_ms: 1_800_000_000_000,
            closed_at_ms: Some(1_799_999_999_000),
            payment_id: Some("p-1".into()),
        }
    }

    #[test]
    fn records_and_events_round_trip_and_garbage_is_refused() {
        let o = order();
        assert_eq!(
            Order::from_record(7, &o.claim_id, &o.record()).as_ref(),
            Some(&o)
        );
        assert_eq!(
            Order::from_change_event(&o.change_event()).as_ref(),
            Some(&o)
        );
        let pending = Order {
            status: OrderStatus::Pending,
            closed_at_ms: None,
            payment_id: None,
            ..o.clone()
        };
        assert_eq!(pending.record(), "p|1800000000000|u.1|2|0|");
        assert_eq!(
            Order::from_record(7, &o.claim_id, &pending.record()),
            Some(pending.clone())
        );
        // A change event is only ever of a final state.
        assert_eq!(Order::from_change_event(&pending.change_event()), None);
        for bad in [
            "",
            "o|",
            "o|7|c|u|x|P|1|2|",
            "o|7|c|u|1|P|1|2|p|extra",
            "r|7",
        ] {
            assert_eq!(Order::from_change_event(bad), None, "{bad:?}");
        }
        let r = Refund {
            payment_id: "p-2".into(),
            claim_id: o.claim_id.clone(),
            campaign_id: 7,
            amount_cents: 1998,
            reason: RefundReason::AlreadyPaid,
            recorded_at_ms: 5,
        };
        assert_eq!(Refund::from_event(&r.event()), Some(r));
        assert_eq!(Refund::from_event("r|7|p|c|1|why|5"), None);
    }

    #[test]
    fn ids_are_safe_for_the_records() {
        assert!(valid_id("p-1_x.y:z"));
        assert!(!valid_id(""));
        assert!(!valid_id("a|b"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
