//! Property tests of the binary row codec (the spool's payloads, which a restart
//! replays from disk and so must survive any damage):
//! - `decode_into` never panics on arbitrary bytes, tagged or not;
//! - encode → decode of an arbitrary record is the identity, also when decoding
//!   into a record that still holds another row (the roller reuses one);
//! - every truncation and bit flip of a valid encoding gives an error or a record
//!   that re-encodes and decodes to itself, never a panic;
//! - no byte outside strings is above 0x7F (the spool's record magic cannot appear).
//!
//! `PROPTEST_CASES=100000 cargo test -p custody-audit --lib record::binary::props`
//! runs longer (docs/development.md).

use super::*;
use crate::record::{ContentSafety, Links, Outcome, PolicyOutcome, Redaction, ToolResult, Usage};
use proptest::prelude::*;

/// `cases` cases, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

fn s() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9_:./-]{0,12}",
        1 => any::<String>(),
        1 => "[a-z]{60,90}",
    ]
    .boxed()
}

fn os() -> impl Strategy<Value = Option<String>> {
    prop::option::of(s())
}

fn oi() -> impl Strategy<Value = Option<i64>> {
    prop::option::of(any::<i64>())
}

/// Every float but NaN (which is not equal to itself; its bits are kept anyway).
fn float() -> impl Strategy<Value = f64> {
    prop::num::f64::POSITIVE
        | prop::num::f64::NEGATIVE
        | prop::num::f64::ZERO
        | prop::num::f64::SUBNORMAL
        | prop::num::f64::INFINITE
}

