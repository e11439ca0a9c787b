//! Request ids: the short token that ties the log lines of one HTTP request together,
//! from the api through the queue into the worker that persists its claim.
//!
//! The api honours a client's (or a proxy's) `X-Request-Id` when it is short and made of
//! safe characters, and generates one otherwise. An id travels in every claim event, so
//! it is kept small and inline: at most [`MAX_LEN`] bytes of `[A-Za-z0-9_.-]` (a UUID
//! fits; `|`, the event's field separator, cannot occur), stored in a fixed array so that
//! copying one never allocates. Generated ids are 16 hex digits (64 random bits).

use rand::RngCore;

/// The longest request id kept: a UUID (36) fits.
pub const MAX_LEN: usize = 36;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl RequestId {
    /// The id when `s` is 1 to [`MAX_LEN`] characters of `[A-Za-z0-9_.-]`.
    pub fn parse(s: &str) -> Option<RequestId> {
        let raw = s.as_bytes();
        let safe = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if raw.is_empty() || raw.len() > MAX_LEN || !raw.iter().all(safe) {
            return None;
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(RequestId {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// A fresh id: 16 lowercase hex digits.
    pub fn generate() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = rand::rng().next_u64();
        let mut bytes = [0; MAX_LEN];
        for (i, b) in bytes[..16].iter_mut().enumerate() {
            *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestId { len: 16, bytes }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `parse` and `generate`).
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestId({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_short_ids_are_kept_as_given() {
        for s in ["a", "req-1.x_Y", "123e4567-e89b-12d3-a456-426614174000"] {
            assert_eq!(RequestId::parse(s).map(|r| r.to_string()), Some(s.into()));
        }
    }

    #[test]
    fn unsafe_or_long_ids_are_refused() {
        let long = "a".repeat(MAX_LEN + 1);
        for s in ["", "a|b", "a b", "é", "a\nb", "a:b", long.as_str()] {
            assert_eq!(RequestId::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn generated_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }
}
