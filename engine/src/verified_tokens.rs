//! The cache of verified user tokens: token bytes -> who, until when (see [`crate::auth`]
//! for why tokens are remembered and what a hit still checks).
//!
//! Laid out for a crowd of distinct users: every claim of a flash crowd looks up a
//! token the cache has not seen for a while, so what the lookup costs is its cache
//! misses. With the token as a `Box<str>` key and the user as a `Box<str>` value, a hit
//! read two allocations besides the cache's own entry (the key's bytes to compare them,
//! the user's to clone them) and allocated a copy; a profile of `benches/hot-reads.sh`
//! put the lookup at about 850 ns of a sold-out refusal, 280 of them in comparing the
//! token. Here a token of up to [`INLINE_TOKEN`] bytes (every token this engine mints,
//! and most others) and the user id (at most 64 bytes by the contract) are kept in the
//! entry itself: a hit reads the entry's own lines and nothing else.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use crate::telemetry::CacheStats;

/// The longest token kept inside its entry; longer ones are kept on the heap (still
/// cached, one allocation further away).
pub const INLINE_TOKEN: usize = 255;

/// The longest user id (contract: 1 to 64 characters).
const MAX_USER: usize = 64;

/// A token as the cache's key: its exact bytes, inline when short.
// The large variant is the point: the bytes sit in the cache's entry.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum TokenKey {
    Inline { len: u8, bytes: [u8; INLINE_TOKEN] },
    Heap(Box<[u8]>),
}

impl TokenKey {
    fn new(token: &[u8]) -> Self {
        match u8::try_from(token.len()) {
            Ok(len) if token.len() <= INLINE_TOKEN => {
                let mut bytes = [0; INLINE_TOKEN];
                bytes[..token.len()].copy_from_slice(token);
                TokenKey::Inline { len, bytes }
            }
            _ => TokenKey::Heap(token.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            TokenKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            TokenKey::Heap(b) => b,
        }
    }
}

// Looked up by `&[u8]` (the blanket `Equivalent` through `Borrow`), so hashing and
// equality are those of the bytes, as `Borrow` requires.
impl Borrow<[u8]> for TokenKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialEq for TokenKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for TokenKey {}

/// What a verified token said, kept inline.
#[derive(Clone, Copy)]
struct Known {
    user_len: u8,
    user: [u8; MAX_USER],
    exp: u64,
    account_created_at: Option<i64>,
}

/// A remembered token's claims, as [`VerifiedTokens::get`] gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub user: String,
    pub exp: u64,
    pub account_created_at: Option<i64>,
}

pub struct VerifiedTokens {
    cache: quick_cache::sync::Cache<TokenKey, Known>,
    /// Hits and misses (`cache="token"`).
    stats: CacheStats,
}

impl VerifiedTokens {
    /// At most `capacity` tokens (the least recently used go first).
    pub fn new(capacity: usize) -> Self {
        VerifiedTokens {
            cache: quick_cache::sync::Cache::new(capacity),
            stats: CacheStats::new("token"),
        }
    }

    /// What `token` said when it was verified, if it is remembered and its `exp` (unix
    /// seconds) is after `now_secs`; counted as a hit or a miss.
    pub fn get(&self, token: &str, now_secs: u64) -> Option<Remembered> {
        let known = self
            .cache
            .get(token.as_bytes())
            .filter(|k| now_secs < k.exp);
        self.stats.record(known.is_some());
        let k = known?;
        // Only ids that passed `valid_user_id` (ASCII) are remembered.
        let user = std::str::from_utf8(&k.user[..usize::from(k.user_len)]).ok()?;
        Some(Remembered {
            user: user.to_string(),
            exp: k.exp,
            account_created_at: k.account_created_at,
        })
    }

    /// Remembers a token that passed every check, with a user id of at most 64 bytes
    /// (a longer one is not remembered: the contract allows none).
    pub fn insert(&self, token: &str, user: &str, exp: u64, account_created_at: Option<i64>) {
        let Ok(user_len) = u8::try_from(user.len()) else {
            return;
        };
        if user.len() > MAX_USER {
            return;
        }
        let mut bytes = [0; MAX_USER];
        bytes[..user.len()].copy_from_slice(user.as_bytes());
        self.cache.insert(
            TokenKey::new(token.as_bytes()),
            Known {
                user_len,
                user: bytes,
                exp,
                account_created_at,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_exact_bytes_short_or_long() {
        let tokens = VerifiedTokens::new(100);
        let short = "a.b.c".to_string();
        let long = "x".repeat(INLINE_TOKEN + 1);
        let edge = "y".repeat(INLINE_TOKEN);
        tokens.insert(&short, "u1", 10, None);
        tokens.insert(&long, "u2", 20, Some(5));
        tokens.insert(&edge, &"z".repeat(MAX_USER), 30, None);
        assert!(matches!(
            TokenKey::new(edge.as_bytes()),
            TokenKey::Inline { .. }
        ));
        assert!(matches!(TokenKey::new(long.as_bytes()), TokenKey::Heap(_)));
        let got = |t: &str| {
            tokens
                .get(t, 9)
                .map(|r| (r.user, r.exp, r.account_created_at))
        };
        assert_eq!(got(&short), Some(("u1".into(), 10, None)));
        assert_eq!(got(&long), Some(("u2".into(), 20, Some(5))));
        assert_eq!(got(&edge), Some(("z".repeat(MAX_USER), 30, None)));
        // One byte off, one byte short, one byte more: not the same token.
        assert_eq!(got("a.b.d"), None);
        assert_eq!(got("a.b."), None);
        assert_eq!(got("a.b.cc"), None);
        assert_eq!(got(&long[..INLINE_TOKEN]), None);
        assert_eq!(got(""), None);
        // Past its `exp`, a remembered token is not given.
        assert!(tokens.get(&short, 10).is_none());
        assert!(tokens.get(&long, 19).is_some());
    }

    #[test]
    fn a_user_id_past_the_contracts_length_is_not_remembered() {
        let tokens = VerifiedTokens::new(10);
        tokens.insert("t", &"u".repeat(MAX_USER + 1), 10, None);
        assert!(tokens.get("t", 0).is_none());
    }
}
