//! An incremental `text/event-stream` parser following the WHATWG rules
//! (HTML Living Standard, "Server-sent events", §9.2.6 "Interpreting an event stream").
//!
//! - Lines end in CRLF, LF or CR; a CR that ends one chunk and an LF that starts
//!   the next are one line break.
//! - A leading UTF-8 BOM is stripped; invalid UTF-8 becomes U+FFFD.
//! - `:` starts a comment; `field:value` with one leading space of the value
//!   stripped; a line without a colon is a field with an empty value.
//! - `data` lines are joined with `\n`; `event` sets the type (default `message`);
//!   `id` sets the last event id (ignored if it contains NUL) which persists across
//!   events; `retry` (ASCII digits only) is exposed; other fields are ignored.
//! - A blank line dispatches the event; an event without any `data` line is not
//!   dispatched.
//! - An event whose lines exceed `max_event_bytes` in total is discarded and
//!   counted, and its bytes are never buffered: memory stays within about
//!   `max_event_bytes` whatever the input.
//! - At the end of the stream an incomplete event is dropped, not dispatched.

use crate::scan::find_eol;
use std::borrow::Cow;

/// The UTF-8 byte order mark a stream may start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The event type (`message` when the event had no `event` field).
    pub event: &'a str,
    /// The data lines joined with `\n`.
    pub data: &'a str,
    /// The last event id seen so far in the stream (empty when none).
    pub id: &'a str,
}

/// The incremental parser; see the module documentation.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF in the next one is part of it.
    skip_lf: bool,
    /// No line has been processed yet (for the BOM).
    at_start: bool,
    event_type: Vec<u8>,
    data: Vec<u8>,
    last_id: String,
    retry: Option<u64>,
    /// Bytes of the current event's complete lines (each counted with one terminator byte).
    event_bytes: usize,
    /// Skipping the rest of an oversized event.
    discarding: bool,
    /// While discarding: the current line has at least one byte.
    discard_line_nonempty: bool,
    discarded: u64,
}

impl SseParser {
    /// A parser that discards events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            skip_lf: false,
            at_start: true,
            event_type: Vec::new(),
            data: Vec::new(),
            last_id: String::new(),
            retry: None,
            event_bytes: 0,
            discarding: false,
            discard_line_nonempty: false,
            discarded: 0,
        }
    }

    /// Events discarded so far because they were larger than the limit.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// The last valid `retry` value seen, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Parses `chunk`, calling `on_event` for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        let mut i = 0;
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                i = 1;
            }
        }
        while i < chunk.len() {
            let rest = &chunk[i..];
            let Some(off) = find_eol(rest) else {
                self.partial_line(rest);
                break;
            };
            let piece = &rest[..off];
            if self.discarding {
                let nonempty = self.discard_line_nonempty || !piece.is_empty();
                self.discard_line_nonempty = false;
                if !nonempty {
                    self.end_discarded_event();
                }
            } else if self.line.is_empty() {
                self.line_done(piece, &mut on_event);
            } else if self.fits(piece) {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(piece);
                self.line_done(&line, &mut on_event);
                line.clear();
                self.line = line;
            } else {
                self.line.clear();
                self.start_discarding();
            }
            i += off + 1;
            if rest[off] == b'\r' {
                match chunk.get(i) {
                    Some(b'\n') => i += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
    }

    /// Ends the stream. Returns whether an incomplete event (or line) was dropped.
    pub fn finish(&mut self) -> bool {
        let dropped = self.discarding
            || !self.line.is_empty()
            || !self.data.is_empty()
            || !self.event_type.is_empty()
            || self.event_bytes > 0;
        if self.discarding {
            self.discarded += 1;
        }
        self.line.clear();
        self.reset_event();
        self.discarding = false;
        self.discard_line_nonempty = false;
        self.skip_lf = false;
        dropped
    }

    /// Whether the current line, `piece` and a terminator keep the event within the
    /// limit (the measure `line_done` applies, which does not count the BOM it strips
    /// from the stream's first line: so that the verdict never depends on where the
    /// chunks were cut, the leading bytes of that line that match the BOM so far are
    /// not counted here either; `line_done` checks the complete line exactly).
    fn fits(&self, piece: &[u8]) -> bool {
        let mut len = self.line.len() + piece.len();
        if self.at_start {
            len -= self
                .line
                .iter()
                .chain(piece)
                .zip(BOM)
                .take_while(|(a, b)| a == b)
                .count();
        }
        self.event_bytes + len < self.max_event_bytes
    }

    fn partial_line(&mut self, piece: &[u8]) {
        if self.discarding {
            self.discard_line_nonempty |= !piece.is_empty();
        } else if self.fits(piece) {
            self.line.extend_from_slice(piece);
        } else {
            self.line.clear();
            self.start_discarding();
            self.discard_line_nonempty = true;
        }
    }

    fn start_discarding(&mut self) {
        // The discarded line is the stream's first one if none came before: a BOM
        // on a later line is not stripped.
        self.at_start = false;
        self.discarding = true;
        self.discard_line_nonempty = false;
        self.data.clear();
        self.event_type.clear();
    }

    fn end_discarded_event(&mut self) {
        self.discarding = false;
        self.discarded += 1;
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.event_type.clear();
        self.event_bytes = 0;
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let mut line = line;
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        self.event_bytes += line.len() + 1;
        if self.event_bytes > self.max_event_bytes {
            self.start_discarding();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_id = String::from_utf8_lossy(value).into_owned();
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.data.is_empty() {
            self.reset_event();
            return;
        }
        self.data.pop(); // the `\n` after the last data line
        let data = match std::str::from_utf8(&self.data) {
            Ok(data) => Cow::Borrowed(data),
            Err(_) => String::from_utf8_lossy(&self.data),
        };
        let event: Cow<'_, str> = if self.event_type.is_empty() {
            Cow::Borrowed("message")
        } else {
            String::from_utf8_lossy(&self.event_type)
        };
        on_event(SseEvent {
            event: &event,
            data: &data,
            id: &self.last_id,
        });
        self.reset_event();
    }
}

#[cfg(test)]
mod tests;
