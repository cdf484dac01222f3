//! OpenAI responses: chat completions (JSON and `data:` chunks ending in `[DONE]`),
//! the Responses API (JSON and named `response.*` events), completions and
//! embeddings.
//!
//! Chat chunks are the hot path (one per token): once the model is known, a chunk
//! is parsed only if a substring prefilter says it may carry a tool call, usage
//! or an error; it is then read with borrowed, typed structs that skip the
//! content, and anything unexpected falls back to a `serde_json::Value` read with
//! the same meaning.
//!
//! Whole JSON bodies are read the same way ([`whole`]): only the members
//! [`State::openai_json`] reads are kept, and message content, ids and the like
//! are skipped.
//!
//! Tool-call arguments: chat deltas' `function.arguments` (or `custom.input`)
//! fragments are assembled per (choice, tool index) slot and settled at the end;
//! Responses API `function_call_arguments.delta` (and `custom_tool_call_input`)
//! fragments are assembled per item (found by `item_id`, else `output_index`) and
//! settled by the `.done` event, the `output_item.done` item or
//! `response.completed`, whichever comes first.

use super::State;
use crate::lenient::Str;
use crate::scan::chat_chunk_may_matter;
use crate::sse::SseEvent;
use crate::usage;
use serde::Deserialize;
use serde_json::Value;

mod whole;

pub(super) use whole::whole_body;

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    model: Option<&'a str>,
    #[serde(borrow)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    usage: Option<Value>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    index: Option<u32>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
    #[serde(borrow)]
    function_call: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    index: Option<u32>,
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow)]
    function: Option<Named<'a>>,
    #[serde(borrow)]
    custom: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<&'a str>,
    /// A function's arguments fragment.
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
    /// A custom tool's input fragment.
    #[serde(borrow)]
    input: Option<Str<'a>>,
}

impl<'a> Named<'a> {
    fn fragment(&self) -> Option<&str> {
        self.arguments
            .as_ref()
            .or(self.input.as_ref())
            .and_then(Str::as_deref)
    }
}

/// `response.function_call_arguments.*` and `response.custom_tool_call_input.*`.
#[derive(Deserialize)]
struct ArgsEvent<'a> {
    #[serde(borrow)]
    item_id: Option<Str<'a>>,
    output_index: Option<u64>,
    /// `.delta`: the fragment.
    #[serde(borrow)]
    delta: Option<Str<'a>>,
    /// `function_call_arguments.done`: the whole text.
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
    /// `custom_tool_call_input.done`: the whole text.
    #[serde(borrow)]
    input: Option<Str<'a>>,
}

/// Responses API events that carry facts; the many delta events are skipped unparsed.
fn responses_relevant(kind: &str) -> bool {
    matches!(
        kind,
        "response.created"
            | "response.queued"
            | "response.in_progress"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "response.output_item.added"
            | "response.output_item.done"
            | "error"
    )
}

