//! `stampede-loadgen flash --payment-window 5s`: a flash sale whose claims are orders that
//! must be paid within the window, and the audit of every order's one fate.
//!
//! The run, in order:
//! 1. tokens for both waves are minted, then the sale is created with
//!    `payment_window_secs` and `price_cents`, and the [`Sampler`] starts checking the
//!    stock arithmetic every 200 ms;
//! 2. the first wave: the crowd's burst of claims, as in a plain flash sale;
//! 3. every winner acts on its order at once ([`fate`], [`desk`]): `--pay-share` of them pay
//!    (some late, some twice with the same `payment_id`, a few with a second one), some of
//!    the rest cancel (a few while a payment races the cancel), the rest let it expire;
//! 4. the second wave: while units come back, fresh users claim them (and act on their
//!    orders with the same shares), until every window has passed (`pay_by` + the expiry
//!    grace + 1 s) with nothing left to claim, or the second wave's users run out;
//! 5. the engine settles (queue drained, nothing pending), then the export and the refunds
//!    are read and audited ([`crate::audit::orders`]) beside the usual claims audit.

pub mod desk;
pub mod fate;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use tokio::task::JoinSet;

use crate::admin::Admin;
use crate::audit::orders::{audit_orders, audit_samples, OrderRules, OrdersAudit, LATE_MARGIN};
use crate::audit::{audit_claims, ClaimsAudit, Rules, Seen};
use crate::crowd::arrival_order;
use crate::driver::{self, RunConfig};
use crate::error::{Error, Result};
use crate::histogram::{latency_histogram, record, Percentiles};
use crate::report::{Audit, PayPhase, Report, SecondWave};
use crate::sampler::{Sampler, Samples, SAMPLE_EVERY};
use crate::scenario::campaign::{self, campaign_name, merge_seen, observe_claim, ClaimCrowd};
use crate::scenario::flash::FlashArgs;
use crate::scenario::DEFAULT_CROWD_CONCURRENCY;
use crate::tokens::user_ids;
use crate::wire::{Claim, Stats};
use desk::{local_instant, Desk, Owners, Sent};

/// `--pay-share`'s default.
pub const DEFAULT_PAY_SHARE: f64 = 0.7;

/// `--price-cents`' default: what one unit costs, so that payments have an amount.
pub const DEFAULT_PRICE_CENTS: u64 = 1000;

/// The contract's bound on how late an unpaid order expires after `pay_by`.
pub const CONTRACT_EXPIRY_GRACE: Duration = Duration::from_secs(5);

/// How often the second wave looks at the stock.
const WAVE_TICK: Duration = Duration::from_millis(250);

/// Claims the second wave sends per unit it sees back (some race and lose: that is the
/// point of a crowd).
const CLAIMS_PER_UNIT: u64 = 2;

/// The second wave gives up after this many rounds in a row in which the engine said it
/// had units but accepted none of the claims for them.
const FRUITLESS_ROUNDS: u32 = 20;

/// The flags of a payment-window sale (all but `--payment-window` need it).
#[derive(Args, Clone, Debug)]
pub struct OrderFlags {
    /// Turn claims into orders that must be paid within this window (whole seconds, at
    /// least 1s; the contract's engine takes 10s to 86400s). Without it the sale is a
    /// plain flash sale.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub payment_window: Option<Duration>,

    /// Share of the winners who pay (some late, some twice, a few with a second payment);
    /// half of the rest cancel, the others let the order expire.
    #[arg(long, default_value_t = DEFAULT_PAY_SHARE, requires = "payment_window")]
    pub pay_share: f64,

    /// The engine's STAMPEDE_PAYMENT_SECRET, which signs the payment notifications.
    #[arg(long, env = "STAMPEDE_PAYMENT_SECRET", hide_env_values = true)]
    pub payment_secret: Option<String>,

    /// Price of one unit, in cents; a payment is price × quantity.
    #[arg(long, default_value_t = DEFAULT_PRICE_CENTS, requires = "payment_window")]
    pub price_cents: u64,

    /// Users in the second wave, who claim the units that come back (default: --users).
    #[arg(long, value_name = "USERS", requires = "payment_window")]
    pub second_wave: Option<usize>,

    /// How long after pay_by the engine may take to expire an unpaid order (the
    /// contract's 5s); a payment sent later than this plus 1s must be refused.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, requires = "payment_window")]
    pub expiry_grace: Duration,
}

