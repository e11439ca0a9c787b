//! Risk rules: signals that a claim comes from a bot or a farm of accounts, each
//! configured to refuse the claim (`403 risk_rejected`) or only to flag it (a log line
//! and `stampede_risk_refusals_total{rule, action="flag"}`), or turned off.
//!
//! | rule | signal | default |
//! | --- | --- | --- |
//! | `device_users` | distinct users claiming from one `X-Device-Id` within the window | `refuse:10` |
//! | `ip_users` | distinct users claiming from one address within the window | `flag:200` |
//! | `account_age` | the token's `account_created_at` is fewer than N seconds ago | `flag:3600` |
//! | `ticket_too_fast` | the claim arrives fewer than N ms after its ticket was handed out | `flag:150` |
//!
//! The defaults refuse only what no person does (ten accounts on one phone in a
//! minute) and flag the rest: an office or a mobile carrier puts many users behind one
//! address, and a front end may fetch the ticket and claim in one tap.
//!
//! Velocity is counted per api process over fixed windows (`STAMPEDE_RISK_WINDOW_SECS`),
//! in bounded memory: a key remembers at most threshold + 1 users (hashed), and each
//! of the [`SHARDS`] maps at most [`KEYS_PER_SHARD`] keys; when one is full, keys of
//! past windows are dropped first, and a key that still finds no room is not counted
//! (and logged). Behind a load balancer that spreads one device over N instances, a
//! threshold applies per instance: use sticky routing, or divide the threshold by N.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use stampede_engine::striped::{PerThread, StripedCounter};

use crate::telemetry::risk_refusal_counter;

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Refuse,
    Flag,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Refuse => "refuse",
            Action::Flag => "flag",
        }
    }
}

/// A rule's setting: `off`, or `refuse:N` / `flag:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub threshold: u64,
}

impl Rule {
    /// Parses `off`, `refuse:N` or `flag:N` (N >= 1); `name` is the variable, for the message.
    pub fn parse(name: &str, s: &str) -> Result<Option<Rule>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("{name} must be off, refuse:N or flag:N (N >= 1), not {s:?}");
        let (action, n) = s.split_once(':').ok_or_else(bad)?;
        let action = match action.trim() {
            "refuse" => Action::Refuse,
            "flag" => Action::Flag,
            _ => return Err(bad()),
        };
        let threshold: u64 = n.trim().parse().map_err(|_| bad())?;
        if threshold == 0 {
            return Err(bad());
        }
        Ok(Some(Rule { action, threshold }))
    }
}

/// The rules' settings (from `STAMPEDE_RISK_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskConfig {
    pub device_users: Option<Rule>,
    pub ip_users: Option<Rule>,
    pub account_age_secs: Option<Rule>,
    pub ticket_min_ms: Option<Rule>,
    pub window_secs: u64,
}

/// What is known of a claim when the rules look at it.
#[derive(Debug, Clone, Copy)]
pub struct ClaimSignals<'a> {
    pub user: &'a str,
    pub ip: Option<IpAddr>,
    pub device: Option<&'a str>,
    /// The token's `account_created_at` (unix seconds).
    pub account_created_at: Option<i64>,
    /// When the claim's ticket was handed out (campaigns that require one).
    pub ticket_issued_at_ms: Option<i64>,
    pub now_ms: i64,
}

/// Maps of this many shards, each of at most [`KEYS_PER_SHARD`] keys.
const SHARDS: usize = 16;
const KEYS_PER_SHARD: usize = 16_384;

/// Keys a thread remembers as over their threshold, at most; past it, it starts again.
const OVER_PER_THREAD: usize = 1_024;

/// One key's users in its current window.
struct Window {
    index: i64,
    users: Vec<u64>,
    /// The key went over its threshold in this window (logged once a window).
    over: bool,
    /// Once over: `users`, sorted. They no longer change in this window (only the first
    /// `threshold` users are remembered), so threads may keep this and look a user up
    /// in it without the shard's lock.
    settled: Option<Arc<[u64]>>,
}

/// The keys this thread has seen over their threshold. Only its own thread touches it.
struct OverKeys<K>(RefCell<HashMap<K, Settled, foldhash::fast::RandomState>>);

