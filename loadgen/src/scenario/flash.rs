//! `stampede-loadgen flash`: a flash sale's crowd, then the audit. With
//! `--payment-window` the claims are orders to pay, cancel or let expire
//! ([`crate::scenario::orders`]); with `--with-events` the crowd reports behaviour events
//! before it claims and the funnel is audited too ([`crate::scenario::events`]).

use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Args};
use serde_json::json;

use crate::audit::Rules;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenario::campaign::{self, campaign_name, Plan};
use crate::scenario::events::EventFlags;
use crate::scenario::orders::{self, OrderFlags};
use crate::scenario::{Common, Crowd};

/// `flash` on the command line: the sale's flags, and the events phase's behind
/// `--with-events` (kept out of [`FlashArgs`], which library callers build field by
/// field).
#[derive(Args, Clone, Debug)]
#[command(group(
    ArgGroup::new("event_flags")
        .args(["events_per_user", "event_batch", "types"])
        .multiple(true)
        .requires("with_events")
))]
pub struct FlashCommand {
    #[command(flatten)]
    pub sale: FlashArgs,

    /// Before claiming, every user reports behaviour events (`POST /v1/events`, as
    /// `stampede-loadgen events` does), and the audit adds the campaign's funnel.
    #[arg(long, conflicts_with = "payment_window")]
    pub with_events: bool,

    #[command(flatten)]
    pub events: EventFlags,
}

impl FlashCommand {
    /// Runs the sale, with the events phase when `--with-events` asks for it.
    pub async fn run(&self) -> Result<Report> {
        if self.with_events {
            run_sale(&self.sale, Some(&self.events), "flash").await
        } else {
            run(&self.sale).await
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct FlashArgs {
    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub crowd: Crowd,

    /// Units on sale.
    #[arg(long)]
    pub stock: u64,

    /// Units one user may hold.
    #[arg(long, default_value_t = 1)]
    pub per_user: u64,

    /// Units each claim asks for (the body `{"quantity": Q}`).
    #[arg(long, default_value_t = 1)]
    pub quantity: u64,

    /// How long to wait after the crowd for every accepted claim to be persisted.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Spread the sale over this many buckets (cluster shards) of the store (1..=64).
    #[arg(long, default_value_t = 1)]
    pub buckets: u64,

    #[command(flatten)]
    pub orders: OrderFlags,
}

/// Creates the flash sale, fires the crowd, audits.
pub async fn run(args: &FlashArgs) -> Result<Report> {
    run_sale(args, None, "flash").await
}

/// [`run`], with `events` reported by every user before the claims (not with a payment
/// window), under `scenario`'s name in the report.
pub async fn run_sale(
    args: &FlashArgs,
    events: Option<&EventFlags>,
    scenario: &'static str,
) -> Result<Report> {
    if args.stock == 0 || args.per_user == 0 || args.quantity == 0 {
        return Err(Error::Config(
            "--stock, --per-user and --quantity must be at least 1".into(),
        ));
    }
    if args.quantity > args.per_user {
        return Err(Error::Config(
            "--quantity cannot exceed --per-user: every claim would be refused".into(),
        ));
    }
    if let Some(window) = args.orders.payment_window {
        if events.is_some() {
            return Err(Error::Config(
                "the events phase does not go with --payment-window".into(),
            ));
        }
        return orders::run(args, window).await;
    }
    let plan = Plan {
        scenario,
        create: json!({
            "kind": "flash_sale",
            "name": campaign_name("flash"),
            "stock": args.stock,
            "per_user_limit": args.per_user,
            "buckets": args.buckets,
        }),
        claim_body: Bytes::from(json!({ "quantity": args.quantity }).to_string()),
        rules: Rules::FlashSale {
            stock: args.stock,
            per_user_limit: args.per_user,
        },
        events: events.cloned(),
    };
    campaign::run(&args.common, &args.crowd, args.drain_timeout, plan).await
}
