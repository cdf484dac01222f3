//! The response side: an incremental observer with bounded memory.
//!
//! The content type picks the mode: `text/event-stream` is parsed event by event
//! with [`SseParser`]; JSON (or no content type) is buffered up to
//! `max_body_bytes` and parsed at [`ResponseObserver::finish`]; anything else, and
//! every `kind: http` response, is not looked at. A JSON body over the limit stops
//! being buffered: only its last [`TAIL_BYTES`] are kept, from which the `usage`
//! (and `model`) objects are recovered best-effort, since both providers put them
//! at the end.
//!
//! # Tool-call arguments
//! Each [`ToolCall`] carries its arguments as canonical JSON (see
//! [`crate::canonical_json`]) so a tracker can compare them with the tool call
//! that carries the call out. Whole sources (a JSON body, a Responses API
//! `output_item.done` / `function_call_arguments.done` / `response.completed`, an
//! Anthropic `content_block_stop`) settle a call's arguments; the first one wins.
//! Streamed fragments are assembled per call (chat: per choice and tool index;
//! Responses: per item; Anthropic: per content block) and settled when the call
//! ends, or at [`ResponseObserver::finish`] for calls still open. Arguments that do
//! not parse as JSON (a cut stream, invalid JSON) or that are longer than
//! `Limits::max_parameters_bytes` (as assembled, or once canonical) are `None`;
//! assembly stops as soon as a call goes over that bound, and all calls of one
//! response together assemble at most `Limits::max_body_bytes`.

mod anthropic;
mod mcp;
mod openai;

use crate::canonical_json;
use crate::sse::{SseEvent, SseParser};
use crate::text::truncate_chars;
use crate::usage::{AnthropicRaw, Usage};
use crate::{Limits, Media, RequestFacts, RouteKind};
use serde::Serialize;
use serde_json::Value;

/// Bytes of an oversized JSON body kept for the usage scan.
const TAIL_BYTES: usize = 16 * 1024;
/// Longest provider error message kept, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// A tool the model asked the client to call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// The provider's call id (`call_…`, `toolu_…`), used to link the tool's result.
    pub id: Option<String>,
    /// The tool (function) name.
    pub name: String,
    /// The call's arguments as canonical JSON text; `None` when they do not parse
    /// as JSON (e.g. a stream cut short) or are larger than
    /// `Limits::max_parameters_bytes`. See the module documentation.
    pub arguments: Option<String>,
}

/// Where one tool call's arguments stand.
#[derive(Debug)]
enum Args {
    /// Streamed fragments assembled so far (possibly none).
    Open(String),
    /// Went over the bound: they will be `None`.
    Dropped,
    /// Settled: the call's `arguments` are final.
    Settled,
}

/// What a response said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResponseFacts {
    /// The model the provider reports (may be dated, e.g. `gpt-4o-2024-08-06`).
    pub model: Option<String>,
    /// Token usage, normalised (see the crate documentation).
    pub usage: Option<Usage>,
    /// Tools the model asked for, in order, each once.
    pub tool_calls: Vec<ToolCall>,
    /// The provider's error (`type: message`), an MCP JSON-RPC error
    /// (`jsonrpc error <code>: <message>`), an MCP tool error
    /// (`tool error: <text>`), or why the body could not be read.
    pub error: Option<String>,
    /// A JSON body larger than `max_body_bytes` (not parsed; usage best-effort).
    pub uninspected: bool,
    /// SSE events dispatched.
    pub events: u64,
    /// SSE events discarded because they were larger than `max_event_bytes`.
    pub discarded_events: u64,
}

#[derive(Debug)]
enum Mode {
    Json {
        buf: Vec<u8>,
        /// `Some` once the body went over the limit: its last bytes.
        tail: Option<Vec<u8>>,
    },
    Sse(SseParser),
    Ignore,
}

/// What has been learned so far; the per-protocol handlers live in submodules.
#[derive(Debug)]
struct State {
    kind: RouteKind,
    operation: Option<String>,
    /// MCP request ids: only responses to these count.
    ids: Vec<Value>,
    model: Option<String>,
    openai_usage: Option<Usage>,
    anthropic_usage: AnthropicRaw,
    tool_calls: Vec<ToolCall>,
    /// Each tool call's arguments, by position in `tool_calls`.
    args: Vec<Args>,
    /// `Limits::max_parameters_bytes`: the largest arguments kept.
    max_args: usize,
    /// Bytes of arguments text the calls of this response may still assemble.
    args_budget: usize,
    /// Streamed chat tool calls: (choice index << 32 | tool index) → position.
    chat_slots: Vec<(u64, usize)>,
    /// Streamed Responses API calls: (item id, output index) → position.
    response_items: Vec<(Option<String>, Option<u32>, usize)>,
    /// Open Anthropic tool_use blocks: (block index, position, the start
    /// block's canonical `input`, used when no fragment comes).
    open_blocks: Vec<(u32, usize, Option<String>)>,
    error: Option<String>,
    events: u64,
    /// The response said all it will say (the stream's terminal event, or a
    /// reply to every MCP request id); what follows carries nothing for the row.
    complete: bool,
    /// MCP request ids answered so far.
    answered: usize,
}

