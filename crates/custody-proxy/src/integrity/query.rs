//! Query strings: a key named twice (after decoding, as `custody-inspect` reads
//! the query into `action.parameters`) is ambiguous — upstream frameworks take the
//! first, the last or all of the values — so enforcing routes refuse it rather
//! than decide on one reading while the upstream acts on another.

use super::{Reason, Refusal};

/// A refusal naming the first key that appears more than once in `query`.
pub(crate) fn repeated_key(query: &str) -> Option<Refusal> {
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let key = decode(key);
        if seen.contains(&key) {
            return Some(Refusal::new(
                Reason::RepeatedQuery,
                format!(
                    "the query names {key:?} more than once; servers disagree on which value counts, so custody does not forward it on a route that enforces a policy or content safety (send one value, or a list the API defines in one parameter)"
                ),
            ));
        }
        seen.push(key);
    }
    None
}

/// Form decoding of a key (`+` is a space, `%XX` a byte), lossy on bad UTF-8.
fn decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
