//! OpenAI and Anthropic requests: operation from the path, model and stream from
//! the body, and the ids of the tool results the request carries back. The body is
//! scanned once without building a tree (only `model`, `stream` and those ids are
//! kept), so a chat request with long messages costs little. The messages are read
//! leniently: a shape other than the expected one is skipped, never an error.

use super::{MAX_TOOL_RESULT_ID_BYTES, MAX_TOOL_RESULT_IDS, RequestFacts, RequestInput, RouteKind};
use super::{first_token, not_json};
use crate::lenient::{Str, lenient_defaults, skip_map, skip_seq};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The only fields read from an LLM request body; everything else is skipped.
/// `ANTHROPIC` picks the shape tool-result ids are read from, so that only the
/// fields of that shape are decoded (an OpenAI message's `content` is skipped
/// unread; so are an Anthropic message's other fields).
#[derive(Deserialize)]
struct LlmBody<const ANTHROPIC: bool> {
    model: Option<Value>,
    stream: Option<Value>,
    /// Chat and Anthropic messages.
    messages: Option<ResultIds<ANTHROPIC>>,
    /// Responses API input items (or a string, or embeddings input: skipped).
    input: Option<ResultIds<ANTHROPIC>>,
}

/// The tool-result ids of an array of messages or input items, in order, each
/// once: OpenAI chat `role: "tool"` messages' `tool_call_id` and Responses
/// `function_call_output` / `custom_tool_call_output` items' `call_id`, or
/// Anthropic `tool_result` blocks' `tool_use_id` (`ANTHROPIC`).
#[derive(Default)]
struct ResultIds<const ANTHROPIC: bool>(Vec<String>);

/// Adds `id` to `ids` unless it is there already, empty or too long, or `ids` is full.
fn push_id(ids: &mut Vec<String>, id: &str) {
    if !id.is_empty()
        && id.len() <= MAX_TOOL_RESULT_ID_BYTES
        && ids.len() < MAX_TOOL_RESULT_IDS
        && !ids.iter().any(|known| known == id)
    {
        ids.push(id.to_owned());
    }
}

impl<'de, const ANTHROPIC: bool> Deserialize<'de> for ResultIds<ANTHROPIC> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const ANTHROPIC: bool>;
        impl<'de, const ANTHROPIC: bool> Visitor<'de> for V<ANTHROPIC> {
            type Value = ResultIds<ANTHROPIC>;

            lenient_defaults!();

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| ResultIds::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut ids = Vec::new();
                while let Some(item) = seq.next_element::<Item<'de, ANTHROPIC>>()? {
                    if item.role.as_deref() == Some("tool")
                        && let Some(id) = item.tool_call_id.as_deref()
                    {
                        push_id(&mut ids, id);
                    }
                    if matches!(
                        item.kind.as_deref(),
                        Some("function_call_output" | "custom_tool_call_output")
                    ) && let Some(id) = item.call_id.as_deref()
                    {
                        push_id(&mut ids, id);
                    }
                    for id in &item.results {
                        push_id(&mut ids, id);
                    }
                }
                Ok(ResultIds(ids))
            }
        }
        d.deserialize_any(V::<ANTHROPIC>)
    }
}

/// The fields of one message or input item that may name a tool result: OpenAI's
/// (`role`, `type`, `tool_call_id`, `call_id`), or Anthropic's (`content`).
#[derive(Default)]
struct Item<'a, const ANTHROPIC: bool> {
    role: Str<'a>,
    kind: Str<'a>,
    tool_call_id: Str<'a>,
    call_id: Str<'a>,
    /// `tool_use_id` of the `tool_result` blocks of `content`.
    results: Vec<String>,
}

/// The keys of [`Item`] (and of a content block) that are read.
enum Key {
    Role,
    Type,
    ToolCallId,
    CallId,
    ToolUseId,
    Content,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "role" => Key::Role,
                    "type" => Key::Type,
                    "tool_call_id" => Key::ToolCallId,
                    "call_id" => Key::CallId,
                    "tool_use_id" => Key::ToolUseId,
                    "content" => Key::Content,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de: 'a, 'a, const ANTHROPIC: bool> Deserialize<'de> for Item<'a, ANTHROPIC> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const ANTHROPIC: bool>;
        impl<'de, const ANTHROPIC: bool> Visitor<'de> for V<ANTHROPIC> {
            type Value = Item<'de, ANTHROPIC>;

            lenient_defaults!();

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Item::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut item = Item::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Role if !ANTHROPIC => item.role = map.next_value()?,
                        Key::Type if !ANTHROPIC => item.kind = map.next_value()?,
                        Key::ToolCallId if !ANTHROPIC => item.tool_call_id = map.next_value()?,
                        Key::CallId if !ANTHROPIC => item.call_id = map.next_value()?,
                        Key::Content if ANTHROPIC => {
                            item.results = map.next_value::<ResultBlocks>()?.0;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(item)
            }
        }
        d.deserialize_any(V::<ANTHROPIC>)
    }
}

/// The `tool_use_id` of each `tool_result` block of a `content` array (nothing
/// for a string or any other value).
#[derive(Default)]
struct ResultBlocks(Vec<String>);

