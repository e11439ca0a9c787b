//! The funnel audit of a run whose crowd reported behaviour events before claiming
//! (`stampede-loadgen events`, `flash --with-events`): did the campaign's live funnel
//! (`GET /v1/admin/campaigns/{id}/funnel`, summed over its minutes) count what the run did?
//!
//! What the run knows becomes one [`Bound`] per funnel key:
//!
//! - each client event type it sent: at least the events of the `POST /v1/events`
//!   batches answered `202`, at most those plus the events of batches that got no reply
//!   (stored or not: unknown). A refused batch (`429`, `503`, ...) stored nothing, so it
//!   counts for neither;
//! - `claim` (claim requests that reached the claim step): at least the claims answered
//!   by the claim step itself (`201`, `200`, `409`, and `422`, the over-limit answer: the
//!   run sends only valid bodies), at most every claim request sent (a `503` or a request
//!   without a reply may or may not have got that far). When every claim was answered by
//!   the claim step, the two meet: `claim` must equal the claim requests sent;
//! - `accepted`: the `201`s, up to those plus the claims without a reply;
//! - `ticket`, `paid`, and any client type the run did not send: zero (the campaign is
//!   the run's own, with no tickets and no payment window).
//!
//! The engine counts client types when it takes them or only once its workers have
//! written them, and flushes its counts about once a second, so the caller polls until
//! [`settled`] holds (or its time is up) and audits the last read; a single read proves
//! nothing. Pure, like the rest of [`crate::audit`].

use std::collections::BTreeMap;

use serde::Serialize;

/// The engine's own funnel stages (`docs/api.md`, "The funnel").
pub const STAGES: [&str; 4] = ["ticket", "claim", "accepted", "paid"];

/// The range a funnel count must fall in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bound {
    pub min: u64,
    pub max: u64,
}

impl Bound {
    pub fn exactly(n: u64) -> Self {
        Bound { min: n, max: n }
    }

    pub fn holds(&self, n: u64) -> bool {
        (self.min..=self.max).contains(&n)
    }
}

/// What the run sent of one event type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeSent {
    /// Events in batches answered `202`.
    pub accepted: u64,
    /// Events in batches that got no reply.
    pub unanswered: u64,
}

/// The claim crowd's requests, by what their replies say about the claim step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimsSent {
    /// Claim requests sent, replies or not.
    pub sent: u64,
    /// Answered by the claim step: `201`, `200`, `409`, `422`.
    pub reached: u64,
    /// Answered `201`.
    pub accepted: u64,
    /// Without a reply.
    pub unanswered: u64,
}

impl ClaimsSent {
    /// The statuses only the claim step answers a valid claim with.
    pub const CLAIM_STEP: [u16; 4] = [201, 200, 409, 422];

    /// From the claim crowd's replies by status and its requests without a reply.
    pub fn from_statuses(statuses: &BTreeMap<u16, u64>, unanswered: u64) -> Self {
        let replies: u64 = statuses.values().sum();
        ClaimsSent {
            sent: replies + unanswered,
            reached: Self::CLAIM_STEP
                .iter()
                .filter_map(|s| statuses.get(s))
                .sum(),
            accepted: statuses.get(&201).copied().unwrap_or(0),
            unanswered,
        }
    }
}

/// What the funnel must show: key -> bound. Keys not in it must be zero.
pub type Expected = BTreeMap<String, Bound>;

/// The bounds the run's requests put on the funnel (see the module's note).
pub fn expected(events: &BTreeMap<String, TypeSent>, claims: &ClaimsSent) -> Expected {
    let mut out: Expected = events
        .iter()
        .map(|(kind, t)| {
            let bound = Bound {
                min: t.accepted,
                max: t.accepted + t.unanswered,
            };
            (kind.clone(), bound)
        })
        .collect();
    out.insert(
        "claim".into(),
        Bound {
            min: claims.reached,
            max: claims.sent.max(claims.reached),
        },
    );
    out.insert(
        "accepted".into(),
        Bound {
            min: claims.accepted,
            max: claims.accepted + claims.unanswered,
        },
    );
    out.insert("ticket".into(), Bound::exactly(0));
    out.insert("paid".into(), Bound::exactly(0));
    out
}