/// A key's window (its index) and the users settled in it.
type Settled = (i64, Arc<[u64]>);

impl<K> Default for OverKeys<K> {
    fn default() -> Self {
        OverKeys(RefCell::new(HashMap::default()))
    }
}

/// A shard's keys, and the window it last dropped past windows' keys in (after which
/// it holds only that window's keys, so dropping again in it would free nothing).
struct Shard<K> {
    keys: HashMap<K, Window, foldhash::fast::RandomState>,
    swept: i64,
}

/// Distinct users per key (device or address) in fixed windows, in bounded memory.
///
/// A key past its threshold (an office, a carrier's address, a phone farm) is looked up
/// by every one of its claims, from every runtime worker: its shard's lock would be a
/// line both cores write each time. Once over, a key's users are settled for the rest of
/// its window, so each thread keeps them ([`OverKeys`]) and answers its later claims
/// without the lock.
struct Velocity<K: Send> {
    shards: Vec<Mutex<Shard<K>>>,
    over: PerThread<OverKeys<K>>,
    hasher: foldhash::fast::RandomState,
    window_ms: i64,
    /// Set once a full shard made a key go uncounted (logged once).
    overflowed: AtomicBool,
}

impl<K: Hash + Eq + Clone + Send> Velocity<K> {
    fn new(window_ms: i64) -> Self {
        Velocity {
            over: PerThread::default(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        keys: HashMap::default(),
                        swept: i64::MIN,
                    })
                })
                .collect(),
            hasher: Default::default(),
            window_ms: window_ms.max(1),
            overflowed: AtomicBool::new(false),
        }
    }

    /// Records `user` under `key` at `now_ms`. Past `threshold` distinct users in the
    /// key's window, a user not among the first `threshold` is [`Count::Over`] (the
    /// first time in the window: `first`); no more than `threshold` users are remembered.
    fn record(&self, key: &K, user: &str, now_ms: i64, threshold: u64) -> Count {
        let index = now_ms.div_euclid(self.window_ms);
        let user = self.hasher.hash_one(user);
        // Never borrowed twice (nothing here calls back); a failed borrow only means
        // taking the lock.
        let kept = &self.over.local().0;
        if let Some(among_settled) = kept.try_borrow().ok().and_then(|k| {
            k.get(key)
                .filter(|(i, _)| *i == index)
                .map(|(_, u)| u.binary_search(&user).is_ok())
        }) {
            // Over already (the first claim past it was told so, and logged).
            return if among_settled {
                Count::Within
            } else {
                Count::Over { first: false }
            };
        }
        let (count, settled) = self.record_shared(key, user, index, threshold);
        if let (Some(users), Ok(mut k)) = (settled, kept.try_borrow_mut()) {
            if k.len() >= OVER_PER_THREAD {
                k.clear();
            }
            k.insert(key.clone(), (index, users));
        }
        count
    }

    /// [`Velocity::record`] under the shard's lock; with the key's settled users once it
    /// is over its threshold.
    fn record_shared(
        &self,
        key: &K,
        user: u64,
        index: i64,
        threshold: u64,
    ) -> (Count, Option<Arc<[u64]>>) {
        let shard = self.hasher.hash_one(key) as usize % SHARDS;
        let mut shard = self.shards[shard].lock();
        if !shard.keys.contains_key(key) && shard.keys.len() >= KEYS_PER_SHARD {
            if shard.swept != index {
                shard.keys.retain(|_, w| w.index == index);
                shard.swept = index;
            }
            if shard.keys.len() >= KEYS_PER_SHARD {
                if !self.overflowed.swap(true, Ordering::Relaxed) {
                    tracing::warn!("risk velocity table full: some keys go uncounted this window");
                }
                return (Count::Within, None);
            }
        }
        let w = shard.keys.entry(key.clone()).or_insert(Window {
            index,
            users: Vec::new(),
            over: false,
            settled: None,
        });
        if w.index != index {
            w.index = index;
            w.users.clear();
            w.over = false;
            w.settled = None;
        }
        if w.users.contains(&user) {
            return (Count::Within, w.settled.clone());
        }
        if (w.users.len() as u64) < threshold {
            w.users.push(user);
            return (Count::Within, None);
        }
        let first = !w.over;
        if first {
            w.over = true;
            let mut users = w.users.clone();
            users.sort_unstable();
            w.settled = Some(users.into());
        }
        (Count::Over { first }, w.settled.clone())
    }
}

