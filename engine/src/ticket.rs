//! Claim tickets (contract: "Claim tickets"): a campaign created with
//! `ticket_required` accepts a claim only with a ticket that `GET .../ticket` hands
//! out, and only from `ticket_lead_secs` before the start. A bot cannot script its
//! claims ahead of the sale: the ticket does not exist until moments before it.
//!
//! A ticket is `t1.{campaign}.{issued ms}.{expires ms}.{mac}`: the MAC is HMAC-SHA256
//! over the same fields *and the user id*, so a ticket is bound to one user and one
//! campaign and cannot be moved, stretched or forged. Checking it needs no store and
//! no state: any api instance sharing the secret verifies any other's tickets.
//!
//! The key is derived from the user-token secret (HMAC of a fixed label), so a
//! deployment configures nothing new, and a ticket MAC is never a valid JWT signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::campaign::Campaign;

type HmacSha256 = Hmac<Sha256>;

/// The label the ticket key is derived with.
const KEY_LABEL: &[u8] = b"stampede/claim-ticket/v1";
/// The ticket format's version prefix.
const VERSION: &str = "t1";
/// The longest ticket accepted (a longer header is refused without parsing).
const MAX_TICKET_LEN: usize = 160;

/// How long a ticket stays valid by default: after the start (or after it is handed
/// out, when that is later) a user has this long to claim before asking again.
pub const DEFAULT_TICKET_TTL_MS: i64 = 60_000;

/// A ticket handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub token: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Why no ticket is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIssued {
    /// Before the lead window (contract: `409 not_started`).
    TooEarly,
    /// The campaign has ended.
    Ended,
}

/// Why a ticket does not admit a claim; the api answers every one `403 ticket_required`
/// (the reason is for logs and metrics, not for the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Missing,
    Malformed,
    OtherCampaign,
    Expired,
    BadSignature,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Missing => "missing",
            Invalid::Malformed => "malformed",
            Invalid::OtherCampaign => "other_campaign",
            Invalid::Expired => "expired",
            Invalid::BadSignature => "bad_signature",
        }
    }
}

/// Hands out and checks tickets.
#[derive(Clone)]
pub struct Tickets {
    key: HmacSha256,
    ttl_ms: i64,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tickets {{ key: <redacted>, ttl_ms: {} }}", self.ttl_ms)
    }
}

impl Tickets {
    /// Tickets keyed from the user-token secret, valid `ttl_ms` past the start.
    pub fn new(jwt_secret: &str, ttl_ms: i64) -> Self {
        let mut derive = HmacSha256::new_from_slice(jwt_secret.as_bytes())
            .expect("HMAC takes a key of any length");
        derive.update(KEY_LABEL);
        let key = derive.finalize().into_bytes();
        Tickets {
            key: HmacSha256::new_from_slice(&key).expect("HMAC takes a key of any length"),
            ttl_ms: ttl_ms.max(1),
        }
    }

    fn mac(&self, campaign_id: u64, user_id: &str, issued: i64, expires: i64) -> HmacSha256 {
        let mut mac = self.key.clone();
        mac.update(format!("{VERSION}|{campaign_id}|{user_id}|{issued}|{expires}").as_bytes());
        mac
    }

    /// A ticket for `user_id` on `c` at `now_ms`: from `ticket_lead_secs` before the
    /// start, never earlier, and not once the campaign has ended. It expires the TTL
    /// after the start (or after now, when that is later), and never after the end.
    pub fn issue(&self, c: &Campaign, user_id: &str, now_ms: i64) -> Result<Ticket, NotIssued> {
        let lead_ms = (c.ticket_lead_secs as i64).saturating_mul(1_000);
        if now_ms < c.starts_at_ms.saturating_sub(lead_ms) {
            return Err(NotIssued::TooEarly);
        }
        if now_ms >= c.ends_at_ms {
            return Err(NotIssued::Ended);
        }
        let expires = now_ms
            .max(c.starts_at_ms)
            .saturating_add(self.ttl_ms)
            .min(c.ends_at_ms);
        let tag = self
            .mac(c.id, user_id, now_ms, expires)
            .finalize()
            .into_bytes();
        Ok(Ticket {
            token: format!(
                "{VERSION}.{}.{now_ms}.{expires}.{}",
                c.id,
                URL_SAFE_NO_PAD.encode(tag)
            ),
            issued_at_ms: now_ms,
            expires_at_ms: expires,
        })
    }

