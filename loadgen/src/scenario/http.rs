//! `stampede-loadgen http`: plain GET load on one URL — the yardstick against `wrk`, and
//! the probe `capacity --probe` uses to measure what one instance holds.

use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use hyper::{Method, Uri};

use crate::client::{Call, ClientKind, Target};
use crate::driver::{self, Arrival, RunConfig, Workload};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenario::{Common, DEFAULT_HTTP_CONCURRENCY};

#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    #[command(flatten)]
    pub common: Common,

    /// The URL to GET (default: the target's /healthz).
    #[arg(long)]
    pub url: Option<String>,

    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Open loop at this many requests per second (latency from the intended send time)
    /// instead of the closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
}

/// The same GET, forever.
struct Get {
    method: Method,
    uri: Uri,
    body: Bytes,
}

impl Workload for Get {
    type Tally = ();

    fn request(&self, _i: usize) -> Option<Call<'_>> {
        Some(Call {
            method: &self.method,
            uri: &self.uri,
            auth: None,
            headers: &[],
            body: &self.body,
        })
    }
}

/// What an http run needs, without clap (the capacity probe builds one too).
#[derive(Clone, Debug)]
pub struct HttpLoad {
    pub url: String,
    pub concurrency: usize,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub client: ClientKind,
    pub progress: bool,
}

/// Runs plain GET load and reports it.
pub async fn load(spec: &HttpLoad) -> Result<Report> {
    if spec.duration.is_zero() {
        return Err(Error::Config("--duration must be positive".into()));
    }
    let target = Target::resolve(&spec.url).await?;
    let uri = target.uri(&target.path)?;
    let config = RunConfig {
        targets: vec![target],
        concurrency: spec.concurrency,
        arrival: match spec.rate {
            Some(rate) => Arrival::Open {
                rate,
                duration: Some(spec.duration),
            },
            None => Arrival::Closed {
                duration: spec.duration,
            },
        },
        timeout: spec.timeout,
        client: spec.client,
        progress: spec.progress,
        label: "http".to_owned(),
    };
    let get = Get {
        method: Method::GET,
        uri,
        body: Bytes::new(),
    };
    let outcome = driver::run(get, &config).await?;
    Ok(Report::new("http", &config, &outcome.summary))
}

/// `stampede-loadgen http`.
pub async fn run(args: &HttpArgs) -> Result<Report> {
    let url = args.url.clone().unwrap_or_else(|| {
        format!(
            "{}/healthz",
            args.common.primary_target().trim_end_matches('/')
        )
    });
    load(&HttpLoad {
        url,
        concurrency: args.common.concurrency.unwrap_or(DEFAULT_HTTP_CONCURRENCY),
        duration: args.duration,
        rate: args.rate,
        timeout: args.common.timeout,
        client: args.common.client,
        progress: !args.common.quiet,
    })
    .await
}
