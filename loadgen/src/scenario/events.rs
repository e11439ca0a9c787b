//! `stampede-loadgen events` (and `flash --with-events`): a crowd that looks before it
//! claims. Every user first reports behaviour events with `POST /v1/events` — mostly
//! `view`s, some `add_to_cart`s (`--types view:8,add_to_cart:2`), `--events-per-user`
//! of them in batches of `--event-batch` — and then claims as the flash crowd does. The
//! audit is the flash sale's plus the funnel's ([`crate::audit::funnel`]): the campaign's
//! `GET /v1/admin/campaigns/{id}/funnel`, polled until each event type shows exactly the
//! events answered `202`, and the claim stages what the claims were answered.
//!
//! Every user sends the same events in the same order (the types in the order given, each
//! as often as its weight's share of `--events-per-user`), so the bodies are made once per
//! batch before the run, and what a batch holds is known by its number. Only batches
//! answered `202` count as stored; a refused one (`429`, `503`, ...) stored nothing and is
//! reported by its status.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde_json::json;

use crate::audit::funnel::{TypeSent, STAGES};
use crate::client::{Call, Reply};
use crate::crowd::arrival_order;
use crate::driver::{self, RunConfig, Workload};
use crate::error::Result;
use crate::histogram::Percentiles;
use crate::report::{EventTypeCounts, EventsPhase, Report};
use crate::scenario::flash::{self, FlashArgs};
use crate::scenario::orders::OrderFlags;
use crate::scenario::{Common, Crowd};
use crate::wire::EventsReply;

/// `--types`' default: four views for every add to cart.
pub const DEFAULT_TYPES: &str = "view:8,add_to_cart:2";

/// The contract's most events in one `POST /v1/events`.
pub const MAX_BATCH: u64 = 100;

/// The contract's longest event type.
pub const MAX_TYPE_LEN: usize = 32;

/// What every event carries in `props`: where it came from.
const PROPS_REF: &str = "stampede-loadgen";

/// The event types the crowd reports, with their weights: `view:8,add_to_cart:2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMix(pub Vec<(String, u64)>);

impl EventMix {
    /// How many of `n` events each type gets: its weight's share, rounded by largest
    /// remainder (so the counts add up to `n`; ties go to the type named first).
    pub fn split(&self, n: u64) -> Vec<u64> {
        let total: u64 = self.0.iter().map(|(_, w)| w).sum::<u64>().max(1);
        let mut counts: Vec<u64> = self.0.iter().map(|(_, w)| n * w / total).collect();
        let mut by_remainder: Vec<usize> = (0..self.0.len()).collect();
        by_remainder.sort_by_key(|&i| std::cmp::Reverse(n * self.0[i].1 % total));
        let left = n - counts.iter().sum::<u64>();
        for &i in by_remainder.iter().take(left as usize) {
            counts[i] += 1;
        }
        counts
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(t, _)| t.as_str())
    }
}

/// Parses `--types`: comma-separated `type[:weight]` (weight 1 when left out). A type is
/// what the contract takes (1 to 32 of `a-z` and `_`), named once, and not one of the
/// engine's own funnel stages, whose counts it would blur.
pub fn parse_mix(s: &str) -> std::result::Result<EventMix, String> {
    let mut mix: Vec<(String, u64)> = Vec::new();
    for part in s.split(',') {
        let (name, weight) = match part.split_once(':') {
            Some((name, w)) => {
                let weight = w
                    .parse::<u64>()
                    .ok()
                    .filter(|w| (1..=1_000_000).contains(w))
                    .ok_or_else(|| {
                        format!("weight of {name:?} must be a whole number from 1 to 1000000")
                    })?;
                (name, weight)
            }
            None => (part, 1),
        };
        let valid = !name.is_empty()
            && name.len() <= MAX_TYPE_LEN
            && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !valid {
            return Err(format!(
                "{name:?} is not an event type: 1 to {MAX_TYPE_LEN} characters of a-z and _"
            ));
        }
        if STAGES.contains(&name) {
            return Err(format!(
                "{name:?} is one of the funnel's own stages ({}); pick another type",
                STAGES.join(", ")
            ));
        }
        if mix.iter().any(|(n, _)| n == name) {
            return Err(format!("{name:?} is named twice"));
        }
        mix.push((name.to_owned(), weight));
    }
    Ok(EventMix(mix))
}

