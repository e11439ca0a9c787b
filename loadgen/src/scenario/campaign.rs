//! The flow flash sales and red packets share: create the campaign, send the crowd,
//! wait for the queue to drain, export, audit. With an events phase
//! ([`crate::scenario::events`]) the crowd reports its behaviour events before it
//! claims, and the campaign's funnel is audited too.
//!
//! Tokens are minted before the campaign is created, so the campaign does not sit open
//! while the load generator is busy signing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};

use crate::admin::Admin;
use crate::audit::funnel::{self, audit_funnel, ClaimsSent, FunnelAudit};
use crate::audit::{audit_claims, ClaimsAudit, Rules, Seen};
use crate::client::{Call, Reply};
use crate::crowd::arrival_order;
use crate::driver::{self, RunConfig, Workload};
use crate::error::{Error, Result};
use crate::report::{Audit, EventsPhase, Report};
use crate::scenario::events::{self, EventFlags};
use crate::scenario::{Common, Crowd, DEFAULT_CROWD_CONCURRENCY};
use crate::tokens::{bearer_headers, user_ids};
use crate::wire::ClaimReply;

/// What distinguishes one campaign scenario from the other.
pub struct Plan {
    /// `flash` or `red-packet`, for the report.
    pub scenario: &'static str,
    /// The `POST /v1/campaigns` body.
    pub create: serde_json::Value,
    /// Every claim's body (empty: none).
    pub claim_body: Bytes,
    /// What the audit holds the engine to.
    pub rules: Rules,
    /// The behaviour events every user reports before claiming; `None`: none.
    pub events: Option<EventFlags>,
}

/// The crowd claiming one campaign.
pub struct ClaimCrowd {
    /// Request number -> user index.
    pub order: Vec<u32>,
    /// User index -> ready `Authorization` header.
    pub auth: Vec<HeaderValue>,
    pub method: Method,
    /// `/v1/campaigns/{id}/claims`.
    pub uri: Uri,
    pub body: Bytes,
}

impl Workload for ClaimCrowd {
    type Tally = Seen;

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

    fn observe(&self, _i: usize, reply: &Reply, seen: &mut Seen) {
        observe_claim(reply, seen);
    }

    fn unanswered(&self, _i: usize, seen: &mut Seen) {
        seen.unanswered += 1;
    }
}

/// Notes what a claim's reply says (used by every crowd that claims).
pub fn observe_claim(reply: &Reply, seen: &mut Seen) {
    match reply.status.as_u16() {
        201 => match serde_json::from_slice::<ClaimReply>(&reply.body) {
            Ok(r) => seen.accepted.push(r.claim),
            Err(_) => {
                // Accepted, but we cannot tell which claim: it may show up in the
                // export unacknowledged, which only unanswered requests may explain.
                seen.malformed += 1;
                seen.unanswered += 1;
            }
        },
        200 => seen.already_claimed += 1,
        _ => {}
    }
}

/// Merges the workers' findings.
pub fn merge_seen(tallies: Vec<Seen>) -> Seen {
    let mut all = Seen::default();
    for t in tallies {
        all.accepted.extend(t.accepted);
        all.already_claimed += t.already_claimed;
        all.unanswered += t.unanswered;
        all.malformed += t.malformed;
    }
    all
}

