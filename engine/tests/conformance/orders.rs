//! The order cases of the conformance suite (invariant 7): pay, cancel and expire of an
//! order race and exactly one wins, in one atomic step in the store; units sold = paid +
//! pending at every moment; restocked units sell again; a losing payment is recorded
//! for refund once. Every case runs on the in-process store, one Redis and a cluster.

use std::collections::{HashMap, HashSet};

use stampede_engine::order::{
    CancelOutcome, Order, OrderStatus, PayOutcome, Payment, RefundReason,
};
use stampede_engine::queue::Event;
use stampede_engine::rebuild::live_state_with_orders;

use super::*;

/// The window of these sales, ms: orders are due at `NOW + WINDOW`.
const WINDOW: i64 = 10_000;
const PRICE: u64 = 100;

fn windowed(id: u64, stock: u64, limit: u64) -> Campaign {
    Campaign {
        payment_window_secs: Some((WINDOW / 1_000) as u64),
        ..flash(id, stock, limit)
    }
}

fn payment(claim: &Claim, payment_id: &str) -> Payment {
    Payment {
        payment_id: payment_id.into(),
        claim_id: claim.id.clone(),
        amount_cents: claim.quantity * PRICE,
    }
}

/// The campaign's live counters (its state must be there).
async fn live(h: &Harness, campaign_id: u64) -> stampede_engine::campaign::LiveCounters {
    h.store
        .counters(campaign_id)
        .await
        .expect("counters")
        .expect("state")
}

/// Units sold = paid + pending units, and stock arithmetic, as the store says now.
async fn assert_units_add_up(h: &Harness, c: &Campaign, orders: &HashMap<String, Order>) {
    let k = live(h, c.id).await;
    assert_eq!(k.remaining + k.sold, c.total, "stock arithmetic: {k:?}");
    let counts = h.store.order_counts(c.id).await.expect("counts");
    let mut live = 0;
    let mut by_status: HashMap<OrderStatus, u64> = HashMap::new();
    for id in orders.keys() {
        let o = h
            .store
            .order(c.id, id)
            .await
            .expect("order")
            .expect("known");
        *by_status.entry(o.status).or_default() += 1;
        if !o.status.restocks() {
            live += o.quantity;
        }
    }
    assert_eq!(k.sold, live, "units sold = paid + pending units");
    assert_eq!(
        counts.pending_orders,
        by_status.get(&OrderStatus::Pending).copied().unwrap_or(0)
    );
    assert_eq!(
        counts.paid_orders,
        by_status.get(&OrderStatus::Paid).copied().unwrap_or(0)
    );
    assert_eq!(
        counts.expired_orders,
        by_status.get(&OrderStatus::Expired).copied().unwrap_or(0)
    );
    assert_eq!(
        counts.cancelled_orders,
        by_status.get(&OrderStatus::Cancelled).copied().unwrap_or(0)
    );
}

/// The order changes and refunds queued, by claim id.
fn changes(events: &[Delivery]) -> (HashMap<String, Vec<Order>>, Vec<String>) {
    let mut closed: HashMap<String, Vec<Order>> = HashMap::new();
    let mut refunds = Vec::new();
    for d in events {
        match &d.event {
            Event::Order(o) => closed
                .entry(o.claim_id.clone())
                .or_default()
                .push(o.clone()),
            Event::Refund(r) => refunds.push(r.payment_id.clone()),
            Event::Claim(_) | Event::Behaviour(_) => {}
        }
    }
    (closed, refunds)
}

