//! The cache of verified user tokens: token bytes -> who, until when (see [`crate::auth`]
//! for why tokens are remembered and what a hit still checks).
//!
//! Laid out for a crowd of distinct users: every claim of a flash crowd looks up a
//! token the cache has not seen for a while, so what a lookup costs is its cache
//! misses, and a lookup that writes a shared line pays again on the other core.
//!
//! - **One place to look.** A token's hash picks a set of [`WAYS`] slots in one flat
//!   table; each slot holds the token's bytes, the user and the expiry inline. A hit
//!   reads those slots' own lines and nothing else. (A hash map of entries took four
//!   dependent misses per hit, control bytes, index, entry, key: about 550 ns of a
//!   sold-out refusal in `benches/hot-reads.sh`'s profile.)
//! - **Reads write nothing.** Each slot is a sequence lock over atomic words: a reader
//!   compares the words in place and checks that the slot's sequence did not move
//!   meanwhile; a writer makes it odd, writes, makes it even again. A read that
//!   overlaps a write is a miss (the token is verified again), never a mix of two
//!   tokens. No lock, no reference count, no recency bit is touched on a hit.
//! - **Bounded.** A full set gives up the slot whose token expires first (an expired or
//!   empty slot first of all). There is no recency order: keeping one would be a write
//!   per hit.
//! - Tokens longer than [`SLOT_TOKEN`] bytes (none this engine mints) are kept in a
//!   small ordinary cache beside it.
//!
//! What a hit still costs is the slot's memory: in `benches/hot-reads.sh` a token comes
//! back every 4,000 requests, long after the kernel's and hyper's buffers have pushed
//! its lines out of every cache. A lookup therefore loads every word a hit needs from
//! both of its set's slots before it looks at any ([`Slot::look`]), so that their lines
//! come from memory together: one trip instead of three in a row (the header line, the
//! token's, the user's), 270 ns instead of 400 in the profile. Slots packed in the order
//! tokens were verified, found through a small index, were tried: the index is a miss
//! of its own, and the profile did not improve.

use std::hash::BuildHasher;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::telemetry::CacheStats;

/// The longest token kept in the table's slots.
pub const SLOT_TOKEN: usize = TOKEN_WORDS * 8;
const TOKEN_WORDS: usize = 32;

/// The longest user id (contract: 1 to 64 characters).
const MAX_USER: usize = USER_WORDS * 8;
const USER_WORDS: usize = 8;

/// Slots per set: a token may sit in either of its set's two.
const WAYS: usize = 2;

/// Longer tokens remembered beside the table, at most.
const LONG_TOKENS: usize = 4_096;

/// One remembered token. All words are atomics, read and written `Relaxed` under the
/// slot's `seq`; `lens == 0` is an empty slot (no empty token is ever verified).
///
/// In this order (`repr(C)`): what every lookup reads first, then the user, then the
/// token, so that a hit of a token of the usual 150 bytes reads the slot's first four
/// lines and no others.
#[derive(Default)]
#[repr(C, align(64))]
struct Slot {
    /// Even when the slot is stable, odd while it is being written; +2 per write.
    seq: AtomicU64,
    /// The token's hash: a cheap first test before its bytes.
    tag: AtomicU64,
    /// The token's length (bits 0-15), the user's (16-23), and bit 24 set when the
    /// token said `account_created_at`.
    lens: AtomicU64,
    exp: AtomicU64,
    account_created_at: AtomicU64,
    user: [AtomicU64; USER_WORDS],
    token: [AtomicU64; TOKEN_WORDS],
}

/// What a lookup saw in one slot: every word a hit needs, loaded before any of them is
/// looked at (see [`Slot::look`]).
struct Seen {
    seq: u64,
    /// The slot held exactly the token, and no write was in progress at the start.
    held: bool,
    lens: u64,
    exp: u64,
    created: u64,
    user: [u64; USER_WORDS],
}

/// A token as the words a slot keeps it in (little-endian, the last one padded with
/// zeros), made once per lookup for both ways.
struct TokenWords {
    words: [u64; TOKEN_WORDS],
    count: usize,
    len: u64,
}

impl Seen {
    /// The claims of a slot that held the token.
    fn remembered(&self) -> Option<Remembered> {
        let mut user = [0u8; MAX_USER];
        for (out, w) in user.chunks_mut(8).zip(&self.user) {
            out.copy_from_slice(&w.to_le_bytes());
        }
        let user_len = ((self.lens >> 16) & 0xff) as usize;
        // Only ids that passed `valid_user_id` (ASCII) are remembered.
        let user = std::str::from_utf8(user.get(..user_len)?).ok()?;
        Some(Remembered {
            user: user.to_string(),
            exp: self.exp,
            account_created_at: (self.lens & HAS_CREATED != 0).then_some(self.created as i64),
        })
    }
}

impl TokenWords {
    /// `None` for a token longer than a slot holds.
    fn of(token: &[u8]) -> Option<Self> {
        if token.len() > SLOT_TOKEN {
            return None;
        }
        let mut words = [0; TOKEN_WORDS];
        for (w, v) in words.iter_mut().zip(self::words(token)) {
            *w = v;
        }
        Some(TokenWords {
            words,
            count: token.len().div_ceil(8),
            len: token.len() as u64,
        })
    }
}