/// A user's place in a key's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Among the first `threshold` users (or uncounted).
    Within,
    /// Past the threshold; `first` for the first such claim of the window.
    Over { first: bool },
}

/// The rules, and the velocity they count.
pub struct RiskRules {
    config: RiskConfig,
    devices: Velocity<Box<str>>,
    ips: Velocity<IpAddr>,
    metrics: RiskMetrics,
}

impl RiskRules {
    pub fn new(config: RiskConfig) -> Self {
        let window_ms = (config.window_secs.max(1) as i64).saturating_mul(1_000);
        RiskRules {
            devices: Velocity::new(window_ms),
            ips: Velocity::new(window_ms),
            metrics: RiskMetrics::new(),
            config,
        }
    }

    /// Runs every rule on the claim; `Err(rule)` when one that refuses fired. Every rule
    /// runs (and counts) even after one fired, so that the velocity stays true.
    pub fn assess(&self, s: &ClaimSignals<'_>) -> Result<(), &'static str> {
        let c = &self.config;
        let mut refused = None;
        // `log`: false for a velocity rule's later claims in a window (the metric
        // counts each; one log line a window says which key).
        let mut fire = |name: &'static str, rule: Rule, value: i64, log: bool| {
            self.metrics.fired(name, rule.action);
            if log {
                tracing::info!(
                    rule = name,
                    action = rule.action.as_str(),
                    user = s.user,
                    ip = ?s.ip,
                    device = s.device,
                    value,
                    threshold = rule.threshold,
                    "risk rule fired"
                );
            }
            if rule.action == Action::Refuse && refused.is_none() {
                refused = Some(name);
            }
        };
        let threshold = |r: Rule| r.threshold as i64;
        if let (Some(rule), Some(device)) = (c.device_users, s.device) {
            if let Count::Over { first } =
                self.devices
                    .record(&Box::from(device), s.user, s.now_ms, rule.threshold)
            {
                fire("device_users", rule, threshold(rule) + 1, first);
            }
        }
        if let (Some(rule), Some(ip)) = (c.ip_users, s.ip) {
            if let Count::Over { first } = self.ips.record(&ip, s.user, s.now_ms, rule.threshold) {
                fire("ip_users", rule, threshold(rule) + 1, first);
            }
        }
        if let (Some(rule), Some(created)) = (c.account_age_secs, s.account_created_at) {
            let age = s.now_ms.div_euclid(1_000).saturating_sub(created);
            if age < threshold(rule) {
                fire("account_age", rule, age, true);
            }
        }
        if let (Some(rule), Some(issued)) = (c.ticket_min_ms, s.ticket_issued_at_ms) {
            let gap = s.now_ms.saturating_sub(issued);
            if gap < threshold(rule) {
                fire("ticket_too_fast", rule, gap, true);
            }
        }
        match refused {
            Some(rule) => Err(rule),
            None => Ok(()),
        }
    }
}

/// `stampede_risk_refusals_total{rule, action}`, one handle per series (a flagging rule
/// may fire on many claims of a crowd).
/// Counted per thread (`stampede_engine::striped`): a flagging rule may fire on every
/// claim of a crowd behind one address, from every runtime worker at once.
struct RiskMetrics {
    series: Vec<(&'static str, Action, Arc<StripedCounter>)>,
}

impl RiskMetrics {
    fn new() -> Self {
        let mut series = Vec::new();
        for rule in RULES {
            for action in [Action::Refuse, Action::Flag] {
                let counter = risk_refusal_counter(rule, action.as_str());
                series.push((rule, action, StripedCounter::new(counter)));
            }
        }
        RiskMetrics { series }
    }

