//! The dashboard's login session: a cookie that proves its holder knew the admin token,
//! without holding the token.
//!
//! Opening `/dashboard?token=<admin token>` sets the cookie `stampede_dashboard` to
//! `{expiry}.{hex HMAC-SHA256(key = admin token, "stampede-dashboard|{expiry}")}`
//! (expiry in unix seconds, [`SESSION_TTL`] ahead), `HttpOnly` (page scripts cannot read
//! it), `SameSite=Strict` (other sites cannot make the browser send it) and
//! `Path=/dashboard` (the api's other routes never see it). Changing the admin token
//! ends every session; a stolen cookie works only until its expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE_NAME: &str = "stampede_dashboard";
/// How long a dashboard login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

pub struct DashboardSession {
    /// The admin token, as the HMAC key.
    key: Vec<u8>,
}

impl std::fmt::Debug for DashboardSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DashboardSession { key: <redacted> }")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DashboardSession {
    pub fn new(admin_token: &str) -> Self {
        DashboardSession {
            key: admin_token.as_bytes().to_vec(),
        }
    }

    fn mac(&self, expiry: u64) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(format!("stampede-dashboard|{expiry}").as_bytes());
        mac
    }

    /// A fresh cookie value, valid for [`SESSION_TTL`].
    pub fn issue(&self) -> String {
        let expiry = now_secs() + SESSION_TTL.as_secs();
        let tag = self.mac(expiry).finalize().into_bytes();
        format!("{expiry}.{}", hex::encode(tag))
    }

    /// The `Set-Cookie` header value that logs a browser in.
    pub fn set_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/dashboard; Max-Age={}; HttpOnly; SameSite=Strict",
            self.issue(),
            SESSION_TTL.as_secs()
        )
    }

    /// Whether `value` is a cookie this key issued and it has not expired (the tag is
    /// compared in constant time).
    pub fn verify(&self, value: &str) -> bool {
        let Some((expiry, tag_hex)) = value.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        if expiry <= now_secs() || tag_hex.len() != 64 {
            return false;
        }
        hex::decode(tag_hex).is_ok_and(|t| self.mac(expiry).verify_slice(&t).is_ok())
    }

    /// Whether the request carries a valid session cookie.
    pub fn logged_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .any(|(name, value)| name == COOKIE_NAME && self.verify(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn an_issued_cookie_verifies_and_holds_no_token() {
        let s = DashboardSession::new("admin-token-0123456789");
        let v = s.issue();
        assert!(s.verify(&v));
        assert!(!v.contains("admin-token"));
        let set = s.set_cookie();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
            assert!(set.contains(attr), "{set}");
        }
    }

    #[test]
    fn forged_tampered_expired_and_foreign_cookies_are_refused() {
        let s = DashboardSession::new("admin-token-0123456789");
        let other = DashboardSession::new("another-admin-token-xyz");
        let v = s.issue();
        let (expiry, tag) = v.split_once('.').expect("dot");
        let later = format!("{}.{tag}", expiry.parse::<u64>().expect("n") + 1);
        let expired = {
            let e = now_secs() - 1;
            let t: String = s
                .mac(e)
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{e}.{t}")
        };
        for bad in [
            "",
            "garbage",
            &later,
            &expired,
            &other.issue(),
            &format!("{expiry}.{}", "0".repeat(64)),
            &format!("{expiry}.zz{}", &tag[2..]),
            &format!("{expiry}.é{}", &tag[2..]),
        ] {
            assert!(!s.verify(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let s = DashboardSession::new("admin-token-0123456789");
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=b; c=d"));
        assert!(!s.logged_in(&h));
        let v = HeaderValue::from_str(&format!("x=1; {COOKIE_NAME}={}", s.issue())).expect("hv");
        h.append(COOKIE, v);
        assert!(s.logged_in(&h));
    }
}
