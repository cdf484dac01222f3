//! OpenAI and Anthropic requests: operation from the path, model and stream from
//! the body. The body is scanned once without building a tree (only `model` and
//! `stream` are kept), so a chat request with long messages costs little.

use super::{RequestFacts, RequestInput, first_token, not_json};
use serde::Deserialize;
use serde_json::Value;

/// The only fields read from an LLM request body; everything else is skipped.
#[derive(Deserialize)]
struct LlmBody {
    model: Option<Value>,
    stream: Option<Value>,
}

/// Path segments without empty ones (so trailing slashes do not matter).
fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The OpenAI operation a path names, matched on its last segments so prefixes
/// such as `/v1` or Azure's `/openai/deployments/<name>` do not matter.
pub(super) fn openai_operation(path: &str) -> Option<&'static str> {
    let segs = segments(path);
    match segs.as_slice() {
        [.., "chat", "completions"] => Some("chat.completions"),
        [.., "responses"] => Some("responses"),
        [.., "completions"] => Some("completions"),
        [.., "embeddings"] => Some("embeddings"),
        [.., "moderations"] => Some("moderations"),
        [.., "models"] => Some("models"),
        _ => None,
    }
}

/// The Anthropic operation a path names.
pub(super) fn anthropic_operation(path: &str) -> Option<&'static str> {
    let segs = segments(path);
    match segs.as_slice() {
        [.., "messages"] => Some("messages"),
        [.., "messages", "count_tokens"] => Some("messages.count_tokens"),
        [.., "messages", "batches"] => Some("messages.batches"),
        [.., "complete"] => Some("complete"),
        [.., "models"] => Some("models"),
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
        read_body(body, facts);
    }
}

pub(super) fn inspect_anthropic(
    req: &RequestInput<'_>,
    body: Option<&[u8]>,
    facts: &mut RequestFacts,
) {
    facts.operation = anthropic_operation(req.path).map(str::to_owned);
    if let Some(body) = body {
        read_body(body, facts);
    }
}

fn read_body(body: &[u8], facts: &mut RequestFacts) {
    if first_token(body) != Some(b'{') {
        // Not an object: either not JSON at all, or JSON of the wrong shape.
        facts.note_error(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Err(e) => not_json(&e),
                Ok(_) => "request body is not a JSON object".to_owned(),
            },
        );
        return;
    }
    match serde_json::from_slice::<LlmBody>(body) {
        Ok(b) => {
            if let Some(Value::String(model)) = b.model {
                facts.model = Some(model);
            }
            facts.stream = matches!(b.stream, Some(Value::Bool(true)));
        }
        Err(e) => facts.note_error(not_json(&e)),
    }
}
