//! The request side: what a call asks for, per route kind.

mod http;
mod llm;
mod mcp;

use crate::toolmap::ToolMap;
use crate::{Limits, RouteKind};
use serde::Serialize;
use serde_json::Value;

/// Most tool-result ids recorded from one LLM request.
pub const MAX_TOOL_RESULT_IDS: usize = 256;
/// Longest tool-result id recorded, in bytes (longer ones are skipped).
pub const MAX_TOOL_RESULT_ID_BYTES: usize = 256;

/// One request as the proxy sees it.
#[derive(Clone, Copy, Debug)]
pub struct RequestInput<'a> {
    /// The route's protocol.
    pub kind: RouteKind,
    /// The route's name (prefixes MCP tool names: `<route>:<tool>`).
    pub route: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// The path after the route prefix, e.g. `/v1/chat/completions` (no query).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a ::http::HeaderMap,
    /// The buffered body.
    pub body: &'a [u8],
    /// `false` when the proxy could not buffer the whole body (too large): the
    /// body is then not inspected.
    pub body_complete: bool,
    /// The route's REST tool mapping (`kind: http`).
    pub tools: Option<&'a ToolMap>,
}

/// What a request asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestFacts {
    /// openai: `chat.completions` | `responses` | `completions` | `embeddings` |
    /// `moderations` | `models`; anthropic: `messages` | `messages.count_tokens` |
    /// `messages.batches` | `complete`; mcp: the JSON-RPC method, `batch`, `response`
    /// (a client's reply to a server request), `stream` (GET) or `session.delete`
    /// (DELETE); http: `None`. `None` for paths not recognised.
    pub operation: Option<String>,
    /// The model the request names.
    pub model: Option<String>,
    /// Whether the request asked for a streamed response.
    pub stream: bool,
    /// mcp `tools/call`: `<route>:<tool name>`; http: the mapped tool name.
    pub tool: Option<String>,
    /// Canonical JSON (see the crate documentation), bounded by
    /// `Limits::max_parameters_bytes`. mcp `tools/call`: the arguments;
    /// `resources/read`: `{"uri":..}`; `prompts/get`: `{"arguments":..,"name":..}`;
    /// batch: the array of per-message summaries; http (mapped to a tool or not):
    /// `{"body":..,"path":{..},"query":{..}}` without the empty parts (`None` if all
    /// are empty; `body` only for JSON and form bodies); LLM routes: `None`.
    pub parameters: Option<String>,
    /// The canonical length of the parameters when they were truncated.
    pub truncated_from: Option<usize>,
    /// The arguments the tool was called with, as canonical JSON, to compare with
    /// a model's [`crate::ToolCall::arguments`]: mcp `tools/call` (the first one
    /// of a batch): `params.arguments`, `{}` when absent or null; http mapped to a
    /// tool: the body if it is a JSON (or form) object, else the path and query
    /// parameters merged into one object (a path parameter wins over a query
    /// parameter of the same name; `{}` when there are none). `None` otherwise,
    /// and when longer than `Limits::max_parameters_bytes` (never truncated).
    pub tool_arguments: Option<String>,
    /// http routes mapped to a tool: the template's path parameters, decoded, in
    /// template order (`/contacts/{id}` → `[("id", "42")]`); the `path` part of
    /// the parameters, kept whole for content safety (the parameters may be
    /// truncated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path_params: Vec<(String, String)>,
    /// LLM routes: the ids of the tool calls whose results the request carries
    /// back to the model, in order, each once: openai chat `tool_call_id` of
    /// `role: "tool"` messages; openai Responses `call_id` of
    /// `function_call_output` (and `custom_tool_call_output`) input items;
    /// anthropic `tool_use_id` of `tool_result` content blocks. At most
    /// [`MAX_TOOL_RESULT_IDS`]; ids longer than [`MAX_TOOL_RESULT_ID_BYTES`] or
    /// empty are skipped. Nothing else of those messages is kept.
    pub tool_result_ids: Vec<String>,
    /// MCP request ids, to correlate the responses.
    pub jsonrpc_ids: Vec<Value>,
    /// Why the request could not be (fully) inspected.
    pub error: Option<String>,
    /// The body was not inspected (too large).
    pub uninspected: bool,
    /// Why the body cannot be read unambiguously: larger than
    /// `Limits::max_body_bytes`, or not readable JSON where JSON is expected
    /// (LLM and MCP routes; `kind: http` bodies declared or looking like JSON,
    /// form bodies that are not UTF-8 or name a field twice) — see the `strict`
    /// module. A route that enforces something refuses such a body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// MCP: how the `mcp-method` / `mcp-name` headers disagree with the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_mismatch: Option<String>,
    /// MCP batches: how many of the messages are requests (a method and an id).
    #[serde(skip_serializing_if = "is_zero")]
    pub batch_requests: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RequestFacts {
    /// Records `params` as bounded canonical JSON.
    fn set_parameters(&mut self, params: &Value, limits: &Limits) {
        let (text, from) = crate::canonical::truncate_parameters(
            crate::canonical_json(params),
            limits.max_parameters_bytes,
        );
        self.parameters = text;
        self.truncated_from = from;
    }

    /// Records `args` as canonical tool arguments, if they fit.
    fn set_tool_arguments(&mut self, args: &Value, limits: &Limits) {
        let text = crate::canonical_json(args);
        self.tool_arguments = (text.len() <= limits.max_parameters_bytes).then_some(text);
    }

    /// Keeps the first error.
    fn note_error(&mut self, error: String) {
        self.error.get_or_insert(error);
    }
}

