//! Token usage, normalised across providers (see the crate documentation).

use serde::Serialize;
use serde_json::Value;

/// Token counts of one call. `input_tokens` is *all* input processed, cached or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Every input token processed, including cache reads and cache writes.
    pub input_tokens: Option<i64>,
    /// Output tokens (including reasoning tokens).
    pub output_tokens: Option<i64>,
    /// Input tokens served from the provider's prompt cache (part of `input_tokens`).
    pub cached_input_tokens: Option<i64>,
    /// Input tokens written to the prompt cache (Anthropic; part of `input_tokens`).
    pub cache_creation_input_tokens: Option<i64>,
}

impl Usage {
    /// Whether no count is known.
    pub fn is_empty(&self) -> bool {
        self.input_tokens.is_none()
            && self.output_tokens.is_none()
            && self.cached_input_tokens.is_none()
            && self.cache_creation_input_tokens.is_none()
    }
}

fn int(v: &Value, key: &str) -> Option<i64> {
    let v = v.get(key)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// OpenAI's `usage` object (chat/completions/embeddings or Responses API spelling).
pub(crate) fn openai(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let details = usage
        .get("prompt_tokens_details")
        .filter(|d| d.is_object())
        .or_else(|| usage.get("input_tokens_details"));
    let u = Usage {
        input_tokens: int(usage, "prompt_tokens").or_else(|| int(usage, "input_tokens")),
        output_tokens: int(usage, "completion_tokens").or_else(|| int(usage, "output_tokens")),
        cached_input_tokens: details.and_then(|d| int(d, "cached_tokens")),
        cache_creation_input_tokens: None,
    };
    (!u.is_empty()).then_some(u)
}

/// Anthropic's counts as reported (input excludes cache reads and writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AnthropicRaw {
    input: Option<i64>,
    output: Option<i64>,
    cache_read: Option<i64>,
    cache_creation: Option<i64>,
}

impl AnthropicRaw {
    /// Overwrites the counts present in `usage` (a `usage` object from a message,
    /// `message_start` or `message_delta`; the latter's counts are cumulative).
    pub(crate) fn update(&mut self, usage: &Value) {
        if let Some(n) = int(usage, "input_tokens") {
            self.input = Some(n);
        }
        if let Some(n) = int(usage, "output_tokens") {
            self.output = Some(n);
        }
        if let Some(n) = int(usage, "cache_read_input_tokens") {
            self.cache_read = Some(n);
        }
        if let Some(n) = int(usage, "cache_creation_input_tokens") {
            self.cache_creation = Some(n);
        }
    }

    /// The normalised usage, `None` when nothing was reported.
    pub(crate) fn normalised(&self) -> Option<Usage> {
        let input = match (self.input, self.cache_read, self.cache_creation) {
            (None, None, None) => None,
            (a, b, c) => Some(a.unwrap_or(0) + b.unwrap_or(0) + c.unwrap_or(0)),
        };
        let u = Usage {
            input_tokens: input,
            output_tokens: self.output,
            cached_input_tokens: self.cache_read,
            cache_creation_input_tokens: self.cache_creation,
        };
        (!u.is_empty()).then_some(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_chat_usage() {
        let u = openai(
            &json!({"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}}),
        );
        assert_eq!(
            u,
            Some(Usage {
                input_tokens: Some(1200),
                output_tokens: Some(80),
                cached_input_tokens: Some(1024),
                cache_creation_input_tokens: None
            })
        );
    }

    #[test]
    fn openai_responses_and_embeddings_usage() {
        let u = openai(&json!({"input_tokens": 300, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 320}))
        .expect("usage");
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cached_input_tokens),
            (Some(300), Some(20), Some(0))
        );
        let u = openai(&json!({"prompt_tokens": 8, "total_tokens": 8})).expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (Some(8), None));
        assert_eq!(openai(&json!(null)), None);
        assert_eq!(openai(&json!({})), None);
    }

    #[test]
    fn anthropic_input_includes_cache() {
        let mut raw = AnthropicRaw::default();
        raw.update(
            &json!({"input_tokens": 12, "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 30000, "output_tokens": 1}),
        );
        raw.update(&json!({"output_tokens": 250}));
        assert_eq!(
            raw.normalised(),
            Some(Usage {
                input_tokens: Some(32012),
                output_tokens: Some(250),
                cached_input_tokens: Some(30000),
                cache_creation_input_tokens: Some(2000)
            })
        );
        assert_eq!(AnthropicRaw::default().normalised(), None);
    }
}