async fn pay_cancel_and_expiry_race_and_exactly_one_wins(h: Harness) {
    let c = windowed(60, 120, 1);
    load(&h, &c).await;
    let outcomes = race(&h, 60, (0..200).map(|u| req(&format!("u{u}"), 1)).collect()).await;
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 120);
    let opened: HashMap<String, Order> = {
        let mut m = HashMap::new();
        for claim in &won {
            let o = h
                .store
                .order(60, &claim.id)
                .await
                .expect("order")
                .expect("opened");
            assert_eq!(
                (o.status, o.pay_by_ms),
                (OrderStatus::Pending, NOW + WINDOW)
            );
            m.insert(claim.id.clone(), o);
        }
        m
    };
    assert_units_add_up(&h, &c, &opened).await;
    // For every order at once: the same payment twice, a cancel, and an expiry sweep,
    // some just before the deadline and some at it.
    let mut tasks = Vec::new();
    for (i, claim) in won.iter().enumerate() {
        let at = if i % 2 == 0 {
            NOW + WINDOW - 1
        } else {
            NOW + WINDOW
        };
        for n in 0..2 {
            let (store, p) = (h.store.clone(), payment(claim, &format!("p-{i}")));
            tasks.push(tokio::spawn(async move {
                (
                    n,
                    store.pay(60, at, &p, PRICE).await.map(|o| format!("{o:?}")),
                )
            }));
        }
        let (store, claim) = (h.store.clone(), claim.clone());
        tasks.push(tokio::spawn(async move {
            let r = store.cancel(60, at, &claim.id, &claim.user_id).await;
            (2, r.map(|o| format!("{o:?}")))
        }));
        if i % 10 == 0 {
            let store = h.store.clone();
            tasks.push(tokio::spawn(async move {
                (
                    3,
                    store
                        .expire_due(60, at, 1_000)
                        .await
                        .map(|e| format!("{e:?}")),
                )
            }));
        }
    }
    for t in tasks {
        t.await.expect("task").1.expect("store call");
    }
    // Whatever the interleaving: each order closed once, the units add up.
    assert_units_add_up(&h, &c, &opened).await;
    let (closed, refunds) = changes(&drain(&h).await);
    let mut lost_payments = HashSet::new();
    for (i, claim) in won.iter().enumerate() {
        let o = h
            .store
            .order(60, &claim.id)
            .await
            .expect("order")
            .expect("known");
        assert_ne!(o.status, OrderStatus::Pending, "{o:?} was decided");
        assert_eq!(
            closed.get(&claim.id).map(Vec::len),
            Some(1),
            "{} closed once",
            claim.id
        );
        assert_eq!(
            closed[&claim.id][0], o,
            "the queued change is the final state"
        );
        if o.status != OrderStatus::Paid {
            lost_payments.insert(format!("p-{i}"));
        } else {
            assert_eq!(o.payment_id.as_deref(), Some(format!("p-{i}").as_str()));
        }
    }
    let refunded: HashSet<String> = refunds.iter().cloned().collect();
    assert_eq!(refunds.len(), refunded.len(), "each refund queued once");
    assert_eq!(
        refunded, lost_payments,
        "exactly the payments that lost are refunded"
    );
    let counts = h.store.order_counts(60).await.expect("counts");
    assert_eq!(counts.refunds_required, lost_payments.len() as u64);
}
conformance!(order_race, pay_cancel_and_expiry_race_and_exactly_one_wins);

