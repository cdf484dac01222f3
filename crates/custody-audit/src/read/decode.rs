//! One decoded (projected, filtered) batch → [`TrailRow`]s.

use super::columns::{
    Bools, Column, Floats, Ints, Micros, StringList, Strings, StructList, column,
};
use super::{FileErrorKind, TrailAction, TrailOutcome, TrailRow};
use crate::record::{ContentSafety, Links, PolicyOutcome, Redaction, ToolResult, Usage};
use arrow_array::RecordBatch;
use custody_core::{Principal, ToolCallRequest};

fn find<'a>(batch: &'a RecordBatch, path: &str) -> Option<Column<'a>> {
    column(batch, &path.split('.').collect::<Vec<_>>())
}

fn strings<'a>(b: &'a RecordBatch, path: &str) -> Result<Option<Strings<'a>>, FileErrorKind> {
    find(b, path).map(|c| c.strings()).transpose()
}

fn ints<'a>(b: &'a RecordBatch, path: &str) -> Result<Option<Ints<'a>>, FileErrorKind> {
    find(b, path).map(|c| c.ints()).transpose()
}

fn floats<'a>(b: &'a RecordBatch, path: &str) -> Result<Option<Floats<'a>>, FileErrorKind> {
    find(b, path).map(|c| c.floats()).transpose()
}

fn bools<'a>(b: &'a RecordBatch, path: &str) -> Result<Option<Bools<'a>>, FileErrorKind> {
    find(b, path).map(|c| c.bools()).transpose()
}

fn string_list<'a>(
    b: &'a RecordBatch,
    path: &str,
) -> Result<Option<StringList<'a>>, FileErrorKind> {
    find(b, path).map(|c| c.string_list()).transpose()
}

fn struct_list<'a>(
    b: &'a RecordBatch,
    path: &str,
) -> Result<Option<StructList<'a>>, FileErrorKind> {
    find(b, path).map(|c| c.struct_list()).transpose()
}

/// A field of a list's items, as strings / integers.
fn item_strings<'a>(
    list: Option<&StructList<'a>>,
    name: &str,
) -> Result<Option<Strings<'a>>, FileErrorKind> {
    match list {
        Some(l) => l.field(name)?.map(|c| c.strings()).transpose(),
        None => Ok(None),
    }
}

fn item_ints<'a>(
    list: Option<&StructList<'a>>,
    name: &str,
) -> Result<Option<Ints<'a>>, FileErrorKind> {
    match list {
        Some(l) => l.field(name)?.map(|c| c.ints()).transpose(),
        None => Ok(None),
    }
}

macro_rules! get {
    ($col:expr, $i:expr) => {
        $col.as_ref().and_then(|c| c.get($i))
    };
}

