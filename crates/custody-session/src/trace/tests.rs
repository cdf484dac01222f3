use super::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_the_spec_example() {
    let tc = TraceContext::parse(VALID).expect("valid");
    assert_eq!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tc.span_id_hex(), "00f067aa0ba902b7");
    assert!(tc.sampled());
    assert_eq!(tc.to_header(), VALID);
    assert_eq!(TraceContext::parse(&format!(" {VALID}\t")), Some(tc));
    let unsampled = TraceContext::parse(&VALID.replace("-01", "-00")).expect("valid");
    assert!(!unsampled.sampled());
}

#[test]
fn rejects_malformed_values() {
    let bad = [
        "",
        "00",
        // uppercase hex
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        // all-zero ids
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // version ff is forbidden; versions must be hex
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // wrong lengths
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        // version 00 allows nothing after the flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        // separators
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        // non-ASCII in place of a digit
        "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
    ];
    for b in bad {
        assert_eq!(TraceContext::parse(b), None, "{b:?}");
    }
}

#[test]
fn accepts_future_versions_by_the_spec_rule() {
    let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let tc = TraceContext::parse(v1).expect("future version, same shape");
    assert_eq!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    // More fields after a dash are allowed in a future version ...
    let more = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
    assert_eq!(TraceContext::parse(more), Some(tc));
    // ... but not glued to the flags.
    let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
    assert_eq!(TraceContext::parse(glued), None);
    // And custody re-emits version 00.
    assert!(tc.to_header().starts_with("00-"));
}

#[test]
fn child_keeps_the_trace_and_opens_a_new_span() {
    let ids = IdGen::from_seed(1);
    let parent = TraceContext::parse(VALID).expect("valid");
    let child = parent.child(&ids);
    assert_eq!(child.trace_id, parent.trace_id);
    assert_ne!(child.span_id, parent.span_id);
    assert_ne!(child.span_id, [0; 8]);
    assert!(child.sampled());
    let parsed = TraceContext::parse(&child.to_header()).expect("round trip");
    assert_eq!(parsed, child);
    // Unknown flags are not propagated.
    let odd = TraceContext::parse(&VALID.replace("-01", "-ff")).expect("valid");
    assert_eq!(odd.child(&ids).flags, SAMPLED);
}

#[test]
fn new_roots_are_valid_and_distinct() {
    let ids = IdGen::from_seed(2);
    let a = TraceContext::new_root(&ids);
    let b = TraceContext::new_root(&ids);
    assert_ne!(a.trace_id, b.trace_id);
    assert!(a.sampled());
    assert_eq!(TraceContext::parse(&a.to_header()), Some(a));
    assert_eq!(a.to_header().len(), 55);
}
