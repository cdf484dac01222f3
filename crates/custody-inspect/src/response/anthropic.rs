//! Anthropic Messages responses: a JSON message, or the event stream
//! `message_start` (model, input usage), `content_block_start` (tool_use blocks),
//! `content_block_delta`/`stop` and `ping` (skipped unparsed), `message_delta`
//! (cumulative usage), `message_stop`, `error`.

use super::State;
use crate::sse::SseEvent;
use serde_json::Value;

impl State {
    pub(super) fn anthropic_event(&mut self, ev: SseEvent<'_>) {
        if matches!(
            ev.event,
            "ping" | "content_block_delta" | "content_block_stop" | "message_stop"
        ) {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(ev.data) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(message) = v.get("message") {
                    self.anthropic_json(message);
                }
            }
            Some("content_block_start") => {
                if let Some(block) = v.get("content_block") {
                    self.anthropic_block(block);
                }
            }
            Some("message_delta") => {
                if let Some(usage) = v.get("usage") {
                    self.anthropic_usage.update(usage);
                }
            }
            Some("error") => {
                if let Some(err) = v.get("error") {
                    self.set_error_from(err);
                }
            }
            _ => {}
        }
    }

    /// A whole message (or the `message` of `message_start`), or an error body.
    pub(super) fn anthropic_json(&mut self, v: &Value) {
        if v.get("type").and_then(Value::as_str) == Some("error") {
            if let Some(err) = v.get("error") {
                self.set_error_from(err);
            }
            return;
        }
        if let Some(model) = v.get("model").and_then(Value::as_str) {
            self.set_model(model);
        }
        if let Some(usage) = v.get("usage") {
            self.anthropic_usage.update(usage);
        }
        for block in v
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.anthropic_block(block);
        }
    }

    fn anthropic_block(&mut self, block: &Value) {
        if block.get("type").and_then(Value::as_str) == Some("tool_use")
            && let Some(name) = block.get("name").and_then(Value::as_str)
        {
            let id = block.get("id").and_then(Value::as_str);
            self.push_tool_call(id, name);
        }
    }
}
