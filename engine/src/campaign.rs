//! The campaign model: what a promotion team creates, the rules a creation request
//! must follow (the contract's "Campaigns" section), and the status a campaign shows.

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::error::{EngineError, Result};

/// Stock (flash sale) bounds, from the contract.
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_PER_USER_LIMIT: i64 = 1_000;
pub const MAX_PACKET_COUNT: i64 = 10_000_000;
pub const MAX_TOTAL_CENTS: i64 = 1_000_000_000_000;
/// A campaign without `ends_at` runs for a day.
pub const DEFAULT_DURATION_MS: i64 = 24 * 3600 * 1000;
/// Tickets are handed out this many seconds before the start unless the campaign says.
pub const DEFAULT_TICKET_LEAD_SECS: i64 = 5;
/// The longest lead a campaign may set: an hour.
pub const MAX_TICKET_LEAD_SECS: i64 = 3_600;
/// The payment window's bounds, seconds. The contract's floor is 10; shorter windows
/// (down to 1 s) are allowed for tests and load runs.
pub const MIN_PAYMENT_WINDOW_SECS: i64 = 1;
pub const MAX_PAYMENT_WINDOW_SECS: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    FlashSale,
    RedPacket,
}

impl CampaignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignKind::FlashSale => "flash_sale",
            CampaignKind::RedPacket => "red_packet",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "flash_sale" => Some(CampaignKind::FlashSale),
            "red_packet" => Some(CampaignKind::RedPacket),
            _ => None,
        }
    }
}

/// A campaign as the database holds it (the source of truth). Its live counters
/// (remaining stock, accepted claims) are in the store: see [`LiveCounters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: u64,
    pub kind: CampaignKind,
    pub name: String,
    /// Stock (flash sale) or packet count (red packet).
    pub total: u64,
    /// Units one user may hold; always 1 for a red packet.
    pub per_user_limit: u64,
    pub price_cents: u64,
    /// Red packet only: the money split into `total` packets.
    pub total_cents: u64,
    pub min_cents: u64,
    /// Red packet only: the seed of the split, so the packets can be regenerated
    /// exactly when the store's live state is rebuilt (see `red_packet::split`).
    pub split_seed: u64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_at_ms: i64,
    /// Claims need a ticket (see [`crate::ticket`]), handed out from
    /// `ticket_lead_secs` before the start.
    pub ticket_required: bool,
    pub ticket_lead_secs: u64,
    /// Buckets the live state is spread over (1..=64, see [`crate::buckets`]).
    pub buckets: u64,
    /// Flash sale: each accepted claim is an order to be paid within this many seconds
    /// (see [`crate::order`]); `None`: claims are final.
    pub payment_window_secs: Option<u64>,
}

impl Campaign {
    /// The payment window in milliseconds, 0 when there is none.
    pub fn payment_window_ms(&self) -> i64 {
        self.payment_window_secs.map_or(0, |s| s as i64 * 1_000)
    }
}

/// The live counters of a campaign, kept in the store and changed only by the claim step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounters {
    /// Units (flash sale) or packets (red packet) still to be claimed.
    pub remaining: u64,
    /// Claims accepted so far.
    pub claims: u64,
    /// Units accepted so far (flash sale; equals `claims` for a red packet).
    pub sold: u64,
    /// Cents handed out so far (red packet).
    pub cents: u64,
    /// The campaign's end as the store knows it (moves earlier when it is closed).
    pub ends_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Scheduled,
    Active,
    SoldOut,
    Ended,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Active => "active",
            CampaignStatus::SoldOut => "sold_out",
            CampaignStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(CampaignStatus::Scheduled),
            "active" => Some(CampaignStatus::Active),
            "sold_out" => Some(CampaignStatus::SoldOut),
            "ended" => Some(CampaignStatus::Ended),
            _ => None,
        }
    }
}

impl Campaign {
    /// The status at `now_ms`: ended wins over sold out, which wins over active.
    pub fn status(&self, now_ms: i64, remaining: u64) -> CampaignStatus {
        status_at(now_ms, self.starts_at_ms, self.ends_at_ms, remaining)
    }

