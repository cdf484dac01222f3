//! Inspection: recognise the protocol a call speaks and extract the *action* it
//! performed (operation, model, tool, parameters) from the request, and the facts
//! the audit row needs (model, token usage, tool calls the model asked for, errors)
//! from the response, streamed or not; plus token prices and cost.
//!
//! This crate is pure: it does no I/O, spawns nothing and never blocks. The proxy
//! hands it bytes; it hands back facts, including what links a model's tool call
//! to the execution that carries it out and to the request that returns its result
//! (see below).
//!
//! # Invariants
//! - Nothing here panics on any input, and memory is bounded by [`Limits`]: a
//!   request body is inspected only up to `max_body_bytes`; a JSON response is
//!   buffered up to `max_body_bytes` and then dropped (the facts are marked
//!   `uninspected`, and token usage is still recovered best-effort from the last
//!   few KiB of the body, where OpenAI and Anthropic put it); an SSE response is
//!   parsed incrementally and a single event larger than `max_event_bytes` is
//!   discarded (counted) without being buffered; streamed tool-call arguments are
//!   assembled up to `max_parameters_bytes` per call and `max_body_bytes` per
//!   response.
//! - Facts never depend on how the bytes were chunked: feeding a response whole,
//!   byte by byte, or in any other split gives the same [`ResponseFacts`].
//! - A response stream cut short is still valid input: [`ResponseObserver::finish`]
//!   reports what was seen; an incomplete trailing SSE event is dropped, as the
//!   WHATWG rules say.
//!
//! # Use
//! ```
//! use custody_inspect::{inspect_request, Limits, PriceTable, RequestInput, ResponseObserver, RouteKind};
//!
//! let limits = Limits::default();
//! let headers = http::HeaderMap::new();
//! let body = br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
//! let request = inspect_request(
//!     &RequestInput {
//!         kind: RouteKind::Openai,
//!         route: "openai",
//!         method: "POST",
//!         path: "/v1/chat/completions",
//!         query: None,
//!         headers: &headers,
//!         body,
//!         body_complete: true,
//!         tools: None,
//!     },
//!     &limits,
//! );
//! assert_eq!(request.operation.as_deref(), Some("chat.completions"));
//!
//! let mut observer =
//!     ResponseObserver::new(RouteKind::Openai, &request, 200, Some("text/event-stream"), &limits);
//! observer.feed(b"data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":");
//! observer.feed(b"{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
//! let response = observer.finish();
//! let usage = response.usage.expect("usage");
//! assert_eq!((usage.input_tokens, usage.output_tokens), (Some(9), Some(2)));
//! let cost = PriceTable::builtin().cost(response.model.as_deref().unwrap_or_default(), &usage);
//! assert!(cost.is_some_and(|usd| usd > 0.0));
//! ```
//!
//! # Parameters: canonical JSON and the truncation marker
//! `RequestFacts::parameters` is canonical JSON text: object keys sorted by their
//! UTF-8 bytes, no insignificant whitespace, strings escaped as serde_json does
//! (see [`canonical_json`]). When the canonical text is longer than
//! `Limits::max_parameters_bytes`, it is replaced by a marker that is itself valid
//! JSON and fits within the limit:
//!
//! ```json
//! {"_truncated":true,"original_bytes":123456,"prefix":"{\"query\":\"pipeline st"}
//! ```
//!
//! `original_bytes` is the length of the full canonical text (also reported in
//! `RequestFacts::truncated_from`); `prefix` holds as many leading characters of
//! the canonical text as fit, cut on a character boundary. If the limit is too
//! small to hold even the marker, `parameters` is `None` (and `truncated_from`
//! still says how large they were).
//!
//! # Linking a tool call to its execution and its result
//! Three facts let a session tracker follow one tool call across calls:
//! - [`ToolCall`] (in [`ResponseFacts::tool_calls`]): the model's call, with its
//!   provider id (`call_…`, `toolu_…`), name and `arguments` as canonical JSON.
//!   Arguments are assembled from every shape the observer reads: OpenAI chat
//!   `function.arguments` (whole, or streamed fragments per choice and tool
//!   index), Responses API `function_call` items (whole, or
//!   `function_call_arguments.delta` / `.done` per item), Anthropic `tool_use`
//!   `input` (whole, or `input_json_delta` fragments per content block). They are
//!   `None` when they do not parse as JSON (a stream cut short, invalid JSON) or
//!   are longer than `Limits::max_parameters_bytes`; they are never truncated.
//! - [`RequestFacts::tool_arguments`]: the arguments a tool execution was called
//!   with, canonical in the same way: MCP `tools/call` `params.arguments` (`{}`
//!   when absent), or for a REST request mapped to a tool the JSON (or form) body
//!   object, else the path and query parameters merged. Equal text means equal
//!   arguments, whatever the key order or whitespace on either side.
//! - [`RequestFacts::tool_result_ids`]: the ids of the tool calls whose results a
//!   later LLM request carries back (OpenAI chat `role: "tool"` messages'
//!   `tool_call_id`, Responses `function_call_output` items' `call_id`, Anthropic
//!   `tool_result` blocks' `tool_use_id`), in order, each once, bounded by
//!   [`MAX_TOOL_RESULT_IDS`] and [`MAX_TOOL_RESULT_ID_BYTES`]. Only the ids are
//!   kept, never the results.
//!
//! # Token usage normalisation
//! [`Usage::input_tokens`] is *all* input tokens the provider processed, whichever
//! way it reports them:
//! - OpenAI: `prompt_tokens` (chat, completions, embeddings) or `input_tokens`
//!   (Responses API) already include cached tokens; `cached_input_tokens` is
//!   `prompt_tokens_details.cached_tokens` / `input_tokens_details.cached_tokens`.
//!   Embeddings report no output tokens: `output_tokens` is `None`.
//! - Anthropic: `input_tokens` *excludes* cache reads and cache writes, so
//!   `input_tokens = input_tokens + cache_read_input_tokens +
//!   cache_creation_input_tokens`, `cached_input_tokens = cache_read_input_tokens`
//!   and `cache_creation_input_tokens` is reported as is. In a stream,
//!   `message_start` carries the input side and `message_delta` the cumulative
//!   output (and, in newer API versions, updated input counts, which win).
//!   `messages/count_tokens` costs nothing and reports no usage.
//!
//! [`PriceTable::cost`] prices `input - cached - cache_creation` at `input`,
//! cached tokens at `cached_input`, cache creation at `cache_write` (both falling
//! back to `input`) and output at `output`.
//!
//! # MCP
//! One JSON-RPC message or a batch per POST. The body wins over the stateless
//! `mcp-method` / `mcp-name` headers, which are used when the body cannot be read.
//! A batch is recorded as operation `batch`, tool = the first `tools/call`'s tool,
//! and parameters = a canonical array with one summary object per message
//! (`{"arguments":..,"id":..,"method":"tools/call","name":".."}`, with the same
//! fields as a single call's parameters plus `method` and `id`). On the response
//! side, only JSON-RPC responses whose id matches a request id count.