/// The events phase's flags (`events`, and `flash` with `--with-events`).
#[derive(Args, Clone, Debug)]
pub struct EventFlags {
    /// Behaviour events each user reports before claiming.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub events_per_user: u64,

    /// Events per `POST /v1/events` request (1 to the contract's 100).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH))]
    pub event_batch: u64,

    /// Event types and their weights, `type[:weight],...`; each user sends the types in
    /// this order, each its share of --events-per-user.
    #[arg(long, default_value = DEFAULT_TYPES, value_parser = parse_mix)]
    pub types: EventMix,
}

impl Default for EventFlags {
    fn default() -> Self {
        EventFlags {
            events_per_user: 10,
            event_batch: 5,
            // The default parses.
            types: parse_mix(DEFAULT_TYPES).unwrap_or(EventMix(vec![("view".into(), 1)])),
        }
    }
}

/// `stampede-loadgen events`: a flash sale whose crowd reports events before claiming.
#[derive(Args, Clone, Debug)]
pub struct EventsArgs {
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

    /// How long to wait after the crowd for every accepted claim to be persisted, and
    /// then for the funnel to show the run's counts.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Spread the sale over this many buckets (cluster shards) of the store (1..=64).
    #[arg(long, default_value_t = 1)]
    pub buckets: u64,

    #[command(flatten)]
    pub events: EventFlags,
}

impl EventsArgs {
    /// The same sale as `flash` flags (without a payment window).
    pub fn sale(&self) -> FlashArgs {
        FlashArgs {
            common: self.common.clone(),
            crowd: self.crowd.clone(),
            stock: self.stock,
            per_user: self.per_user,
            quantity: self.quantity,
            drain_timeout: self.drain_timeout,
            buckets: self.buckets,
            orders: OrderFlags::default(),
        }
    }
}

/// Creates the sale; the crowd reports its events, then claims; audits the sale and the
/// funnel.
pub async fn run(args: &EventsArgs) -> Result<Report> {
    flash::run_sale(&args.sale(), Some(&args.events), "events").await
}

/// The batches every user sends, made once for the campaign.
pub struct Batches {
    /// Batch number -> its `POST /v1/events` body.
    bodies: Vec<Bytes>,
    /// Batch number -> events of each type (in [`EventMix`] order).
    kinds: Vec<Vec<u64>>,
    names: Vec<String>,
}

impl Batches {
    /// Every user's events for `campaign`: the types in order, each its share, cut into
    /// batches of `flags.event_batch`.
    pub fn new(flags: &EventFlags, campaign: u64) -> Self {
        let names: Vec<String> = flags.types.names().map(str::to_owned).collect();
        let mut sequence: Vec<usize> = Vec::new();
        for (kind, n) in flags
            .types
            .split(flags.events_per_user)
            .into_iter()
            .enumerate()
        {
            sequence.extend(std::iter::repeat_n(kind, n as usize));
        }
        let mut bodies = Vec::new();
        let mut kinds = Vec::new();
        for chunk in sequence.chunks(flags.event_batch.max(1) as usize) {
            let events: Vec<_> = chunk
                .iter()
                .map(|&k| {
                    json!({"type": names[k], "campaign_id": campaign, "props": {"ref": PROPS_REF}})
                })
                .collect();
            bodies.push(Bytes::from(json!({ "events": events }).to_string()));
            let mut count = vec![0u64; names.len()];
            for &k in chunk {
                count[k] += 1;
            }
            kinds.push(count);
        }
        Batches {
            bodies,
            kinds,
            names,
        }
    }

