//! The payment provider's signature on `POST /v1/payments/notify` (README, "Orders and
//! payment"): the header `Stampede-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<raw body>">`, keyed by `STAMPEDE_PAYMENT_SECRET`.
//!
//! The timestamp is inside what is signed, so a captured notification cannot be replayed
//! later under a fresh `t`; one older (or newer) than [`TOLERANCE_SECS`] is refused, so
//! it cannot be replayed later as it is either. The tag is compared in constant time
//! (`hmac`'s `verify_slice`). Several `v1=` tags may come (a provider rotating its
//! secret); any one that verifies is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far `t` may be from now, seconds.
pub const TOLERANCE_SECS: i64 = 300;

pub struct Signatures {
    /// `None`: no key configured (production without `STAMPEDE_PAYMENT_SECRET`), so no
    /// notification is accepted.
    key: Option<Vec<u8>>,
}

/// Why a signature was refused (logged, never shown: the reply is a plain 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    /// No secret is configured.
    NoSecret,
    Malformed,
    Stale,
    Mismatch,
}

impl Signatures {
    pub fn new(secret: &str) -> Self {
        Signatures {
            key: Some(secret.as_bytes().to_vec()),
        }
    }

    /// Checks nothing as valid (no secret configured).
    pub fn refusing() -> Self {
        Signatures { key: None }
    }

    fn mac(&self, t: i64, body: &[u8]) -> Hmac<Sha256> {
        let key = self.key.as_deref().unwrap_or_default();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The header value for `body` signed at `t` (tests and the load generator's peers).
    pub fn sign(&self, t: i64, body: &[u8]) -> String {
        format!(
            "t={t},v1={}",
            hex::encode(self.mac(t, body).finalize().into_bytes())
        )
    }

    /// Checks `header` against `body` at `now_secs`.
    pub fn verify(&self, header: Option<&str>, body: &[u8], now_secs: i64) -> Result<(), Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        if self.key.is_none() {
            return Err(Refusal::NoSecret);
        }
        let mut t = None;
        let mut tags = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => {
                    t = Some(v.parse::<i64>().map_err(|_| Refusal::Malformed)?);
                }
                Some(("v1", v)) => tags.push(hex::decode(v).map_err(|_| Refusal::Malformed)?),
                // Other schemes (a future v2) are ignored, as providers document.
                Some(_) => {}
                None => return Err(Refusal::Malformed),
            }
        }
        let t = t.ok_or(Refusal::Malformed)?;
        if tags.is_empty() {
            return Err(Refusal::Malformed);
        }
        if (now_secs - t).abs() > TOLERANCE_SECS {
            return Err(Refusal::Stale);
        }
        if tags
            .iter()
            .any(|tag| self.mac(t, body).verify_slice(tag).is_ok())
        {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_known_vector_verifies() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec",b"1800000000.{}",hashlib.sha256).hexdigest())'
        let s = Signatures::new("whsec");
        assert_eq!(
            s.sign(NOW, b"{}"),
            "t=1800000000,v1=77b7eef0d31630eb2979f9c5a7773983688ccf849f9d5a79d0a01c0a8bbaffa0"
        );
    }

    #[test]
    fn only_a_fresh_signature_of_this_body_with_this_key_passes() {
        let s = Signatures::new("whsec");
        let body = br#"{"payment_id":"p-1"}"#;
        let good = s.sign(NOW, body);
        assert_eq!(s.verify(Some(&good), body, NOW + 10), Ok(()));
        assert_eq!(s.verify(None, body, NOW), Err(Refusal::Missing));
        assert_eq!(
            s.verify(Some(&good), br#"{"payment_id":"p-2"}"#, NOW),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            Signatures::new("other").verify(Some(&good), body, NOW),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            s.verify(Some(&good), body, NOW + TOLERANCE_SECS + 1),
            Err(Refusal::Stale)
        );
        // The old tag under a new timestamp: the timestamp is signed too.
        let tag = good.split_once(",v1=").map(|(_, t)| t).unwrap_or_default();
        let replayed = format!("t={},v1={tag}", NOW + 60);
        assert_eq!(
            s.verify(Some(&replayed), body, NOW + 60),
            Err(Refusal::Mismatch)
        );
        for bad in [
            "",
            "t=x,v1=00",
            "t=1",
            "v1=00",
            "t=1800000000,v1=zz",
            "garbage",
        ] {
            assert_ne!(s.verify(Some(bad), body, NOW), Ok(()), "{bad:?}");
        }
        // A second tag (a rotated secret) may verify.
        let both = format!("{good},v1={}", "00".repeat(32));
        assert_eq!(s.verify(Some(&both), body, NOW), Ok(()));
        assert_eq!(
            Signatures::refusing().verify(Some(&good), body, NOW),
            Err(Refusal::NoSecret)
        );
    }
}