/// Inspects one request. Never panics; problems land in [`RequestFacts::error`].
pub fn inspect_request(req: &RequestInput<'_>, limits: &Limits) -> RequestFacts {
    inspect(req, limits, true)
}

/// [`inspect_request`]; with `once`, an OpenAI or Anthropic body that passes the
/// strict read is read once, checked as it is read (`strict::from_json_checked`),
/// rather than checked and then read. The facts are the same either way; a body
/// the one read refuses is read twice, for the strict read's message.
fn inspect(req: &RequestInput<'_>, limits: &Limits, once: bool) -> RequestFacts {
    let mut facts = RequestFacts::default();
    let body = readable_body(req, limits, &mut facts);
    if once
        && let Some(body) = body
        && llm::inspect_once(req, body, &mut facts)
    {
        return facts;
    }
    if let Some(body) = body
        && expects_json(req, body)
        && let Err(why) = crate::strict::check_json(body)
    {
        facts.note_error(why.clone());
        facts.unreadable = Some(why);
    }
    match req.kind {
        RouteKind::Openai => llm::inspect_openai(req, body, &mut facts),
        RouteKind::Anthropic => llm::inspect_anthropic(req, body, &mut facts),
        RouteKind::Mcp => mcp::inspect(req, body, limits, &mut facts),
        RouteKind::Http => http::inspect(req, body, limits, &mut facts),
    }
    facts
}

/// The body if it may be inspected and is not blank.
fn readable_body<'a>(
    req: &RequestInput<'a>,
    limits: &Limits,
    facts: &mut RequestFacts,
) -> Option<&'a [u8]> {
    if !req.body_complete || req.body.len() > limits.max_body_bytes {
        facts.uninspected = true;
        facts.error = Some(format!(
            "request body not inspected: larger than {} bytes",
            limits.max_body_bytes
        ));
        facts.unreadable = Some(format!(
            "the request body ({} bytes) is larger than inspection.max_body ({} bytes), so custody cannot read it; raise inspection.max_body (and limits.max_request_body) to allow such bodies",
            req.body.len(),
            limits.max_body_bytes
        ));
        return None;
    }
    let blank = req.body.iter().all(u8::is_ascii_whitespace);
    (!blank).then_some(req.body)
}

/// Whether the body must be JSON: always on LLM and MCP routes; on `kind: http`
/// routes when declared JSON, or undeclared and looking like JSON.
fn expects_json(req: &RequestInput<'_>, body: &[u8]) -> bool {
    match req.kind {
        RouteKind::Openai | RouteKind::Anthropic | RouteKind::Mcp => true,
        RouteKind::Http => match content_type(req) {
            Some(ct) => ct == "application/json" || ct.ends_with("+json"),
            None => matches!(first_token(body), Some(b'{' | b'[')),
        },
    }
}

/// The lower-cased media type of the body (`Content-Type` without parameters).
fn content_type(req: &RequestInput<'_>) -> Option<String> {
    let ct = header(req, "content-type")?.to_ascii_lowercase();
    Some(ct.split(';').next().unwrap_or(&ct).trim().to_owned())
}

fn not_json(e: &serde_json::Error) -> String {
    format!("request body is not JSON: {e}")
}

/// The first byte that is not JSON whitespace.
fn first_token(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The header's value if it is visible ASCII.
fn header<'a>(req: &RequestInput<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
