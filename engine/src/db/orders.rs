//! Orders, their ledger of transitions and the refunds (see [`crate::order`]).
//!
//! The workers write them from the queue, idempotently and in any order: a claim opens
//! its order row as `pending_payment` unless the row is there; an order's change sets
//! its final state unless a final state is set (the store decides exactly one per order,
//! so whatever arrives twice writes the same). The ledger and the refunds skip rows
//! already there. Each dialect spells "unless it is there" its own way: PostgreSQL and
//! SQLite `ON CONFLICT`, MySQL `INSERT IGNORE` and `ON DUPLICATE KEY UPDATE`.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::{timings, Database};
use crate::error::Result;
use crate::order::{Order, OrderCounts, OrderStatus, Refund, RefundReason};

/// Rows per multi-row statement (9 placeholders a row, far under every limit).
const ROWS: usize = 1_000;

/// What one batch of the queue changes in the order tables.
#[derive(Debug, Default)]
pub struct OrderWrites<'a> {
    /// Orders of accepted claims, pending.
    pub opened: Vec<Order>,
    /// Orders that reached their final state.
    pub closed: Vec<&'a Order>,
    pub refunds: Vec<&'a Refund>,
}

impl OrderWrites<'_> {
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.closed.is_empty() && self.refunds.is_empty()
    }
}

/// The upsert spellings of one dialect.
struct Dialect {
    /// `INSERT` that skips a row whose key is there: its head and its tail.
    insert_ignore: &'static str,
    ignore_tail: &'static str,
    /// The tail of the final-state upsert of `orders`.
    close_tail: &'static str,
}

const STANDARD: Dialect = Dialect {
    insert_ignore: "INSERT INTO",
    ignore_tail: " ON CONFLICT DO NOTHING",
    close_tail: " ON CONFLICT (campaign_id, claim_id) DO UPDATE SET status = excluded.status, \
                 closed_at_ms = excluded.closed_at_ms, payment_id = excluded.payment_id \
                 WHERE orders.status = 'pending_payment'",
};

/// MySQL evaluates the assignments left to right, each seeing the ones before: the
/// status, which the others test, goes last.
const MYSQL: Dialect = Dialect {
    insert_ignore: "INSERT IGNORE INTO",
    ignore_tail: "",
    close_tail: " ON DUPLICATE KEY UPDATE \
                 closed_at_ms = IF(status = 'pending_payment', VALUES(closed_at_ms), closed_at_ms), \
                 payment_id = IF(status = 'pending_payment', VALUES(payment_id), payment_id), \
                 status = IF(status = 'pending_payment', VALUES(status), status)",
};

const ORDER_COLUMNS: &str =
    "campaign_id, claim_id, user_id, quantity, status, pay_by_ms, closed_at_ms, payment_id";

/// Writes `w` in one transaction of multi-row statements.
macro_rules! write_orders {
    ($pool:expr, $db:ty, $d:expr, $w:expr) => {{
        let (pool, d, w) = ($pool, $d, $w);
        let mut tx = pool.begin().await?;
        for (orders, head, tail) in [
            (
                w.opened.iter().collect::<Vec<&Order>>(),
                d.insert_ignore,
                d.ignore_tail,
            ),
            (w.closed.clone(), "INSERT INTO", d.close_tail),
        ] {
            for chunk in orders.chunks(ROWS) {
                let mut q: QueryBuilder<$db> =
                    QueryBuilder::new(format!("{head} orders ({ORDER_COLUMNS}) "));
                q.push_values(chunk, |mut row, o| {
                    row.push_bind(o.campaign_id as i64)
                        .push_bind(o.claim_id.as_str())
                        .push_bind(o.user_id.as_str())
                        .push_bind(o.quantity as i64)
                        .push_bind(o.status.as_str())
                        .push_bind(o.pay_by_ms)
                        .push_bind(o.closed_at_ms)
                        .push_bind(o.payment_id.as_deref());
                });
                q.push(tail);
                q.build().execute(&mut *tx).await?;
                let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                    "{} order_transitions (campaign_id, claim_id, status, at_ms, payment_id) ",
                    d.insert_ignore
                ));
                q.push_values(chunk, |mut row, o| {
                    row.push_bind(o.campaign_id as i64)
                        .push_bind(o.claim_id.as_str())
                        .push_bind(o.status.as_str())
                        .push_bind(o.closed_at_ms.unwrap_or(o.pay_by_ms))
                        .push_bind(o.payment_id.as_deref());
                });
                q.push(d.ignore_tail);
                q.build().execute(&mut *tx).await?;
            }
        }
        for chunk in w.refunds.chunks(ROWS) {
            let mut q: QueryBuilder<$db> = QueryBuilder::new(format!(
                "{} refunds (payment_id, campaign_id, claim_id, amount_cents, reason, recorded_at_ms) ",
                d.insert_ignore
            ));
            q.push_values(chunk, |mut row, r| {
                row.push_bind(r.payment_id.as_str())
                    .push_bind(r.campaign_id as i64)
                    .push_bind(r.claim_id.as_str())
                    .push_bind(r.amount_cents as i64)
                    .push_bind(r.reason.as_str())
                    .push_bind(r.recorded_at_ms);
            });
            q.push(d.ignore_tail);
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<(), crate::error::EngineError>(())
    }};
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    campaign_id: i64,
    claim_id: String,
    user_id: String,
    quantity: i64,
    status: String,
    pay_by_ms: i64,
    closed_at_ms: Option<i64>,
    payment_id: Option<String>,
}

