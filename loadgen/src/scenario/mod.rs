//! The scenarios, one file each, and the flags they share.
//!
//! - [`flash`] and [`red_packet`]: create a campaign, fire the crowd at it, audit
//!   (the shared flow is in [`campaign`]); a flash sale with a payment window goes on
//!   with its orders ([`orders`]);
//! - [`events`]: a flash sale whose crowd reports behaviour events before claiming, and
//!   the funnel's audit (also `flash --with-events`);
//! - [`signin`]: the morning sign-in rush;
//! - [`http`]: plain GET load on any URL.

pub mod campaign;
pub mod events;
pub mod flash;
pub mod http;
pub mod orders;
pub mod red_packet;
pub mod signin;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::client::ClientKind;
use crate::driver::Arrival;
use crate::error::{Error, Result};

/// The engine's default listen address (`docs/api.md`, `STAMPEDE_LISTEN`).
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:8080";

/// Connections for a crowd: enough that a burst really is simultaneous.
pub const DEFAULT_CROWD_CONCURRENCY: usize = 256;

/// Connections for plain HTTP load, as wrk's usual runs.
pub const DEFAULT_HTTP_CONCURRENCY: usize = 64;

/// Flags every load scenario takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Base URL of the engine; repeat it to drive several api instances at once (their
    /// connections are dealt out round-robin; campaigns are created and audited through
    /// the first).
    #[arg(long = "target", default_value = DEFAULT_TARGET)]
    pub target: Vec<String>,

    /// HS256 secret the engine verifies user tokens with.
    #[arg(long, env = "STAMPEDE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The engine's admin bearer token.
    #[arg(long, env = "STAMPEDE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Keep-alive connections, one worker each (default: 256 for crowds, 64 for http).
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// Runtime worker threads (default: one per core; 1 runs a single-threaded runtime).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Connection type for the load: `lean` (httparse on raw sockets, as fast as wrk) or
    /// `hyper` (hyper 1's client connection).
    #[arg(long, value_enum, default_value_t = ClientKind::Lean)]
    pub client: ClientKind,

    /// Per-request timeout (a request without a reply by then counts as an error).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Print one JSON report on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also draw latency percentiles and throughput per second into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// No live progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Common {
    /// The first target: where campaigns are created and audited.
    pub fn primary_target(&self) -> &str {
        self.target.first().map_or(DEFAULT_TARGET, String::as_str)
    }

    /// Every target, resolved.
    pub async fn targets(&self) -> Result<Vec<crate::client::Target>> {
        let mut out = Vec::new();
        for t in &self.target {
            out.push(crate::client::Target::resolve(t).await?);
        }
        if out.is_empty() {
            out.push(crate::client::Target::resolve(DEFAULT_TARGET).await?);
        }
        Ok(out)
    }
}

/// The engine's development defaults (`stampede serve` with no secrets configured uses
/// them, with a loud warning; see api/src/config.rs). The load generator falls back to the
/// same ones, with the same warning, so a local run needs no configuration.
pub const DEV_JWT_SECRET: &str = "stampede-development-jwt-secret";
pub const DEV_ADMIN_TOKEN: &str = "stampede-development-admin-token";

impl Common {
    pub fn jwt_secret(&self) -> String {
        configured_or_dev(
            self.jwt_secret.as_deref(),
            DEV_JWT_SECRET,
            "--jwt-secret / STAMPEDE_JWT_SECRET",
        )
    }

    pub fn admin_token(&self) -> String {
        configured_or_dev(
            self.admin_token.as_deref(),
            DEV_ADMIN_TOKEN,
            "--admin-token / STAMPEDE_ADMIN_TOKEN",
        )
    }
}

fn configured_or_dev(value: Option<&str>, dev: &str, flag: &str) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => {
            eprintln!(
                "stampede-loadgen: WARNING: {flag} is not set; using the engine's development default"
            );
            dev.to_owned()
        }
    }
}

/// Flags of the crowd scenarios (flash, red-packet, signin).
#[derive(Args, Clone, Debug)]
pub struct Crowd {
    /// Users in the crowd (ids `u000001`, `u000002`, ...).
    #[arg(long)]
    pub users: usize,

    /// Fraction of users who send a second request racing their first.
    #[arg(long, default_value_t = 0.1)]
    pub dup_fraction: f64,

    /// Seed of the arrival order's shuffle (same seed, same order).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Sustained open loop at this many requests per second instead of the burst.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Prefix of the user ids (default: `u`; sign-in: `u<unix time>-`, so a rerun on the
    /// same day meets fresh users).
    #[arg(long)]
    pub user_prefix: Option<String>,
}

impl Crowd {
    pub fn validate(&self) -> Result<()> {
        if self.users == 0 {
            return Err(Error::Config("--users must be at least 1".into()));
        }
        if u32::try_from(self.users).is_err() {
            return Err(Error::Config("--users must fit in 32 bits".into()));
        }
        if !(0.0..=1.0).contains(&self.dup_fraction) {
            return Err(Error::Config(
                "--dup-fraction must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    /// Burst by default; an open loop when `--rate` is given.
    pub fn arrival(&self) -> Arrival {
        match self.rate {
            Some(rate) => Arrival::Open {
                rate,
                duration: None,
            },
            None => Arrival::Burst,
        }
    }
}
