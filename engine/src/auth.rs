//! Authentication per the contract: HS256 user JWTs and the admin bearer token.
//!
//! The algorithm is pinned: a token whose header names anything but HS256 (`none`
//! included) is refused before its signature is looked at. `exp` and `sub` are
//! required, with no leeway, and `sub` must be a valid user id. The admin token is
//! compared in constant time. Secrets never appear in `Debug` output.
//!
//! Verified tokens are remembered (as Envoy's `jwt_authn` JWT cache does): a crowd's
//! retries present the same token again and again, and decoding and checking it costs
//! more than the rest of a claim's CPU work. The cache is keyed by the exact token
//! bytes, so only a byte-identical token that already passed every check hits, and its
//! `exp` is still checked on every hit. It is bounded (`VERIFIED_TOKENS` entries).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::verified_tokens::VerifiedTokens;

/// Why a credential was refused; the api maps every variant to `401`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("expired token")]
    Expired,
    #[error("invalid user id")]
    BadUserId,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserClaims {
    sub: String,
    exp: u64,
    /// Optional: when the user's account was made (unix seconds), as the upstream login
    /// system knows it; the risk rules may refuse or flag very young accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_created_at: Option<i64>,
}

/// A verified user token: who, and what else it says that the engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    /// The optional `account_created_at` claim (unix seconds).
    pub account_created_at: Option<i64>,
}

/// Verified tokens remembered per process; at 384 bytes each (the token and the user
/// kept inline, see `crate::verified_tokens`), 24 MiB, allocated at start.
const VERIFIED_TOKENS: usize = 65_536;

pub struct Auth {
    /// Token -> (user id, `exp`, `account_created_at`), for tokens that passed every check.
    verified: VerifiedTokens,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    admin_token: Vec<u8>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { secrets: <redacted> }")
    }
}

