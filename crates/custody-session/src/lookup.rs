//! Finding sessions from outside the proxy (`custody trail`): what a session id
//! keeps of the user and of the value the application sent, recomputed from them.
//! Nothing is stored for this: a session id is `<source>:<subject>:<value>`, and
//! both parts can be derived again from a `sub` and a value.

use crate::TraceContext;
use crate::ids::{push_hex, stable_hash};

/// The `<subject>` part of the session ids of the user `sub`: the first 16 hex
/// digits of MurmurHash3-x64-128 of `"custody-sub\0" + sub`; `anon` for `None`.
pub fn subject_tag(sub: Option<&str>) -> String {
    let mut out = String::with_capacity(16);
    push_subject_tag(&mut out, sub);
    out
}

/// Appends [`subject_tag`] to `out` (the tracker's path: no allocation).
pub(crate) fn push_subject_tag(out: &mut String, sub: Option<&str>) {
    match sub {
        Some(s) => push_hex(
            out,
            &stable_hash(b"custody-sub\0", s.as_bytes()).to_be_bytes()[..8],
        ),
        None => out.push_str("anon"),
    }
}

/// The `<value>` part a session id has when the application sent `value` as its
/// session header or MCP session id (the value itself when kept verbatim, else `~`
/// and 32 hex digits of its hash), or as a `traceparent` or bare trace id (the
/// trace id in lowercase hex). Every form it may take, whatever the
/// configuration's `max_id_len`: match any of them.
pub fn value_forms(value: &str) -> Vec<String> {
    let v = value.trim();
    let mut forms = Vec::with_capacity(3);
    if !v.is_empty() && !v.starts_with('~') && v.bytes().all(|b| b.is_ascii_graphic()) {
        forms.push(v.to_owned());
    }
    forms.push(hashed(v.as_bytes()));
    if let Some(tc) = TraceContext::parse(v) {
        forms.push(tc.trace_id_hex());
    } else if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        forms.push(v.to_ascii_lowercase());
    }
    forms.dedup();
    forms
}

/// `~` and the 32 hex digits of a value that is not kept verbatim.
pub(crate) fn hashed(value: &[u8]) -> String {
    let mut out = String::with_capacity(33);
    push_hashed(&mut out, value);
    out
}

/// Appends [`hashed`] to `out` (the tracker's path: no allocation).
pub(crate) fn push_hashed(out: &mut String, value: &[u8]) {
    out.push('~');
    push_hex(out, &stable_hash(b"custody-value\0", value).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SessionConfig, SessionInput, SessionTracker};

    #[test]
    fn forms_name_the_ids_the_tracker_builds() {
        let t = SessionTracker::with_ids(SessionConfig::default(), crate::IdGen::from_seed(1))
            .expect("tracker");
        let long = "x".repeat(200);
        for (sub, value) in [
            (Some("auth0|alice"), "conv-42"),
            (None, "conv-42"),
            (Some("bob"), long.as_str()),
            (Some("bob"), "has space"),
            (Some("bob"), "~tilde"),
        ] {
            let input = SessionInput {
                sub,
                explicit: Some(value.as_bytes()),
                ..SessionInput::default()
            };
            let id = t.begin(&input, 1).session_id;
            let want: Vec<String> = value_forms(value)
                .iter()
                .map(|f| format!("hdr:{}:{f}", subject_tag(sub)))
                .collect();
            assert!(want.contains(&id), "{id} not in {want:?}");
        }
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(value_forms(tp).contains(&"4bf92f3577b34da6a3ce929d0e0e4736".to_owned()));
        assert_eq!(subject_tag(None), "anon");
        assert_eq!(subject_tag(Some("alice")).len(), 16);
    }
}
