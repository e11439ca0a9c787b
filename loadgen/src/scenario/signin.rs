//! `stampede-loadgen signin`: the morning rush on `POST /v1/signin`, with racing
//! duplicates; audited by counting each user's 201s (points must be awarded once a day).

use std::collections::HashMap;

use bytes::Bytes;
use clap::Args;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};

use crate::audit::audit_signin;
use crate::client::{Call, Reply};
use crate::crowd::arrival_order;
use crate::driver::{self, RunConfig, Workload};
use crate::error::{Error, Result};
use crate::report::{Audit, Report};
use crate::scenario::{Common, Crowd, DEFAULT_CROWD_CONCURRENCY};
use crate::tokens::{bearer_headers, user_ids};

#[derive(Args, Clone, Debug)]
pub struct SigninArgs {
    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub crowd: Crowd,
}

/// The crowd signing in.
struct SigninCrowd {
    order: Vec<u32>,
    auth: Vec<HeaderValue>,
    method: Method,
    uri: Uri,
    /// Sign-in takes no body.
    body: Bytes,
}

/// One worker's findings: 201s per user (sparse: a worker sees a slice of the crowd).
#[derive(Default)]
struct Tally {
    created: HashMap<u32, u32>,
    already: u64,
    unanswered: u64,
}

impl Workload for SigninCrowd {
    type Tally = Tally;

    fn request(&self, i: usize) -> Option<Call<'_>> {
        let user = *self.order.get(i)? as usize;
        Some(Call {
            method: &self.method,
            uri: &self.uri,
            auth: Some(self.auth.get(user)?),
            headers: &[],
            body: &self.body,
        })
    }

    fn observe(&self, i: usize, reply: &Reply, tally: &mut Tally) {
        match reply.status.as_u16() {
            201 => {
                if let Some(&user) = self.order.get(i) {
                    *tally.created.entry(user).or_default() += 1;
                }
            }
            200 => tally.already += 1,
            _ => {}
        }
    }

    fn unanswered(&self, _i: usize, tally: &mut Tally) {
        tally.unanswered += 1;
    }
}

/// A user prefix unique to this run, so a second rush on the same day meets users who
/// have not signed in yet.
fn fresh_prefix() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("u{secs}-")
}

/// Fires the sign-in rush and audits it.
pub async fn run(args: &SigninArgs) -> Result<Report> {
    let crowd = &args.crowd;
    crowd.validate()?;
    let targets = args.common.targets().await?;
    let target = targets[0].clone();
    let secret = args.common.jwt_secret();
    let prefix = crowd.user_prefix.clone().unwrap_or_else(fresh_prefix);
    let users = user_ids(&prefix, crowd.users);
    let auth = tokio::task::spawn_blocking(move || bearer_headers(&secret, &users))
        .await
        .map_err(|_| Error::Config("token minting panicked".into()))??;

    let concurrency = args
        .common
        .concurrency
        .unwrap_or(DEFAULT_CROWD_CONCURRENCY)
        .clamp(1, crowd.users);
    let config = RunConfig {
        targets,
        concurrency,
        arrival: crowd.arrival(),
        timeout: args.common.timeout,
        client: args.common.client,
        progress: !args.common.quiet,
        label: "signin".to_owned(),
    };
    let workload = SigninCrowd {
        order: arrival_order(crowd.users, crowd.dup_fraction, concurrency, crowd.seed),
        auth,
        method: Method::POST,
        uri: target.uri("/v1/signin")?,
        body: Bytes::new(),
    };
    let outcome = driver::run(workload, &config).await?;

    let mut created = vec![0u32; crowd.users];
    let (mut already, mut unanswered) = (0, 0);
    for tally in outcome.tallies {
        for (user, n) in tally.created {
            if let Some(slot) = created.get_mut(user as usize) {
                *slot += n;
            }
        }
        already += tally.already;
        unanswered += tally.unanswered;
    }
    let mut report = Report::new("signin", &config, &outcome.summary);
    report.audit = Some(Audit::Signin(audit_signin(&created, already, unanswered)));
    Ok(report)
}
