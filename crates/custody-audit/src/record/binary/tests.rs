use super::*;

/// A record with every field set, nested ones included, written as struct
/// literals without `..`: a field added to any of these types does not compile
/// here until it is given a value, and then the round trip checks the codec.
fn full() -> AuditRecord {
    AuditRecord {
        event_time: 1_795_000_123_456_789,
        request_id: "req_01JDB7Q4X8ZK3V".into(),
        session_id: Some("sess_3f9c".into()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        schema_version: crate::SCHEMA_VERSION,
        principal: Principal {
            sub: Some("alice@example.org".into()),
            org: Some("example".into()),
            role: Some("clinician".into()),
            roles: Some(vec!["clinician".into(), "records-reader".into()]),
            issuer: Some("https://idp.example.org".into()),
        },
        action: Action {
            kind: ActionKind::Tool,
            route: Some("crm".into()),
            method: "POST".into(),
            path: "/crm/contacts/search".into(),
            upstream: Some("https://crm.internal/contacts/search".into()),
            tool: Some("crm:contacts:search".into()),
            parameters: Some(format!("{{\"q\":\"{}\"}}", "x".repeat(300))),
            operation: Some("tools/call".into()),
            inspected: Some(true),
            model_tool_calls: Some(vec![
                ToolCallRequest {
                    id: Some("call_1".into()),
                    name: "search".into(),
                },
                ToolCallRequest {
                    id: None,
                    name: "note".into(),
                },
            ]),
            raw_path: Some("/crm//contacts/./search".into()),
            model: Some("gpt-4o".into()),
            housekeeping: Some(false),
        },
        policy: PolicyOutcome {
            decision: Some("allow".into()),
            rule: Some("clinicians-read".into()),
            scopes: Some(vec!["patients:read".into()]),
            version: Some("sha256:9f1c".into()),
        },
        content_safety: ContentSafety {
            pii_detected: Some(false),
            redactions: Some(vec![Redaction {
                kind: "EMAIL".into(),
                path: "$.q".into(),
                count: 3,
                action: "redact".into(),
                side: Some("request".into()),
                handling: Some("redacted".into()),
            }]),
            handling: Some("redacted".into()),
        },
        usage: Usage {
            model: Some("gpt-4o".into()),
            input_tokens: Some(1200),
            output_tokens: Some(-5),
            estimated_cost_usd: Some(0.1 + 0.2),
            cached_input_tokens: Some(1024),
            cache_creation_input_tokens: Some(i64::MIN),
        },
        outcome: Outcome {
            status: Some(502),
            duration_ms: 1.234_567_891,
            error: Some("upstream: connection reset".into()),
            bytes_in: 2314,
            bytes_out: i64::MAX,
            bytes_announced: Some(4096),
        },
        session_step: Some(7),
        session_source: Some("header".into()),
        span_id: Some("00f067aa0ba902b7".into()),
        parent_span_id: Some("b7ad6b7169203331".into()),
        links: Links {
            tool_call_id: Some("call_0".into()),
            model_request_id: Some("req_0".into()),
            tool_results: Some(vec![
                ToolResult {
                    tool_call_id: "call_1".into(),
                    model_request_id: Some("req_1".into()),
                },
                ToolResult {
                    tool_call_id: "call_2".into(),
                    model_request_id: None,
                },
            ]),
        },
        intercepted_host: Some("api.openai.com:443".into()),
        client_request_id: Some("gap_chosen-by-the-client".into()),
        // Not spooled (numbered when built into a file): always decodes as None.
        row_seq: None,
        anomalies: Some(vec![
            AnomalyFinding {
                signal: "rate_spike".into(),
                score: 12.5,
                baseline: Some(1.75),
                observed: 40.0,
            },
            AnomalyFinding {
                signal: "first_use".into(),
                score: 1.0,
                baseline: Some(0.0),
                observed: 3.0,
            },
        ]),
    }
}

/// A record with every optional field empty.
fn sparse() -> AuditRecord {
    AuditRecord::new(
        std::time::UNIX_EPOCH,
        "r".into(),
        Action::new(ActionKind::Http, "GET", "/"),
    )
}

fn encoded(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::new();
    encode(r, &mut out);
    out
}

fn decoded(payload: &[u8]) -> AuditRecord {
    let mut out = sparse();
    decode_into(payload, &mut out).expect("decode");
    out
}

/// JSON paths of nulls and empty lists in `v`.
fn unset(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Null => out.push(path.to_owned()),
        serde_json::Value::Array(items) if items.is_empty() => out.push(path.to_owned()),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unset(item, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (k, item) in fields {
                unset(item, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_full_record_sets_every_field() {
    // If this fails, a field was added and left `None` in `full()`: set it, so
    // that the round trip below covers it.
    let mut missing = Vec::new();
    unset(
        &serde_json::to_value(full()).expect("json"),
        "$",
        &mut missing,
    );
    // The one `None` kept on purpose: an optional id inside a list.
    missing.retain(|p| {
        p != "$.action.model_tool_calls[1].id" && p != "$.links.tool_results[1].model_request_id"
    });
    // Not spooled at all: numbered when the row is built into a file.
    missing.retain(|p| p != "$.row_seq");
    assert!(missing.is_empty(), "fields left unset: {missing:?}");
}

#[test]
fn every_field_round_trips() {
    let r = full();
    let bytes = encoded(&r);
    assert_eq!(bytes[0], TAG);
    assert_eq!(decoded(&bytes), r);
    // Into a record holding another row's values: everything is overwritten.
    let mut reused = full();
    decode_into(&encoded(&sparse()), &mut reused).expect("decode");
    assert_eq!(reused, sparse());
    decode_into(&bytes, &mut reused).expect("decode");
    assert_eq!(reused, r);
}

#[test]
fn edge_values_round_trip() {
    for kind in [
        ActionKind::Llm,
        ActionKind::Tool,
        ActionKind::Http,
        ActionKind::Tunnel,
    ] {
        let mut r = sparse();
        r.action.kind = kind;
        assert_eq!(decoded(&encoded(&r)), r);
    }
    for t in [0, -1, 1, i64::MIN, i64::MAX, -1_500_000] {
        let mut r = full();
        r.event_time = t;
        r.outcome.bytes_in = t;
        r.usage.input_tokens = Some(t);
        assert_eq!(decoded(&encoded(&r)), r);
    }
    for f in [
        0.0,
        -0.0,
        1.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
    ] {
        let mut r = full();
        r.outcome.duration_ms = f;
        r.usage.estimated_cost_usd = Some(f);
        let back = decoded(&encoded(&r));
        assert_eq!(back.outcome.duration_ms.to_bits(), f.to_bits());
        assert_eq!(
            back.usage.estimated_cost_usd.map(f64::to_bits),
            Some(f.to_bits())
        );
    }
    let mut r = full();
    r.outcome.duration_ms = f64::NAN;
    assert!(decoded(&encoded(&r)).outcome.duration_ms.is_nan());
    for status in [i32::MIN, -1, 0, 200, i32::MAX] {
        let mut r = sparse();
        r.outcome.status = Some(status);
        r.schema_version = status;
        assert_eq!(decoded(&encoded(&r)), r);
    }
    // Strings of every length class (struct lengths of 1, 2, 3 and 4 bytes).
    for len in [0, 1, 63, 64, 4095, 4096, 300_000] {
        let mut r = full();
        r.action.parameters = Some("é".repeat(len / 2) + &"p".repeat(len % 2));
        r.request_id = "q".repeat(len);
        assert_eq!(decoded(&encoded(&r)), r);
    }
    let mut r = full();
    r.principal.roles = Some(Vec::new());
    r.content_safety.redactions = Some(Vec::new());
    assert_eq!(decoded(&encoded(&r)), r);
}

#[test]
fn no_byte_outside_strings_is_above_0x7f() {
    // `full()` has ASCII strings only: every byte must be below 0x80.
    let bytes = encoded(&full());
    assert!(bytes.iter().all(|&b| b < 0x80), "{bytes:x?}");
}

#[test]
fn the_spool_record_magic_never_appears() {
    // `µǎ` ends with the magic's first three bytes (C2 B5 C7 8E); a raw length of
    // 0xA3 after it would complete it.
    let tail = "\u{b5}\u{1ce}";
    assert!(tail.as_bytes().ends_with(&custody_spool::RECORD_MAGIC[..3]));
    let mut r = full();
    for s in [
        &mut r.request_id,
        &mut r.action.method,
        &mut r.action.path,
        &mut r.content_safety.redactions.as_mut().expect("set")[0].action,
    ] {
        s.push_str(tail);
    }
    for s in [
        &mut r.session_id,
        &mut r.principal.sub,
        &mut r.action.parameters,
        &mut r.outcome.error,
        &mut r.parent_span_id,
        &mut r.action.raw_path,
        &mut r.client_request_id,
    ] {
        s.as_mut().expect("set").push_str(tail);
    }
    // The field after `session_id`, 0xA2 bytes long: its length is 0xA3 + 1.
    r.trace_id = Some("a".repeat(0xA2));
    r.request_id.push_str(&"b".repeat(0xA3));
    let bytes = encoded(&r);
    assert!(
        !bytes.windows(4).any(|w| w == custody_spool::RECORD_MAGIC),
        "record magic inside a row"
    );
    assert_eq!(decoded(&bytes), r);
}

#[test]
fn a_struct_written_before_a_field_existed_gives_defaults() {
    // An older writer: the record holds only event_time and request_id, and its
    // principal struct only `sub`.
    let mut out = vec![TAG];
    let mut w = Writer(&mut out);
    w.structure(|w| {
        w.int(42);
        w.str("old");
        w.opt_str(None);
        w.opt_str(None);
        w.int(1);
        w.structure(|w| w.opt_str(Some("alice")));
    });
    let mut r = full();
    decode_into(&out, &mut r).expect("decode");
    let mut want = sparse();
    want.event_time = 42;
    want.request_id = "old".into();
    want.schema_version = 1;
    want.principal.sub = Some("alice".into());
    want.action.method = String::new();
    want.action.path = String::new();
    assert_eq!(r, want);
}

#[test]
fn fields_from_a_newer_writer_are_skipped() {
    let r = full();
    let mut out = vec![TAG];
    let mut w = Writer(&mut out);
    w.structure(|w| {
        w.int(r.event_time);
        w.str(&r.request_id);
        w.opt_str(r.session_id.as_deref());
        w.opt_str(r.trace_id.as_deref());
        w.int(i64::from(r.schema_version));
        w.structure(|w| {
            principal_fields(w, &r.principal);
            w.str("a field this version does not know");
            w.opt_int(Some(7));
        });
        w.structure(|w| {
            action_fields(w, &r.action);
            w.opt_str(Some("a field after raw_path"));
        });
        w.structure(|w| policy_fields(w, &r.policy));
        w.structure(|w| safety_fields(w, &r.content_safety));
        w.structure(|w| usage_fields(w, &r.usage));
        w.structure(|w| outcome_fields(w, &r.outcome));
        w.opt_int(r.session_step);
        w.opt_str(r.session_source.as_deref());
        w.opt_str(r.span_id.as_deref());
        w.opt_str(r.parent_span_id.as_deref());
        w.structure(|w| links_fields(w, &r.links));
        w.opt_str(r.intercepted_host.as_deref());
        w.opt_str(r.client_request_id.as_deref());
        r.anomalies.write(w);
        w.opt_str(Some("a field after anomalies"));
        w.structure(|w| w.str("a new nested struct"));
    });
    assert_eq!(decoded(&out), r);
}

/// `r` as schema version 5 wrote it: no `action.raw_path`, nothing after
/// `intercepted_host` (field by field, so later changes to the encoder cannot
/// change what this test replays).
fn encoded_v5(r: &AuditRecord) -> Vec<u8> {
    let mut out = vec![TAG];
    let mut w = Writer(&mut out);
    let a = &r.action;
    w.structure(|w| {
        w.int(r.event_time);
        w.str(&r.request_id);
        w.opt_str(r.session_id.as_deref());
        w.opt_str(r.trace_id.as_deref());
        w.int(5);
        w.structure(|w| principal_fields(w, &r.principal));
        w.structure(|w| {
            w.uint(kind_code(a.kind));
            w.opt_str(a.route.as_deref());
            w.str(&a.method);
            w.str(&a.path);
            w.opt_str(a.upstream.as_deref());
            w.opt_str(a.tool.as_deref());
            w.opt_str(a.parameters.as_deref());
            w.opt_str(a.operation.as_deref());
            w.opt_bool(a.inspected);
            w.opt_list(a.model_tool_calls.as_deref(), |w, c| {
                w.structure(|w| {
                    w.opt_str(c.id.as_deref());
                    w.str(&c.name);
                });
            });
        });
        w.structure(|w| policy_fields(w, &r.policy));
        // Findings as version 5 had them: kind, path, count, action.
        w.structure(|w| {
            w.opt_bool(r.content_safety.pii_detected);
            w.opt_list(r.content_safety.redactions.as_deref(), |w, f| {
                w.structure(|w| {
                    w.str(&f.kind);
                    w.str(&f.path);
                    w.int(f.count);
                    w.str(&f.action);
                });
            });
        });
        w.structure(|w| usage_fields(w, &r.usage));
        w.structure(|w| outcome_fields(w, &r.outcome));
        w.opt_int(r.session_step);
        w.opt_str(r.session_source.as_deref());
        w.opt_str(r.span_id.as_deref());
        w.opt_str(r.parent_span_id.as_deref());
        w.structure(|w| links_fields(w, &r.links));
        w.opt_str(r.intercepted_host.as_deref());
    });
    out
}

#[test]
fn a_version_5_row_replays_with_its_key_and_the_new_fields_null() {
    let mut want = full();
    want.schema_version = 5;
    want.action.raw_path = None;
    want.action.model = None;
    want.action.housekeeping = None;
    want.content_safety.handling = None;
    for finding in want.content_safety.redactions.iter_mut().flatten() {
        finding.side = None;
        finding.handling = None;
    }
    want.client_request_id = None;
    want.anomalies = None;
    let v5 = encoded_v5(&full());
    // Into a fresh record and into one holding a v6 row's values.
    assert_eq!(decoded(&v5), want);
    let mut reused = full();
    decode_into(&v5, &mut reused).expect("decode");
    assert_eq!(reused, want);
    assert_eq!(reused.request_id, full().request_id, "the key is kept");
}

#[test]
fn the_version_6_fields_round_trip_set_and_unset() {
    for (raw, client) in [
        (None, None),
        (Some(""), Some("x")),
        (Some("/a/../b"), None),
        (None, Some("six-times-the-same")),
    ] {
        let mut r = sparse();
        r.action.raw_path = raw.map(str::to_owned);
        r.client_request_id = client.map(str::to_owned);
        assert_eq!(decoded(&encoded(&r)), r);
        let mut r = full();
        r.action.raw_path = raw.map(str::to_owned);
        r.client_request_id = client.map(str::to_owned);
        assert_eq!(decoded(&encoded(&r)), r);
    }
}

#[test]
fn damaged_payloads_are_errors_never_panics() {
    let bytes = encoded(&full());
    let mut out = sparse();
    for end in 0..bytes.len() {
        // A cut inside a struct is an error or (at a field boundary) defaults.
        let _ = decode_into(&bytes[..end], &mut out);
    }
    assert!(decode_into(&bytes[..bytes.len() / 2], &mut out).is_err());
    for i in 0..bytes.len() {
        for flip in [0x01, 0x40, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            let _ = decode_into(&bad, &mut out);
        }
    }
    assert!(decode_into(&[], &mut out).is_err());
    assert!(decode_into(b"{}", &mut out).is_err());
    // A huge list count is refused before allocating.
    let mut w = vec![TAG];
    Writer(&mut w).structure(|w| {
        w.int(0);
        w.str("x");
        w.opt_str(None);
        w.opt_str(None);
        w.int(4);
        w.structure(|w| {
            w.opt_str(None);
            w.opt_str(None);
            w.opt_str(None);
            w.uint(u64::MAX / 2);
        });
    });
    assert!(matches!(
        decode_into(&w, &mut out),
        Err(DecodeError::Truncated)
    ));
    // Integer overflow.
    let mut w = vec![TAG];
    Writer(&mut w).structure(|w| w.0.extend_from_slice(&[0x7F; 12]));
    assert!(decode_into(&w, &mut out).is_err());
}

#[test]
fn a_length_that_cuts_a_character_is_an_error() {
    // The row is read as one UTF-8 text and its strings are slices of it: a length
    // one short of a string's end must not yield part of its last character.
    let mut r = sparse();
    r.action.route = Some("d\u{e9}j\u{e0}".to_owned());
    let bytes = encoded(&r);
    let len = "d\u{e9}j\u{e0}".len() as u8;
    // The route's `opt<str>` length (`len + 1`), then its bytes.
    let at = bytes
        .windows(2)
        .position(|w| w == [len + 1, b'd'])
        .expect("the route's length");
    let mut short = bytes.clone();
    short[at] = len;
    assert!(matches!(
        decode_into(&short, &mut sparse()),
        Err(DecodeError::Malformed("invalid UTF-8"))
    ));
    let mut out = sparse();
    decode_into(&bytes, &mut out).expect("the row as written");
    assert_eq!(out.action.route.as_deref(), Some("d\u{e9}j\u{e0}"));
}

#[test]
fn uint_lengths() {
    for (v, len) in [
        (0, 1),
        (63, 1),
        (64, 2),
        (4095, 2),
        (4096, 3),
        (u64::MAX, 11),
    ] {
        let mut out = Vec::new();
        Writer(&mut out).uint(v);
        assert_eq!(out.len(), len, "{v}");
        assert_eq!(uint_len(v), len);
        assert_eq!(
            Reader(std::str::from_utf8(&out).expect("ASCII"))
                .uint()
                .expect("uint"),
            v
        );
    }
}

#[test]
fn uints_are_written_as_their_six_bit_groups() {
    let written = |v: u64| {
        let mut out = Vec::new();
        Writer(&mut out).uint(v);
        out
    };
    assert_eq!(written(0), [0]);
    assert_eq!(written(0x3F), [0x3F]);
    assert_eq!(written(0x40), [0x40, 0x01]);
    assert_eq!(written(0xFFF), [0x7F, 0x3F]);
    assert_eq!(written(u64::MAX).len(), 11);
    for v in (0..64)
        .map(|s| 1u64 << s)
        .chain((0..64).map(|s| (1u64 << s) - 1))
    {
        assert_eq!(written(v), uint_bytes(v).collect::<Vec<_>>(), "{v}");
        assert_eq!(written(v).len(), uint_len(v), "{v}");
    }
}