/// Whether `seen` (the funnel summed over the run's minutes) is what the run expects:
/// every key within its bound, nothing else counted, and no more accepted than claims.
pub fn settled(expected: &Expected, seen: &BTreeMap<String, u64>) -> bool {
    let count = |k: &str| seen.get(k).copied().unwrap_or(0);
    expected.iter().all(|(k, b)| b.holds(count(k)))
        && seen
            .iter()
            .all(|(k, n)| *n == 0 || expected.contains_key(k))
        && count("claim") >= count("accepted")
}

/// Whether `seen` is past what the run expects for good: a key above its bound's most,
/// or a key the run never sent counted at all. The funnel's sums over the run's minutes
/// only grow (each source adds, and the window grows with the run), so such a read can
/// never settle, and waiting out the timeout would only delay the verdict.
pub fn overshot(expected: &Expected, seen: &BTreeMap<String, u64>) -> bool {
    seen.iter().any(|(k, n)| match expected.get(k) {
        Some(b) => *n > b.max,
        None => *n > 0,
    })
}

/// How the funnel was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunnelRead {
    /// Reads made (the last one is audited).
    pub polls: u64,
    /// The last read's window, `?minutes=N`.
    pub minutes: u32,
    /// Whether a read matched before the time was up.
    pub settled: bool,
    /// Whether the reads stopped early, on a read already past the run's counts
    /// ([`overshot`]).
    pub overshot: bool,
}

/// One funnel key: what the run expects and what the funnel counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FunnelKey {
    /// The count the run expects (its least, when `at_most` is there).
    pub expected: u64,
    /// The most the count may be, when the run cannot know it exactly (requests without
    /// a reply, or claims refused before the claim step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_most: Option<u64>,
    /// Summed over the minutes of the last read.
    pub seen: u64,
}

/// The funnel audit's verdict; the JSON report's `audit.funnel`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FunnelAudit {
    pub passed: bool,
    /// Whether the funnel showed the expected counts before `--drain-timeout`.
    pub settled: bool,
    /// Funnel reads made.
    pub polls: u64,
    /// The window of the last read.
    pub minutes: u32,
    /// Every expected key and every key counted: expected vs seen.
    pub keys: BTreeMap<String, FunnelKey>,
    /// One sentence per difference; empty when `passed`.
    pub violations: Vec<String>,
}

/// Audits the funnel's last read against what the run expects. `malformed` is the `202`
/// replies to event batches whose `accepted` was not the batch's size.
pub fn audit_funnel(
    expected: &Expected,
    seen: &BTreeMap<String, u64>,
    read: FunnelRead,
    malformed: u64,
) -> FunnelAudit {
    let count = |k: &str| seen.get(k).copied().unwrap_or(0);
    let mut keys = BTreeMap::new();
    let mut violations = Vec::new();
    for (k, b) in expected {
        let n = count(k);
        keys.insert(
            k.clone(),
            FunnelKey {
                expected: b.min,
                at_most: (b.max != b.min).then_some(b.max),
                seen: n,
            },
        );
        if b.holds(n) {
            continue;
        }
        let what = if b.min == b.max {
            format!("{}", b.min)
        } else {
            format!("{} to {}", b.min, b.max)
        };
        let why = match k.as_str() {
            "claim" => "claim requests that reached the claim step",
            "accepted" => "claims answered 201",
            "ticket" => "tickets (the run asked for none)",
            "paid" => "paid orders (the run paid nothing)",
            _ => "events the engine took",
        };
        violations.push(format!(
            "the funnel counts {n} {k}, expected {what} ({why})"
        ));
    }
    for (k, n) in seen {
        if *n > 0 && !expected.contains_key(k) {
            keys.insert(
                k.clone(),
                FunnelKey {
                    expected: 0,
                    at_most: None,
                    seen: *n,
                },
            );
            violations.push(format!(
                "the funnel counts {n} {k} events, but the run sent none of that type"
            ));
        }
    }
    if count("accepted") > count("claim") {
        violations.push(format!(
            "the funnel counts {} accepted but only {} claims",
            count("accepted"),
            count("claim")
        ));
    }
    if malformed > 0 {
        violations.push(format!(
            "{malformed} event batch(es) answered 202 said they accepted another number of events than were sent"
        ));
    }
    // A read that overshot has its counts' violations above; it did not run out of time.
    if !read.settled && !read.overshot {
        violations.push(format!(
            "the funnel did not show the run's counts in time ({} reads, the last over {} minute(s))",
            read.polls, read.minutes
        ));
    }
    FunnelAudit {
        passed: violations.is_empty(),
        settled: read.settled,
        polls: read.polls,
        minutes: read.minutes,
        keys,
        violations,
    }
}

