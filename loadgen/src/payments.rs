//! The payment provider's half of `POST /v1/payments/notify`: the notification body and
//! the `Stampede-Signature` header that authenticates it (`docs/api.md`, "Orders and
//! payment").
//!
//! The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed by the
//! engine's `STAMPEDE_PAYMENT_SECRET`. The MAC covers the exact bytes sent, so the body is
//! serialized once and those bytes are both signed and sent. `t` is taken when the
//! notification goes out (not when it is planned): the engine refuses a `t` more than
//! 300 s away from its clock, and a late payment is sent seconds after it was planned.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderName, HeaderValue};
use serde::Serialize;
use sha2::Sha256;

use crate::error::{Error, Result};

/// The notification route (no bearer token: the signature is the credential).
pub const NOTIFY_PATH: &str = "/v1/payments/notify";

/// The signature header's name (HTTP header names are case-insensitive; hyper wants them
/// lower case).
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("stampede-signature");

/// The body of a notification, fields in the contract's order.
#[derive(Clone, Debug, Serialize)]
pub struct Notification<'a> {
    pub payment_id: &'a str,
    pub claim_id: &'a str,
    /// What the order costs: price × quantity (anything else gets `422`).
    pub amount_cents: u64,
    /// The provider's verdict; the load generator only ever reports money that arrived.
    pub status: &'static str,
}

impl<'a> Notification<'a> {
    /// A successful payment of `amount_cents` for `claim_id`.
    pub fn succeeded(payment_id: &'a str, claim_id: &'a str, amount_cents: u64) -> Self {
        Self {
            payment_id,
            claim_id,
            amount_cents,
            status: "succeeded",
        }
    }

    /// The raw body, as signed and sent.
    pub fn body(&self) -> Bytes {
        // A struct of strings and an integer always serializes.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The header value for `body` sent at unix second `t`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> Result<String> {
    // HMAC takes a key of any length; the error exists only for fixed-key MACs.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| Error::Config("the payment secret cannot key an HMAC".into()))?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("t={t},v1={}", hex(&mac.finalize().into_bytes())))
}

/// The `Stampede-Signature` header for `body`, signed now.
pub fn signature_header(secret: &[u8], body: &[u8]) -> Result<(HeaderName, HeaderValue)> {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let value = HeaderValue::from_str(&signature(secret, t, body)?)
        .map_err(|_| Error::Config("a signature is not a header value".into()))?;
    Ok((SIGNATURE_HEADER, value))
}

/// Lower-case hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python's standard library:
    /// `hmac.new(b"whsec-test", b"1764748800." + body, hashlib.sha256).hexdigest()`.
    const PYTHON_VECTOR: &str = "25906b86f8455ecf2fbff97cc50f747bdfd6bf86d6f33c41d6dbdaa78761acc2";

    #[test]
    fn the_body_is_the_contracts_json_in_its_field_order() {
        let body = Notification::succeeded("p-1", "c17-0000000042", 99900).body();
        assert_eq!(
            &body[..],
            br#"{"payment_id":"p-1","claim_id":"c17-0000000042","amount_cents":99900,"status":"succeeded"}"#
        );
    }

    #[test]
    fn the_signature_matches_a_vector_computed_with_python() {
        let body = Notification::succeeded("p-1", "c17-0000000042", 99900).body();
        let header = signature(b"whsec-test", 1_764_748_800, &body).expect("sign");
        assert_eq!(header, format!("t=1764748800,v1={PYTHON_VECTOR}"));
    }

    #[test]
    fn the_signature_matches_the_engines_own_test_vector() {
        // api/src/payment_signature.rs signs `{}` at 1800000000 with "whsec" to this
        // (also `hmac.new(b"whsec", b"1800000000.{}", hashlib.sha256)` in Python).
        assert_eq!(
            signature(b"whsec", 1_800_000_000, b"{}").expect("sign"),
            "t=1800000000,v1=77b7eef0d31630eb2979f9c5a7773983688ccf849f9d5a79d0a01c0a8bbaffa0"
        );
    }

    #[test]
    fn the_signature_covers_the_time_and_every_byte_of_the_body() {
        let body = Notification::succeeded("p-1", "c1-1", 1000).body();
        let base = signature(b"k", 100, &body).expect("sign");
        assert_ne!(base, signature(b"k", 101, &body).expect("sign"));
        assert_ne!(base, signature(b"other", 100, &body).expect("sign"));
        let mut changed = body.to_vec();
        changed[2] ^= 1;
        assert_ne!(base, signature(b"k", 100, &changed).expect("sign"));
    }

    #[test]
    fn the_header_is_signed_now() {
        let (name, value) = signature_header(b"k", b"{}").expect("sign");
        assert_eq!(name.as_str(), "stampede-signature");
        let text = value.to_str().expect("ascii");
        let t: u64 = text
            .strip_prefix("t=")
            .and_then(|rest| rest.split(',').next())
            .and_then(|t| t.parse().ok())
            .expect("t=");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(t.abs_diff(now) <= 1);
        assert_eq!(text, signature(b"k", t, b"{}").expect("sign"));
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}