    /// The end that applies now: the row's, or the store's when a close moved it earlier
    /// (another instance's cached row may not know of the close yet).
    pub fn live_ends_at_ms(&self, k: &LiveCounters) -> i64 {
        self.ends_at_ms.min(k.ends_at_ms)
    }

    /// The status with the live counters: the live end and the live remaining stock.
    pub fn live_status(&self, now_ms: i64, k: &LiveCounters) -> CampaignStatus {
        status_at(
            now_ms,
            self.starts_at_ms,
            self.live_ends_at_ms(k),
            k.remaining,
        )
    }
}

/// Ended wins over sold out, which wins over scheduled and active.
fn status_at(now_ms: i64, starts_at_ms: i64, ends_at_ms: i64, remaining: u64) -> CampaignStatus {
    if now_ms >= ends_at_ms {
        CampaignStatus::Ended
    } else if remaining == 0 {
        CampaignStatus::SoldOut
    } else if now_ms < starts_at_ms {
        CampaignStatus::Scheduled
    } else {
        CampaignStatus::Active
    }
}

/// A creation request as it arrives (`POST /v1/campaigns`), before validation.
/// Numbers are taken as `i64` so that a negative value gets a message naming its field.
/// An optional field may be left out, never sent as `null` (see [`crate::no_null`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub kind: String,
    pub name: String,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub stock: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub per_user_limit: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub price_cents: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub total_cents: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub count: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub min_cents: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub starts_at: Option<String>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub ends_at: Option<String>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub ticket_required: Option<bool>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub ticket_lead_secs: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub buckets: Option<i64>,
    #[serde(default, deserialize_with = "crate::no_null::present")]
    pub payment_window_secs: Option<i64>,
}

/// A creation request that passed every rule; `id` and `created_at` come from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCampaign {
    pub kind: CampaignKind,
    pub name: String,
    pub total: u64,
    pub per_user_limit: u64,
    pub price_cents: u64,
    pub total_cents: u64,
    pub min_cents: u64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub ticket_required: bool,
    pub ticket_lead_secs: u64,
    pub buckets: u64,
    pub payment_window_secs: Option<u64>,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

fn in_range(field: &str, v: i64, lo: i64, hi: i64) -> Result<u64> {
    if v < lo || v > hi {
        return Err(invalid(format!("{field} must be between {lo} and {hi}")));
    }
    Ok(v as u64)
}

fn not_for(field: &str, v: &Option<i64>, kind: CampaignKind) -> Result<()> {
    match v {
        Some(_) => Err(invalid(format!(
            "{field} does not apply to a {} campaign",
            kind.as_str()
        ))),
        None => Ok(()),
    }
}

fn time_field(field: &str, v: &Option<String>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => clock::parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| invalid(format!("{field} must be an RFC 3339 time"))),
    }
}