async fn each_notification_gets_its_answer_and_changes_nothing_else(h: Harness) {
    let c = windowed(61, 10, 2);
    load(&h, &c).await;
    let a = accepted_on(h.store.as_ref(), 61, "alice").await;
    let b = accepted_on(h.store.as_ref(), 61, "bob").await;
    let before = h.store.counters(61).await.expect("counters");
    // A wrong amount, an unknown claim, another user's cancel: nothing moves.
    let mut wrong = payment(&a, "p-a");
    wrong.amount_cents += 1;
    assert_eq!(
        h.store.pay(61, NOW, &wrong, PRICE).await.expect("pay"),
        PayOutcome::WrongAmount(PRICE)
    );
    let mut unknown = payment(&a, "p-x");
    unknown.claim_id = "c61-0000009999".into();
    assert_eq!(
        h.store.pay(61, NOW, &unknown, PRICE).await.expect("pay"),
        PayOutcome::Unknown
    );
    assert_eq!(
        h.store.cancel(61, NOW, &a.id, "bob").await.expect("cancel"),
        CancelOutcome::Unknown
    );
    assert_eq!(h.store.counters(61).await.expect("counters"), before);
    // Paid; the same notification again is the same answer; another payment of it loses.
    let PayOutcome::Paid(paid) = h
        .store
        .pay(61, NOW + 5, &payment(&a, "p-a"), PRICE)
        .await
        .expect("pay")
    else {
        panic!("paid")
    };
    assert_eq!(
        (paid.closed_at_ms, paid.payment_id.as_deref()),
        (Some(NOW + 5), Some("p-a"))
    );
    assert_eq!(
        h.store
            .pay(61, NOW + 9, &payment(&a, "p-a"), PRICE)
            .await
            .expect("pay"),
        PayOutcome::Paid(paid.clone())
    );
    assert_eq!(
        h.store
            .pay(61, NOW + 9, &payment(&a, "p-a2"), PRICE)
            .await
            .expect("pay"),
        PayOutcome::Lost(paid.clone(), RefundReason::AlreadyPaid)
    );
    assert_eq!(
        h.store
            .cancel(61, NOW + 9, &a.id, "alice")
            .await
            .expect("cancel"),
        CancelOutcome::Order(paid.clone())
    );
    // Late by a millisecond: the order is past due, the payment is refunded.
    let lost = h
        .store
        .pay(61, NOW + WINDOW, &payment(&b, "p-b"), PRICE)
        .await
        .expect("pay");
    let PayOutcome::Lost(expired, RefundReason::OrderExpired) = lost else {
        panic!("late payment: {lost:?}")
    };
    assert_eq!(expired.status, OrderStatus::Expired);
    // Sweeping later finds nothing left to expire.
    assert_eq!(
        h.store
            .expire_due(61, NOW + WINDOW + 5, 100)
            .await
            .expect("sweep")
            .orders,
        0
    );
    let (closed, refunds) = changes(&drain(&h).await);
    assert_eq!(closed.len(), 2);
    assert_eq!(refunds, vec!["p-a2".to_string(), "p-b".to_string()]);
    let counts = h.store.order_counts(61).await.expect("counts");
    assert_eq!(
        (
            counts.paid_orders,
            counts.expired_orders,
            counts.pending_orders,
            counts.refunds_required
        ),
        (1, 1, 0, 2)
    );
}
conformance!(
    notifications,
    each_notification_gets_its_answer_and_changes_nothing_else
);

async fn expired_and_cancelled_units_sell_again(h: Harness) {
    let c = windowed(62, 3, 1);
    load(&h, &c).await;
    let first: Vec<Claim> = claim_each(&h, 62, &["a", "b", "c"]).await;
    assert_eq!(
        h.store.claim(62, NOW, req("d", 1)).await.expect("claim"),
        ClaimOutcome::SoldOut
    );
    // One cancels at once; the others expire.
    let cancelled = h
        .store
        .cancel(62, NOW + 1, &first[0].id, "a")
        .await
        .expect("cancel");
    assert!(matches!(cancelled, CancelOutcome::Order(ref o) if o.status == OrderStatus::Cancelled));
    let again = h
        .store
        .claim(62, NOW + 2, req("d", 1))
        .await
        .expect("claim");
    assert!(
        matches!(again, ClaimOutcome::Accepted(_)),
        "a cancelled unit sells again: {again:?}"
    );
    let swept = h
        .store
        .expire_due(62, NOW + WINDOW, 100)
        .await
        .expect("sweep");
    assert_eq!(swept.orders, 2);
    assert!(
        swept.restocked,
        "d's claim had taken the last unit: the sale was sold out"
    );
    // The users no longer hold their expired units: they may claim again.
    let back = h
        .store
        .claim(62, NOW + WINDOW + 1, req("b", 1))
        .await
        .expect("claim");
    assert!(matches!(back, ClaimOutcome::Accepted(_)), "{back:?}");
    let k = live(&h, 62).await;
    assert_eq!((k.remaining, k.sold), (1, 2));
    // Everything left expires: the whole stock is back.
    let swept = h
        .store
        .expire_due(62, NOW + 3 * WINDOW, 100)
        .await
        .expect("sweep");
    assert_eq!(swept.orders, 2);
    let k = live(&h, 62).await;
    assert_eq!((k.remaining, k.sold), (3, 0));
}
conformance!(restock, expired_and_cancelled_units_sell_again);

