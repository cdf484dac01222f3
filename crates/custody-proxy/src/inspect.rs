//! The inspection stage: what a call asked for (from the request body) and what it
//! got (from the response, as it streams by), written into the audit row.
//!
//! The protocol work is `custody-inspect`'s; this module only moves its facts into
//! the row and, for routes with `force_stream_usage`, swaps the request body and
//! keeps the extra usage chunk from the client. Otherwise the client receives the
//! upstream's bytes unchanged.

use crate::config::InspectionConfig;
use crate::route::Route;
use bytes::Bytes;
use custody_audit::AuditRecord;
use custody_core::{ActionKind, RouteKind, ToolCallRequest};
use custody_inspect::{
    Limits, Media, PriceTable, RequestFacts, RequestInput, ResponseObserver, UsageChunkStripper,
    force_stream_usage, inspect_request,
};
use std::sync::Arc;

/// Longest model name recorded, in characters.
const MAX_MODEL_CHARS: usize = 256;

/// The stage's shared state.
#[derive(Debug)]
pub(crate) struct Inspection {
    limits: Limits,
    prices: Arc<PriceTable>,
}

/// What [`Inspection::request`] returns.
#[derive(Debug)]
pub(crate) struct Inspected {
    /// What the request asks for.
    pub(crate) request: RequestInspection,
    /// The body to send on: the one inspected, or its `force_stream_usage` rewrite.
    pub(crate) body: Bytes,
}

/// What the request stage learned, carried to the response.
#[derive(Debug)]
pub(crate) struct RequestInspection {
    kind: RouteKind,
    facts: RequestFacts,
    /// The body was rewritten to ask for stream usage: strip it from the response.
    strip_usage_chunk: bool,
}

impl RequestInspection {
    /// Everything the request stage learned.
    pub(crate) fn facts(&self) -> &RequestFacts {
        &self.facts
    }

    /// The model the request asked for.
    pub(crate) fn model(&self) -> Option<&str> {
        self.facts.model.as_deref()
    }

    /// The tool call's arguments as canonical JSON (MCP `tools/call`, mapped REST
    /// tools), to link it to the model turn that asked for it.
    pub(crate) fn tool_arguments(&self) -> Option<&str> {
        self.facts.tool_arguments.as_deref()
    }

    /// LLM requests: the ids of the tool calls whose results the request returns.
    pub(crate) fn tool_result_ids(&self) -> &[String] {
        &self.facts.tool_result_ids
    }

    /// On MCP routes, the JSON-RPC requests the body carried (to answer a denial).
    pub(crate) fn jsonrpc_call(&self) -> Option<crate::error::JsonRpcCall> {
        (self.kind == RouteKind::Mcp).then(|| crate::error::JsonRpcCall {
            ids: self.facts.jsonrpc_ids.clone(),
            batch: self.facts.operation.as_deref() == Some("batch"),
        })
    }
}

impl Inspection {
    pub(crate) fn new(config: &InspectionConfig) -> Self {
        Self {
            limits: config.limits,
            prices: config.prices.clone(),
        }
    }

    /// The request side's one entry point: inspects the request, fills the row's
    /// action, and returns what was learned with the body to send (rewritten only
    /// for `force_stream_usage`).
    pub(crate) fn request(
        &self,
        record: &mut AuditRecord,
        route: &Route,
        rest: &str,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> Inspected {
        let facts = inspect_request(
            &RequestInput {
                kind: route.kind,
                route: &route.name,
                method: parts.method.as_str(),
                path: if rest.is_empty() { "/" } else { rest },
                query: parts.uri.query(),
                headers: &parts.headers,
                body: &body,
                body_complete: true,
                tools: (route.kind == RouteKind::Http).then_some(&*route.tools),
            },
            &self.limits,
        );
        let action = &mut record.action;
        action.operation.clone_from(&facts.operation);
        action.tool.clone_from(&facts.tool);
        action.parameters.clone_from(&facts.parameters);
        action.inspected =
            Some(!facts.uninspected && facts.error.is_none() && facts.unreadable.is_none());
        if route.kind == RouteKind::Http && facts.tool.is_some() {
            action.kind = ActionKind::Tool;
        }
        if route.kind.is_llm() {
            // The model asked for: what identity and policy judged (`action.model`);
            // `usage.model` becomes the provider's when the response names one.
            record.action.model = facts.model.as_deref().map(short);
            record.usage.model.clone_from(&record.action.model);
        }
        record.action.housekeeping = Some(
            route.kind == RouteKind::Mcp
                && facts
                    .operation
                    .as_deref()
                    .is_some_and(custody_core::mcp::is_housekeeping),
        );
        if let Some(error) = &facts.error {
            record.outcome.error = Some(error.clone());
        }
        // Only chat/completions streams report usage on request; the Responses API
        // always sends it in `response.completed` and refuses the option.
        let usage_on_request = matches!(
            facts.operation.as_deref(),
            Some("chat.completions" | "completions")
        );
        let rewritten = (route.force_stream_usage && facts.stream && usage_on_request)
            .then(|| force_stream_usage(&body))
            .flatten();
        let strip_usage_chunk = rewritten.is_some();
        let body = rewritten.map_or(body, Bytes::from);
        Inspected {
            request: RequestInspection {
                kind: route.kind,
                facts,
                strip_usage_chunk,
            },
            body,
        }
    }

    /// The watcher for the response, once its status and headers are known; `None`
    /// for routes whose responses carry nothing to record (`kind: http`).
    pub(crate) fn response(
        &self,
        request: RequestInspection,
        status: u16,
        media: Option<Media>,
    ) -> Option<Box<ResponseInspection>> {
        if request.kind == RouteKind::Http {
            return None;
        }
        let streamed = media == Some(Media::EventStream);
        Some(Box::new(ResponseInspection {
            observer: ResponseObserver::with_media(
                request.kind,
                &request.facts,
                media,
                &self.limits,
            ),
            stripper: (request.strip_usage_chunk && streamed).then(UsageChunkStripper::new),
            prices: self.prices.clone(),
            kind: request.kind,
            status,
            // An MCP GET stream ends when the client closes it.
            open_ended: request.kind == RouteKind::Mcp
                && request.facts.operation.as_deref() == Some("stream"),
            requested_model: request.facts.model,
            session: None,
        }))
    }
}

/// Watches one response stream by.
#[derive(Debug)]
pub(crate) struct ResponseInspection {
    observer: ResponseObserver,
    stripper: Option<UsageChunkStripper>,
    prices: Arc<PriceTable>,
    kind: RouteKind,
    status: u16,
    open_ended: bool,
    requested_model: Option<String>,
    /// The call's session, to remember the tool calls the model asks for.
    session: Option<crate::session::SessionHandle>,
}

impl ResponseInspection {
    /// Observes one chunk of the upstream's body; returns what the client gets
    /// (the same bytes, unless the forced usage chunk is being kept back).
    pub(crate) fn on_data(&mut self, data: Bytes) -> Bytes {
        self.observer.feed(&data);
        match &mut self.stripper {
            None => data,
            Some(stripper) => {
                let mut out = Vec::with_capacity(data.len());
                stripper.push(&data, &mut out);
                Bytes::from(out)
            }
        }
    }

