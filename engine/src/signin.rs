//! The daily sign-in: one award of points per user per calendar day.
//!
//! Exactly once is the database's job: the award is ONE transaction that inserts the
//! day's sign-in row (unique per user and day), a ledger row (unique per user and
//! reason) and the balance update, or does nothing when the row is already there. The
//! store is the fast path: a script (`lua/signin.lua`) returns today's award record when
//! it has one, so the repeats of a racing crowd are answered without the database; a
//! request that finds no record (the first one, or any after the store lost its data)
//! goes to the database, where the unique key decides. After a store wipe the database
//! still holds the row, so signing in again awards nothing.
//!
//! The day is the calendar day in the configured time zone; time comes from an
//! injectable [`Clock`].

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};

/// Points rules (contract defaults: 10 points, plus 5 per consecutive earlier day of
/// the streak, the bonus capped at 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigninRules {
    pub base_points: u64,
    pub streak_step: u64,
    pub bonus_cap: u64,
}

impl Default for SigninRules {
    fn default() -> Self {
        SigninRules {
            base_points: 10,
            streak_step: 5,
            bonus_cap: 50,
        }
    }
}

impl SigninRules {
    /// Points for a sign-in that makes a streak of `streak` days (1 = no earlier day).
    pub fn points_for(&self, streak: u64) -> u64 {
        let bonus = self.streak_step.saturating_mul(streak.saturating_sub(1));
        self.base_points + bonus.min(self.bonus_cap)
    }
}

/// Where sign-in days are counted and how they are rewarded.
#[derive(Clone)]
pub struct SigninConfig {
    pub tz: Tz,
    pub rules: SigninRules,
    pub clock: Arc<dyn Clock>,
}

impl Default for SigninConfig {
    fn default() -> Self {
        SigninConfig {
            tz: Tz::UTC,
            rules: SigninRules::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl SigninConfig {
    /// Today, in the configured zone.
    pub fn today(&self) -> NaiveDate {
        day_at(self.tz, self.clock.now_ms())
    }
}

/// The calendar day in `tz` at `ms` (unix milliseconds).
pub fn day_at(tz: Tz, ms: i64) -> NaiveDate {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.date_naive(),
        None => NaiveDate::MIN,
    }
}

/// The day before `day`.
pub fn previous_day(day: NaiveDate) -> NaiveDate {
    day.checked_sub_days(Days::new(1)).unwrap_or(day)
}

/// A month as the contract writes it: `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(day: NaiveDate) -> Month {
        Month {
            year: day.year(),
            month: day.month(),
        }
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let month = Month {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        };
        month.first_day().map(|_| month)
    }

    pub fn first_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    /// The first day of the next month.
    pub fn end(&self) -> Option<NaiveDate> {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A day's sign-in as the contract reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SigninRecord {
    #[serde(serialize_with = "serialize_day")]
    pub day: NaiveDate,
    /// What that day's sign-in earned.
    pub points_awarded: u64,
    pub streak: u64,
    /// The balance right after the award.
    pub balance: u64,
}

fn serialize_day<S: serde::Serializer>(day: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&day.format("%Y-%m-%d"))
}

impl SigninRecord {
    /// The store's form: `points|streak|balance` (the day is the record's key).
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.points_awarded, self.streak, self.balance)
    }

    pub fn decode(day: NaiveDate, s: &str) -> Option<SigninRecord> {
        let mut f = s.split('|').map(|n| n.parse::<u64>().ok());
        let rec = SigninRecord {
            day,
            points_awarded: f.next()??,
            streak: f.next()??,
            balance: f.next()??,
        };
        f.next().is_none().then_some(rec)
    }
}

/// A user's points as `GET /v1/me/points` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Points {
    pub balance: u64,
    /// The current streak: days in a row up to today, or up to yesterday when today's
    /// sign-in is still to come; 0 once a day was missed.
    pub streak: u64,
    pub signed_in_today: bool,
}

/// The current streak given the user's latest sign-in.
pub fn current_streak(today: NaiveDate, latest: Option<(NaiveDate, u64)>) -> u64 {
    match latest {
        Some((day, streak)) if day == today || day == previous_day(today) => streak,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_grow_with_the_streak_up_to_the_cap() {
        let r = SigninRules::default();
        let points: Vec<u64> = (1..=13).map(|s| r.points_for(s)).collect();
        assert_eq!(
            points,
            vec![10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 60, 60]
        );
        assert_eq!(r.points_for(u64::MAX), 60);
    }

    #[test]
    fn the_day_turns_at_midnight_in_the_configured_zone() {
        // 2026-11-22T15:59:59Z is 23:59:59 in Shanghai (UTC+8); one second later it is the 23rd there.
        let before = 1_795_363_199_000;
        assert_eq!(day_at(Tz::Asia__Shanghai, before).to_string(), "2026-11-22");
        assert_eq!(
            day_at(Tz::Asia__Shanghai, before + 1_000).to_string(),
            "2026-11-23"
        );
        assert_eq!(day_at(Tz::UTC, before + 1_000).to_string(), "2026-11-22");
    }

    #[test]
    fn months_parse_strictly() {
        assert_eq!(
            Month::parse("2026-11").map(|m| m.to_string()),
            Some("2026-11".into())
        );
        assert_eq!(
            Month::parse("2026-12")
                .and_then(|m| m.end())
                .map(|d| d.to_string()),
            Some("2027-01-01".into())
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "abcd-ef"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
        let r = SigninRecord {
            day,
            points_awarded: 15,
            streak: 2,
            balance: 140,
        };
        assert_eq!(SigninRecord::decode(day, &r.encode()), Some(r));
        assert_eq!(SigninRecord::decode(day, "1|2"), None);
    }

    #[test]
    fn a_missed_day_ends_the_current_streak() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
        assert_eq!(current_streak(today, Some((today, 3))), 3);
        assert_eq!(current_streak(today, Some((previous_day(today), 3))), 3);
        assert_eq!(
            current_streak(today, Some((previous_day(previous_day(today)), 3))),
            0
        );
        assert_eq!(current_streak(today, None), 0);
    }
}