/// Responses API events that carry a piece of a call's arguments, or all of them.
fn is_args_event(kind: &str) -> bool {
    matches!(
        kind,
        "response.function_call_arguments.delta"
            | "response.function_call_arguments.done"
            | "response.custom_tool_call_input.delta"
            | "response.custom_tool_call_input.done"
    )
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

impl State {
    pub(super) fn openai_event(&mut self, ev: SseEvent<'_>) {
        let data = ev.data.trim_ascii();
        if data == "[DONE]" || data.is_empty() {
            return;
        }
        if ev.event != "message" {
            self.responses_data(ev.event, data);
            return;
        }
        if self.model.is_some() && !chat_chunk_may_matter(data.as_bytes()) {
            return;
        }
        match serde_json::from_str::<Chunk<'_>>(data) {
            Ok(chunk) => match chunk.kind {
                None => self.chat_chunk(chunk),
                Some(kind) => self.responses_data(kind, data),
            },
            Err(_) => {
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                match str_at(&v, "type") {
                    Some(kind) if responses_relevant(kind) => self.responses_event(kind, &v),
                    Some(kind) if is_args_event(kind) => self.responses_data(kind, data),
                    Some(_) => {}
                    None => self.chat_chunk_value(&v),
                }
            }
        }
    }

    fn chat_chunk(&mut self, chunk: Chunk<'_>) {
        if let Some(model) = chunk.model {
            self.set_model(model);
        }
        for choice in chunk.choices.into_iter().flatten() {
            let ci = choice.index.unwrap_or(0);
            let Some(delta) = choice.delta else { continue };
            for (pos, tc) in delta.tool_calls.into_iter().flatten().enumerate() {
                let ti = tc.index.unwrap_or(pos as u32);
                let f = tc.function.as_ref().or(tc.custom.as_ref());
                let name = tc
                    .function
                    .as_ref()
                    .and_then(|f| f.name)
                    .or(tc.custom.as_ref().and_then(|c| c.name));
                self.chat_tool_delta(ci, ti, tc.id, name, f.and_then(Named::fragment));
            }
            if let Some(f) = delta.function_call {
                self.chat_tool_delta(ci, u32::MAX, None, f.name, f.fragment());
            }
        }
        if let Some(u) = chunk.usage.as_ref().and_then(usage::openai) {
            self.openai_usage = Some(u);
        }
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            self.set_error_from(&err);
        }
    }

    /// [`Self::chat_chunk`] for a chunk the typed read refused.
    fn chat_chunk_value(&mut self, v: &Value) {
        if let Some(model) = str_at(v, "model") {
            self.set_model(model);
        }
        for (cpos, choice) in items(v.get("choices")).iter().enumerate() {
            let ci = index_at(choice).unwrap_or(cpos as u32);
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            for (pos, tc) in items(delta.get("tool_calls")).iter().enumerate() {
                let ti = index_at(tc).unwrap_or(pos as u32);
                let f = tc.get("function").or_else(|| tc.get("custom"));
                let name = tc
                    .get("function")
                    .or_else(|| tc.get("custom"))
                    .and_then(|f| str_at(f, "name"));
                self.chat_tool_delta(ci, ti, str_at(tc, "id"), name, f.and_then(fragment_at));
            }
            if let Some(f) = delta.get("function_call") {
                self.chat_tool_delta(ci, u32::MAX, None, str_at(f, "name"), fragment_at(f));
            }
        }
        if let Some(u) = v.get("usage").and_then(usage::openai) {
            self.openai_usage = Some(u);
        }
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            self.set_error_from(err);
        }
    }

    /// One streamed tool-call delta: the first delta of an index opens the call
    /// (id and name arrive there); later ones only fill what is still missing,
    /// and append their arguments fragment.
    fn chat_tool_delta(
        &mut self,
        choice: u32,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        fragment: Option<&str>,
    ) {
        let key = u64::from(choice) << 32 | u64::from(index);
        let pos = match self.chat_slots.iter().find(|(k, _)| *k == key) {
            Some(&(_, pos)) => pos,
            None => {
                let pos = self.new_tool_call(super::ToolCall::default());
                self.chat_slots.push((key, pos));
                pos
            }
        };
        if let Some(fragment) = fragment {
            self.append_args(pos, fragment);
        }
        let Some(call) = self.tool_calls.get_mut(pos) else {
            return;
        };
        if call.id.is_none()
            && let Some(id) = id.filter(|id| !id.is_empty())
        {
            call.id = Some(id.to_owned());
        }
        if call.name.is_empty()
            && let Some(name) = name
        {
            call.name = name.to_owned();
        }
    }

    /// A whole JSON body: chat completion, Responses API response, completion,
    /// embeddings list or error. Also used for the `response` of Responses events.
    pub(super) fn openai_json(&mut self, v: &Value) {
        if let Some(model) = str_at(v, "model") {
            self.set_model(model);
        }
        if let Some(u) = v.get("usage").and_then(usage::openai) {
            self.openai_usage = Some(u);
        }
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            self.set_error_from(err);
        }
        for choice in items(v.get("choices")) {
            if let Some(message) = choice.get("message") {
                self.message_calls(message.get("tool_calls"), message.get("function_call"));
            }
        }
        for item in items(v.get("output")) {
            self.response_item(item, ItemSource::Whole);
        }
    }

    /// The calls a whole body's message asks for: its `tool_calls` (functions and
    /// custom tools), then a legacy `function_call`.
    pub(super) fn message_calls(
        &mut self,
        tool_calls: Option<&Value>,
        function_call: Option<&Value>,
    ) {
        for tc in items(tool_calls) {
            let (function, custom) = (tc.get("function"), tc.get("custom"));
            let name = function.or(custom).and_then(|f| str_at(f, "name"));
            if let Some(name) = name {
                let pos = self.push_tool_call(str_at(tc, "id"), name);
                let args = match function {
                    Some(f) => f.get("arguments"),
                    None => custom.and_then(|c| c.get("input")),
                };
                self.settle_args_value(pos, args);
            }
        }
        if let Some(f) = function_call
            && let Some(name) = str_at(f, "name")
        {
            let pos = self.push_tool_call(None, name);
            self.settle_args_value(pos, f.get("arguments"));
        }
    }

    /// One Responses API event's data, by its type.
    fn responses_data(&mut self, kind: &str, data: &str) {
        if is_args_event(kind) {
            self.responses_args_event(kind, data);
        } else if responses_relevant(kind)
            && let Ok(v) = serde_json::from_str::<Value>(data)
        {
            self.responses_event(kind, &v);
        }
    }

    /// A fragment of a call's arguments, or all of them (`.done`).
    fn responses_args_event(&mut self, kind: &str, data: &str) {
        if self.response_items.is_empty() {
            return; // no call open: nothing to attach a fragment to
        }
        let Ok(ev) = serde_json::from_str::<ArgsEvent<'_>>(data) else {
            return;
        };
        let item_id = ev.item_id.as_ref().and_then(Str::as_deref);
        let index = ev.output_index.and_then(|i| u32::try_from(i).ok());
        let Some(pos) = self.response_item_pos(item_id, index) else {
            return;
        };
        if kind.ends_with(".delta") {
            if let Some(fragment) = ev.delta.as_ref().and_then(Str::as_deref) {
                self.append_args(pos, fragment);
            }
        } else if let Some(text) = ev
            .arguments
            .as_ref()
            .or(ev.input.as_ref())
            .and_then(Str::as_deref)
        {
            self.settle_args_text(pos, text);
        }
    }

    /// The call a streamed item (by id, else by output index) was recorded as.
    fn response_item_pos(&self, item_id: Option<&str>, index: Option<u32>) -> Option<usize> {
        let by_id = || {
            let item_id = item_id?;
            self.response_items
                .iter()
                .find(|(id, _, _)| id.as_deref() == Some(item_id))
        };
        let by_index = || {
            let index = index?;
            self.response_items
                .iter()
                .find(|(_, i, _)| *i == Some(index))
        };
        by_id().or_else(by_index).map(|&(_, _, pos)| pos)
    }

    fn responses_event(&mut self, kind: &str, v: &Value) {
        match kind {
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = v.get("item") {
                    let index = index_of(v, "output_index");
                    let source = match kind {
                        "response.output_item.added" => ItemSource::Added,
                        _ => ItemSource::Whole,
                    };
                    let pos = self.response_item(item, source);
                    if let Some(pos) = pos {
                        let id = str_at(item, "id");
                        if self.response_item_pos(id, index).is_none() {
                            self.response_items
                                .push((id.map(str::to_owned), index, pos));
                        }
                    }
                }
            }
            "error" => self.set_error_from(v),
            _ => {
                if let Some(response) = v.get("response") {
                    self.openai_json(response);
                }
            }
        }
    }

    /// A Responses API output item: function and custom tool calls count; the
    /// call's position. The item's arguments settle the call unless they are a
    /// placeholder: an `output_item.added` item, or one still `in_progress`.
    fn response_item(&mut self, item: &Value, source: ItemSource) -> Option<usize> {
        let args_key = match str_at(item, "type") {
            Some("function_call") => "arguments",
            Some("custom_tool_call") => "input",
            _ => return None,
        };
        let name = str_at(item, "name")?;
        let id = str_at(item, "call_id").or_else(|| str_at(item, "id"));
        let pos = self.push_tool_call(id, name);
        if source == ItemSource::Whole && str_at(item, "status") != Some("in_progress") {
            self.settle_args_value(pos, item.get(args_key));
        }
        Some(pos)
    }
}

/// Where a Responses API output item was read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ItemSource {
    /// `response.output_item.added`: the call opens; its arguments follow as deltas.
    Added,
    /// `response.output_item.done`, or a response's `output`.
    Whole,
}

fn index_at(v: &Value) -> Option<u32> {
    index_of(v, "index")
}

fn index_of(v: &Value, key: &str) -> Option<u32> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
}

/// A Value-read delta's arguments fragment (`arguments`, else `input`).
fn fragment_at(f: &Value) -> Option<&str> {
    str_at(f, "arguments").or_else(|| str_at(f, "input"))
}