    /// Checks `token` for a claim of `user_id` on `campaign_id` at `now_ms`; on success
    /// returns when the ticket was handed out (for the "too fast" risk rule).
    pub fn verify(
        &self,
        token: Option<&str>,
        campaign_id: u64,
        user_id: &str,
        now_ms: i64,
    ) -> Result<i64, Invalid> {
        let token = token.ok_or(Invalid::Missing)?;
        if token.len() > MAX_TICKET_LEN {
            return Err(Invalid::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(VERSION), Some(c), Some(issued), Some(expires), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Invalid::Malformed);
        };
        let c: u64 = c.parse().map_err(|_| Invalid::Malformed)?;
        let issued: i64 = issued.parse().map_err(|_| Invalid::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| Invalid::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Invalid::Malformed)?;
        // The signature first: nothing a forger chose is believed before it.
        self.mac(c, user_id, issued, expires)
            .verify_slice(&tag)
            .map_err(|_| Invalid::BadSignature)?;
        if c != campaign_id {
            return Err(Invalid::OtherCampaign);
        }
        if now_ms >= expires {
            return Err(Invalid::Expired);
        }
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_000_000_000;

    fn campaign(id: u64) -> Campaign {
        Campaign {
            ticket_required: true,
            ..Campaign::for_tests(id, START, START + 3_600_000)
        }
    }

    fn tickets() -> Tickets {
        Tickets::new("secret", DEFAULT_TICKET_TTL_MS)
    }

    #[test]
    fn no_ticket_before_the_lead_window_or_after_the_end() {
        let t = tickets();
        let c = campaign(1);
        assert_eq!(t.issue(&c, "u", START - 5_001), Err(NotIssued::TooEarly));
        assert!(t.issue(&c, "u", START - 5_000).is_ok());
        assert_eq!(t.issue(&c, "u", c.ends_at_ms), Err(NotIssued::Ended));
    }

    #[test]
    fn a_ticket_admits_its_user_on_its_campaign_until_it_expires() {
        let t = tickets();
        let c = campaign(7);
        let ticket = t.issue(&c, "alice", START - 2_000).expect("issued");
        assert_eq!(ticket.expires_at_ms, START + DEFAULT_TICKET_TTL_MS);
        let ok = |user: &str, campaign: u64, now: i64| {
            t.verify(Some(&ticket.token), campaign, user, now)
        };
        assert_eq!(ok("alice", 7, START), Ok(START - 2_000));
        assert_eq!(ok("bob", 7, START), Err(Invalid::BadSignature));
        assert_eq!(ok("alice", 8, START), Err(Invalid::OtherCampaign));
        assert_eq!(ok("alice", 7, ticket.expires_at_ms), Err(Invalid::Expired));
    }

    #[test]
    fn a_changed_forged_or_garbled_ticket_is_refused() {
        let t = tickets();
        let c = campaign(7);
        let ticket = t.issue(&c, "alice", START).expect("issued");
        // Stretched expiry: the MAC no longer matches.
        let parts: Vec<&str> = ticket.token.split('.').collect();
        let stretched = format!(
            "{}.{}.{}.{}.{}",
            parts[0],
            parts[1],
            parts[2],
            ticket.expires_at_ms + 3_600_000,
            parts[4]
        );
        assert_eq!(
            t.verify(Some(&stretched), 7, "alice", START),
            Err(Invalid::BadSignature)
        );
        // Another secret's ticket.
        let other = Tickets::new("other", DEFAULT_TICKET_TTL_MS)
            .issue(&c, "alice", START)
            .expect("issued");
        assert_eq!(
            t.verify(Some(&other.token), 7, "alice", START),
            Err(Invalid::BadSignature)
        );
        for garbage in [
            "",
            "t1",
            "t1.7.1.2",
            "t2.7.1.2.AAAA",
            "t1.x.1.2.AAAA",
            "t1.7.1.2.!!",
        ] {
            assert_eq!(
                t.verify(Some(garbage), 7, "alice", START),
                Err(Invalid::Malformed),
                "{garbage:?}"
            );
        }
        assert_eq!(t.verify(None, 7, "alice", START), Err(Invalid::Missing));
        let long = "t".repeat(MAX_TICKET_LEN + 1);
        assert_eq!(
            t.verify(Some(&long), 7, "alice", START),
            Err(Invalid::Malformed)
        );
    }

    #[test]
    fn a_ticket_handed_out_after_the_start_runs_from_then_but_not_past_the_end() {
        let t = tickets();
        let mut c = campaign(3);
        let late = t.issue(&c, "u", START + 10_000).expect("issued");
        assert_eq!(late.expires_at_ms, START + 10_000 + DEFAULT_TICKET_TTL_MS);
        c.ends_at_ms = START + 20_000;
        let near_end = t.issue(&c, "u", START + 10_000).expect("issued");
        assert_eq!(near_end.expires_at_ms, c.ends_at_ms);
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(!format!("{:?}", tickets()).contains("secret"));
    }
}
