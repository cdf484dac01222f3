//! The Anthropic Messages API (`POST /v1/messages`), close enough to the API
//! reference that the official SDK parses it, including its stream helper.
//!
//! The answer is "Hello from the stub." (streamed in four `text_delta`s). With
//! `tools` (unless the last message carries a `tool_result`), the assistant says so
//! in a text block and then asks for the first tool: a `tool_use` block with id
//! `toolu_stub_1` and input filled from the tool's `input_schema`, streamed as
//! `input_json_delta`s; `stop_reason` is `tool_use`.
//!
//! Usage always reports prompt caching, so normalisation can be checked:
//! [`INPUT_TOKENS`] uncached, [`CACHE_READ_TOKENS`] read from and
//! [`CACHE_WRITE_TOKENS`] written to the cache; one output token per streamed piece.
//! A stream sends `message_start` (input usage, `output_tokens: 1`),
//! `content_block_start` / `ping` / `content_block_delta`... / `content_block_stop`
//! per block, `message_delta` (stop reason, cumulative `output_tokens` only, so the
//! input side must be kept from `message_start`) and `message_stop`.
//!
//! `x-stub-stream-error: 1` cuts a stream after its first delta with an `error`
//! event (`overloaded_error`), as the API does when it is overloaded mid-stream.

use super::{
    ANSWER, StubBody, header_str, json_call, json_response, pieces, reported_model, sse_event,
    sse_stream, stub_arguments, stub_error,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

/// Uncached input tokens reported.
const INPUT_TOKENS: u64 = 25;
/// Input tokens reported as read from the prompt cache.
const CACHE_READ_TOKENS: u64 = 2048;
/// Input tokens reported as written to the prompt cache.
const CACHE_WRITE_TOKENS: u64 = 256;

/// Anthropic's error body.
fn error(status: StatusCode, model: &str) -> Response<StubBody> {
    let (kind, message) = match status.as_u16() {
        401 => ("authentication_error", "invalid x-api-key".to_owned()),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.".to_owned(),
        ),
        404 => ("not_found_error", format!("model: {model}")),
        413 => ("request_too_large", "Request exceeds the maximum allowed number of bytes.".to_owned()),
        429 => (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 input tokens per minute.".to_owned(),
        ),
        529 => ("overloaded_error", "Overloaded".to_owned()),
        500.. => ("api_error", "Internal server error".to_owned()),
        code => (
            "invalid_request_error",
            format!("The stub refused this request (x-stub-error: {code})."),
        ),
    };
    json_response(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message},
                "request_id": "req_stub_1"}),
    )
}

/// One content block of the answer, with the pieces it is streamed in.
enum Block {
    Text(Vec<String>),
    ToolUse {
        name: String,
        input: Value,
        json_pieces: Vec<String>,
    },
}

impl Block {
    fn pieces(&self) -> usize {
        match self {
            Block::Text(p) => p.len(),
            Block::ToolUse { json_pieces, .. } => json_pieces.len(),
        }
    }

    /// The finished block.
    fn whole(&self) -> Value {
        match self {
            Block::Text(p) => json!({"type": "text", "text": p.concat()}),
            Block::ToolUse { name, input, .. } => {
                json!({"type": "tool_use", "id": "toolu_stub_1", "name": name, "input": input})
            }
        }
    }

    /// The block as `content_block_start` opens it.
    fn start(&self) -> Value {
        match self {
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { name, .. } => {
                json!({"type": "tool_use", "id": "toolu_stub_1", "name": name, "input": {}})
            }
        }
    }

    fn deltas(&self) -> Vec<Value> {
        match self {
            Block::Text(p) => p
                .iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect(),
            Block::ToolUse { json_pieces, .. } => std::iter::once("")
                .chain(json_pieces.iter().map(String::as_str))
                .map(|j| json!({"type": "input_json_delta", "partial_json": j}))
                .collect(),
        }
    }
}

fn usage(output_tokens: usize) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "cache_creation": {"ephemeral_5m_input_tokens": CACHE_WRITE_TOKENS, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

fn message(model: &str, content: Vec<Value>, stop_reason: Value, usage: Value) -> Value {
    json!({"id": "msg_stub_1", "type": "message", "role": "assistant", "model": model,
           "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage})
}

/// Whether `message`'s content answers a tool call.
fn carries_tool_result(message: &Value) -> bool {
    message["content"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

pub(super) async fn messages(req: Request<Incoming>) -> Response<StubBody> {
    let (headers, request) = json_call(req).await;
    let Some(request) = request else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"type": "invalid_request_error",
                    "message": "body is not JSON"}, "request_id": "req_stub_1"}),
        );
    };
    let model = reported_model(&headers, &request, "claude-stub");
    if let Some(status) = stub_error(&headers) {
        return error(status, &model);
    }
    let answered = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(carries_tool_result);
    let tool = request["tools"]
        .as_array()
        .and_then(|t| t.first())
        .filter(|_| !answered)
        .and_then(|t| Some((t["name"].as_str()?, &t["input_schema"])));
    let mut blocks = Vec::new();
    let stop_reason = match tool {
        None => {
            blocks.push(Block::Text(
                ANSWER.iter().map(|p| (*p).to_owned()).collect(),
            ));
            "end_turn"
        }
        Some((name, schema)) => {
            let text = format!("I will use {name}.");
            blocks.push(Block::Text(pieces(&text, 2)));
            let input = stub_arguments(schema);
            blocks.push(Block::ToolUse {
                name: name.to_owned(),
                json_pieces: pieces(&input.to_string(), 3),
                input,
            });
            "tool_use"
        }
    };
    let output_tokens: usize = blocks.iter().map(Block::pieces).sum();
    if request["stream"].as_bool() != Some(true) {
        let content = blocks.iter().map(Block::whole).collect();
        return json_response(
            StatusCode::OK,
            &message(&model, content, json!(stop_reason), usage(output_tokens)),
        );
    }
    let cut_short = header_str(&headers, "x-stub-stream-error").is_some();
    let mut events = Vec::new();
    let start = message(&model, vec![], Value::Null, usage(1));
    event(&mut events, "message_start", json!({"message": start}));
    for (index, block) in blocks.iter().enumerate() {
        let opened = json!({"index": index, "content_block": block.start()});
        event(&mut events, "content_block_start", opened);
        if index == 0 {
            event(&mut events, "ping", json!({}));
        }
        for delta in block.deltas() {
            let delta = json!({"index": index, "delta": delta});
            event(&mut events, "content_block_delta", delta);
            if cut_short {
                let overloaded = json!({"type": "overloaded_error", "message": "Overloaded"});
                event(&mut events, "error", json!({"error": overloaded}));
                return sse_stream(events);
            }
        }
        event(&mut events, "content_block_stop", json!({"index": index}));
    }
    let delta = json!({"delta": {"stop_reason": stop_reason, "stop_sequence": null},
                       "usage": {"output_tokens": output_tokens}});
    event(&mut events, "message_delta", delta);
    event(&mut events, "message_stop", json!({}));
    sse_stream(events)
}

/// Appends the event `name`: `data` with `"type": name`.
fn event(events: &mut Vec<Bytes>, name: &str, mut data: Value) {
    data["type"] = json!(name);
    events.push(sse_event(name, &data));
}