/// Runs the whole flow and returns the audited report.
pub async fn run(
    common: &Common,
    crowd: &Crowd,
    drain_timeout: Duration,
    plan: Plan,
) -> Result<Report> {
    crowd.validate()?;
    let targets = common.targets().await?;
    let target = targets[0].clone();
    let mut admin = Admin::new(target.clone(), &common.admin_token(), common.timeout)?;

    let prefix = crowd.user_prefix.clone().unwrap_or_else(|| "u".to_owned());
    let auth = mint(common.jwt_secret(), user_ids(&prefix, crowd.users)).await?;

    let concurrency = common
        .concurrency
        .unwrap_or(DEFAULT_CROWD_CONCURRENCY)
        .clamp(1, crowd.users.max(1));
    let order = arrival_order(crowd.users, crowd.dup_fraction, concurrency, crowd.seed);

    let created = Instant::now();
    let campaign = admin.create_campaign(&plan.create).await?;
    let uri = target.uri(&format!("/v1/campaigns/{}/claims", campaign.id))?;
    let config = RunConfig {
        targets,
        concurrency,
        arrival: crowd.arrival(),
        timeout: common.timeout,
        client: common.client,
        progress: !common.quiet,
        label: plan.scenario.to_owned(),
    };
    let events = match &plan.events {
        Some(flags) => {
            Some(events::send(flags, campaign.id, auth.clone(), crowd.seed, &config).await?)
        }
        None => None,
    };
    let workload = ClaimCrowd {
        order,
        auth,
        method: Method::POST,
        uri,
        body: plan.claim_body,
    };
    let outcome = driver::run(workload, &config).await?;
    let seen = merge_seen(outcome.tallies);

    // Once the crowd has run, a failing audit step must not swallow the measurements:
    // it becomes a failed audit in an otherwise complete report.
    let evidence = async {
        let (stats, drained) = admin.wait_for_drain(campaign.id, drain_timeout).await?;
        let export = admin.export(campaign.id).await?;
        Ok::<_, Error>((stats, drained, export))
    };
    let audit = match evidence.await {
        Ok((stats, drained, export)) => {
            audit_claims(campaign.id, &plan.rules, &seen, &stats, &export, drained)
        }
        Err(e) => ClaimsAudit {
            accepted: seen.accepted.len() as u64,
            already_claimed: seen.already_claimed,
            unanswered: seen.unanswered,
            violations: vec![format!("the audit could not run: {e}")],
            ..ClaimsAudit::default()
        },
    };
    let audit = match &events {
        Some(phase) => {
            let claims =
                ClaimsSent::from_statuses(&outcome.summary.statuses, outcome.summary.error_count());
            let f = audit_events_funnel(
                &mut admin,
                campaign.id,
                created,
                drain_timeout,
                phase,
                &claims,
            )
            .await;
            audit.with_funnel(f)
        }
        None => audit,
    };

    let mut report = Report::new(plan.scenario, &config, &outcome.summary);
    report.campaign_id = Some(campaign.id);
    report.audit = Some(Audit::Claims(audit));
    report.events = events;
    Ok(report)
}

/// Polls the campaign's funnel (over every minute since `created`) until it shows what
/// the events phase and the claims did, or counts more than they did, for at most
/// `timeout`, and audits the last read.
/// A funnel that cannot be read fails the audit, not the run.
pub async fn audit_events_funnel(
    admin: &mut Admin,
    campaign: u64,
    created: Instant,
    timeout: Duration,
    phase: &EventsPhase,
    claims: &ClaimsSent,
) -> FunnelAudit {
    let want = funnel::expected(&events::type_sent(phase), claims);
    let read = admin
        .wait_for_funnel(
            campaign,
            created,
            timeout,
            |seen| funnel::settled(&want, seen),
            |seen| funnel::overshot(&want, seen),
        )
        .await;
    match read {
        Ok((seen, read)) => audit_funnel(&want, &seen, read, phase.malformed),
        Err(e) => FunnelAudit {
            violations: vec![format!("the funnel could not be read: {e}")],
            ..FunnelAudit::default()
        },
    }
}

/// Mints every user's bearer header off the async threads (a big crowd is seconds of
/// signing).
pub async fn mint(secret: String, users: Vec<String>) -> Result<Vec<HeaderValue>> {
    tokio::task::spawn_blocking(move || bearer_headers(&secret, &users))
        .await
        .map_err(|_| Error::Config("token minting panicked".into()))?
}

/// A campaign name that tells runs apart in the engine's lists.
pub fn campaign_name(scenario: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("stampede-loadgen {scenario} {secs}")
}