impl NewCampaign {
    /// Applies the contract's rules and defaults; `now_ms` is the default start.
    pub fn validate(&self, now_ms: i64) -> Result<ValidCampaign> {
        let kind = CampaignKind::parse(&self.kind)
            .ok_or_else(|| invalid("kind must be flash_sale or red_packet"))?;
        // Counted as sent (as the OpenAPI document's maxLength counts), then stored
        // trimmed; a name of white space alone is no name.
        let chars = self.name.chars().count();
        let name = self.name.trim();
        if chars > 200 || name.is_empty() {
            return Err(invalid(
                "name must be 1 to 200 characters, not all white space",
            ));
        }
        // PostgreSQL cannot store a NUL in text: refused here, on both databases alike,
        // rather than failing at the insert as a database error (a 503).
        if name.contains('\0') {
            return Err(invalid("name must not contain a NUL character"));
        }
        let starts_at_ms = time_field("starts_at", &self.starts_at)?.unwrap_or(now_ms);
        let ends_at_ms = time_field("ends_at", &self.ends_at)?
            .unwrap_or(starts_at_ms.saturating_add(DEFAULT_DURATION_MS));
        if ends_at_ms <= starts_at_ms {
            return Err(invalid("ends_at must be after starts_at"));
        }
        // A campaign that would be born ended could never be claimed (contract: 422).
        if ends_at_ms <= now_ms {
            return Err(invalid("ends_at must be in the future"));
        }
        let base = ValidCampaign {
            kind,
            name: name.to_string(),
            total: 0,
            per_user_limit: 1,
            price_cents: 0,
            total_cents: 0,
            min_cents: 0,
            starts_at_ms,
            ends_at_ms,
            ticket_required: self.ticket_required.unwrap_or(false),
            ticket_lead_secs: in_range(
                "ticket_lead_secs",
                self.ticket_lead_secs.unwrap_or(DEFAULT_TICKET_LEAD_SECS),
                0,
                MAX_TICKET_LEAD_SECS,
            )?,
            buckets: in_range(
                "buckets",
                self.buckets.unwrap_or(1),
                1,
                crate::buckets::MAX_BUCKETS as i64,
            )?,
            payment_window_secs: None,
        };
        match kind {
            CampaignKind::FlashSale => {
                not_for("total_cents", &self.total_cents, kind)?;
                not_for("count", &self.count, kind)?;
                not_for("min_cents", &self.min_cents, kind)?;
                let stock = self.stock.ok_or_else(|| invalid("stock is required"))?;
                Ok(ValidCampaign {
                    total: in_range("stock", stock, 1, MAX_STOCK)?,
                    per_user_limit: in_range(
                        "per_user_limit",
                        self.per_user_limit.unwrap_or(1),
                        1,
                        MAX_PER_USER_LIMIT,
                    )?,
                    price_cents: in_range(
                        "price_cents",
                        self.price_cents.unwrap_or(0),
                        0,
                        i64::MAX,
                    )?,
                    payment_window_secs: self
                        .payment_window_secs
                        .map(|w| {
                            in_range(
                                "payment_window_secs",
                                w,
                                MIN_PAYMENT_WINDOW_SECS,
                                MAX_PAYMENT_WINDOW_SECS,
                            )
                        })
                        .transpose()?,
                    ..base
                })
            }
            CampaignKind::RedPacket => {
                not_for("stock", &self.stock, kind)?;
                not_for("payment_window_secs", &self.payment_window_secs, kind)?;
                not_for("per_user_limit", &self.per_user_limit, kind)?;
                not_for("price_cents", &self.price_cents, kind)?;
                let count = self.count.ok_or_else(|| invalid("count is required"))?;
                let count = in_range("count", count, 1, MAX_PACKET_COUNT)?;
                let min_cents =
                    in_range("min_cents", self.min_cents.unwrap_or(1), 1, MAX_TOTAL_CENTS)?;
                let total_cents = self
                    .total_cents
                    .ok_or_else(|| invalid("total_cents is required"))?;
                let floor = (count as i64).saturating_mul(min_cents as i64);
                if floor > MAX_TOTAL_CENTS {
                    return Err(invalid("count * min_cents must not exceed 10^12"));
                }
                let total_cents = in_range("total_cents", total_cents, floor, MAX_TOTAL_CENTS)?;
                Ok(ValidCampaign {
                    total: count,
                    total_cents,
                    min_cents,
                    ..base
                })
            }
        }
    }
}