impl<'de> Deserialize<'de> for ResultBlocks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ResultBlocks;

            lenient_defaults!();

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| ResultBlocks::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut ids = Vec::new();
                while let Some(block) = seq.next_element::<Block<'de>>()? {
                    if block.kind.as_deref() == Some("tool_result")
                        && let Some(id) = block.tool_use_id.as_deref()
                    {
                        push_id(&mut ids, id);
                    }
                }
                Ok(ResultBlocks(ids))
            }
        }
        d.deserialize_any(V)
    }
}

/// A content block's `type` and `tool_use_id`.
#[derive(Default)]
struct Block<'a> {
    kind: Str<'a>,
    tool_use_id: Str<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Block<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Block<'de>;

            lenient_defaults!();

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Block::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut block = Block::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Type => block.kind = map.next_value()?,
                        Key::ToolUseId => block.tool_use_id = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(block)
            }
        }
        d.deserialize_any(V)
    }
}

/// Path segments without empty ones (so trailing slashes do not matter).
/// The last two non-empty segments of a path: (the one before the last, the last).
/// Split on the byte `/` from the end: the operations are named by these alone.
fn last_two(path: &str) -> (Option<&[u8]>, Option<&[u8]>) {
    let mut segments = path
        .as_bytes()
        .rsplit(|&b| b == b'/')
        .filter(|s| !s.is_empty());
    let last = segments.next();
    (segments.next(), last)
}

/// The OpenAI operation a path names, matched on its last segments so prefixes
/// such as `/v1` or Azure's `/openai/deployments/<name>` do not matter.
pub(super) fn openai_operation(path: &str) -> Option<&'static str> {
    match last_two(path) {
        (Some(b"chat"), Some(b"completions")) => Some("chat.completions"),
        (_, Some(b"responses")) => Some("responses"),
        (_, Some(b"completions")) => Some("completions"),
        (_, Some(b"embeddings")) => Some("embeddings"),
        (_, Some(b"moderations")) => Some("moderations"),
        (_, Some(b"models")) => Some("models"),
        _ => None,
    }
}

/// The Anthropic operation a path names.
pub(super) fn anthropic_operation(path: &str) -> Option<&'static str> {
    match last_two(path) {
        (_, Some(b"messages")) => Some("messages"),
        (Some(b"messages"), Some(b"count_tokens")) => Some("messages.count_tokens"),
        (Some(b"messages"), Some(b"batches")) => Some("messages.batches"),
        (_, Some(b"complete")) => Some("complete"),
        (_, Some(b"models")) => Some("models"),
        _ => None,
    }
}

pub(super) fn inspect_openai(
    req: &RequestInput<'_>,
    body: Option<&[u8]>,
    facts: &mut RequestFacts,
) {
    facts.operation = openai_operation(req.path).map(str::to_owned);
    if let Some(body) = body {
        read_body::<false>(body, facts);
    }
}

pub(super) fn inspect_anthropic(
    req: &RequestInput<'_>,
    body: Option<&[u8]>,
    facts: &mut RequestFacts,
) {
    facts.operation = anthropic_operation(req.path).map(str::to_owned);
    if let Some(body) = body {
        read_body::<true>(body, facts);
    }
}

/// An OpenAI or Anthropic object body read once and checked as it is read (see
/// `inspect`); `false`, with `facts` untouched, for any other body or when that
/// read fails.
pub(super) fn inspect_once(req: &RequestInput<'_>, body: &[u8], facts: &mut RequestFacts) -> bool {
    fn once<const ANTHROPIC: bool>(
        body: &[u8],
        operation: Option<&'static str>,
        facts: &mut RequestFacts,
    ) -> bool {
        if first_token(body) != Some(b'{') {
            return false;
        }
        let Some(read) = crate::strict::from_json_checked::<LlmBody<ANTHROPIC>>(body) else {
            return false;
        };
        facts.operation = operation.map(str::to_owned);
        take(read, facts);
        true
    }
    match req.kind {
        RouteKind::Openai => once::<false>(body, openai_operation(req.path), facts),
        RouteKind::Anthropic => once::<true>(body, anthropic_operation(req.path), facts),
        RouteKind::Mcp | RouteKind::Http => false,
    }
}

/// What a read body gives the facts.
fn take<const ANTHROPIC: bool>(read: LlmBody<ANTHROPIC>, facts: &mut RequestFacts) {
    if let Some(Value::String(model)) = read.model {
        facts.model = Some(model);
    }
    facts.stream = matches!(read.stream, Some(Value::Bool(true)));
    let mut ids = read.messages.unwrap_or_default().0;
    for id in &read.input.unwrap_or_default().0 {
        push_id(&mut ids, id);
    }
    facts.tool_result_ids = ids;
}

fn read_body<const ANTHROPIC: bool>(body: &[u8], facts: &mut RequestFacts) {
    if first_token(body) != Some(b'{') {
        // Not an object: either not JSON at all, or JSON of the wrong shape.
        facts.note_error(
            match crate::strict::from_json::<serde::de::IgnoredAny>(body) {
                Err(e) => not_json(&e),
                Ok(_) => "request body is not a JSON object".to_owned(),
            },
        );
        return;
    }
    match crate::strict::from_json::<LlmBody<ANTHROPIC>>(body) {
        Ok(read) => take(read, facts),
        Err(e) => facts.note_error(not_json(&e)),
    }
}
