//! User JWTs, minted locally before the run.
//!
//! The engine accepts HS256 tokens with `sub` (the user id) and `exp` (unix seconds).
//! Signing costs a few microseconds; done per request it would be measured as engine
//! latency and would cap the request rate, so every token is minted up front and turned
//! into a ready `Authorization` header value. Minting is spread over the machine's cores
//! because a million-user crowd is a million signatures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::client::bearer;
use crate::error::{Error, Result};

/// How long minted tokens stay valid: longer than any run, short enough to be harmless.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The claims the engine requires, nothing more.
#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

/// The crowd's user ids: `prefix` + a zero-padded index (`u000001`, `u000002`, ...).
/// Six digits keep ids sortable for crowds up to a million; larger crowds get wider ids.
pub fn user_ids(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}{i:06}")).collect()
}

/// Mints one HS256 token for `user`, valid for [`TOKEN_TTL`].
pub fn mint(secret: &[u8], user: &str) -> Result<String> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(TOKEN_TTL)
        .as_secs();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &Claims { sub: user, exp },
        &EncodingKey::from_secret(secret),
    )?;
    Ok(token)
}

/// Mints a bearer header value for every user, in order, using all cores.
pub fn bearer_headers(secret: &str, users: &[String]) -> Result<Vec<HeaderValue>> {
    if secret.is_empty() {
        return Err(Error::Config(
            "a JWT secret is required: pass --jwt-secret or set STAMPEDE_JWT_SECRET".into(),
        ));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = users.len().div_ceil(threads).max(1);
    let key = secret.as_bytes();
    std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|user| bearer(&mint(key, user)?))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(users.len());
        for handle in handles {
            match handle.join() {
                Ok(part) => all.extend(part?),
                Err(_) => return Err(Error::Config("token minting thread panicked".into())),
            }
        }
        Ok(all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Decoded {
        sub: String,
        exp: u64,
    }

    #[test]
    fn user_ids_are_zero_padded_and_start_at_one() {
        assert_eq!(user_ids("u", 2), vec!["u000001", "u000002"]);
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret_and_carry_sub_and_exp() {
        let token = mint(b"s3cret", "u000123").expect("mint");
        let data = decode::<Decoded>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .expect("verifies");
        assert_eq!(data.claims.sub, "u000123");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(data.claims.exp > now + 3500 && data.claims.exp <= now + 3600);
    }

    #[test]
    fn bearer_headers_come_back_in_user_order() {
        let users = user_ids("u", 9);
        let headers = bearer_headers("k", &users).expect("mint");
        assert_eq!(headers.len(), 9);
        let expected = bearer(&mint(b"k", "u000005").expect("mint")).expect("header");
        // Same user, same second: same token (exp may differ by a second at a boundary).
        let got = headers[4].to_str().expect("ascii");
        assert!(got.starts_with("Bearer ") && expected.len() == got.len());
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert!(bearer_headers("", &user_ids("u", 1)).is_err());
    }
}