/// Watches one response go by; see the module documentation.
#[derive(Debug)]
pub struct ResponseObserver {
    mode: Mode,
    state: State,
    max_body_bytes: usize,
}

impl ResponseObserver {
    /// An observer for the response to `request` on a route of `kind`.
    pub fn new(
        kind: RouteKind,
        request: &RequestFacts,
        status: u16,
        content_type: Option<&str>,
        limits: &Limits,
    ) -> Self {
        let _ = status; // the mode depends on the content type, not the status
        Self::with_media(kind, request, content_type.map(Media::of), limits)
    }

    /// [`ResponseObserver::new`] for a `Content-Type` already read (`None`: the
    /// response has none), so that every stage reading a response decides its
    /// media once.
    pub fn with_media(
        kind: RouteKind,
        request: &RequestFacts,
        media: Option<Media>,
        limits: &Limits,
    ) -> Self {
        let mode = match media {
            _ if kind == RouteKind::Http => Mode::Ignore,
            Some(Media::EventStream) => Mode::Sse(SseParser::new(limits.max_event_bytes)),
            Some(Media::Json) | None => Mode::Json {
                buf: Vec::new(),
                tail: None,
            },
            Some(Media::Other) => Mode::Ignore,
        };
        Self {
            mode,
            state: State {
                kind,
                operation: request.operation.clone(),
                ids: if kind == RouteKind::Mcp {
                    request.jsonrpc_ids.clone()
                } else {
                    Vec::new()
                },
                model: None,
                openai_usage: None,
                anthropic_usage: AnthropicRaw::default(),
                tool_calls: Vec::new(),
                args: Vec::new(),
                max_args: limits.max_parameters_bytes,
                args_budget: limits.max_body_bytes,
                chat_slots: Vec::new(),
                response_items: Vec::new(),
                open_blocks: Vec::new(),
                error: None,
                events: 0,
                complete: false,
                answered: 0,
            },
            max_body_bytes: limits.max_body_bytes,
        }
    }

    /// Feeds the next bytes of the body, split anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.mode {
            Mode::Sse(parser) => {
                let state = &mut self.state;
                parser.feed(chunk, |ev| state.on_event(ev));
            }
            Mode::Json { buf, tail: None } => {
                let needed = buf.len() + chunk.len();
                if needed <= self.max_body_bytes {
                    if needed > buf.capacity() {
                        // Grow by doubling, but never past the limit.
                        let target = (buf.capacity() * 2).max(needed).min(self.max_body_bytes);
                        buf.reserve_exact(target - buf.len());
                    }
                    buf.extend_from_slice(chunk);
                } else {
                    let mut t = Vec::with_capacity(2 * TAIL_BYTES);
                    push_tail(&mut t, buf);
                    push_tail(&mut t, chunk);
                    self.mode = Mode::Json {
                        buf: Vec::new(),
                        tail: Some(t),
                    };
                }
            }
            Mode::Json { tail: Some(t), .. } => push_tail(t, chunk),
            Mode::Ignore => {}
        }
    }

    /// Whether the response has said all it will say: an SSE stream's terminal
    /// event (`[DONE]`, `message_stop`, `response.completed` / `failed` /
    /// `incomplete`) or, on MCP, a reply to every request id. A client that closes
    /// the stream after that (as MCP clients do once they have their reply) has not
    /// cut anything short.
    pub fn is_complete(&self) -> bool {
        self.state.complete
    }

    /// The facts; valid whether or not the body arrived complete.
    // A function of its own, so that a profile (`scripts/instructions`) can
    // attribute the response's inspection.
    #[inline(never)]
    pub fn finish(self) -> ResponseFacts {
        let mut state = self.state;
        let mut facts = ResponseFacts::default();
        match self.mode {
            Mode::Sse(mut parser) => {
                parser.finish();
                facts.discarded_events = parser.discarded();
            }
            Mode::Json {
                tail: Some(tail), ..
            } => {
                facts.uninspected = true;
                state.scan_tail(&tail);
            }
            Mode::Json { buf, tail: None } => state.on_json_body(&buf),
            Mode::Ignore => {}
        }
        state.settle_open_args();
        facts.model = state.model;
        facts.usage = match state.kind {
            RouteKind::Anthropic => state.anthropic_usage.normalised(),
            _ => state.openai_usage,
        };
        if state.operation.as_deref() == Some("messages.count_tokens") {
            facts.usage = None; // free, and not a call that processed tokens
        }
        facts.tool_calls = state.tool_calls;
        facts.error = state.error;
        facts.events = state.events;
        facts
    }
}

