//! Forced stream usage: ask OpenAI for usage on a streamed chat completion the
//! client did not ask usage for, then hide the extra usage-only chunk from it.
//!
//! [`force_stream_usage`] rewrites the request; [`UsageChunkStripper`] re-emits the
//! response's SSE bytes event by event, unchanged, except the chunk whose `data`
//! is JSON with an empty `choices` array and a non-null `usage` (the chunk
//! `stream_options.include_usage` adds before `data: [DONE]`). The observer
//! should see the upstream bytes; the client sees the stripper's output.

use crate::scan::{find_eol, may_have_non_null};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

/// An event held back longer than this cannot be a usage chunk (those are a few
/// hundred bytes): it is passed through without waiting for its end.
const MAX_HELD_BYTES: usize = 64 * 1024;

/// The request body with `"stream_options":{"include_usage":true}` added, when
/// it is a JSON object with `"stream": true` whose `stream_options.include_usage`
/// is not already `true`; `None` otherwise (leave the body alone).
///
/// When `stream_options` is absent the member is inserted right after the opening
/// brace and every other byte is kept; otherwise the body is reserialised (keys
/// sorted, no whitespace).
pub fn force_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let Value::Object(mut obj) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    if obj.get("stream") != Some(&Value::Bool(true)) {
        return None;
    }
    match obj.get_mut("stream_options") {
        None => {
            let open = body.iter().position(|&b| b == b'{')?;
            let member = br#""stream_options":{"include_usage":true},"#;
            let mut out = Vec::with_capacity(body.len() + member.len());
            out.extend_from_slice(&body[..=open]);
            out.extend_from_slice(member);
            out.extend_from_slice(&body[open + 1..]);
            Some(out)
        }
        Some(Value::Object(options)) => {
            if options.get("include_usage") == Some(&Value::Bool(true)) {
                return None;
            }
            options.insert("include_usage".to_owned(), Value::Bool(true));
            serde_json::to_vec(&Value::Object(obj)).ok()
        }
        Some(v @ Value::Null) => {
            *v = Value::Object(Map::from_iter([(
                "include_usage".to_owned(),
                Value::Bool(true),
            )]));
            serde_json::to_vec(&Value::Object(obj)).ok()
        }
        Some(_) => None,
    }
}

/// What became of the event a trailing CR ended, for an LF in the next chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterCr {
    /// No CR at the end of the previous chunk.
    Nothing,
    /// The CR ended a line inside the current event.
    InEvent,
    /// The CR ended the blank line of an event that was emitted.
    Emitted,
    /// ... of an event that was dropped.
    Dropped,
}

/// Drops the forced usage-only chunk from an OpenAI chat SSE stream; see the
/// module documentation. Holds at most one incomplete event (and never more than
/// 64 KiB of it).
#[derive(Debug)]
pub struct UsageChunkStripper {
    /// Raw bytes of the current event.
    pending: Vec<u8>,
    /// The current event was too long to hold: its bytes go straight out.
    passthrough: bool,
    /// No byte of the current line seen yet.
    line_empty: bool,
    after_cr: AfterCr,
    dropped: u64,
}

impl Default for UsageChunkStripper {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct UsageProbe {
    choices: Option<Vec<IgnoredAny>>,
    usage: Option<IgnoredAny>,
}

impl UsageChunkStripper {
    /// A stripper at the start of a stream.
    pub fn new() -> Self {
        Self {
            pending: Vec::new(),
            passthrough: false,
            line_empty: true,
            after_cr: AfterCr::Nothing,
            dropped: 0,
        }
    }

    /// Usage chunks dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes the next upstream bytes; appends what the client should get to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        if !chunk.is_empty() {
            let after_cr = std::mem::replace(&mut self.after_cr, AfterCr::Nothing);
            if chunk[0] == b'\n' {
                match after_cr {
                    AfterCr::Nothing => {}
                    AfterCr::InEvent => {
                        self.take(b"\n", out);
                        i = 1;
                    }
                    AfterCr::Emitted => {
                        out.push(b'\n');
                        i = 1;
                    }
                    AfterCr::Dropped => i = 1,
                }
            }
        }
        while i < chunk.len() {
            let rest = &chunk[i..];
            let Some(off) = find_eol(rest) else {
                self.take(rest, out);
                self.line_empty = false;
                break;
            };
            let blank = self.line_empty && off == 0;
            let mut end = off + 1;
            let lone_cr_at_end = rest[off] == b'\r' && end == rest.len();
            if rest[off] == b'\r' && rest.get(end) == Some(&b'\n') {
                end += 1;
            }
            self.take(&rest[..end], out);
            i += end;
            self.line_empty = true;
            let after = if blank {
                if self.event_done(out) {
                    AfterCr::Emitted
                } else {
                    AfterCr::Dropped
                }
            } else {
                AfterCr::InEvent
            };
            if lone_cr_at_end {
                self.after_cr = after;
            }
        }
    }

    /// The stream ended: whatever is held (an incomplete event) goes out as is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
        self.passthrough = false;
        self.line_empty = true;
        self.after_cr = AfterCr::Nothing;
    }

    fn take(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.passthrough {
            out.extend_from_slice(bytes);
            return;
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > MAX_HELD_BYTES {
            out.append(&mut self.pending);
            self.passthrough = true;
        }
    }

    /// The current event is complete: emit it (true) or drop it (false).
    fn event_done(&mut self, out: &mut Vec<u8>) -> bool {
        if std::mem::take(&mut self.passthrough) {
            return true;
        }
        if is_usage_only(&self.pending) {
            self.pending.clear();
            self.dropped += 1;
            return false;
        }
        out.append(&mut self.pending);
        true
    }
}

/// Whether a raw event's data is `{"choices":[], "usage":{..}, ...}`.
fn is_usage_only(raw: &[u8]) -> bool {
    if !may_have_non_null(raw, b"usage") {
        return false;
    }
    let mut data = Vec::new();
    let mut first = true;
    for line in raw.split(|&b| b == b'\n' || b == b'\r') {
        let Some(value) = line.strip_prefix(b"data") else {
            continue;
        };
        let value = match value {
            [] => value,
            [b':', rest @ ..] => rest.strip_prefix(b" ").unwrap_or(rest),
            _ => continue,
        };
        if !first {
            data.push(b'\n');
        }
        first = false;
        data.extend_from_slice(value);
    }
    matches!(
        serde_json::from_slice::<UsageProbe>(&data),
        Ok(UsageProbe { choices: Some(choices), usage: Some(_) }) if choices.is_empty()
    )
}

#[cfg(test)]
mod tests;