    /// Requests each user sends.
    pub fn per_user(&self) -> usize {
        self.bodies.len()
    }

    fn size(&self, batch: usize) -> u64 {
        self.kinds[batch].iter().sum()
    }
}

/// The crowd's event batches: request `i` is batch `i % batches` of the `i / batches`-th
/// user in arrival order.
struct EventCrowd {
    order: Vec<u32>,
    auth: Vec<HeaderValue>,
    method: Method,
    uri: Uri,
    batches: Batches,
}

/// What one worker saw of the batches' replies.
#[derive(Default)]
struct EventTally {
    /// Type -> events in batches answered 202.
    accepted: Vec<u64>,
    /// Type -> events in batches without a reply.
    unanswered: Vec<u64>,
    /// Type -> events in refused batches.
    refused: Vec<u64>,
    /// Status -> events in batches refused with it.
    refused_by_status: BTreeMap<u16, u64>,
    /// 202 replies whose `accepted` was not the batch's size.
    malformed: u64,
}

impl EventTally {
    fn add(into: &mut Vec<u64>, counts: &[u64]) {
        into.resize(counts.len(), 0);
        for (a, n) in into.iter_mut().zip(counts) {
            *a += n;
        }
    }
}

impl EventCrowd {
    fn batch(&self, i: usize) -> usize {
        i % self.batches.per_user()
    }
}

impl Workload for EventCrowd {
    type Tally = EventTally;

    fn request(&self, i: usize) -> Option<Call<'_>> {
        let user = *self.order.get(i / self.batches.per_user())? as usize;
        Some(Call {
            method: &self.method,
            uri: &self.uri,
            auth: Some(self.auth.get(user)?),
            headers: &[],
            body: &self.batches.bodies[self.batch(i)],
        })
    }

    fn observe(&self, i: usize, reply: &Reply, tally: &mut EventTally) {
        let batch = self.batch(i);
        let counts = &self.batches.kinds[batch];
        let status = reply.status.as_u16();
        if status == 202 {
            // A 202 means every event of the request was queued, whatever its body says;
            // a body that says otherwise breaks the contract and is reported.
            let told = serde_json::from_slice::<EventsReply>(&reply.body).map(|r| r.accepted);
            if told.ok() != Some(self.batches.size(batch)) {
                tally.malformed += 1;
            }
            EventTally::add(&mut tally.accepted, counts);
        } else {
            EventTally::add(&mut tally.refused, counts);
            *tally.refused_by_status.entry(status).or_default() += self.batches.size(batch);
        }
    }

    fn unanswered(&self, i: usize, tally: &mut EventTally) {
        EventTally::add(&mut tally.unanswered, &self.batches.kinds[self.batch(i)]);
    }
}