    /// Whether the response already said all it will say (or runs until the client
    /// leaves), so a client closing the stream now has not cut anything short.
    pub(crate) fn client_may_close(&self) -> bool {
        self.open_ended || self.observer.is_complete()
    }

    /// Whether the client's bytes may differ from the upstream's (the forced usage
    /// chunk is kept back), so the upstream's length does not hold.
    pub(crate) fn rewrites(&self) -> bool {
        self.stripper.is_some()
    }

    /// At the end of the upstream's body: bytes still held back for the client.
    pub(crate) fn on_end(&mut self) -> Bytes {
        let mut out = Vec::new();
        if let Some(stripper) = &mut self.stripper {
            stripper.finish(&mut out);
        }
        Bytes::from(out)
    }

    /// The call's session: the tool calls the model asks for are remembered in it.
    pub(crate) fn set_session(&mut self, session: crate::session::SessionHandle) {
        self.session = Some(session);
    }

    /// Writes what the response said into the row.
    pub(crate) fn apply(self, record: &mut AuditRecord) {
        let facts = self.observer.finish();
        let model = facts.model.or(self.requested_model);
        if let Some(usage) = facts.usage {
            record.usage.input_tokens = usage.input_tokens;
            record.usage.output_tokens = usage.output_tokens;
            record.usage.cached_input_tokens = usage.cached_input_tokens;
            record.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
            record.usage.estimated_cost_usd =
                model.as_deref().and_then(|m| self.prices.cost(m, &usage));
        }
        if self.kind.is_llm() {
            if model.is_some() {
                record.usage.model = model.as_deref().map(short);
            }
            let complete = (200..300).contains(&self.status) && !facts.uninspected;
            if let Some(session) = &self.session {
                session.model_asked(&record.request_id, &facts.tool_calls);
            }
            if !facts.tool_calls.is_empty() || complete {
                record.action.model_tool_calls = Some(
                    facts
                        .tool_calls
                        .into_iter()
                        .map(|c| ToolCallRequest {
                            id: c.id,
                            name: c.name,
                        })
                        .collect(),
                );
            }
        }
        if facts.uninspected || facts.discarded_events > 0 {
            record.action.inspected = Some(false);
        }
        if let Some(error) = facts.error
            && record.outcome.error.is_none()
        {
            record.outcome.error = Some(error);
        }
    }
}

/// `s` cut to its first [`MAX_MODEL_CHARS`] characters.
fn short(s: &str) -> String {
    // A string of at most that many bytes has at most that many characters, so the
    // usual model name is copied whole without walking its characters.
    let end = if s.len() <= MAX_MODEL_CHARS {
        s.len()
    } else {
        s.char_indices()
            .nth(MAX_MODEL_CHARS)
            .map_or(s.len(), |(at, _)| at)
    };
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The same cut as taking the characters one by one, at and around the limit.
        #[test]
        fn short_keeps_the_first_characters(
            head in "[a-z0-9.-]{0,300}",
            tail in "(\\PC|é|中|😀){0,40}",
        ) {
            let s = format!("{head}{tail}");
            let by_chars: String = s.chars().take(MAX_MODEL_CHARS).collect();
            prop_assert_eq!(short(&s), by_chars);
        }
    }

    #[test]
    fn short_cuts_on_a_character_boundary() {
        let s = "é".repeat(MAX_MODEL_CHARS + 1);
        assert_eq!(short(&s).chars().count(), MAX_MODEL_CHARS);
        let s = "a".repeat(MAX_MODEL_CHARS);
        assert_eq!(short(&s), s);
        assert_eq!(short(""), "");
    }
}
