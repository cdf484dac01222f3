//! What the benchmarks share: a typical row.

use custody_audit::{AuditRecord, Redaction, ToolResult};
use custody_core::{Action, ActionKind, Principal};
use std::time::{Duration, UNIX_EPOCH};

/// A typical LLM row: an authenticated user, a chat completion with ~300 bytes of
/// canonical parameters, an allow decision, usage, one redaction, session fields.
pub(crate) fn row(i: usize) -> AuditRecord {
    let at = UNIX_EPOCH + Duration::from_micros(1_795_000_000_000_000 + i as u64 * 137);
    let mut r = AuditRecord::new(
        at,
        format!("req_01JDB7Q4X8ZK3V{i:010}"),
        Action {
            kind: ActionKind::Llm,
            route: Some("openai".into()),
            method: "POST".into(),
            path: "/openai/v1/chat/completions".into(),
            upstream: Some("https://api.openai.com/v1/chat/completions".into()),
            tool: None,
            parameters: Some(format!(
                "{{\"model\":\"gpt-4o-2024-08-06\",\"temperature\":0.2,\"max_tokens\":1024,\
                 \"stream\":true,\"tools\":[\"crm_contacts_search\",\"crm_notes_add\",\
                 \"calendar_events_list\"],\"tool_choice\":\"auto\",\"response_format\":\
                 {{\"type\":\"json_object\"}},\"messages\":{{\"count\":{},\"roles\":[\"system\",\
                 \"user\",\"assistant\",\"tool\"]}},\"user\":\"u-4411\",\"seed\":{i},\
                 \"metadata\":{{\"app\":\"care-assistant\",\"env\":\"prod\"}}}}",
                4 + i % 7
            )),
            operation: Some("chat.completions".into()),
            inspected: Some(true),
            model_tool_calls: Some(vec![custody_core::ToolCallRequest {
                id: Some(format!("call_8fJ2kQ{i:08}")),
                name: "crm_contacts_search".into(),
            }]),
            raw_path: None,
            model: Some("gpt-4o".into()),
            housekeeping: Some(false),
        },
    );
    // A realistic key (a UUIDv7) and the client's own id.
    r.request_id = format!("0196a1b2-c3d4-7e5f-8a9b-{i:012x}");
    r.client_request_id = Some(format!("req_01JDB7Q4X8ZK3V{i:010}"));
    r.session_id = Some(format!("sess_3f9c2a7e{:08}", i / 20));
    r.trace_id = Some(format!("4bf92f3577b34da6a3ce929d{i:08x}"));
    r.principal = Principal {
        sub: Some(format!("user-{:05}@example-health.org", i % 500)),
        org: Some("example-health".into()),
        role: Some("clinician".into()),
        roles: Some(vec!["clinician".into(), "records-reader".into()]),
        issuer: Some("https://idp.example-health.org/realms/staff".into()),
    };
    r.policy.decision = Some("allow".into());
    r.policy.rule = Some("clinicians-may-use-gpt4o".into());
    r.policy.scopes = Some(vec!["llm:chat".into(), "patients:read".into()]);
    r.policy.version = Some("sha256:9f1c0e7a5b3d".into());
    r.content_safety.pii_detected = Some(true);
    r.content_safety.redactions = Some(vec![Redaction {
        kind: "EMAIL".into(),
        path: "$.messages[1].content".into(),
        count: 1,
        action: "redact".into(),
        side: Some("request".into()),
        handling: Some("redacted".into()),
    }]);
    r.content_safety.handling = Some("redacted".into());
    r.usage.model = Some("gpt-4o-2024-08-06".into());
    r.usage.input_tokens = Some(1200 + (i % 300) as i64);
    r.usage.output_tokens = Some(180 + (i % 90) as i64);
    r.usage.estimated_cost_usd = Some(0.004_875 + (i % 13) as f64 * 0.000_125);
    r.usage.cached_input_tokens = Some(1024);
    r.outcome.status = Some(200);
    r.outcome.duration_ms = 812.5 + (i % 977) as f64 * 1.031;
    r.outcome.bytes_in = 2_314 + (i % 400) as i64;
    r.outcome.bytes_out = 5_120 + (i % 900) as i64;
    r.session_step = Some((i % 20) as i64 + 1);
    r.session_source = Some("header".into());
    r.span_id = Some(format!("00f067aa{i:08x}"));
    r.parent_span_id = Some("b7ad6b7169203331".into());
    r.links.tool_results = Some(vec![ToolResult {
        tool_call_id: format!("call_8fJ2kQ{:08}", i.saturating_sub(1)),
        model_request_id: Some(format!(
            "0196a1b2-c3d4-7e5f-8a9b-{:012x}",
            i.saturating_sub(1)
        )),
    }]);
    r
}
