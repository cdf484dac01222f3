//! OpenAI-shaped endpoints, close enough to the API reference that the official SDK
//! parses them:
//!
//! - `POST /v1/chat/completions`: "Hello from the stub." (streamed as `x-stub-chunks`
//!   chunks `part0 `, `part1 `, ...); usage 12 prompt tokens, one completion token
//!   per chunk. With `tools` (unless the last message is a tool result), the
//!   assistant asks for the first tool instead: one `tool_calls` entry, id
//!   `call_stub_1`, arguments filled from the tool's schema; streamed, the first
//!   chunk carries the id and name and the arguments follow in `x-stub-chunks`
//!   pieces; `finish_reason` is `tool_calls`.
//! - `POST /v1/responses` (Responses API): a `message` output item, or a
//!   `function_call` item (call id `call_stub_1`) when function `tools` are given
//!   (unless the last input item is a `function_call_output`); streamed as the
//!   documented event sequence `response.created` ... `response.completed`. Usage:
//!   12 input tokens, one output token per streamed piece. Like the API, it refuses
//!   `stream_options` other than `include_obfuscation` (400 `unknown_parameter`).
//! - `POST /v1/embeddings`: one vector per input (`dimensions`, default 8), as floats
//!   or as base64 little-endian f32 (`encoding_format: base64`, the SDK's default);
//!   `prompt_tokens` = words of the text inputs + tokens of the token inputs.
//!
//! `x-stub-echo` (chat): the answer is the last message's text as the stub received
//! it, so a test can see what reached the upstream; streamed, it is split over
//! `x-stub-chunks` content deltas.
//!
//! `x-stub-cached: N` adds N input tokens and reports them as cached
//! (`prompt_tokens_details.cached_tokens` / `input_tokens_details.cached_tokens`).

use super::{
    ANSWER, StubBody, header_num, json_call, json_response, pieces, reported_model, sse_event,
    sse_response, sse_stream, stub_arguments, stub_error,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Created timestamps in the stub's answers.
const CREATED: u64 = 1_772_807_527;
/// Input tokens of every call (before `x-stub-cached`).
const PROMPT_TOKENS: u64 = 12;

/// OpenAI's error body.
fn error(status: StatusCode, model: &str) -> Response<StubBody> {
    let (kind, code, message) = match status.as_u16() {
        401 => (
            "invalid_request_error",
            json!("invalid_api_key"),
            "Incorrect API key provided: sk-stub. You can find your API key at https://platform.openai.com/account/api-keys.".to_owned(),
        ),
        404 => (
            "invalid_request_error",
            json!("model_not_found"),
            format!("The model `{model}` does not exist or you do not have access to it."),
        ),
        429 => (
            "requests",
            json!("rate_limit_exceeded"),
            format!("Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1."),
        ),
        500.. => (
            "server_error",
            Value::Null,
            "The server had an error while processing your request. Sorry about that!".to_owned(),
        ),
        _ => (
            "invalid_request_error",
            Value::Null,
            format!(
                "The stub refused this request (x-stub-error: {}).",
                status.as_u16()
            ),
        ),
    };
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn not_json() -> Response<StubBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": "body is not JSON", "type": "invalid_request_error"}}),
    )
}

/// The Responses API refuses unknown parameters; its `stream_options` has only
/// `include_obfuscation` (`include_usage` is a chat completions option).
fn unknown_stream_option(request: &Value) -> Option<Response<StubBody>> {
    let options = request["stream_options"].as_object()?;
    let unknown = options.keys().find(|k| *k != "include_obfuscation")?;
    let param = format!("stream_options.{unknown}");
    Some(json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": format!("Unknown parameter: '{param}'."),
                "type": "invalid_request_error", "param": param, "code": "unknown_parameter"}}),
    ))
}

/// The tool the model asks for: the first of `tools` (name, its parameters schema).
fn wanted_tool(tools: &Value, answered: bool) -> Option<(&str, &Value)> {
    if answered {
        return None;
    }
    let tool = tools.as_array()?.first()?;
    let function = tool.get("function").unwrap_or(tool);
    let name = function["name"].as_str()?;
    Some((name, &function["parameters"]))
}