impl OrderRow {
    fn into_order(self) -> Option<Order> {
        Some(Order {
            status: OrderStatus::parse(&self.status)?,
            claim_id: self.claim_id,
            campaign_id: self.campaign_id as u64,
            user_id: self.user_id,
            quantity: self.quantity as u64,
            pay_by_ms: self.pay_by_ms,
            closed_at_ms: self.closed_at_ms,
            payment_id: self.payment_id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RefundRow {
    payment_id: String,
    campaign_id: i64,
    claim_id: String,
    amount_cents: i64,
    reason: String,
    recorded_at_ms: i64,
}

impl Database {
    /// Writes a batch's order changes in one transaction; what is there already is
    /// skipped (see the module's note).
    pub async fn persist_orders(&self, w: &OrderWrites<'_>) -> Result<()> {
        let _t = timings().start("persist_orders");
        if w.is_empty() {
            return Ok(());
        }
        match self {
            Database::Postgres(p) => write_orders!(p, sqlx::Postgres, &STANDARD, w),
            Database::Sqlite(p) => write_orders!(p, sqlx::Sqlite, &STANDARD, w),
            Database::Mysql(p) => {
                super::mysql::retrying_deadlocks("persist_orders", || async {
                    write_orders!(p, sqlx::MySql, &MYSQL, w)
                })
                .await
            }
        }
    }

    /// The columns of `orders` to select (MySQL's ids cast to text, see `claim_select`).
    fn order_select(&self) -> &'static str {
        match self {
            Database::Mysql(_) => {
                "campaign_id, CAST(claim_id AS CHAR) AS claim_id, CAST(user_id AS CHAR) AS user_id, \
                 quantity, CAST(status AS CHAR) AS status, pay_by_ms, closed_at_ms, \
                 CAST(payment_id AS CHAR) AS payment_id"
            }
            Database::Postgres(_) | Database::Sqlite(_) => ORDER_COLUMNS,
        }
    }

    /// The campaign's orders whose claim ids are in `from..=to` (a page of the export,
    /// or all of them for the rebuild with `""` and `"~"`), by claim id.
    pub async fn orders_between(
        &self,
        campaign_id: u64,
        from: &str,
        to: &str,
    ) -> Result<HashMap<String, Order>> {
        let _t = timings().start("orders_between");
        let sql = format!(
            "SELECT {} FROM orders WHERE campaign_id = $1 AND claim_id >= $2 AND claim_id <= $3",
            self.order_select()
        );
        let rows: Vec<OrderRow> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(campaign_id as i64)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(OrderRow::into_order)
            .map(|o| (o.claim_id.clone(), o))
            .collect())
    }

    /// One user's orders in a campaign, by claim id.
    pub async fn user_orders(
        &self,
        campaign_id: u64,
        user_id: &str,
    ) -> Result<HashMap<String, Order>> {
        let _t = timings().start("user_orders");
        let sql = format!(
            "SELECT {} FROM orders WHERE campaign_id = $1 AND user_id = $2",
            self.order_select()
        );
        let rows: Vec<OrderRow> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(campaign_id as i64)
            .bind(user_id)
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(OrderRow::into_order)
            .map(|o| (o.claim_id.clone(), o))
            .collect())
    }

    /// The campaign's persisted orders by state, and its refunds.
    pub async fn order_counts(&self, campaign_id: u64) -> Result<OrderCounts> {
        let _t = timings().start("order_counts");
        let status = match self {
            Database::Mysql(_) => "CAST(status AS CHAR)",
            _ => "status",
        };
        let sql = format!(
            "SELECT {status} AS status, COUNT(*) AS n FROM orders WHERE campaign_id = $1 GROUP BY status"
        );
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(campaign_id as i64)
            .fetch_all(p)
            .await)?;
        let mut c = OrderCounts::default();
        for (s, n) in rows {
            let n = n as u64;
            match OrderStatus::parse(&s) {
                Some(OrderStatus::Pending) => c.pending_orders = n,
                Some(OrderStatus::Paid) => c.paid_orders = n,
                Some(OrderStatus::Expired) => c.expired_orders = n,
                Some(OrderStatus::Cancelled) => c.cancelled_orders = n,
                None => {}
            }
        }
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(&self.sql(
                "SELECT COUNT(*) FROM refunds WHERE campaign_id = $1"))
            .bind(campaign_id as i64)
            .fetch_one(p)
            .await)?;
        c.refunds_required = n as u64;
        Ok(c)
    }

    /// Refunds in payment-id order after `after`, at most `limit`.
    pub async fn refunds(&self, after: &str, limit: i64) -> Result<Vec<Refund>> {
        let _t = timings().start("refunds");
        let cols = match self {
            Database::Mysql(_) => {
                "CAST(payment_id AS CHAR) AS payment_id, campaign_id, CAST(claim_id AS CHAR) AS claim_id, \
                 amount_cents, CAST(reason AS CHAR) AS reason, recorded_at_ms"
            }
            _ => "payment_id, campaign_id, claim_id, amount_cents, reason, recorded_at_ms",
        };
        let sql = format!(
            "SELECT {cols} FROM refunds WHERE payment_id > $1 ORDER BY payment_id LIMIT $2"
        );
        let rows: Vec<RefundRow> = on_pool!(self, p => sqlx::query_as(&self.sql(&sql))
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(Refund {
                    reason: RefundReason::parse(&r.reason)?,
                    payment_id: r.payment_id,
                    campaign_id: r.campaign_id as u64,
                    claim_id: r.claim_id,
                    amount_cents: r.amount_cents as u64,
                    recorded_at_ms: r.recorded_at_ms,
                })
            })
            .collect())
    }
}