    fn fired(&self, rule: &'static str, action: Action) {
        if let Some((_, _, c)) = self
            .series
            .iter()
            .find(|(r, a, _)| *r == rule && *a == action)
        {
            c.increment(1);
        }
    }
}

/// Every rule name, for registering the metric's series at start.
pub const RULES: [&str; 4] = ["device_users", "ip_users", "account_age", "ticket_too_fast"];

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(device: &str, ip: &str, age: &str, fast: &str) -> RiskRules {
        RiskRules::new(RiskConfig {
            device_users: Rule::parse("d", device).expect("valid"),
            ip_users: Rule::parse("i", ip).expect("valid"),
            account_age_secs: Rule::parse("a", age).expect("valid"),
            ticket_min_ms: Rule::parse("t", fast).expect("valid"),
            window_secs: 60,
        })
    }

    fn claim<'a>(user: &'a str, device: Option<&'a str>, now_ms: i64) -> ClaimSignals<'a> {
        ClaimSignals {
            user,
            ip: Some(IpAddr::from([203, 0, 113, 9])),
            device,
            account_created_at: None,
            ticket_issued_at_ms: None,
            now_ms,
        }
    }

    #[test]
    fn settings_parse_and_bad_ones_name_their_variable() {
        assert_eq!(Rule::parse("X", "off"), Ok(None));
        assert_eq!(
            Rule::parse("X", "refuse:10"),
            Ok(Some(Rule {
                action: Action::Refuse,
                threshold: 10
            }))
        );
        assert_eq!(
            Rule::parse("X", " flag : 3 "),
            Ok(Some(Rule {
                action: Action::Flag,
                threshold: 3
            }))
        );
        for bad in ["", "refuse", "refuse:0", "block:3", "flag:-1", "flag:x"] {
            let err = Rule::parse("STAMPEDE_RISK_X", bad).expect_err("refused");
            assert!(err.contains("STAMPEDE_RISK_X"), "{err}");
        }
    }

    #[test]
    fn one_device_for_many_users_is_refused_past_the_threshold_only() {
        let r = rules("refuse:3", "off", "off", "off");
        for u in ["a", "b", "c"] {
            assert_eq!(r.assess(&claim(u, Some("phone"), 1_000)), Ok(()));
        }
        // The same users again are not new users.
        assert_eq!(r.assess(&claim("a", Some("phone"), 1_001)), Ok(()));
        assert_eq!(
            r.assess(&claim("d", Some("phone"), 1_002)),
            Err("device_users")
        );
        // Another device, and no device at all, are unaffected.
        assert_eq!(r.assess(&claim("d", Some("tablet"), 1_002)), Ok(()));
        assert_eq!(r.assess(&claim("e", None, 1_002)), Ok(()));
        // A new window starts over.
        assert_eq!(r.assess(&claim("d", Some("phone"), 61_000)), Ok(()));
    }

    #[test]
    fn a_flag_never_refuses() {
        let r = rules("flag:1", "flag:1", "flag:86400", "flag:1000");
        let mut s = claim("a", Some("phone"), 10_000_000);
        s.account_created_at = Some(10_000);
        s.ticket_issued_at_ms = Some(9_999_999);
        assert_eq!(r.assess(&s), Ok(()));
        assert_eq!(r.assess(&claim("b", Some("phone"), 10_000_000)), Ok(()));
    }

    #[test]
    fn young_accounts_and_hasty_claims_are_caught_when_they_refuse() {
        let r = rules("off", "off", "refuse:3600", "refuse:200");
        let now = 1_000_000_000;
        let mut s = claim("a", None, now);
        s.account_created_at = Some(now / 1_000 - 60);
        assert_eq!(r.assess(&s), Err("account_age"));
        s.account_created_at = Some(now / 1_000 - 7_200);
        assert_eq!(r.assess(&s), Ok(()));
        s.ticket_issued_at_ms = Some(now - 50);
        assert_eq!(r.assess(&s), Err("ticket_too_fast"));
        s.ticket_issued_at_ms = Some(now - 500);
        assert_eq!(r.assess(&s), Ok(()));
        // No claim, no rule: a token without the claim is not judged by it.
        assert_eq!(r.assess(&claim("b", None, now)), Ok(()));
    }