pub(super) async fn chat_completions(
    req: Request<Incoming>,
    gate: Arc<Semaphore>,
) -> Response<StubBody> {
    let (headers, request) = json_call(req).await;
    let gated = headers.get("x-stub-gate").is_some();
    let chunks = header_num(&headers, "x-stub-chunks").map_or(3, |n| n as usize);
    let Some(request) = request else {
        return not_json();
    };
    let model = reported_model(&headers, &request, "gpt-stub");
    if let Some(status) = stub_error(&headers) {
        return error(status, &model);
    }
    let cached = header_num(&headers, "x-stub-cached");
    let prompt = PROMPT_TOKENS + cached.unwrap_or(0);
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": chunks, "total_tokens": prompt + chunks as u64});
    if let Some(n) = cached {
        usage["prompt_tokens_details"] = json!({"cached_tokens": n, "audio_tokens": 0});
    }
    let last_role = request["messages"].as_array().and_then(|m| m.last());
    let answered = last_role.is_some_and(|m| m["role"] == "tool");
    let tool = wanted_tool(&request["tools"], answered)
        .map(|(name, schema)| (name.to_owned(), stub_arguments(schema).to_string()));
    let echo = match (headers.get("x-stub-echo"), last_role) {
        (Some(_), Some(last)) => Some(last["content"].as_str().unwrap_or("").to_owned()),
        _ => None,
    };
    if request["stream"].as_bool() != Some(true) {
        let answer = echo.unwrap_or_else(|| "Hello from the stub.".to_owned());
        let (message, finish) = match &tool {
            None => (
                json!({"role": "assistant", "content": answer, "refusal": null}),
                "stop",
            ),
            Some((name, arguments)) => (
                json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
                       "tool_calls": [{"id": "call_stub_1", "type": "function",
                                       "function": {"name": name, "arguments": arguments}}]}),
                "tool_calls",
            ),
        };
        return json_response(
            StatusCode::OK,
            &json!({
                "id": "chatcmpl-stub", "object": "chat.completion", "created": CREATED,
                "model": model,
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": null,
                             "message": message}],
                "usage": usage,
            }),
        );
    }
    let (deltas, finish): (Vec<Value>, _) = match (&tool, echo) {
        (None, Some(text)) => (
            pieces(&text, chunks)
                .into_iter()
                .enumerate()
                .map(|(i, piece)| {
                    if i == 0 {
                        json!({"role": "assistant", "content": piece})
                    } else {
                        json!({"content": piece})
                    }
                })
                .collect(),
            "stop",
        ),
        (None, None) => (
            (0..chunks)
                .map(|i| {
                    if i == 0 {
                        json!({"role": "assistant", "content": format!("part{i} ")})
                    } else {
                        json!({"content": format!("part{i} ")})
                    }
                })
                .collect(),
            "stop",
        ),
        (Some((name, arguments)), _) => {
            let first = json!({"role": "assistant", "content": null, "refusal": null,
                               "tool_calls": [{"index": 0, "id": "call_stub_1", "type": "function",
                                               "function": {"name": name, "arguments": ""}}]});
            let rest = pieces(arguments, chunks).into_iter().map(
                |piece| json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            );
            (std::iter::once(first).chain(rest).collect(), "tool_calls")
        }
    };
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let chunk = |delta: Value, finish: Value| {
            let v = json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": CREATED,
                           "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]});
            Bytes::from(format!("data: {v}\n\n"))
        };
        for (i, delta) in deltas.into_iter().enumerate() {
            if tx.send(chunk(delta, Value::Null)).await.is_err() {
                return;
            }
            if i == 0 && gated {
                match gate.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
            }
        }
        let _ = tx.send(chunk(json!({}), json!(finish))).await;
        if include_usage {
            let v = json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": CREATED,
                           "model": model, "choices": [], "usage": usage});
            let _ = tx.send(Bytes::from(format!("data: {v}\n\n"))).await;
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    sse_response(rx)
}

/// A Responses API `response` object.
fn response_object(request: &Value, model: &str, output: &[Value], usage: Option<&Value>) -> Value {
    let done = usage.is_some();
    json!({
        "id": "resp_stub_1", "object": "response", "created_at": CREATED,
        "status": if done { "completed" } else { "in_progress" },
        "background": false, "error": null, "incomplete_details": null,
        "instructions": request.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens": null, "max_tool_calls": null, "model": model, "output": output,
        "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "service_tier": "default",
        "store": true, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "tools": request.get("tools").cloned().unwrap_or(json!([])),
        "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
        "usage": usage, "user": null, "metadata": {},
    })
}

/// A Responses API event stream, numbered as the API numbers it.
#[derive(Default)]
struct Events {
    out: Vec<Bytes>,
}

