//! A whole OpenAI body (chat completion, Responses API response, completion,
//! embeddings list or error) read into what [`State::openai_json`] takes from it,
//! without building the rest: the top-level `model`, `usage` (as the counts the
//! row records), `error` and `output`, and of `choices` only each choice's
//! `message.tool_calls` and `message.function_call`. Message content, ids and the
//! like are skipped unread; nothing is built for them.
//!
//! It reads as the `Value` does: a member repeated keeps its last value; a value
//! that is not an object where one is read (the body, a choice, a message) or not
//! an array where one is (`choices`) reads as absent, as `openai_json` treats it.
//! A test compares the two reads member by member and shape by shape. One
//! difference, on purpose: the members skipped are not held to serde_json's
//! nesting limit (128), so a body deeper than that in, say, its content is still
//! read for its model and usage instead of being reported as not JSON.

use super::{ItemSource, State, items};
use crate::lenient::{Str, lenient_object};
use crate::usage;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// What [`whole_body`] reads of a whole OpenAI body.
#[derive(Default)]
pub(in crate::response) struct WholeBody<'a> {
    model: Str<'a>,
    usage: Option<UsageCounts>,
    error: Option<Value>,
    /// The messages of the choices, in order (a choice without one: none).
    messages: Vec<Message>,
    output: Option<Value>,
}

/// A choice's message: the members that carry tool calls.
#[derive(Default)]
struct Message {
    tool_calls: Option<Value>,
    function_call: Option<Value>,
}

/// `None` when the body is not JSON: the caller then reads it as a `Value` and
/// reports why.
pub(in crate::response) fn whole_body(body: &[u8]) -> Option<WholeBody<'_>> {
    crate::strict::from_json::<WholeBody<'_>>(body).ok()
}

impl State {
    /// A whole JSON body as [`whole_body`] read it: what [`Self::openai_json`]
    /// reads, in the same order.
    pub(in crate::response) fn openai_whole(&mut self, body: &WholeBody<'_>) {
        if let Some(model) = body.model.as_deref() {
            self.set_model(model);
        }
        if let Some(u) = body.usage.as_ref().and_then(UsageCounts::usage) {
            self.openai_usage = Some(u);
        }
        if let Some(err) = body.error.as_ref().filter(|e| !e.is_null()) {
            self.set_error_from(err);
        }
        for message in &body.messages {
            self.message_calls(message.tool_calls.as_ref(), message.function_call.as_ref());
        }
        for item in items(body.output.as_ref()) {
            self.response_item(item, ItemSource::Whole);
        }
    }
}

lenient_object!('de, WholeBody<'de>, WholeBody::default(), |body, key, map| {
    match &*key {
        "model" => body.model = map.next_value()?,
        "usage" => body.usage = Some(map.next_value()?),
        "error" => body.error = Some(map.next_value()?),
        "output" => body.output = Some(map.next_value()?),
        "choices" => body.messages = map.next_value::<Choices>()?.0,
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

/// `choices`: the messages of those that have one (anything but an array: none).
#[derive(Default)]
struct Choices(Vec<Message>);

impl<'de> Deserialize<'de> for Choices {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Choices;

            crate::lenient::lenient_defaults!();

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Choices, A::Error> {
                let mut messages = Vec::new();
                while let Some(choice) = seq.next_element::<Choice>()? {
                    messages.extend(choice.0);
                }
                Ok(Choices(messages))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Choices, A::Error> {
                crate::lenient::skip_map(map).map(|()| Choices::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// One choice: its `message`, if it is an object that has one.
#[derive(Default)]
struct Choice(Option<Message>);

lenient_object!('de, Choice, Choice::default(), |choice, key, map| {
    if key == "message" {
        choice.0 = Some(map.next_value()?);
    } else {
        map.next_value::<IgnoredAny>()?;
    }
});

lenient_object!('de, Message, Message::default(), |message, key, map| {
    match &*key {
        "tool_calls" => message.tool_calls = Some(map.next_value()?),
        "function_call" => message.function_call = Some(map.next_value()?),
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

/// `usage` read as [`usage::openai`] reads a `Value`: the counts it takes, each
/// as `int` takes it (an integer, or a finite number truncated; anything else:
/// none), the last of a repeated member, and the cached count from
/// `prompt_tokens_details` when that is an object, else from
/// `input_tokens_details`.
#[derive(Default)]
struct UsageCounts {
    /// Whether `usage` is an object at all.
    object: bool,
    prompt_tokens: Option<i64>,
    input_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    output_tokens: Option<i64>,
    /// `prompt_tokens_details`: `None` when absent or not an object, else its
    /// `cached_tokens`.
    prompt_details: Option<Option<i64>>,
    /// `input_tokens_details`' `cached_tokens`.
    input_details: Option<i64>,
}

impl UsageCounts {
    fn usage(&self) -> Option<usage::Usage> {
        if !self.object {
            return None;
        }
        let u = usage::Usage {
            input_tokens: self.prompt_tokens.or(self.input_tokens),
            output_tokens: self.completion_tokens.or(self.output_tokens),
            cached_input_tokens: self.prompt_details.unwrap_or(self.input_details),
            cache_creation_input_tokens: None,
        };
        (!u.is_empty()).then_some(u)
    }
}

lenient_object!(
    'de,
    UsageCounts,
    UsageCounts {
        object: true,
        ..UsageCounts::default()
    },
    |u, key, map| {
        match &*key {
            "prompt_tokens" => u.prompt_tokens = map.next_value::<Int>()?.0,
            "input_tokens" => u.input_tokens = map.next_value::<Int>()?.0,
            "completion_tokens" => u.completion_tokens = map.next_value::<Int>()?.0,
            "output_tokens" => u.output_tokens = map.next_value::<Int>()?.0,
            "prompt_tokens_details" => u.prompt_details = map.next_value::<Cached>()?.0,
            "input_tokens_details" => u.input_details = map.next_value::<Cached>()?.0.flatten(),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
);

/// A details object's `cached_tokens` (`None` when the value is not an object;
/// `Some(None)` for an object without a count).
#[derive(Default)]
struct Cached(Option<Option<i64>>);

lenient_object!('de, Cached, Cached(Some(None)), |cached, key, map| {
    if key == "cached_tokens" {
        cached.0 = Some(map.next_value::<Int>()?.0);
    } else {
        map.next_value::<IgnoredAny>()?;
    }
});

/// A count as `usage`'s `int` reads a `Value`: an integer that fits `i64`, else a
/// finite number truncated (saturating); anything else is none.
#[derive(Default)]
struct Int(Option<i64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Int;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Int, E> {
                Ok(Int::default())
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Int, E> {
                Ok(Int::default())
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Int, E> {
                Ok(Int::default())
            }

            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Int, E> {
                Ok(Int::default())
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Int, E> {
                Ok(Int(Some(n)))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Int, E> {
                Ok(Int(Some(i64::try_from(n).unwrap_or(n as f64 as i64))))
            }

            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Int, E> {
                Ok(Int(n.is_finite().then_some(n as i64)))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Int, A::Error> {
                crate::lenient::skip_seq(seq).map(|()| Int::default())
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Int, A::Error> {
                crate::lenient::skip_map(map).map(|()| Int::default())
            }
        }
        d.deserialize_any(V)
    }
}
