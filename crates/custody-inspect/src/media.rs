//! What a response's `Content-Type` says about how to read its body, decided in
//! one place for every stage that reads the body (inspection, content safety, the
//! usage-chunk stripper, the error path).

/// How a body is read, by its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `text/event-stream`: server-sent events.
    EventStream,
    /// A JSON document (`application/json`, `…+json`; not `ndjson`).
    Json,
    /// Anything else.
    Other,
}

impl Media {
    /// The media of a `Content-Type` value. Media types are case-insensitive
    /// (RFC 9110 §8.3.1), so `Text/Event-Stream` is a stream too; the value is
    /// searched, not parsed, so parameters around the type do not hide it.
    pub fn of(content_type: &str) -> Self {
        let ct = content_type.as_bytes();
        if contains_ignore_case(ct, b"text/event-stream") {
            Self::EventStream
        } else if contains_ignore_case(ct, b"json") && !contains_ignore_case(ct, b"ndjson") {
            Self::Json
        } else {
            Self::Other
        }
    }
}

/// Whether `hay` contains `needle` (lower case) ignoring ASCII case. A header
/// value is short, so a direct scan beats building a substring searcher.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    (0..=last_start).any(|i| {
        hay[i].to_ascii_lowercase() == first
            && hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the stages decided before, each on its own: lower-cased, then searched.
    fn by_lowercase(ct: &str) -> Media {
        let ct = ct.to_ascii_lowercase();
        if ct.contains("text/event-stream") {
            Media::EventStream
        } else if ct.contains("json") && !ct.contains("ndjson") {
            Media::Json
        } else {
            Media::Other
        }
    }

    #[test]
    fn reads_the_usual_types() {
        for (ct, media) in [
            ("text/event-stream", Media::EventStream),
            ("Text/Event-Stream; charset=utf-8", Media::EventStream),
            ("application/json", Media::Json),
            ("APPLICATION/JSON; charset=utf-8", Media::Json),
            ("application/problem+json", Media::Json),
            ("application/x-ndjson", Media::Other),
            ("text/plain", Media::Other),
            ("", Media::Other),
            ("jso", Media::Other),
        ] {
            assert_eq!(Media::of(ct), media, "{ct:?}");
        }
        assert_eq!(Media::of("TEXT/EVENT-STREAM"), Media::EventStream);
    }

    proptest! {
        /// The same decision as lower-casing the value and searching it, for values
        /// built from pieces of the types searched for, in any case.
        #[test]
        fn decides_as_lowercase_search(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("text/"), Just("event-stream"), Just("text/event-strea"), Just("json"),
                    Just("nd"), Just("ndjson"), Just("js"), Just("on"), Just("; "), Just("+"),
                    Just("application/"), Just("é"), Just("x"),
                ],
                0..8,
            ),
            upper in proptest::collection::vec(any::<bool>(), 64),
        ) {
            let ct: String = parts
                .concat()
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assert_eq!(Media::of(&ct), by_lowercase(&ct), "{:?}", ct);
        }
    }
}
