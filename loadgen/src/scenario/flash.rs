//! `stampede-loadgen flash`: a flash sale's crowd, then the audit.

use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use serde_json::json;

use crate::audit::Rules;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenario::campaign::{self, campaign_name, Plan};
use crate::scenario::{Common, Crowd};

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
}

/// Creates the flash sale, fires the crowd, audits.
pub async fn run(args: &FlashArgs) -> Result<Report> {
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
    let plan = Plan {
        scenario: "flash",
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
    };
    campaign::run(&args.common, &args.crowd, args.drain_timeout, plan).await
}