    #[test]
    fn a_key_over_its_threshold_says_so_once_a_window() {
        let v: Velocity<IpAddr> = Velocity::new(60_000);
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(v.record(&ip, "a", 0, 1), Count::Within);
        assert_eq!(v.record(&ip, "b", 0, 1), Count::Over { first: true });
        assert_eq!(v.record(&ip, "c", 0, 1), Count::Over { first: false });
        assert_eq!(v.record(&ip, "a", 0, 1), Count::Within);
        assert_eq!(v.record(&ip, "c", 60_000, 1), Count::Within);
        assert_eq!(v.record(&ip, "b", 60_001, 1), Count::Over { first: true });
    }

    /// A key over its threshold is answered on each thread from its settled users,
    /// without the shard's lock, and says so once a window across all threads.
    #[test]
    fn a_key_over_its_threshold_is_answered_without_the_lock_on_every_thread() {
        let v = Arc::new(Velocity::<IpAddr>::new(60_000));
        let ip = IpAddr::from([10, 0, 0, 2]);
        for u in ["a", "b"] {
            assert_eq!(v.record(&ip, u, 0, 2), Count::Within);
        }
        let firsts = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (v, firsts) = (&v, &firsts);
                s.spawn(move || {
                    for i in 0..50 {
                        match v.record(&ip, &format!("t{t}-{i}"), 1, 2) {
                            Count::Over { first: true } => {
                                firsts.fetch_add(1, Ordering::Relaxed);
                            }
                            Count::Over { first: false } => {}
                            Count::Within => panic!("a third user within a threshold of 2"),
                        }
                    }
                    assert_eq!(v.record(&ip, "a", 2, 2), Count::Within);
                });
            }
        });
        assert_eq!(firsts.load(Ordering::Relaxed), 1, "told once a window");
        // With the key's shard locked, a thread that has seen the key over still
        // answers: it does not take the lock.
        let shard = v.hasher.hash_one(ip) as usize % SHARDS;
        let (seen_tx, seen) = std::sync::mpsc::channel();
        let (go_tx, go) = std::sync::mpsc::channel();
        let (answer_tx, answer) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let v = &v;
            s.spawn(move || {
                // Its first look at the key takes the lock and keeps the settled users.
                assert_eq!(v.record(&ip, "x", 1, 2), Count::Over { first: false });
                seen_tx.send(()).expect("send");
                go.recv().expect("go");
                let a = (v.record(&ip, "y", 4, 2), v.record(&ip, "b", 4, 2));
                answer_tx.send(a).expect("send");
            });
            seen.recv().expect("seen");
            let guard = v.shards[shard].lock();
            go_tx.send(()).expect("go");
            let got = answer.recv_timeout(std::time::Duration::from_secs(5));
            drop(guard);
            assert_eq!(
                got.expect("answered while the shard was locked"),
                (Count::Over { first: false }, Count::Within)
            );
        });
        // A new window is not settled: it is counted under the lock again.
        assert_eq!(v.record(&ip, "y", 60_000, 2), Count::Within);
    }

    #[test]
    fn an_address_counts_users_not_requests() {
        let r = rules("off", "refuse:2", "off", "off");
        for _ in 0..100 {
            assert_eq!(r.assess(&claim("a", None, 5)), Ok(()));
        }
        assert_eq!(r.assess(&claim("b", None, 5)), Ok(()));
        assert_eq!(r.assess(&claim("c", None, 5)), Err("ip_users"));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_devices() {
        let v: Velocity<Box<str>> = Velocity::new(60_000);
        for i in 0..(SHARDS * KEYS_PER_SHARD + 10_000) {
            v.record(&Box::from(format!("d{i}").as_str()), "u", 0, 10);
        }
        let keys: usize = v.shards.iter().map(|s| s.lock().keys.len()).sum();
        assert!(keys <= SHARDS * KEYS_PER_SHARD, "{keys}");
        // A later window makes room again.
        v.record(&Box::from("fresh"), "u", 60_000, 10);
        assert!(v
            .shards
            .iter()
            .any(|s| s.lock().keys.contains_key(&Box::<str>::from("fresh"))));
    }
}
