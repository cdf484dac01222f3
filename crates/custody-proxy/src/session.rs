//! The session stage (after identity, before policy): which agent session a call
//! belongs to, its step, its W3C span (forwarded upstream as `traceparent`), and
//! the causal links between a model's tool calls and the calls that carry them out
//! (`custody-session`). The tracker is in memory and bounded; see
//! `docs/sessions.md`.

use crate::inspect::RequestInspection;
use bytes::Bytes;
use custody_audit::{AuditRecord, ToolResult};
use custody_inspect::ToolCall;
use custody_session::{
    Arguments, MCP_SESSION_HEADER, ModelToolCall, SessionConfig, SessionInput, SessionStep,
    SessionTracker, TraceContext,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The W3C trace context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// How often idle state is swept.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// The stage: the tracker and the explicit session header.
#[derive(Debug)]
pub(crate) struct Sessions {
    tracker: SessionTracker,
    header: HeaderName,
}

/// A call's place in its session, kept until its response has been seen (to
/// remember the tool calls the model asked for).
#[derive(Debug)]
pub(crate) struct SessionHandle {
    sessions: Arc<Sessions>,
    step: SessionStep,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Sessions {
    /// The stage for a validated `sessions` config.
    pub(crate) fn new(config: &SessionConfig) -> Result<Self, String> {
        let header = HeaderName::from_bytes(config.header.as_bytes())
            .map_err(|e| format!("sessions.header: {e}"))?;
        let tracker = SessionTracker::new(config.clone()).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(Self { tracker, header })
    }

    /// Forgets idle sessions and expired tool calls (also done incrementally as
    /// requests come in); run every [`SWEEP_INTERVAL`].
    pub(crate) fn spawn_sweeper(self: &Arc<Self>) {
        let sessions = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                sessions.tracker.sweep(now_ms());
            }
        });
    }

    /// Whether the call is placed only once its answer is in: an MCP `initialize`
    /// that carries no session signal of its own (no session header, no valid
    /// `traceparent`, no `mcp-session-id`). The server names the session in its
    /// answer's `mcp-session-id`, and the row belongs to that session (step 1), not
    /// to the user's inactivity session; see [`Sessions::begin_answered`].
    pub(crate) fn waits_for_answer(&self, record: &AuditRecord, headers: &HeaderMap) -> bool {
        record.action.operation.as_deref() == Some("initialize")
            && record.action.kind == custody_core::ActionKind::Tool
            && !headers.contains_key(&self.header)
            && !headers.contains_key(MCP_SESSION_HEADER)
            && headers
                .get(&TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .and_then(TraceContext::parse)
                .is_none()
    }

    /// Places a call that [`Sessions::waits_for_answer`] once the answer's headers
    /// are in: in the MCP session the server named (`mcp-session-id`), else where
    /// any call without a signal goes (the user's inactivity session). The row
    /// gets the session's trace id but no span: nothing was forwarded in a
    /// `traceparent` (the caller sent none, and the session was not known yet).
    pub(crate) fn begin_answered(
        self: &Arc<Self>,
        record: &mut AuditRecord,
        answer: &HeaderMap,
    ) -> SessionHandle {
        let step = self.tracker.begin(
            &SessionInput {
                sub: record.principal.sub.as_deref(),
                explicit: None,
                traceparent: None,
                mcp_session: answer.get(MCP_SESSION_HEADER).map(HeaderValue::as_bytes),
            },
            now_ms(),
        );
        record.session_id = Some(step.session_id.clone());
        record.session_step = Some(i64::try_from(step.step).unwrap_or(i64::MAX));
        record.session_source = Some(step.source.as_str().to_owned());
        record.trace_id = Some(step.span_ids().trace_id);
        record.span_id = None;
        record.parent_span_id = None;
        SessionHandle {
            sessions: Arc::clone(self),
            step,
        }
    }

    /// Places the call in its session: fills the row's session and trace columns,
    /// sets the `traceparent` sent upstream (custody's span, a child of the
    /// caller's), and links a tool call to the model turn that asked for it, or an
    /// LLM request's tool results to the turns that asked for them.
    pub(crate) fn begin(
        self: &Arc<Self>,
        record: &mut AuditRecord,
        headers: &mut HeaderMap,
        inspected: &RequestInspection,
    ) -> SessionHandle {
        let now = now_ms();
        let incoming = headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        let step = self.tracker.begin(
            &SessionInput {
                sub: record.principal.sub.as_deref(),
                explicit: headers.get(&self.header).map(HeaderValue::as_bytes),
                traceparent: incoming.as_ref(),
                mcp_session: headers.get(MCP_SESSION_HEADER).map(HeaderValue::as_bytes),
            },
            now,
        );
        let ids = step.span_ids();
        record.session_id = Some(step.session_id.clone());
        record.session_step = Some(i64::try_from(step.step).unwrap_or(i64::MAX));
        record.session_source = Some(step.source.as_str().to_owned());
        record.trace_id = Some(ids.trace_id);
        record.span_id = Some(ids.span_id);
        record.parent_span_id = ids.parent_span_id;
        // The header's own bytes become the value: no second copy.
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(step.traceparent())) {
            headers.insert(TRACEPARENT, value);
        }
        if let Some(tool) = record.action.tool.as_deref() {
            let arguments = inspected
                .tool_arguments()
                .map_or(Arguments::Unknown, Arguments::Text);
            if let Some(link) = self
                .tracker
                .link_tool_execution(&step, tool, arguments, now)
            {
                record.links.tool_call_id = link.tool_call_id;
                record.links.model_request_id = Some(link.model_request_id);
            }
        }
        let results = inspected.tool_result_ids();
        if !results.is_empty() {
            let ids: Vec<&str> = results.iter().map(String::as_str).collect();
            let links = self.tracker.link_tool_results(&step, &ids, now);
            record.links.tool_results = Some(
                results
                    .iter()
                    .map(|id| ToolResult {
                        model_request_id: links
                            .iter()
                            .find(|l| l.tool_call_id.as_deref() == Some(id))
                            .map(|l| l.model_request_id.clone()),
                        tool_call_id: id.clone(),
                    })
                    .collect(),
            );
        }
        SessionHandle {
            sessions: Arc::clone(self),
            step,
        }
    }
}

impl SessionHandle {
    /// Remembers the tool calls a model's response asked for, so the calls that
    /// carry them out (and the results sent back) can be linked to this turn.
    pub(crate) fn model_asked(&self, request_id: &str, calls: &[ToolCall]) {
        if calls.is_empty() {
            return;
        }
        let calls: Vec<ModelToolCall<'_>> = calls
            .iter()
            .map(|c| ModelToolCall {
                id: c.id.as_deref(),
                name: &c.name,
                arguments: c
                    .arguments
                    .as_deref()
                    .map_or(Arguments::Unknown, Arguments::Text),
            })
            .collect();
        self.sessions
            .tracker
            .record_model_tool_calls(&self.step, request_id, &calls, now_ms());
    }
}