/// Appends every row of `batch` to `out`.
pub(super) fn decode(batch: &RecordBatch, out: &mut Vec<TrailRow>) -> Result<(), FileErrorKind> {
    let b = batch;
    let event_time = find(b, "event_time").map(|c| c.micros()).transpose()?;
    let event_time: Option<Micros<'_>> = event_time;
    let request_id = strings(b, "request_id")?;
    let client_request_id = strings(b, "client_request_id")?;
    let session_id = strings(b, "session_id")?;
    let session_step = ints(b, "session_step")?;
    let session_source = strings(b, "session_source")?;
    let trace_id = strings(b, "trace_id")?;
    let span_id = strings(b, "span_id")?;
    let parent_span_id = strings(b, "parent_span_id")?;
    let schema_version = ints(b, "schema_version")?;

    let sub = strings(b, "principal.sub")?;
    let org = strings(b, "principal.org")?;
    let role = strings(b, "principal.role")?;
    let roles = string_list(b, "principal.roles")?;
    let issuer = strings(b, "principal.issuer")?;

    let kind = strings(b, "action.kind")?;
    let route = strings(b, "action.route")?;
    let method = strings(b, "action.method")?;
    let path = strings(b, "action.path")?;
    let raw_path = strings(b, "action.raw_path")?;
    let tool = strings(b, "action.tool")?;
    let operation = strings(b, "action.operation")?;
    let calls = struct_list(b, "action.model_tool_calls")?;
    let call_id = item_strings(calls.as_ref(), "id")?;
    let call_name = item_strings(calls.as_ref(), "name")?;

    let decision = strings(b, "policy.decision")?;
    let rule = strings(b, "policy.rule")?;
    let scopes = string_list(b, "policy.scopes")?;
    let version = strings(b, "policy.version")?;

    let pii = bools(b, "content_safety.pii_detected")?;
    let redactions = struct_list(b, "content_safety.redactions")?;
    let r_kind = item_strings(redactions.as_ref(), "kind")?;
    let r_path = item_strings(redactions.as_ref(), "path")?;
    let r_count = item_ints(redactions.as_ref(), "count")?;
    let r_action = item_strings(redactions.as_ref(), "action")?;

    let model = strings(b, "usage.model")?;
    let input_tokens = ints(b, "usage.input_tokens")?;
    let output_tokens = ints(b, "usage.output_tokens")?;
    let cost = floats(b, "usage.estimated_cost_usd")?;
    let cached = ints(b, "usage.cached_input_tokens")?;
    let cache_creation = ints(b, "usage.cache_creation_input_tokens")?;

    let status = ints(b, "outcome.status")?;
    let duration = floats(b, "outcome.duration_ms")?;
    let error = strings(b, "outcome.error")?;

    let link_call = strings(b, "links.tool_call_id")?;
    let link_model = strings(b, "links.model_request_id")?;
    let results = struct_list(b, "links.tool_results")?;
    let res_call = item_strings(results.as_ref(), "tool_call_id")?;
    let res_model = item_strings(results.as_ref(), "model_request_id")?;
    let intercepted_host = strings(b, "intercepted_host")?;

    for i in 0..b.num_rows() {
        let model_tool_calls = get!(calls, i).map(|items| {
            items
                .map(|j| ToolCallRequest {
                    id: get!(call_id, j),
                    name: get!(call_name, j).unwrap_or_default(),
                })
                .collect()
        });
        let redactions = get!(redactions, i).map(|items| {
            items
                .map(|j| Redaction {
                    kind: get!(r_kind, j).unwrap_or_default(),
                    path: get!(r_path, j).unwrap_or_default(),
                    count: get!(r_count, j).unwrap_or_default(),
                    action: get!(r_action, j).unwrap_or_default(),
                })
                .collect()
        });
        let tool_results = get!(results, i).map(|items| {
            items
                .map(|j| ToolResult {
                    tool_call_id: get!(res_call, j).unwrap_or_default(),
                    model_request_id: get!(res_model, j),
                })
                .collect()
        });
        out.push(TrailRow {
            event_time: get!(event_time, i).unwrap_or_default(),
            request_id: get!(request_id, i).unwrap_or_default(),
            client_request_id: get!(client_request_id, i),
            session_id: get!(session_id, i),
            session_step: get!(session_step, i),
            session_source: get!(session_source, i),
            trace_id: get!(trace_id, i),
            span_id: get!(span_id, i),
            parent_span_id: get!(parent_span_id, i),
            schema_version: get!(schema_version, i).and_then(|v| i32::try_from(v).ok()),
            principal: Principal {
                sub: get!(sub, i),
                org: get!(org, i),
                role: get!(role, i),
                roles: get!(roles, i),
                issuer: get!(issuer, i),
            },
            action: TrailAction {
                kind: get!(kind, i),
                route: get!(route, i),
                method: get!(method, i),
                path: get!(path, i),
                raw_path: get!(raw_path, i),
                tool: get!(tool, i),
                operation: get!(operation, i),
                model_tool_calls,
            },
            policy: PolicyOutcome {
                decision: get!(decision, i),
                rule: get!(rule, i),
                scopes: get!(scopes, i),
                version: get!(version, i),
            },
            content_safety: ContentSafety {
                pii_detected: get!(pii, i),
                redactions,
            },
            usage: Usage {
                model: get!(model, i),
                input_tokens: get!(input_tokens, i),
                output_tokens: get!(output_tokens, i),
                estimated_cost_usd: get!(cost, i),
                cached_input_tokens: get!(cached, i),
                cache_creation_input_tokens: get!(cache_creation, i),
            },
            outcome: TrailOutcome {
                status: get!(status, i).and_then(|s| i32::try_from(s).ok()),
                duration_ms: get!(duration, i),
                error: get!(error, i),
            },
            links: Links {
                tool_call_id: get!(link_call, i),
                model_request_id: get!(link_model, i),
                tool_results,
            },
            intercepted_host: get!(intercepted_host, i),
        });
    }
    Ok(())
}