/// A flash sale of 10 units, one per user, open from `starts_at_ms` to `ends_at_ms`: the
/// row unit tests start from.
#[cfg(test)]
impl Campaign {
    pub(crate) fn for_tests(id: u64, starts_at_ms: i64, ends_at_ms: i64) -> Campaign {
        Campaign {
            id,
            kind: CampaignKind::FlashSale,
            name: "x".into(),
            total: 10,
            per_user_limit: 1,
            price_cents: 0,
            total_cents: 0,
            min_cents: 0,
            split_seed: 0,
            starts_at_ms,
            ends_at_ms,
            created_at_ms: 0,
            ticket_required: false,
            ticket_lead_secs: 5,
            buckets: 1,
            payment_window_secs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flash() -> NewCampaign {
        NewCampaign {
            kind: "flash_sale".into(),
            name: "Phone".into(),
            stock: Some(10),
            ..Default::default()
        }
    }

    #[test]
    fn a_flash_sale_gets_the_contract_defaults() {
        let v = flash().validate(1_000).expect("valid");
        assert_eq!(v.per_user_limit, 1);
        assert_eq!(v.price_cents, 0);
        assert_eq!(v.starts_at_ms, 1_000);
        assert_eq!(v.ends_at_ms, 1_000 + DEFAULT_DURATION_MS);
        assert!(!v.ticket_required);
        assert_eq!(v.ticket_lead_secs, 5);
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let cases: Vec<(NewCampaign, &str)> = vec![
            (
                NewCampaign {
                    stock: Some(0),
                    ..flash()
                },
                "stock",
            ),
            (
                NewCampaign {
                    stock: Some(MAX_STOCK + 1),
                    ..flash()
                },
                "stock",
            ),
            (
                NewCampaign {
                    stock: None,
                    ..flash()
                },
                "stock",
            ),
            (
                NewCampaign {
                    per_user_limit: Some(1001),
                    ..flash()
                },
                "per_user_limit",
            ),
            (
                NewCampaign {
                    price_cents: Some(-1),
                    ..flash()
                },
                "price_cents",
            ),
            (
                NewCampaign {
                    name: "".into(),
                    ..flash()
                },
                "name",
            ),
            (
                NewCampaign {
                    name: "x".repeat(201),
                    ..flash()
                },
                "name",
            ),
            (
                NewCampaign {
                    name: "a\0b".into(),
                    ..flash()
                },
                "name",
            ),
            (
                NewCampaign {
                    kind: "auction".into(),
                    ..flash()
                },
                "kind",
            ),
            (
                NewCampaign {
                    starts_at: Some("yesterday".into()),
                    ..flash()
                },
                "starts_at",
            ),
            (
                NewCampaign {
                    starts_at: Some("2026-11-22T20:00:00Z".into()),
                    ends_at: Some("2026-11-22T20:00:00Z".into()),
                    ..flash()
                },
                "ends_at",
            ),
            (
                NewCampaign {
                    count: Some(3),
                    ..flash()
                },
                "count",
            ),
            (
                NewCampaign {
                    kind: "red_packet".into(),
                    total_cents: Some(99),
                    count: Some(100),
                    stock: None,
                    ..flash()
                },
                "total_cents",
            ),
            (
                NewCampaign {
                    kind: "red_packet".into(),
                    total_cents: Some(1000),
                    count: Some(MAX_PACKET_COUNT + 1),
                    stock: None,
                    ..flash()
                },
                "count",
            ),
            (
                NewCampaign {
                    ticket_lead_secs: Some(MAX_TICKET_LEAD_SECS + 1),
                    ..flash()
                },
                "ticket_lead_secs",
            ),
            (
                NewCampaign {
                    ticket_lead_secs: Some(-1),
                    ..flash()
                },
                "ticket_lead_secs",
            ),
            (
                NewCampaign {
                    buckets: Some(0),
                    ..flash()
                },
                "buckets",
            ),
            (
                NewCampaign {
                    buckets: Some(65),
                    ..flash()
                },
                "buckets",
            ),
        ];
        for (req, field) in cases {
            match req.validate(0) {
                Err(EngineError::Invalid(msg)) => {
                    assert!(msg.contains(field), "{msg} should name {field}")
                }
                other => panic!("{req:?} should be invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn status_prefers_ended_then_sold_out() {
        let c = Campaign {
            total: 5,
            ..Campaign::for_tests(1, 100, 200)
        };
        assert_eq!(c.status(50, 5), CampaignStatus::Scheduled);
        assert_eq!(c.status(150, 5), CampaignStatus::Active);
        assert_eq!(c.status(150, 0), CampaignStatus::SoldOut);
        assert_eq!(c.status(200, 0), CampaignStatus::Ended);
    }
}
