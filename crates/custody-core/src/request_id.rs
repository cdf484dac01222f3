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

    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(format!("req_{}", uuid::Uuid::now_v7().simple()))
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
    fn generated_ids_are_unique_and_ordered() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert!(a.as_str() < b.as_str());
    }
}
