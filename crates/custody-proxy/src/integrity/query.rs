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
        let key = custody_core::percent::decode_str(key, true);
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
