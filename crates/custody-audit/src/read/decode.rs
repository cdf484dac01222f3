//! One decoded (projected, filtered) batch → [`TrailRow`]s.

use super::columns::{Column, StructList, column};
use super::{FileErrorKind, TrailAction, TrailOutcome, TrailRow};
use crate::record::{ContentSafety, Links, PolicyOutcome, Redaction, ToolResult, Usage};
use arrow_array::RecordBatch;
use custody_core::{Principal, ToolCallRequest};

/// The column at `path` (`action.tool`) read by `typed` (`Column::strings`, …);
/// `None` when the batch has no such column.
fn col<'a, T>(
    b: &'a RecordBatch,
    path: &str,
    typed: impl FnOnce(&Column<'a>) -> Result<T, FileErrorKind>,
) -> Result<Option<T>, FileErrorKind> {
    column(b, &path.split('.').collect::<Vec<_>>())
        .map(|c| typed(&c))
        .transpose()
}

/// The field `name` of a list's items, read by `typed`; `None` when absent.
fn item_col<'a, T>(
    list: Option<&StructList<'a>>,
    name: &str,
    typed: impl FnOnce(&Column<'a>) -> Result<T, FileErrorKind>,
) -> Result<Option<T>, FileErrorKind> {
    match list {
        Some(l) => l.field(name)?.map(|c| typed(&c)).transpose(),
        None => Ok(None),
    }
}

/// `row`'s list in `list`, each item built by `item` from its index; `None` when
/// the list is null or the column absent.
fn items<T>(
    list: Option<&StructList<'_>>,
    row: usize,
    item: impl FnMut(usize) -> T,
) -> Option<Vec<T>> {
    list?.get(row).map(|range| range.map(item).collect())
}

macro_rules! get {
    ($col:expr, $i:expr) => {
        $col.as_ref().and_then(|c| c.get($i))
    };
}

/// Appends every row of `batch` to `out`.
pub(super) fn decode(batch: &RecordBatch, out: &mut Vec<TrailRow>) -> Result<(), FileErrorKind> {
    let b = batch;
    let event_time = col(b, "event_time", Column::micros)?;
    let request_id = col(b, "request_id", Column::strings)?;
    let client_request_id = col(b, "client_request_id", Column::strings)?;
    let session_id = col(b, "session_id", Column::strings)?;
    let session_step = col(b, "session_step", Column::ints)?;
    let session_source = col(b, "session_source", Column::strings)?;
    let trace_id = col(b, "trace_id", Column::strings)?;
    let span_id = col(b, "span_id", Column::strings)?;
    let parent_span_id = col(b, "parent_span_id", Column::strings)?;
    let schema_version = col(b, "schema_version", Column::ints)?;

    let sub = col(b, "principal.sub", Column::strings)?;
    let org = col(b, "principal.org", Column::strings)?;
    let role = col(b, "principal.role", Column::strings)?;
    let roles = col(b, "principal.roles", Column::string_list)?;
    let issuer = col(b, "principal.issuer", Column::strings)?;

    let kind = col(b, "action.kind", Column::strings)?;
    let route = col(b, "action.route", Column::strings)?;
    let method = col(b, "action.method", Column::strings)?;
    let path = col(b, "action.path", Column::strings)?;
    let raw_path = col(b, "action.raw_path", Column::strings)?;
    let tool = col(b, "action.tool", Column::strings)?;
    let operation = col(b, "action.operation", Column::strings)?;
    let requested_model = col(b, "action.model", Column::strings)?;
    let housekeeping = col(b, "action.housekeeping", Column::bools)?;
    let calls = col(b, "action.model_tool_calls", Column::struct_list)?;
    let call_id = item_col(calls.as_ref(), "id", Column::strings)?;
    let call_name = item_col(calls.as_ref(), "name", Column::strings)?;

    let decision = col(b, "policy.decision", Column::strings)?;
    let rule = col(b, "policy.rule", Column::strings)?;
    let scopes = col(b, "policy.scopes", Column::string_list)?;
    let version = col(b, "policy.version", Column::strings)?;

    let pii = col(b, "content_safety.pii_detected", Column::bools)?;
    let redactions = col(b, "content_safety.redactions", Column::struct_list)?;
    let r_kind = item_col(redactions.as_ref(), "kind", Column::strings)?;
    let r_path = item_col(redactions.as_ref(), "path", Column::strings)?;
    let r_count = item_col(redactions.as_ref(), "count", Column::ints)?;
    let r_action = item_col(redactions.as_ref(), "action", Column::strings)?;
    let r_side = item_col(redactions.as_ref(), "side", Column::strings)?;
    let r_handling = item_col(redactions.as_ref(), "handling", Column::strings)?;
    let handling = col(b, "content_safety.handling", Column::strings)?;

    let model = col(b, "usage.model", Column::strings)?;
    let input_tokens = col(b, "usage.input_tokens", Column::ints)?;
    let output_tokens = col(b, "usage.output_tokens", Column::ints)?;
    let cost = col(b, "usage.estimated_cost_usd", Column::floats)?;
    let cached = col(b, "usage.cached_input_tokens", Column::ints)?;
    let cache_creation = col(b, "usage.cache_creation_input_tokens", Column::ints)?;

    let status = col(b, "outcome.status", Column::ints)?;
    let duration = col(b, "outcome.duration_ms", Column::floats)?;
    let error = col(b, "outcome.error", Column::strings)?;

    let link_call = col(b, "links.tool_call_id", Column::strings)?;
    let link_model = col(b, "links.model_request_id", Column::strings)?;
    let results = col(b, "links.tool_results", Column::struct_list)?;
    let res_call = item_col(results.as_ref(), "tool_call_id", Column::strings)?;
    let res_model = item_col(results.as_ref(), "model_request_id", Column::strings)?;
    let intercepted_host = col(b, "intercepted_host", Column::strings)?;

    for i in 0..b.num_rows() {
        let model_tool_calls = items(calls.as_ref(), i, |j| ToolCallRequest {
            id: get!(call_id, j),
            name: get!(call_name, j).unwrap_or_default(),
        });
        let redactions = items(redactions.as_ref(), i, |j| Redaction {
            kind: get!(r_kind, j).unwrap_or_default(),
            path: get!(r_path, j).unwrap_or_default(),
            count: get!(r_count, j).unwrap_or_default(),
            action: get!(r_action, j).unwrap_or_default(),
            side: get!(r_side, j),
            handling: get!(r_handling, j),
        });
        let tool_results = items(results.as_ref(), i, |j| ToolResult {
            tool_call_id: get!(res_call, j).unwrap_or_default(),
            model_request_id: get!(res_model, j),
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
                model: get!(requested_model, i),
                housekeeping: get!(housekeeping, i),
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
                handling: get!(handling, i),
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