/// Sends every user's event batches for `campaign` (`auth[u]` is user `u`'s header) and
/// reports what was taken. `config` is the claim crowd's; the phase keeps its targets,
/// connections and arrival.
pub async fn send(
    flags: &EventFlags,
    campaign: u64,
    auth: Vec<HeaderValue>,
    seed: u64,
    config: &RunConfig,
) -> Result<EventsPhase> {
    let batches = Batches::new(flags, campaign);
    let users = auth.len();
    let config = RunConfig {
        label: "events".to_owned(),
        ..config.clone()
    };
    let workload = EventCrowd {
        order: arrival_order(users, 0.0, config.concurrency, seed),
        auth,
        method: Method::POST,
        uri: Uri::from_static("/v1/events"),
        batches,
    };
    let names = workload.batches.names.clone();
    let outcome = driver::run(workload, &config).await?;

    let mut all = EventTally::default();
    for t in outcome.tallies {
        EventTally::add(&mut all.accepted, &t.accepted);
        EventTally::add(&mut all.unanswered, &t.unanswered);
        EventTally::add(&mut all.refused, &t.refused);
        for (status, n) in t.refused_by_status {
            *all.refused_by_status.entry(status).or_default() += n;
        }
        all.malformed += t.malformed;
    }
    let at = |v: &Vec<u64>, k: usize| v.get(k).copied().unwrap_or(0);
    let per_type: BTreeMap<String, EventTypeCounts> = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let counts = EventTypeCounts {
                sent: at(&all.accepted, k) + at(&all.refused, k) + at(&all.unanswered, k),
                accepted: at(&all.accepted, k),
                refused: at(&all.refused, k),
                unanswered: at(&all.unanswered, k),
            };
            (name.clone(), counts)
        })
        .collect();
    let summary = &outcome.summary;
    let secs = summary.duration.as_secs_f64();
    Ok(EventsPhase {
        users: users as u64,
        per_user: flags.events_per_user,
        batch: flags.event_batch,
        requests: summary.requests(),
        sent: per_type.values().map(|c| c.sent).sum(),
        accepted: all.accepted.iter().sum(),
        refused: all
            .refused_by_status
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        unanswered: all.unanswered.iter().sum(),
        malformed: all.malformed,
        statuses: summary
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        per_type,
        duration_secs: secs,
        throughput_rps: if secs > 0.0 {
            summary.requests() as f64 / secs
        } else {
            0.0
        },
        latency_ms: Percentiles::of(&summary.latency),
    })
}

/// What the phase sent of each type, as the funnel audit reads it.
pub fn type_sent(phase: &EventsPhase) -> BTreeMap<String, TypeSent> {
    phase
        .per_type
        .iter()
        .map(|(k, c)| {
            let sent = TypeSent {
                accepted: c.accepted,
                unanswered: c.unanswered,
            };
            (k.clone(), sent)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(s: &str) -> EventMix {
        parse_mix(s).expect("a valid mix")
    }

    #[test]
    fn the_mix_parses_weights_and_refuses_what_the_engine_would() {
        assert_eq!(
            mix("view:8,add_to_cart:2").0,
            vec![("view".into(), 8), ("add_to_cart".into(), 2)]
        );
        assert_eq!(
            mix("view,share").0,
            vec![("view".into(), 1), ("share".into(), 1)]
        );
        for bad in [
            "",
            "View",
            "view:0",
            "view:x",
            "view,view",
            "claim",
            "accepted:2",
            "a-b",
            &"x".repeat(33),
        ] {
            assert!(parse_mix(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn the_split_adds_up_and_follows_the_weights() {
        assert_eq!(mix("view:8,add_to_cart:2").split(10), vec![8, 2]);
        assert_eq!(mix("view:8,add_to_cart:2").split(7), vec![6, 1]);
        assert_eq!(mix("view:8,add_to_cart:2").split(1), vec![1, 0]);
        assert_eq!(mix("a,b,c").split(4), vec![2, 1, 1]);
        for n in 0..50 {
            assert_eq!(mix("a:3,b:5,c:1").split(n).iter().sum::<u64>(), n);
        }
    }

    #[test]
    fn batches_hold_every_event_once_views_first() {
        let flags = EventFlags {
            events_per_user: 7,
            event_batch: 3,
            types: mix("view:8,add_to_cart:2"),
        };
        let batches = Batches::new(&flags, 17);
        assert_eq!(batches.per_user(), 3);
        assert_eq!(batches.kinds, vec![vec![3, 0], vec![3, 0], vec![0, 1]]);
        let last: serde_json::Value = serde_json::from_slice(&batches.bodies[2]).expect("json");
        assert_eq!(
            last,
            json!({"events": [{"type": "add_to_cart", "campaign_id": 17,
                               "props": {"ref": "stampede-loadgen"}}]})
        );
        let first: serde_json::Value = serde_json::from_slice(&batches.bodies[0]).expect("json");
        assert_eq!(first["events"].as_array().map(Vec::len), Some(3));
        assert_eq!(first["events"][0]["type"], "view");
    }
}
