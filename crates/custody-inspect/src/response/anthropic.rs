//! Anthropic Messages responses: a JSON message, or the event stream
//! `message_start` (model, input usage), `content_block_start` (tool_use blocks),
//! `content_block_delta` (a tool_use block's `input_json_delta` fragments),
//! `content_block_stop` (settles a tool_use block's arguments), `ping` (skipped
//! unparsed), `message_delta` (cumulative usage), `message_stop`, `error`.
//!
//! Text deltas are most of a stream: `content_block_delta` and
//! `content_block_stop` are parsed only while a tool_use block is open.

use super::State;
use crate::lenient::Str;
use crate::sse::SseEvent;
use serde::Deserialize;
use serde_json::Value;

/// `content_block_delta` / `content_block_stop`, read only while a tool_use block
/// is open.
#[derive(Deserialize)]
struct BlockEvent<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<BlockDelta<'a>>,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
}

impl State {
    pub(super) fn anthropic_event(&mut self, ev: SseEvent<'_>) {
        match ev.event {
            "ping" | "message_stop" => return,
            "content_block_delta" | "content_block_stop" => {
                self.anthropic_block_event(ev.event, ev.data);
                return;
            }
            _ => {}
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
                    let index = v
                        .get("index")
                        .and_then(Value::as_u64)
                        .and_then(|i| u32::try_from(i).ok());
                    self.anthropic_block(block, Some(index));
                }
            }
            Some(kind @ ("content_block_delta" | "content_block_stop")) => {
                self.anthropic_block_event(kind, ev.data);
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

    /// A fragment of an open tool_use block's input, or the block's end.
    fn anthropic_block_event(&mut self, kind: &str, data: &str) {
        if self.open_blocks.is_empty() {
            return; // a text or thinking block: nothing to assemble
        }
        let Ok(ev) = serde_json::from_str::<BlockEvent<'_>>(data) else {
            return;
        };
        let Some(index) = ev.index.and_then(|i| u32::try_from(i).ok()) else {
            return;
        };
        let Some(at) = self.open_blocks.iter().position(|(i, _, _)| *i == index) else {
            return;
        };
        let pos = self.open_blocks[at].1;
        if kind == "content_block_stop" {
            let (_, _, start_input) = self.open_blocks.swap_remove(at);
            self.settle_assembled(pos, start_input);
        } else if let Some(fragment) = ev
            .delta
            .as_ref()
            .and_then(|d| d.partial_json.as_ref())
            .and_then(Str::as_deref)
        {
            self.append_args(pos, fragment);
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
            self.anthropic_block(block, None);
        }
    }

    /// A content block. `streamed`: `Some(index)` for a `content_block_start`,
    /// whose input is settled by its fragments (or, when none come, by the start
    /// block's `input`) at `content_block_stop`; `None` for a whole message's
    /// block, whose `input` is final.
    fn anthropic_block(&mut self, block: &Value, streamed: Option<Option<u32>>) {
        if block.get("type").and_then(Value::as_str) != Some("tool_use") {
            return;
        }
        let Some(name) = block.get("name").and_then(Value::as_str) else {
            return;
        };
        let id = block.get("id").and_then(Value::as_str);
        let pos = self.push_tool_call(id, name);
        let input = block.get("input");
        match streamed {
            None => self.settle_args_value(pos, input),
            Some(Some(index)) => {
                let start_input = input
                    .filter(|v| !v.is_null())
                    .and_then(|v| super::canonical_args_value(v, self.max_args))
                    .filter(|c| self.charge_args(c.len()));
                self.open_blocks.retain(|(i, _, _)| *i != index);
                self.open_blocks.push((index, pos, start_input));
            }
            Some(None) => {} // no index: its fragments cannot be told apart
        }
    }
}