#![deny(missing_docs)]

mod canonical;
mod lenient;
mod media;
mod price;
mod request;
mod response;
mod scan;
mod sse;
mod stream_usage;
mod strict;
mod text;
mod toolmap;
mod usage;

pub use canonical::{canonical_json, truncate_parameters};
pub use custody_core::RouteKind;
pub use media::Media;
pub use price::{Price, PriceError, PriceFile, PriceTable};
pub use request::{
    MAX_TOOL_RESULT_ID_BYTES, MAX_TOOL_RESULT_IDS, RequestFacts, RequestInput, inspect_request,
};
pub use response::{ResponseFacts, ResponseObserver, ToolCall};
pub use sse::{SseEvent, SseParser};
pub use stream_usage::{UsageChunkStripper, force_stream_usage};
pub use toolmap::{TemplateError, ToolMap, ToolMapping, ToolMatch};
pub use usage::Usage;

/// Bounds on the work and memory spent inspecting one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest canonical parameters text recorded (larger ones are replaced by the
    /// truncation marker). Default 16 KiB.
    pub max_parameters_bytes: usize,
    /// Largest request or JSON response body inspected. Default 4 MiB.
    pub max_body_bytes: usize,
    /// Largest single SSE event parsed; larger ones are discarded. Default 1 MiB.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_parameters_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
        }
    }
}
