//! Request ids: custody's own key for every request, and the id a client sent.
//!
//! - [`RequestId`] is the audit trail's key (`request_id`): a UUIDv7 that custody
//!   generates for every request it receives. No client input ever becomes a key, so
//!   two rows never share one and an ordinary row can never carry the `gap_…` id of
//!   a synthetic row.
//! - [`ClientRequestId`] is what the client sent in `x-request-id`, kept (as
//!   `client_request_id`) when it is safe to log and to echo in a header; clients
//!   may send any value, the same one many times included.

use std::fmt;

/// custody's key for one request: a UUIDv7 in its canonical text form
/// (`0196a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b`, 36 characters), unique per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A new key: a UUIDv7 (millisecond time order, 74 random bits).
    ///
    /// The random bits come from SipHash under std's per-process random keys over a
    /// counter, so generating a key makes no system call (`Uuid::now_v7` calls
    /// `getrandom` every time, which showed up in the proxy's profile).
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let a = random_u64().to_le_bytes();
        let b = random_u64().to_le_bytes();
        let bytes = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]];
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid();
        Self(id.hyphenated().to_string())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id a client sent in `x-request-id`: 1..=128 visible ASCII characters (so it
/// is safe to log and to echo in a header). It identifies nothing on its own:
/// clients choose it freely.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientRequestId(String);

impl ClientRequestId {
    /// Longest client id that is kept.
    pub const MAX_LEN: usize = 128;

    /// The client's id if it is acceptable, else `None`.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.iter().all(|b| b.is_ascii_graphic());
        // All bytes are ASCII graphic, so this conversion cannot fail.
        ok.then(|| std::str::from_utf8(value).ok().map(|s| Self(s.to_owned())))
            .flatten()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// Both ids display as their text and convert into it.
macro_rules! text_impls {
    ($($id:ident),*) => {$(
        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> Self {
                id.0
            }
        }
    )*};
}

text_impls!(RequestId, ClientRequestId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_client_ids() {
        for sane in ["abc-123", "gap_0196a1b2c3d4", "x"] {
            let id = ClientRequestId::from_header(sane.as_bytes()).expect("kept");
            assert_eq!(id.as_str(), sane);
        }
        let longest = "a".repeat(ClientRequestId::MAX_LEN);
        assert!(ClientRequestId::from_header(longest.as_bytes()).is_some());
    }

    #[test]
    fn drops_unsafe_client_ids() {
        for bad in [
            &b""[..],
            b"has space",
            b"new\nline",
            &[b'a'; 129][..],
            "é".as_bytes(),
        ] {
            assert_eq!(ClientRequestId::from_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_are_unique_canonical_uuid_v7() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().into()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = RequestId::generate();
        assert_eq!(id.as_str().len(), 36);
        let parsed = uuid::Uuid::parse_str(id.as_str()).expect("uuid");
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.hyphenated().to_string(), id.as_str());
    }
}