/// A user id per the contract: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl Auth {
    pub fn new(jwt_secret: &str, admin_token: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            verified: VerifiedTokens::new(VERIFIED_TOKENS),
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            validation,
            admin_token: admin_token.as_bytes().to_vec(),
        }
    }

    /// Verifies a user JWT and returns its user id.
    pub fn verify_user(&self, token: impl AsRef<[u8]>) -> Result<String, AuthError> {
        self.verify(token).map(|v| v.user)
    }

    /// Verifies a user JWT (as the header's bytes: a remembered token is found by them
    /// before any check of the text) and returns what it says.
    pub fn verify(&self, token: impl AsRef<[u8]>) -> Result<Verified, AuthError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`Auth::verify`] with a remembered token's `exp` held against `now_secs` (unix
    /// seconds; the claim route reads its clock once). A token not remembered is checked
    /// by the JWT library against its own clock read.
    pub fn verify_at(&self, token: impl AsRef<[u8]>, now_secs: u64) -> Result<Verified, AuthError> {
        let token = token.as_ref();
        if let Some(known) = self.verified.get(token, now_secs) {
            return Ok(Verified {
                user: known.user,
                account_created_at: known.account_created_at,
            });
        }
        // Not remembered: a JWT is ASCII, so bytes that are not even UTF-8 are no token.
        let text = std::str::from_utf8(token).map_err(|_| AuthError::Invalid)?;
        let data = jsonwebtoken::decode::<UserClaims>(text, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        if !valid_user_id(&data.claims.sub) {
            return Err(AuthError::BadUserId);
        }
        let UserClaims {
            sub,
            exp,
            account_created_at,
        } = data.claims;
        self.verified.insert(token, &sub, exp, account_created_at);
        Ok(Verified {
            user: sub,
            account_created_at,
        })
    }

    /// True when `token` is the admin token (constant-time comparison).
    pub fn is_admin(&self, token: impl AsRef<[u8]>) -> bool {
        bool::from(token.as_ref().ct_eq(&self.admin_token))
    }

    /// Mints a user JWT valid for `ttl_secs` (`stampede token`, tests, the load generator).
    pub fn mint(&self, user_id: &str, ttl_secs: u64) -> Result<String, AuthError> {
        self.mint_with_account_age(user_id, ttl_secs, None)
    }

    /// [`Auth::mint`], with the optional `account_created_at` claim (unix seconds).
    pub fn mint_with_account_age(
        &self,
        user_id: &str,
        ttl_secs: u64,
        account_created_at: Option<i64>,
    ) -> Result<String, AuthError> {
        if !valid_user_id(user_id) {
            return Err(AuthError::BadUserId);
        }
        let claims = UserClaims {
            sub: user_id.to_string(),
            exp: jsonwebtoken::get_current_timestamp() + ttl_secs,
            account_created_at,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn a_minted_token_verifies() {
        let auth = Auth::new("secret", "admin");
        let t = auth.mint("u-1.x_y", 60).expect("mint");
        assert_eq!(auth.verify_user(&t), Ok("u-1.x_y".to_string()));
    }

    #[test]
    fn forged_and_broken_tokens_are_refused() {
        let auth = Auth::new("secret", "admin");
        let other = Auth::new("other", "admin");
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"u1","exp":{exp}}}"#))
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &UserClaims {
                sub: "u1".into(),
                exp,
                account_created_at: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &UserClaims {
                sub: "u1".into(),
                exp: 1,
                account_created_at: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        let no_sub = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "exp": exp }),
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        let bad_id = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &UserClaims {
                sub: "bad id!".into(),
                exp,
                account_created_at: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        assert_eq!(auth.verify_user(&none), Err(AuthError::Invalid));
        assert_eq!(auth.verify_user(&hs512), Err(AuthError::Invalid));
        assert_eq!(auth.verify_user(&expired), Err(AuthError::Expired));
        assert_eq!(auth.verify_user(&no_sub), Err(AuthError::Invalid));
        assert_eq!(auth.verify_user(&bad_id), Err(AuthError::BadUserId));
        assert_eq!(
            auth.verify_user(other.mint("u1", 60).expect("mint")),
            Err(AuthError::Invalid)
        );
        assert_eq!(auth.verify_user("garbage"), Err(AuthError::Invalid));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_misses() {
        let auth = Auth::new("secret", "admin");
        let short = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &UserClaims {
                sub: "u1".into(),
                exp: jsonwebtoken::get_current_timestamp() + 1,
                account_created_at: None,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        assert_eq!(auth.verify_user(&short), Ok("u1".to_string()));
        assert_eq!(
            auth.verify_user(&short),
            Ok("u1".to_string()),
            "served from the cache"
        );
        let mut tampered = short.clone();
        tampered.pop();
        tampered.push(if short.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(auth.verify_user(&tampered), Err(AuthError::Invalid));
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        assert_eq!(
            auth.verify_user(&short),
            Err(AuthError::Expired),
            "the cache honours exp"
        );
    }

    #[test]
    fn a_token_not_yet_valid_is_refused_until_its_nbf() {
        let auth = Auth::new("secret", "admin");
        let now = jsonwebtoken::get_current_timestamp();
        let token = |nbf: u64| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &serde_json::json!({ "sub": "u1", "exp": now + 600, "nbf": nbf }),
                &EncodingKey::from_secret(b"secret"),
            )
            .expect("encode")
        };
        assert_eq!(auth.verify_user(token(now + 300)), Err(AuthError::Invalid));
        assert_eq!(auth.verify_user(token(now - 1)), Ok("u1".to_string()));
    }

    #[test]
    fn the_account_age_claim_is_optional_and_kept() {
        let auth = Auth::new("secret", "admin");
        let t = auth
            .mint_with_account_age("u1", 60, Some(1_700_000_000))
            .expect("mint");
        for _ in 0..2 {
            // The second answer comes from the cache of verified tokens.
            assert_eq!(
                auth.verify(&t),
                Ok(Verified {
                    user: "u1".into(),
                    account_created_at: Some(1_700_000_000)
                })
            );
        }
        let plain = auth.mint("u1", 60).expect("mint");
        assert_eq!(auth.verify(&plain).map(|v| v.account_created_at), Ok(None));
        let not_a_number = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "sub": "u1", "exp": jsonwebtoken::get_current_timestamp() + 60,
                                 "account_created_at": "yesterday" }),
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        assert_eq!(auth.verify(&not_a_number), Err(AuthError::Invalid));
    }

    #[test]
    fn the_admin_token_must_match_exactly() {
        let auth = Auth::new("secret", "admin-token");
        assert!(auth.is_admin("admin-token"));
        assert!(!auth.is_admin("admin-toke"));
        assert!(!auth.is_admin(""));
    }

    #[test]
    fn user_ids_follow_the_contract() {
        assert!(valid_user_id("u123"));
        assert!(valid_user_id(&"a".repeat(64)));
        assert!(!valid_user_id(&"a".repeat(65)));
        assert!(!valid_user_id(""));
        assert!(!valid_user_id("é"));
        assert!(!valid_user_id("a b"));
    }
}