impl Events {
    fn push(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.out.len());
        self.out.push(sse_event(kind, &data));
    }
}

pub(super) async fn responses(req: Request<Incoming>) -> Response<StubBody> {
    let (headers, request) = json_call(req).await;
    let Some(request) = request else {
        return not_json();
    };
    let model = reported_model(&headers, &request, "gpt-stub");
    if let Some(status) = stub_error(&headers) {
        return error(status, &model);
    }
    if let Some(refusal) = unknown_stream_option(&request) {
        return refusal;
    }
    let last_input = request["input"].as_array().and_then(|i| i.last());
    let answered = last_input.is_some_and(|i| i["type"] == "function_call_output");
    let tool = wanted_tool(&request["tools"], answered);
    // What the model says, piece by piece, and the finished output item.
    let (parts, item) = match tool {
        None => {
            let parts: Vec<String> = ANSWER.iter().map(|p| (*p).to_owned()).collect();
            let item = json!({"id": "msg_stub_1", "type": "message", "status": "completed",
                              "role": "assistant",
                              "content": [{"type": "output_text", "text": parts.concat(),
                                           "annotations": [], "logprobs": []}]});
            (parts, item)
        }
        Some((name, schema)) => {
            let arguments = stub_arguments(schema).to_string();
            let item = json!({"id": "fc_stub_1", "type": "function_call", "status": "completed",
                              "call_id": "call_stub_1", "name": name, "arguments": arguments});
            (pieces(&arguments, 3), item)
        }
    };
    let cached = header_num(&headers, "x-stub-cached").unwrap_or(0);
    let (input, output) = (PROMPT_TOKENS + cached, parts.len() as u64);
    let usage = json!({
        "input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output,
    });
    let done = response_object(&request, &model, std::slice::from_ref(&item), Some(&usage));
    if request["stream"].as_bool() != Some(true) {
        return json_response(StatusCode::OK, &done);
    }
    let mut events = Events::default();
    let started = response_object(&request, &model, &[], None);
    events.push("response.created", json!({"response": started}));
    events.push("response.in_progress", json!({"response": started}));
    let item_id = item["id"].clone();
    let mut added = item.clone();
    added["status"] = json!("in_progress");
    if item["type"] == "message" {
        added["content"] = json!([]);
        let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
        // Events about the message's one content part.
        let with = |mut v: Value| {
            v["item_id"] = item_id.clone();
            v["output_index"] = json!(0);
            v["content_index"] = json!(0);
            v
        };
        events.push(
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
        );
        events.push(
            "response.content_part.added",
            with(json!({"part": part("")})),
        );
        for piece in &parts {
            events.push(
                "response.output_text.delta",
                with(json!({"delta": piece, "logprobs": []})),
            );
        }
        let text = parts.concat();
        events.push(
            "response.output_text.done",
            with(json!({"text": text, "logprobs": []})),
        );
        events.push(
            "response.content_part.done",
            with(json!({"part": part(&text)})),
        );
    } else {
        added["arguments"] = json!("");
        events.push(
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
        );
        for piece in &parts {
            events.push(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": 0, "delta": piece}),
            );
        }
        events.push(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": 0, "name": item["name"],
                   "arguments": item["arguments"]}),
        );
    }
    events.push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    events.push("response.completed", json!({"response": done}));
    sse_stream(events.out)
}

pub(super) async fn embeddings(req: Request<Incoming>) -> Response<StubBody> {
    let (headers, request) = json_call(req).await;
    let Some(request) = request else {
        return not_json();
    };
    let model = reported_model(&headers, &request, "text-embedding-stub");
    if let Some(status) = stub_error(&headers) {
        return error(status, &model);
    }
    // `input`: a string, an array of strings, a token array, or an array of those.
    let inputs: Vec<&Value> = match &request["input"] {
        Value::Array(items) if items.iter().all(Value::is_number) => vec![&request["input"]],
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let tokens: u64 = inputs
        .iter()
        .map(|i| match i {
            Value::String(s) => s.split_whitespace().count().max(1) as u64,
            Value::Array(t) => t.len() as u64,
            _ => 1,
        })
        .sum();
    let dims = request["dimensions"].as_u64().unwrap_or(8) as usize;
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = (0..inputs.len())
        .map(|index| {
            let vector: Vec<f32> = (0..dims)
                .map(|j| ((index * 31 + j * 7) % 17) as f32 / 16.0 - 0.5)
                .collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64_encode(input.as_bytes()), expected);
        }
    }
}
