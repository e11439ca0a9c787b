//! `stampede-loadgen red-packet`: a red packet's crowd, then the audit (including that the
//! packets add up to the total).

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
pub struct RedPacketArgs {
    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub crowd: Crowd,

    /// The sum split into packets, in cents.
    #[arg(long)]
    pub total_cents: u64,

    /// Number of packets.
    #[arg(long)]
    pub count: u64,

    /// Smallest packet, in cents.
    #[arg(long, default_value_t = 1)]
    pub min_cents: u64,

    /// How long to wait after the crowd for every accepted claim to be persisted.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Spread the packets over this many buckets (cluster shards) of the store (1..=64).
    #[arg(long, default_value_t = 1)]
    pub buckets: u64,
}

/// Creates the red packet, fires the crowd, audits.
pub async fn run(args: &RedPacketArgs) -> Result<Report> {
    if args.count == 0 || args.min_cents == 0 {
        return Err(Error::Config(
            "--count and --min-cents must be at least 1".into(),
        ));
    }
    if args.count.saturating_mul(args.min_cents) > args.total_cents {
        return Err(Error::Config(
            "--total-cents must be at least --count x --min-cents".into(),
        ));
    }
    let plan = Plan {
        scenario: "red-packet",
        create: json!({
            "kind": "red_packet",
            "name": campaign_name("red-packet"),
            "total_cents": args.total_cents,
            "count": args.count,
            "min_cents": args.min_cents,
            "buckets": args.buckets,
        }),
        // A red-packet claim takes no quantity: no body at all.
        claim_body: Bytes::new(),
        rules: Rules::RedPacket {
            count: args.count,
            total_cents: args.total_cents,
            min_cents: args.min_cents,
        },
        events: None,
    };
    campaign::run(&args.common, &args.crowd, args.drain_timeout, plan).await
}