const HAS_CREATED: u64 = 1 << 24;

/// Bytes as little-endian words, the last one padded with zeros.
fn words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|c| match <[u8; 8]>::try_from(c) {
        Ok(full) => u64::from_le_bytes(full),
        Err(_) => {
            let mut w = [0; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        }
    })
}

impl Slot {
    /// Every word a hit of `token` needs, with whether the slot holds exactly it: no
    /// branch on what a load gave until all are loaded, so the processor fetches the
    /// slot's lines (and, in [`VerifiedTokens::get`], the other way's) at once rather
    /// than one line after another (a test on the header line first, then the token's
    /// lines, then the user's line: three trips to memory, ~400 ns of a sold-out
    /// refusal in `benches/hot-reads.sh`'s profile). The caller checks `seq` again.
    fn look(&self, tag: u64, token: &TokenWords) -> Seen {
        let seq = self.seq.load(Ordering::Acquire);
        let lens = self.lens.load(Ordering::Relaxed);
        let mut diff = (self.tag.load(Ordering::Relaxed) ^ tag) | ((lens & 0xffff) ^ token.len);
        for (held, w) in self.token[..token.count].iter().zip(&token.words) {
            diff |= held.load(Ordering::Relaxed) ^ w;
        }
        Seen {
            seq,
            held: diff == 0 && seq & 1 == 0,
            lens,
            exp: self.exp.load(Ordering::Relaxed),
            created: self.account_created_at.load(Ordering::Relaxed),
            user: std::array::from_fn(|i| self.user[i].load(Ordering::Relaxed)),
        }
    }

    /// Whether the slot (as last seen, unchecked) holds `token`: where to write it again.
    fn holds(&self, tag: u64, token: &[u8]) -> bool {
        self.tag.load(Ordering::Relaxed) == tag
            && (self.lens.load(Ordering::Relaxed) & 0xffff) as usize == token.len()
    }

    /// Writes the token into the slot, unless another writer has it right now (then
    /// this one is simply not remembered).
    fn write(&self, tag: u64, token: &[u8], known: &Known) {
        let seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || self
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The odd `seq` before any word below, for a reader that sees one of them.
        fence(Ordering::Release);
        self.tag.store(tag, Ordering::Relaxed);
        let created = known.account_created_at;
        let lens = token.len() as u64
            | (known.user.len() as u64) << 16
            | if created.is_some() { HAS_CREATED } else { 0 };
        self.lens.store(lens, Ordering::Relaxed);
        self.exp.store(known.exp, Ordering::Relaxed);
        self.account_created_at
            .store(created.unwrap_or(0) as u64, Ordering::Relaxed);
        for (held, w) in self.token.iter().zip(words(token)) {
            held.store(w, Ordering::Relaxed);
        }
        for (held, w) in self.user.iter().zip(words(known.user.as_bytes())) {
            held.store(w, Ordering::Relaxed);
        }
        self.seq.store(seq + 2, Ordering::Release);
    }
}

/// What a verified token said, for the cache of long tokens.
#[derive(Clone)]
struct Known {
    user: Box<str>,
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
    slots: Box<[Slot]>,
    /// Sets - 1 (a power of two).
    set_mask: usize,
    hasher: foldhash::fast::RandomState,
    /// Tokens longer than a slot holds.
    long: quick_cache::sync::Cache<Box<[u8]>, Known>,
    /// Hits and misses (`cache="token"`).
    stats: CacheStats,
}