/// Appends `chunk` to `tail`, keeping about the last [`TAIL_BYTES`].
fn push_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    let chunk = &chunk[chunk.len().saturating_sub(TAIL_BYTES)..];
    tail.extend_from_slice(chunk);
    if tail.len() > 2 * TAIL_BYTES {
        let excess = tail.len() - TAIL_BYTES;
        tail.drain(..excess);
    }
}

/// The value after the last unescaped `"key":` in `bytes`, if it parses.
fn value_after_last_key(bytes: &[u8], key: &str) -> Option<Value> {
    let needle = format!("\"{key}\"");
    let needle = needle.as_bytes();
    let mut end = bytes.len();
    while let Some(at) = bytes[..end]
        .windows(needle.len())
        .rposition(|w| w == needle)
    {
        end = at;
        if at > 0 && bytes[at - 1] == b'\\' {
            continue;
        }
        let rest = &bytes[at + needle.len()..];
        let rest = rest.trim_ascii_start();
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        if let Some(Ok(v)) = values.next() {
            return Some(v);
        }
    }
    None
}

/// A provider error object (or string) as `type: message`.
fn error_text(err: &Value) -> Option<String> {
    let text = match err {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Object(obj) => {
            if let Some(inner) = obj.get("error").filter(|e| e.is_object()) {
                return error_text(inner);
            }
            let message = obj.get("message").and_then(Value::as_str);
            let kind = obj
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| *t != "error")
                .or_else(|| obj.get("code").and_then(Value::as_str));
            match (kind, message) {
                (Some(k), Some(m)) => format!("{k}: {m}"),
                (None, Some(m)) => m.to_owned(),
                (Some(k), None) => k.to_owned(),
                (None, None) => return None,
            }
        }
        _ => return None,
    };
    Some(truncate_chars(&text, MAX_ERROR_CHARS))
}

impl State {
    fn on_event(&mut self, ev: SseEvent<'_>) {
        self.events += 1;
        let terminal = match self.kind {
            RouteKind::Openai => {
                ev.data == "[DONE]"
                    || matches!(
                        ev.event,
                        "response.completed" | "response.failed" | "response.incomplete"
                    )
            }
            RouteKind::Anthropic => ev.event == "message_stop",
            RouteKind::Mcp | RouteKind::Http => false,
        };
        self.complete |= terminal;
        match self.kind {
            RouteKind::Openai => self.openai_event(ev),
            RouteKind::Anthropic => self.anthropic_event(ev),
            RouteKind::Mcp => self.mcp_event(ev),
            RouteKind::Http => {}
        }
    }

    fn on_json_body(&mut self, body: &[u8]) {
        if body.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        // OpenAI bodies: only what `openai_json` reads is kept (message content
        // is skipped); a body that is not JSON falls through to the full read,
        // which says why.
        if self.kind == RouteKind::Openai
            && let Some(whole) = openai::whole_body(body)
        {
            self.openai_whole(&whole);
            return;
        }
        let v: Value = match crate::strict::from_json(body) {
            Ok(v) => v,
            Err(e) => {
                self.set_error(format!("response body is not JSON: {e}"));
                return;
            }
        };
        match self.kind {
            RouteKind::Openai => self.openai_json(&v),
            RouteKind::Anthropic => self.anthropic_json(&v),
            RouteKind::Mcp => self.mcp_message(&v),
            RouteKind::Http => {}
        }
    }

    /// Best-effort facts from the end of an oversized body.
    fn scan_tail(&mut self, tail: &[u8]) {
        if !self.kind.is_llm() {
            return;
        }
        if let Some(usage) = value_after_last_key(tail, "usage") {
            match self.kind {
                RouteKind::Anthropic => self.anthropic_usage.update(&usage),
                _ => self.openai_usage = crate::usage::openai(&usage),
            }
        }
        if let Some(Value::String(model)) = value_after_last_key(tail, "model") {
            self.model = Some(model);
        }
    }

    fn set_model(&mut self, model: &str) {
        if self.model.is_none() && !model.is_empty() {
            self.model = Some(model.to_owned());
        }
    }

