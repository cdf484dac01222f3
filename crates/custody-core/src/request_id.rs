//! Request ids: honoured from the caller's `x-request-id` when sane, generated otherwise.

use std::fmt;

/// The id that ties a client request, the upstream request and the audit row together.
///
/// A caller-supplied id is kept when it is 1..=128 visible ASCII characters
/// (so it is safe to log and to echo in a header); otherwise custody generates
/// `req_` followed by a time-ordered UUIDv7 in hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Longest caller-supplied id that is honoured.
    pub const MAX_LEN: usize = 128;

    /// A new id: a UUIDv7 (millisecond time order, 74 random bits) in hex.
    ///
    /// The random bits come from SipHash under std's per-process random keys over a
    /// counter, so generating an id makes no system call (`Uuid::now_v7` calls
    /// `getrandom` every time, which showed up in the proxy's profile).
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let a = random_u64().to_le_bytes();
        let b = random_u64().to_le_bytes();
        let bytes = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]];
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid();
        Self(format!("req_{}", id.simple()))
    }

    /// The caller's id if it is acceptable, else `None`.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.iter().all(|b| b.is_ascii_graphic());
        // All bytes are ASCII graphic, so this conversion cannot fail.
        ok.then(|| std::str::from_utf8(value).ok().map(|s| Self(s.to_owned())))
            .flatten()
    }

    /// The caller's id when acceptable, else a generated one.
    pub fn from_header_or_generate(value: Option<&[u8]>) -> Self {
        value
            .and_then(Self::from_header)
            .unwrap_or_else(Self::generate)
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

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_sane_ids() {
        let id = RequestId::from_header_or_generate(Some(b"abc-123"));
        assert_eq!(id.as_str(), "abc-123");
    }

    #[test]
    fn replaces_unsafe_ids() {
        for bad in [
            &b""[..],
            b"has space",
            b"new\nline",
            &[b'a'; 129][..],
            "é".as_bytes(),
        ] {
            let id = RequestId::from_header_or_generate(Some(bad));
            assert!(id.as_str().starts_with("req_"), "{bad:?} gave {id}");
            assert_eq!(id.as_str().len(), 36);
        }
    }

    #[test]
    fn generated_ids_are_unique_uuid_v7() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().into()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = RequestId::generate();
        let parsed = uuid::Uuid::parse_str(&id.as_str()[4..]).expect("uuid");
        assert_eq!(parsed.get_version_num(), 7);
    }
}