fn list<T: std::fmt::Debug>(
    item: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<Vec<T>>> {
    prop::option::of(prop::collection::vec(item, 0..4))
}

fn principal() -> BoxedStrategy<Principal> {
    (os(), os(), os(), list(s()), os())
        .prop_map(|(sub, org, role, roles, issuer)| Principal {
            sub,
            org,
            role,
            roles,
            issuer,
        })
        .boxed()
}

fn action() -> BoxedStrategy<Action> {
    let kind = prop::sample::select(vec![
        ActionKind::Llm,
        ActionKind::Tool,
        ActionKind::Http,
        ActionKind::Tunnel,
    ]);
    let call = (os(), s()).prop_map(|(id, name)| ToolCallRequest { id, name });
    (
        (kind, os(), s(), s(), os(), os()),
        (
            os(),
            os(),
            prop::option::of(any::<bool>()),
            list(call),
            os(),
            os(),
            prop::option::of(any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (kind, route, method, path, upstream, tool),
                (parameters, operation, inspected, model_tool_calls, raw_path, model, housekeeping),
            )| Action {
                kind,
                route,
                method,
                path,
                upstream,
                tool,
                parameters,
                operation,
                inspected,
                model_tool_calls,
                raw_path,
                model,
                housekeeping,
            },
        )
        .boxed()
}

fn policy() -> BoxedStrategy<PolicyOutcome> {
    (os(), os(), list(s()), os())
        .prop_map(|(decision, rule, scopes, version)| PolicyOutcome {
            decision,
            rule,
            scopes,
            version,
        })
        .boxed()
}

fn safety() -> BoxedStrategy<ContentSafety> {
    let redaction = (s(), s(), any::<i64>(), s(), os(), os()).prop_map(
        |(kind, path, count, action, side, handling)| Redaction {
            kind,
            path,
            count,
            action,
            side,
            handling,
        },
    );
    (prop::option::of(any::<bool>()), list(redaction), os())
        .prop_map(|(pii_detected, redactions, handling)| ContentSafety {
            pii_detected,
            redactions,
            handling,
        })
        .boxed()
}

fn anomalies() -> BoxedStrategy<Option<Vec<AnomalyFinding>>> {
    let item = (s(), float(), prop::option::of(float()), float()).prop_map(
        |(signal, score, baseline, observed)| AnomalyFinding {
            signal,
            score,
            baseline,
            observed,
        },
    );
    list(item).boxed()
}

fn usage() -> BoxedStrategy<Usage> {
    (os(), oi(), oi(), prop::option::of(float()), oi(), oi())
        .prop_map(|(model, i, o, cost, cached, created)| Usage {
            model,
            input_tokens: i,
            output_tokens: o,
            estimated_cost_usd: cost,
            cached_input_tokens: cached,
            cache_creation_input_tokens: created,
        })
        .boxed()
}

fn outcome() -> BoxedStrategy<Outcome> {
    (
        prop::option::of(any::<i32>()),
        float(),
        os(),
        any::<i64>(),
        any::<i64>(),
        oi(),
    )
        .prop_map(
            |(status, duration_ms, error, bytes_in, bytes_out, bytes_announced)| Outcome {
                status,
                duration_ms,
                error,
                bytes_in,
                bytes_out,
                bytes_announced,
            },
        )
        .boxed()
}

fn links() -> BoxedStrategy<Links> {
    let result = (s(), os()).prop_map(|(tool_call_id, model_request_id)| ToolResult {
        tool_call_id,
        model_request_id,
    });
    (os(), os(), list(result))
        .prop_map(|(tool_call_id, model_request_id, tool_results)| Links {
            tool_call_id,
            model_request_id,
            tool_results,
        })
        .boxed()
}

fn record() -> BoxedStrategy<AuditRecord> {
    (
        (any::<i64>(), s(), os(), os(), any::<i32>(), principal()),
        (action(), policy(), safety(), usage(), outcome()),
        (oi(), os(), os(), os(), links(), os(), os(), anomalies()),
    )
        .prop_map(
            |(
                (event_time, request_id, session_id, trace_id, schema_version, principal),
                (action, policy, content_safety, usage, outcome),
                (
                    session_step,
                    session_source,
                    span_id,
                    parent_span_id,
                    links,
                    intercepted_host,
                    client_request_id,
                    anomalies,
                ),
            )| AuditRecord {
                event_time,
                request_id,
                session_id,
                trace_id,
                schema_version,
                principal,
                action,
                policy,
                content_safety,
                usage,
                outcome,
                session_step,
                session_source,
                span_id,
                parent_span_id,
                links,
                intercepted_host,
                client_request_id,
                row_seq: None,
                anomalies,
            },
        )
        .boxed()
}

fn encoded(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::new();
    encode(r, &mut out);
    out
}

fn empty() -> AuditRecord {
    AuditRecord::new(
        std::time::UNIX_EPOCH,
        String::new(),
        Action::new(ActionKind::Http, "", ""),
    )
}

/// A decoded record is one the codec can write and read back unchanged.
fn check_stable(r: &AuditRecord) -> Result<(), TestCaseError> {
    let again = encoded(r);
    let mut back = empty();
    prop_assert!(decode_into(&again, &mut back).is_ok());
    // Compare the encodings: a decoded NaN is not equal to itself.
    prop_assert_eq!(encoded(&back), again);
    Ok(())
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn arbitrary_bytes_never_panic(tagged in any::<bool>(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut payload = Vec::with_capacity(bytes.len() + 1);
        if tagged {
            payload.push(TAG);
        }
        payload.extend_from_slice(&bytes);
        let mut out = empty();
        if decode_into(&payload, &mut out).is_ok() {
            check_stable(&out)?;
        }
    }

    #[test]
    fn round_trip_is_the_identity(r in record(), previous in record()) {
        let bytes = encoded(&r);
        prop_assert!(bytes[1..].iter().all(|&b| b < 0x80) || r_has_non_ascii(&r));
        let mut out = empty();
        decode_into(&bytes, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&out, &r);
        // Decoding into a record that holds another row leaves nothing of it.
        let mut reused = previous;
        decode_into(&bytes, &mut reused).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&reused, &r);
    }

    #[test]
    fn truncations_and_bit_flips_are_errors_or_records(
        r in record(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        let bytes = encoded(&r);
        let mut out = empty();
        if decode_into(&bytes[..cut.index(bytes.len() + 1)], &mut out).is_ok() {
            check_stable(&out)?;
        }
        let mut flipped = bytes.clone();
        for (at, bit) in &flips {
            flipped[at.index(bytes.len())] ^= 1 << bit;
        }
        let mut out = empty();
        if decode_into(&flipped, &mut out).is_ok() {
            check_stable(&out)?;
        }
    }
}

/// Whether any string of `r` holds a byte above 0x7F (then the encoding does too,
/// inside that string).
fn r_has_non_ascii(r: &AuditRecord) -> bool {
    serde_json::to_string(r).is_ok_and(|j| !j.is_ascii())
}