/// The funnel reply's minutes summed per key (`at` and anything not a count skipped).
pub fn sum_minutes<'a>(
    minutes: impl IntoIterator<Item = &'a serde_json::Map<String, serde_json::Value>>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for minute in minutes {
        for (k, v) in minute {
            if let Some(n) = v.as_u64() {
                *out.entry(k.clone()).or_default() += n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent() -> (BTreeMap<String, TypeSent>, ClaimsSent) {
        let events = BTreeMap::from([
            (
                "view".to_owned(),
                TypeSent {
                    accepted: 80,
                    unanswered: 0,
                },
            ),
            (
                "add_to_cart".to_owned(),
                TypeSent {
                    accepted: 20,
                    unanswered: 0,
                },
            ),
        ]);
        let statuses = BTreeMap::from([(201, 5), (409, 6)]);
        (events, ClaimsSent::from_statuses(&statuses, 0))
    }

    fn clean() -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("view".into(), 80),
            ("add_to_cart".into(), 20),
            ("ticket".into(), 0),
            ("claim".into(), 11),
            ("accepted".into(), 5),
            ("paid".into(), 0),
        ])
    }

    fn read() -> FunnelRead {
        FunnelRead {
            polls: 3,
            minutes: 2,
            settled: true,
            overshot: false,
        }
    }

    #[test]
    fn a_funnel_that_counted_exactly_the_run_passes() {
        let (events, claims) = sent();
        let want = expected(&events, &claims);
        assert!(settled(&want, &clean()));
        let audit = audit_funnel(&want, &clean(), read(), 0);
        assert!(audit.passed, "{:?}", audit.violations);
        assert_eq!(audit.keys["view"].expected, 80);
        assert_eq!(
            audit.keys["claim"].at_most, None,
            "every claim reached the step"
        );
        let json = serde_json::to_value(&audit).expect("json");
        assert_eq!(json["keys"]["accepted"], json!({"expected": 5, "seen": 5}));
    }

    #[test]
    fn one_view_too_many_or_too_few_fails() {
        let (events, claims) = sent();
        let want = expected(&events, &claims);
        for views in [79, 81] {
            let mut seen = clean();
            seen.insert("view".into(), views);
            assert!(!settled(&want, &seen));
            let audit = audit_funnel(&want, &seen, read(), 0);
            assert!(!audit.passed);
            assert!(
                audit.violations[0].contains("view"),
                "{:?}",
                audit.violations
            );
        }
    }

    #[test]
    fn a_claim_the_funnel_missed_or_an_accepted_too_many_fails() {
        let (events, claims) = sent();
        let want = expected(&events, &claims);
        let mut seen = clean();
        seen.insert("claim".into(), 10);
        assert!(!audit_funnel(&want, &seen, read(), 0).passed);
        let mut seen = clean();
        seen.insert("accepted".into(), 6);
        assert!(!audit_funnel(&want, &seen, read(), 0).passed);
    }

    #[test]
    fn a_type_nobody_sent_or_a_ticket_fails() {
        let (events, claims) = sent();
        let want = expected(&events, &claims);
        let mut seen = clean();
        seen.insert("share".into(), 1);
        let audit = audit_funnel(&want, &seen, read(), 0);
        assert!(!audit.passed);
        assert_eq!(audit.keys["share"].seen, 1);
        let mut seen = clean();
        seen.insert("ticket".into(), 1);
        assert!(!settled(&want, &seen));
    }

    #[test]
    fn claims_refused_before_the_claim_step_leave_a_range() {
        let (events, _) = sent();
        // 5 accepted, 6 sold out, 3 rate limited, 1 without a reply.
        let statuses = BTreeMap::from([(201, 5), (409, 6), (429, 3)]);
        let claims = ClaimsSent::from_statuses(&statuses, 1);
        assert_eq!(
            claims,
            ClaimsSent {
                sent: 15,
                reached: 11,
                accepted: 5,
                unanswered: 1
            }
        );
        let want = expected(&events, &claims);
        assert_eq!(want["claim"], Bound { min: 11, max: 15 });
        assert_eq!(want["accepted"], Bound { min: 5, max: 6 });
        let mut seen = clean();
        for claim in [11, 13, 15] {
            seen.insert("claim".into(), claim);
            assert!(settled(&want, &seen), "{claim}");
        }
        seen.insert("claim".into(), 16);
        assert!(!settled(&want, &seen));
        let audit = audit_funnel(&want, &seen, read(), 0);
        assert_eq!(audit.keys["claim"].at_most, Some(15));
        assert!(
            audit.violations[0].contains("11 to 15"),
            "{:?}",
            audit.violations
        );
    }

    #[test]
    fn only_a_count_past_its_most_or_of_a_type_never_sent_overshoots() {
        let (mut events, claims) = sent();
        events.insert(
            "view".into(),
            TypeSent {
                accepted: 80,
                unanswered: 5,
            },
        );
        let want = expected(&events, &claims);
        let with = |k: &str, n: u64| {
            let mut seen = clean();
            seen.insert(k.into(), n);
            seen
        };
        assert!(!overshot(&want, &clean()), "what the run expects");
        assert!(!overshot(&want, &with("view", 0)), "short: may still come");
        assert!(
            !overshot(&want, &with("view", 85)),
            "the most the run allows"
        );
        assert!(overshot(&want, &with("view", 86)));
        assert!(overshot(&want, &with("accepted", 6)));
        assert!(overshot(&want, &with("wishlist", 1)), "a type nobody sent");
        assert!(!overshot(&want, &with("wishlist", 0)));
        // An overshoot is said once, as the count it is, not as time running out.
        let audit = audit_funnel(
            &want,
            &with("view", 86),
            FunnelRead {
                settled: false,
                overshot: true,
                ..read()
            },
            0,
        );
        assert_eq!(audit.violations.len(), 1, "{:?}", audit.violations);
        assert!(audit.violations[0].contains("86 view"));
    }

    #[test]
    fn events_without_a_reply_may_or_may_not_be_counted() {
        let mut events = sent().0;
        events.insert(
            "view".into(),
            TypeSent {
                accepted: 80,
                unanswered: 5,
            },
        );
        let want = expected(&events, &sent().1);
        assert_eq!(want["view"], Bound { min: 80, max: 85 });
    }

    #[test]
    fn a_funnel_that_never_settled_fails_even_if_its_last_read_matched() {
        let (events, claims) = sent();
        let want = expected(&events, &claims);
        let audit = audit_funnel(
            &want,
            &clean(),
            FunnelRead {
                settled: false,
                ..read()
            },
            0,
        );
        assert!(!audit.passed);
        assert!(
            !audit_funnel(&want, &clean(), read(), 1).passed,
            "a 202 that miscounted"
        );
    }

    #[test]
    fn the_minutes_are_summed_per_key() {
        let reply = json!([
            {"at": "2026-11-22T20:00:00.000Z", "view": 3, "claim": 1, "add_to_cart": 2},
            {"at": "2026-11-22T20:01:00.000Z", "view": 4, "claim": 0, "accepted": 1},
        ]);
        let minutes: Vec<_> = reply
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|m| m.as_object())
            .collect();
        let sums = sum_minutes(minutes);
        assert_eq!(
            sums,
            BTreeMap::from([
                ("accepted".into(), 1),
                ("add_to_cart".into(), 2),
                ("claim".into(), 1),
                ("view".into(), 7),
            ])
        );
    }
}