impl Default for OrderFlags {
    fn default() -> Self {
        Self {
            payment_window: None,
            pay_share: DEFAULT_PAY_SHARE,
            payment_secret: None,
            price_cents: DEFAULT_PRICE_CENTS,
            second_wave: None,
            expiry_grace: CONTRACT_EXPIRY_GRACE,
        }
    }
}

impl OrderFlags {
    /// The window in whole seconds, the share and the secret, checked.
    fn validate(&self, window: Duration) -> Result<(u64, Vec<u8>)> {
        if window.subsec_nanos() != 0 || window.as_secs() == 0 {
            return Err(Error::Config(
                "--payment-window must be whole seconds, at least 1s".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.pay_share) {
            return Err(Error::Config("--pay-share must be between 0 and 1".into()));
        }
        let secret = match self.payment_secret.as_deref() {
            Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
            _ => {
                return Err(Error::Config(
                    "a payment secret is required with --payment-window: pass --payment-secret or set STAMPEDE_PAYMENT_SECRET".into(),
                ))
            }
        };
        Ok((window.as_secs(), secret))
    }
}

/// What the run did after the first wave's claims: the orders' requests, the second
/// wave's claims, and when every window has passed.
struct Orders {
    desk: Desk,
    owners: Owners,
    rng: StdRng,
    pay_share: f64,
    /// The latest `pay_by` + grace + margin of any order: the run goes on until then.
    settled_at: Instant,
    grace: Duration,
}

impl Orders {
    /// Plans and schedules what `winners` do with their orders.
    fn act(&mut self, winners: &[Claim], burst: bool) {
        let plan = fate::plan(winners.len(), self.pay_share, &mut self.rng);
        for (claim, fate) in winners.iter().zip(plan) {
            let owner = self.owners.get(&claim.user_id).cloned();
            self.desk.act(claim, fate, owner, burst, &mut self.rng);
            if let Some(pay_by) = claim.order.as_ref().and_then(|o| o.pay_by_time()) {
                let end = local_instant(pay_by) + self.grace + LATE_MARGIN;
                self.settled_at = self.settled_at.max(end);
            }
        }
    }
}

/// The distinct claims among `accepted`, in claim-id order (so the fates are the same
/// for the same claims whatever order the replies came in).
fn distinct(accepted: &[Claim]) -> Vec<Claim> {
    let mut seen = HashSet::new();
    let mut out: Vec<Claim> = accepted
        .iter()
        .filter(|c| seen.insert(c.id.clone()))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Runs the payment-window flash sale; `args.orders.payment_window` is set.
pub async fn run(args: &FlashArgs, window: Duration) -> Result<Report> {
    let (common, crowd, flags) = (&args.common, &args.crowd, &args.orders);
    let (window_secs, secret) = flags.validate(window)?;
    crowd.validate()?;
    let targets = common.targets().await?;
    let target = targets[0].clone();
    let admin_token = common.admin_token();
    let mut admin = Admin::new(target.clone(), &admin_token, common.timeout)?;

    // Both waves' tokens before the sale opens.
    let prefix = crowd.user_prefix.clone().unwrap_or_else(|| "u".to_owned());
    let second_users = flags.second_wave.unwrap_or(crowd.users);
    let mut users = user_ids(&prefix, crowd.users);
    users.extend(user_ids(&format!("{prefix}w2-"), second_users));
    let mut auth = campaign::mint(common.jwt_secret(), users.clone()).await?;
    let owners: Owners = users.into_iter().zip(auth.iter().cloned()).collect();
    let second_auth = auth.split_off(crowd.users);

    let concurrency = common
        .concurrency
        .unwrap_or(DEFAULT_CROWD_CONCURRENCY)
        .clamp(1, crowd.users.max(1));
    let order = arrival_order(crowd.users, crowd.dup_fraction, concurrency, crowd.seed);
    let rules = OrderRules {
        stock: args.stock,
        quantity: args.quantity,
        price_cents: flags.price_cents,
        expiry_grace: flags.expiry_grace,
    };

    let campaign = admin
        .create_campaign(&json!({
            "kind": "flash_sale",
            "name": campaign_name("flash"),
            "stock": args.stock,
            "per_user_limit": args.per_user,
            "buckets": args.buckets,
            "price_cents": flags.price_cents,
            "payment_window_secs": window_secs,
        }))
        .await?;
    let sampler = Sampler::start(
        Admin::new(target.clone(), &admin_token, common.timeout)?,
        campaign.id,
        SAMPLE_EVERY,
    );

    // The first wave, exactly as a plain flash sale's crowd.
    let claim_body = Bytes::from(json!({ "quantity": args.quantity }).to_string());
    let config = RunConfig {
        targets,
        concurrency,
        arrival: crowd.arrival(),
        timeout: common.timeout,
        client: common.client,
        progress: !common.quiet,
        label: "flash".to_owned(),
    };
    let workload = ClaimCrowd {
        order,
        auth,
        method: hyper::Method::POST,
        uri: target.uri(&format!("/v1/campaigns/{}/claims", campaign.id))?,
        body: claim_body.clone(),
    };
    let outcome = match driver::run(workload, &config).await {
        Ok(outcome) => outcome,
        Err(e) => {
            sampler.stop().await;
            return Err(e);
        }
    };
    let mut seen = merge_seen(outcome.tallies);

    // Every winner acts on its order; then the second wave claims what comes back.
    let mut orders = Orders {
        desk: Desk::new(
            target.clone(),
            common.timeout,
            concurrency,
            &secret,
            rules.amount_cents(),
            flags.expiry_grace,
            campaign.id,
        ),
        owners,
        rng: StdRng::seed_from_u64(crowd.seed),
        pay_share: flags.pay_share,
        settled_at: Instant::now(),
        grace: flags.expiry_grace,
    };
    orders.act(&distinct(&seen.accepted), true);
    let wave_start = Instant::now();
    let wave = second_wave(
        &mut orders,
        &sampler,
        &second_auth,
        &claim_body,
        args.quantity,
    )
    .await;
    let mut second_wave_report = SecondWave {
        users: second_users as u64,
        claims: wave.claims,
        accepted: wave.seen.accepted.len() as u64,
        duration_secs: 0.0,
    };
    let sent = orders.desk.finish().await;
    second_wave_report.duration_secs = wave_start.elapsed().as_secs_f64();
    merge_into(&mut seen, wave.seen);

    // The evidence, once the engine has settled; a failure here fails the audit, not the
    // report.
    let settle = settle(&mut admin, campaign.id, args.drain_timeout).await;
    let samples = sampler.stop().await;
    let attempts: Vec<_> = sent.iter().map(|s| s.attempt.clone()).collect();
    let audit = match settle {
        Ok(evidence) => audit_all(
            campaign.id,
            args,
            &rules,
            &seen,
            &attempts,
            &samples,
            &evidence,
        ),
        Err(e) => ClaimsAudit {
            accepted: seen.accepted.len() as u64,
            already_claimed: seen.already_claimed,
            unanswered: seen.unanswered,
            violations: vec![format!("the audit could not run: {e}")],
            ..ClaimsAudit::default()
        },
    };

    let mut report = Report::new("flash", &config, &outcome.summary);
    report.campaign_id = Some(campaign.id);
    report.audit = Some(Audit::Claims(audit));
    report.pay_phase = Some(pay_phase(&sent));
    report.second_wave = Some(second_wave_report);
    Ok(report)
}

/// What the second wave saw.
struct Wave {
    seen: Seen,
    claims: u64,
}

/// Fresh users claim the units that come back, until every window has passed with
/// nothing left to claim (or the users run out, or the engine keeps refusing units it
/// says it has).
async fn second_wave(
    orders: &mut Orders,
    sampler: &Sampler,
    auth: &[hyper::header::HeaderValue],
    body: &Bytes,
    quantity: u64,
) -> Wave {
    let mut wave = Wave {
        seen: Seen::default(),
        claims: 0,
    };
    let mut next_user = 0usize;
    let mut fruitless = 0u32;
    // Only samples taken after the last round's replies tell the stock left by then; the
    // one in flight during the round may predate it.
    let mut fresh_after = 0u64;
    loop {
        let latest = sampler.latest().filter(|s| s.0 > fresh_after + 1);
        let claimable = latest.map_or(0, |(_, stats)| stats.remaining / quantity.max(1));
        let users_left = auth.len() - next_user;
        if claimable > 0 && users_left > 0 && fruitless < FRUITLESS_ROUNDS {
            let n = usize::try_from(claimable.saturating_mul(CLAIMS_PER_UNIT))
                .unwrap_or(usize::MAX)
                .min(users_left)
                .min(desk::POOL * 4);
            let mut round = JoinSet::new();
            for user in &auth[next_user..next_user + n] {
                round.spawn(orders.desk.claim(user.clone(), body.clone()));
            }
            next_user += n;
            wave.claims += n as u64;
            let before = wave.seen.accepted.len();
            while let Some(joined) = round.join_next().await {
                match joined {
                    Ok(Ok(reply)) => observe_claim(&reply, &mut wave.seen),
                    _ => wave.seen.unanswered += 1,
                }
            }
            let winners = distinct(&wave.seen.accepted[before..]);
            fruitless = if winners.is_empty() { fruitless + 1 } else { 0 };
            orders.act(&winners, false);
            fresh_after = sampler.latest().map_or(0, |(seq, _)| seq);
        } else if Instant::now() >= orders.settled_at && orders.desk.outstanding() == 0 {
            return wave;
        }
        tokio::time::sleep(WAVE_TICK).await;
    }
}

fn merge_into(all: &mut Seen, more: Seen) {
    all.accepted.extend(more.accepted);
    all.already_claimed += more.already_claimed;
    all.unanswered += more.unanswered;
    all.malformed += more.malformed;
}

/// What the engine holds once it has settled.
struct Evidence {
    stats: Stats,
    drained: bool,
    export: Vec<Claim>,
    refunds: Vec<crate::wire::Refund>,
}

/// Waits for the queue to drain and no order to be pending, then reads the export and the
/// refunds.
async fn settle(admin: &mut Admin, campaign: u64, timeout: Duration) -> Result<Evidence> {
    let (stats, drained) = admin
        .wait_until(campaign, timeout, |s| {
            s.drained() && s.pending_orders.unwrap_or(0) == 0
        })
        .await?;
    let export = admin.export(campaign).await?;
    let refunds = admin.refunds(campaign).await?;
    Ok(Evidence {
        stats,
        drained,
        export,
        refunds,
    })
}

/// The claims audit (counting only the units orders still hold) joined with the order
/// audit and the samples' checks.
fn audit_all(
    campaign: u64,
    args: &FlashArgs,
    rules: &OrderRules,
    seen: &Seen,
    attempts: &[crate::audit::orders::Attempt],
    samples: &Samples,
    evidence: &Evidence,
) -> ClaimsAudit {
    let claims = audit_claims(
        campaign,
        &Rules::FlashSale {
            stock: args.stock,
            per_user_limit: args.per_user,
        },
        seen,
        &evidence.stats,
        &evidence.export,
        evidence.drained,
    );
    let (mut orders, mut violations): (OrdersAudit, Vec<String>) = audit_orders(
        rules,
        &seen.accepted,
        attempts,
        &evidence.stats,
        &evidence.export,
        &evidence.refunds,
    );
    let (failed, sample_violations) = audit_samples(rules, &samples.stats);
    orders.samples = samples.stats.len() as u64;
    orders.failed_samples = failed;
    orders.sample_errors = samples.errors;
    violations.extend(sample_violations);
    claims.with_orders(orders, violations)
}

/// The first wave's payment burst, measured.
fn pay_phase(sent: &[Sent]) -> PayPhase {
    let burst: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.burst && matches!(s.attempt.act, crate::audit::orders::Act::Pay { .. }))
        .collect();
    let (Some(first), Some(last)) = (
        burst.iter().map(|s| s.sent).min(),
        burst.iter().map(|s| s.done).max(),
    ) else {
        return PayPhase::default();
    };
    let secs = last.saturating_duration_since(first).as_secs_f64();
    let mut latency = latency_histogram(3);
    let mut answered = 0u64;
    for s in &burst {
        if s.attempt.status.is_some() {
            answered += 1;
            let micros = s.done.saturating_duration_since(s.sent).as_micros();
            record(&mut latency, u64::try_from(micros).unwrap_or(u64::MAX));
        }
    }
    let paid = burst
        .iter()
        .filter(|s| s.attempt.status == Some(200))
        .count() as u64;
    let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    PayPhase {
        notifications: burst.len() as u64,
        paid,
        duration_secs: secs,
        notifications_per_sec: rate(answered),
        paid_per_sec: rate(paid),
        latency_ms: Percentiles::of(&latency),
    }
}