impl VerifiedTokens {
    /// Room for about `capacity` tokens (rounded up to a power of two of sets); all of
    /// it is allocated here, `capacity` times 384 bytes.
    pub fn new(capacity: usize) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        VerifiedTokens {
            slots: std::iter::repeat_with(Slot::default)
                .take(sets * WAYS)
                .collect(),
            set_mask: sets - 1,
            hasher: Default::default(),
            long: quick_cache::sync::Cache::new(LONG_TOKENS),
            stats: CacheStats::new("token"),
        }
    }

    /// The token's set of slots, and its tag.
    fn set(&self, token: &[u8]) -> (&[Slot], u64) {
        let hash = self.hasher.hash_one(token);
        // The high bits pick the set (foldhash mixes them as well as the low ones).
        let set = (hash >> 32) as usize & self.set_mask;
        (&self.slots[set * WAYS..][..WAYS], hash)
    }

    /// What `token` said when it was verified, if it is remembered and its `exp` (unix
    /// seconds) is after `now_secs`; counted as a hit or a miss.
    pub fn get(&self, token: impl AsRef<[u8]>, now_secs: u64) -> Option<Remembered> {
        let token = token.as_ref();
        let found = if let Some(words) = TokenWords::of(token) {
            let (set, tag) = self.set(token);
            let seen: [Seen; WAYS] = std::array::from_fn(|way| set[way].look(tag, &words));
            // Every load of both looks before the second look at `seq` (the fence pairs
            // with the writer's): unchanged, none of them saw a write in progress.
            fence(Ordering::Acquire);
            set.iter()
                .zip(&seen)
                .find(|(slot, s)| s.held && slot.seq.load(Ordering::Relaxed) == s.seq)
                .and_then(|(_, s)| s.remembered())
        } else {
            self.long.get(token).map(|k| Remembered {
                user: k.user.into(),
                exp: k.exp,
                account_created_at: k.account_created_at,
            })
        }
        .filter(|r| now_secs < r.exp);
        self.stats.record(found.is_some());
        found
    }

    /// Remembers a token that passed every check, with a user id of at most 64 bytes
    /// (a longer one is not remembered: the contract allows none).
    pub fn insert(
        &self,
        token: impl AsRef<[u8]>,
        user: &str,
        exp: u64,
        account_created_at: Option<i64>,
    ) {
        let token = token.as_ref();
        if user.len() > MAX_USER || token.is_empty() {
            return;
        }
        let known = Known {
            user: user.into(),
            exp,
            account_created_at,
        };
        if token.len() > SLOT_TOKEN {
            self.long.insert(token.into(), known);
            return;
        }
        let (set, tag) = self.set(token);
        // The slot that already holds it (two misses of one token racing), else the one
        // whose token expires first: an empty slot's `exp` is 0.
        let slot = set.iter().find(|s| s.holds(tag, token)).unwrap_or_else(|| {
            set.iter()
                .min_by_key(|s| s.exp.load(Ordering::Relaxed))
                .unwrap_or(&set[0])
        });
        slot.write(tag, token, &known);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_exact_bytes_short_or_long() {
        let tokens = VerifiedTokens::new(100);
        let short = "a.b.c".to_string();
        let long = "x".repeat(SLOT_TOKEN + 1);
        let edge = "y".repeat(SLOT_TOKEN);
        tokens.insert(&short, "u1", 10, None);
        tokens.insert(&long, "u2", 20, Some(5));
        tokens.insert(&edge, &"z".repeat(MAX_USER), 30, Some(-7));
        let got = |t: &str| {
            tokens
                .get(t, 9)
                .map(|r| (r.user, r.exp, r.account_created_at))
        };
        assert_eq!(got(&short), Some(("u1".into(), 10, None)));
        assert_eq!(got(&long), Some(("u2".into(), 20, Some(5))));
        assert_eq!(got(&edge), Some(("z".repeat(MAX_USER), 30, Some(-7))));
        // One byte off, one byte short, one byte more: not the same token.
        assert_eq!(got("a.b.d"), None);
        assert_eq!(got("a.b."), None);
        assert_eq!(got("a.b.cc"), None);
        assert_eq!(got(&long[..SLOT_TOKEN]), None);
        assert_eq!(got(&edge[..SLOT_TOKEN - 1]), None);
        assert_eq!(got(&format!("{}\0", &edge[..SLOT_TOKEN - 1])), None);
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

    #[test]
    fn a_full_set_gives_up_the_token_that_expires_first() {
        // One set of two slots: every token lands in it.
        let tokens = VerifiedTokens::new(1);
        assert_eq!(tokens.slots.len(), WAYS);
        tokens.insert("late", "u1", 300, None);
        tokens.insert("early", "u2", 100, None);
        tokens.insert("new", "u3", 200, None);
        assert!(tokens.get("early", 0).is_none(), "the first to expire went");
        assert_eq!(tokens.get("late", 0).map(|r| r.user), Some("u1".into()));
        assert_eq!(tokens.get("new", 0).map(|r| r.user), Some("u3".into()));
        // The same token verified again takes its own slot, not the other's.
        tokens.insert("new", "u3", 250, None);
        assert_eq!(tokens.get("late", 0).map(|r| r.exp), Some(300));
        assert_eq!(tokens.get("new", 0).map(|r| r.exp), Some(250));
    }

    /// Readers and writers on the same few slots at once: a hit is always the user its
    /// token was remembered with, never a mix of two writes (what the sequence check
    /// is for: without it this test sees torn users within a second).
    #[test]
    fn a_read_racing_writes_never_gives_another_tokens_user() {
        let tokens = std::sync::Arc::new(VerifiedTokens::new(4));
        // Long tokens and users that differ in every word, so that a torn read shows.
        let token = |i: usize| format!("{i:0>200}");
        let user = |i: usize| i.to_string().repeat(MAX_USER);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (tokens, stop) = (tokens.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = w;
                    while !stop.load(Ordering::Relaxed) {
                        let n = 1 + i % 9;
                        tokens.insert(token(n), &user(n), 10 + (i % 7) as u64, None);
                        i += 2;
                    }
                })
            })
            .collect();
        let mut hits = 0;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(500) {
            for n in 1..10 {
                if let Some(r) = tokens.get(token(n), 0) {
                    assert_eq!(r.user, user(n), "token {n} gave another user");
                    hits += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        assert!(hits > 0, "the readers never hit: the race was not run");
    }
}