/// Claims `users` one by one, each accepted.
async fn claim_each(h: &Harness, campaign_id: u64, users: &[&str]) -> Vec<Claim> {
    let mut out = Vec::new();
    for u in users {
        out.push(accepted_on(h.store.as_ref(), campaign_id, u).await);
    }
    out
}

async fn a_bucketed_sales_orders_close_in_their_own_bucket(h: Harness) {
    let c = bucketed(windowed(63, 40, 1), 4);
    load(&h, &c).await;
    let outcomes = race(&h, 63, (0..60).map(|u| req(&format!("u{u}"), 1)).collect()).await;
    let won = accepted(&outcomes);
    assert_eq!(won.len(), 40);
    let mut orders = HashMap::new();
    for (i, claim) in won.iter().enumerate() {
        orders.insert(
            claim.id.clone(),
            h.store.order(63, &claim.id).await.expect("o").expect("o"),
        );
        if i % 2 == 0 {
            let p = h
                .store
                .pay(63, NOW + 1, &payment(claim, &format!("p{i}")), PRICE)
                .await;
            assert!(matches!(p, Ok(PayOutcome::Paid(_))), "{p:?}");
        }
    }
    assert_units_add_up(&h, &c, &orders).await;
    let swept = h
        .store
        .expire_due(63, NOW + WINDOW, 1_000)
        .await
        .expect("sweep");
    assert_eq!(swept.orders, 20);
    assert!(swept.restocked, "the sale had sold out");
    assert_units_add_up(&h, &c, &orders).await;
    let k = live(&h, 63).await;
    assert_eq!((k.remaining, k.sold), (20, 20));
    // The units back in any bucket sell to anyone (moved between buckets as needed).
    let later = race(
        &h,
        63,
        (100..130).map(|u| req(&format!("u{u}"), 1)).collect(),
    )
    .await;
    assert_eq!(accepted(&later).len(), 20);
}
conformance!(
    bucketed_orders,
    a_bucketed_sales_orders_close_in_their_own_bucket
);

async fn a_reload_keeps_every_order_and_its_deadline(h: Harness) {
    let c = bucketed(windowed(64, 10, 1), 2);
    load(&h, &c).await;
    let won = claim_each(&h, 64, &["a", "b", "c", "d"]).await;
    let PayOutcome::Paid(_) = h
        .store
        .pay(64, NOW + 1, &payment(&won[0], "pa"), PRICE)
        .await
        .expect("pay")
    else {
        panic!("paid")
    };
    let cancelled = h
        .store
        .cancel(64, NOW + 1, &won[1].id, "b")
        .await
        .expect("cancel");
    assert!(matches!(cancelled, CancelOutcome::Order(_)));
    // The database's view (the workers wrote every change), reloaded over the store.
    let mut orders = HashMap::new();
    for claim in &won {
        orders.insert(
            claim.id.clone(),
            h.store.order(64, &claim.id).await.expect("o").expect("o"),
        );
    }
    h.store
        .load(&live_state_with_orders(&c, &won, &orders, 0))
        .await
        .expect("reload");
    let k = live(&h, 64).await;
    assert_eq!((k.remaining, k.sold, k.claims), (7, 3, 4));
    let counts = h.store.order_counts(64).await.expect("counts");
    assert_eq!(
        (
            counts.paid_orders,
            counts.cancelled_orders,
            counts.pending_orders
        ),
        (1, 1, 2)
    );
    // The paid payment repeats its answer; the pending ones still come due.
    assert!(matches!(
        h.store
            .pay(64, NOW + 2, &payment(&won[0], "pa"), PRICE)
            .await
            .expect("pay"),
        PayOutcome::Paid(_)
    ));
    assert_eq!(
        h.store
            .expire_due(64, NOW + WINDOW, 100)
            .await
            .expect("sweep")
            .orders,
        2
    );
    let k = live(&h, 64).await;
    assert_eq!((k.remaining, k.sold), (9, 1));
    // b cancelled before the reload: they hold nothing and may claim again.
    let again = h
        .store
        .claim(64, NOW + WINDOW + 1, req("b", 1))
        .await
        .expect("claim");
    assert!(matches!(again, ClaimOutcome::Accepted(_)), "{again:?}");
}
conformance!(order_reload, a_reload_keeps_every_order_and_its_deadline);