    /// Keeps the first error.
    fn set_error(&mut self, error: String) {
        self.error.get_or_insert(error);
    }

    fn set_error_from(&mut self, err: &Value) {
        if let Some(text) = error_text(err) {
            self.set_error(text);
        }
    }

    /// Records a tool call once per id (calls without an id are always recorded);
    /// its position in `tool_calls`.
    fn push_tool_call(&mut self, id: Option<&str>, name: &str) -> usize {
        if let Some(id) = id
            && let Some(pos) = self
                .tool_calls
                .iter()
                .position(|t| t.id.as_deref() == Some(id))
        {
            return pos;
        }
        self.new_tool_call(ToolCall {
            id: id.map(str::to_owned),
            name: name.to_owned(),
            arguments: None,
        })
    }

    /// Appends `call` (its arguments still open); its position.
    fn new_tool_call(&mut self, call: ToolCall) -> usize {
        self.tool_calls.push(call);
        self.args.push(Args::Open(String::new()));
        self.tool_calls.len() - 1
    }

    /// Takes `n` bytes from the response's arguments budget, if they are left.
    fn charge_args(&mut self, n: usize) -> bool {
        let ok = n <= self.args_budget;
        if ok {
            self.args_budget -= n;
        }
        ok
    }

    /// Appends a streamed fragment of call `pos`'s arguments, dropping them once
    /// they go over the bound.
    fn append_args(&mut self, pos: usize, fragment: &str) {
        if fragment.is_empty() {
            return;
        }
        let Some(Args::Open(text)) = self.args.get(pos) else {
            return;
        };
        let fits = text.len() + fragment.len() <= self.max_args;
        if fits && self.charge_args(fragment.len()) {
            if let Some(Args::Open(text)) = self.args.get_mut(pos) {
                text.push_str(fragment);
            }
        } else {
            self.args[pos] = Args::Dropped;
        }
    }

    /// Settles call `pos`'s arguments from their whole text (a JSON string), unless
    /// they are settled already.
    fn settle_args_text(&mut self, pos: usize, text: &str) {
        if matches!(self.args.get(pos), None | Some(Args::Settled)) {
            return;
        }
        let fits = text.len() <= self.max_args && self.charge_args(text.len());
        let args = if fits {
            canonical_args(text, self.max_args)
        } else {
            None
        };
        self.settle(pos, args);
    }

    /// Settles call `pos`'s arguments from a JSON value: a string holds their
    /// text (OpenAI), anything else is the arguments themselves (Anthropic's
    /// `input`; an object from OpenAI-compatible servers); `null` means none.
    fn settle_args_value(&mut self, pos: usize, v: Option<&Value>) {
        match v {
            Some(Value::String(text)) => self.settle_args_text(pos, text),
            Some(v) if !v.is_null() => {
                if matches!(self.args.get(pos), None | Some(Args::Settled)) {
                    return;
                }
                let args =
                    canonical_args_value(v, self.max_args).filter(|c| self.charge_args(c.len()));
                self.settle(pos, args);
            }
            _ => self.settle(pos, None),
        }
    }

    /// Settles call `pos`'s arguments from what its stream assembled; `fallback`
    /// when no fragment came.
    fn settle_assembled(&mut self, pos: usize, fallback: Option<String>) {
        let args = match self.args.get_mut(pos) {
            Some(Args::Open(text)) if !text.is_empty() => canonical_args(text, self.max_args),
            Some(Args::Open(_)) => fallback,
            Some(Args::Dropped) => None,
            Some(Args::Settled) | None => return,
        };
        self.settle(pos, args);
    }

    fn settle(&mut self, pos: usize, args: Option<String>) {
        if let (Some(slot), Some(call)) = (self.args.get_mut(pos), self.tool_calls.get_mut(pos))
            && !matches!(slot, Args::Settled)
        {
            *slot = Args::Settled;
            call.arguments = args;
        }
    }

    /// At the end: every call still open gets what its stream assembled.
    fn settle_open_args(&mut self) {
        for pos in 0..self.args.len() {
            self.settle_assembled(pos, None);
        }
    }
}

/// Canonical JSON of an arguments text, if it parses and both it and its
/// canonical form fit in `max` bytes.
fn canonical_args(text: &str, max: usize) -> Option<String> {
    if text.len() > max {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    canonical_args_value(&v, max)
}

/// Canonical JSON of arguments, if it fits in `max` bytes.
fn canonical_args_value(v: &Value, max: usize) -> Option<String> {
    let text = canonical_json(v);
    (text.len() <= max).then_some(text)
}

#[cfg(test)]
mod tests;
