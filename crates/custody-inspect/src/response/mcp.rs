//! MCP responses: one JSON-RPC message, a batch, or an SSE stream of them
//! (`event: message`). Only responses to the request's ids count; requests and
//! notifications the server sends along are ignored.

use super::State;
use crate::sse::SseEvent;
use crate::text::truncate_chars;
use serde_json::Value;

/// Longest tool error text kept, in characters.
const MAX_TOOL_ERROR_CHARS: usize = 200;

impl State {
    pub(super) fn mcp_event(&mut self, ev: SseEvent<'_>) {
        if ev.data.trim_ascii().is_empty() {
            return; // priming events carry only an id
        }
        if let Ok(v) = serde_json::from_str::<Value>(ev.data) {
            self.mcp_message(&v);
        }
    }

    /// A JSON-RPC message or batch.
    pub(super) fn mcp_message(&mut self, v: &Value) {
        match v {
            Value::Array(batch) => {
                for message in batch {
                    self.mcp_message(message);
                }
            }
            Value::Object(message) => {
                let Some(id) = message.get("id") else { return };
                if message.contains_key("method") || !self.ids.contains(id) {
                    return;
                }
                self.answered += 1;
                self.complete = self.answered >= self.ids.len();
                if let Some(err) = message.get("error") {
                    let code = err.get("code").and_then(Value::as_i64);
                    let text = err.get("message").and_then(Value::as_str).unwrap_or("");
                    let text = truncate_chars(text, super::MAX_ERROR_CHARS);
                    self.set_error(match code {
                        Some(code) => format!("jsonrpc error {code}: {text}"),
                        None => format!("jsonrpc error: {text}"),
                    });
                } else if let Some(result) = message.get("result")
                    && result.get("isError").and_then(Value::as_bool) == Some(true)
                {
                    self.set_error(tool_error(result));
                }
            }
            _ => {}
        }
    }
}

/// `tool error: <first text content>` for a `CallToolResult` with `isError: true`.
fn tool_error(result: &Value) -> String {
    let text = result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("text"))
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str);
    match text {
        Some(text) => format!("tool error: {}", truncate_chars(text, MAX_TOOL_ERROR_CHARS)),
        None => "tool error".to_owned(),
    }
}
