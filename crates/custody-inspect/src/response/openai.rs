//! OpenAI responses: chat completions (JSON and `data:` chunks ending in `[DONE]`),
//! the Responses API (JSON and named `response.*` events), completions and
//! embeddings.
//!
//! Chat chunks are the hot path (one per token): once the model is known, a chunk
//! is parsed only if a substring prefilter says it may carry a tool call, usage
//! or an error; it is then read with borrowed, typed structs that skip the
//! content, and anything unexpected falls back to a `serde_json::Value` read with
//! the same meaning.

use super::State;
use crate::scan::chat_chunk_may_matter;
use crate::sse::SseEvent;
use crate::usage;
use serde::Deserialize;
use serde_json::Value;

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
            if responses_relevant(ev.event)
                && let Ok(v) = serde_json::from_str::<Value>(data)
            {
                self.responses_event(ev.event, &v);
            }
            return;
        }
        if self.model.is_some() && !chat_chunk_may_matter(data.as_bytes()) {
            return;
        }
        match serde_json::from_str::<Chunk<'_>>(data) {
            Ok(chunk) => match chunk.kind {
                None => self.chat_chunk(chunk),
                Some(kind) if responses_relevant(kind) => {
                    if let Ok(v) = serde_json::from_str::<Value>(data) {
                        self.responses_event(kind, &v);
                    }
                }
                Some(_) => {}
            },
            Err(_) => {
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                match str_at(&v, "type") {
                    Some(kind) if responses_relevant(kind) => self.responses_event(kind, &v),
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
                let name = tc
                    .function
                    .and_then(|f| f.name)
                    .or(tc.custom.and_then(|c| c.name));
                self.chat_tool_delta(ci, ti, tc.id, name);
            }
            if let Some(name) = delta.function_call.and_then(|f| f.name) {
                self.chat_tool_delta(ci, u32::MAX, None, Some(name));
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
                let name = tc
                    .get("function")
                    .or_else(|| tc.get("custom"))
                    .and_then(|f| str_at(f, "name"));
                self.chat_tool_delta(ci, ti, str_at(tc, "id"), name);
            }
            if let Some(name) = delta.get("function_call").and_then(|f| str_at(f, "name")) {
                self.chat_tool_delta(ci, u32::MAX, None, Some(name));
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
    /// (id and name arrive there); later ones only fill what is still missing.
    fn chat_tool_delta(&mut self, choice: u32, index: u32, id: Option<&str>, name: Option<&str>) {
        let key = u64::from(choice) << 32 | u64::from(index);
        let pos = match self.chat_slots.iter().find(|(k, _)| *k == key) {
            Some(&(_, pos)) => pos,
            None => {
                self.tool_calls.push(super::ToolCall::default());
                let pos = self.tool_calls.len() - 1;
                self.chat_slots.push((key, pos));
                pos
            }
        };
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
            let Some(message) = choice.get("message") else {
                continue;
            };
            for tc in items(message.get("tool_calls")) {
                let name = tc
                    .get("function")
                    .or_else(|| tc.get("custom"))
                    .and_then(|f| str_at(f, "name"));
                if let Some(name) = name {
                    self.push_tool_call(str_at(tc, "id"), name);
                }
            }
            if let Some(name) = message.get("function_call").and_then(|f| str_at(f, "name")) {
                self.push_tool_call(None, name);
            }
        }
        for item in items(v.get("output")) {
            self.response_item(item);
        }
    }

    fn responses_event(&mut self, kind: &str, v: &Value) {
        match kind {
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = v.get("item") {
                    self.response_item(item);
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

    /// A Responses API output item: function and custom tool calls count.
    fn response_item(&mut self, item: &Value) {
        if matches!(
            str_at(item, "type"),
            Some("function_call" | "custom_tool_call")
        ) && let Some(name) = str_at(item, "name")
        {
            let id = str_at(item, "call_id").or_else(|| str_at(item, "id"));
            self.push_tool_call(id, name);
        }
    }
}

fn index_at(v: &Value) -> Option<u32> {
    v.get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
}
