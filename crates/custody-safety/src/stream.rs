//! Scanning a response stream fed chunk by chunk, with a bounded carry-over so
//! a value split across chunks is still found.
//!
//! What to feed: for an LLM's SSE stream, the *text* the model produces (the
//! concatenated `delta.content` / `text_delta` strings, one scanner per choice
//! or content block) — a value is usually split across many events, so
//! scanning raw event bytes would miss it. For other streams (a tool's SSE or
//! plain text), the raw bytes.

use crate::detect::Detectors;
use crate::scan::Finding;
use std::sync::Arc;

/// Bytes kept from one window to the next. A value that starts in the kept
/// tail is found whole; one longer than this that straddles a chunk boundary
/// is still reported, with its range cut at the boundary.
pub const CARRY_BYTES: usize = 256;
/// A match ending this close to the end of the window may still grow with the
/// next chunk, so it is reported only once the next chunk (or the end) is seen.
const MARGIN: usize = 128;
/// Windows are scanned in pieces of at most this size.
const PIECE: usize = 64 * 1024;
/// Bytes gathered before a window is scanned. A window's carry-over is scanned
/// again with the next one, so windows much larger than [`CARRY_BYTES`] scan
/// few bytes twice, and a body shorter than this (most JSON responses) is scanned
/// once, when it ends.
const WINDOW: usize = 4096;
/// At most this many findings are kept (counts stay exact, see
/// [`StreamScanner::count`]).
pub const MAX_STREAM_FINDINGS: usize = 4096;

/// A scanner for one stream: feed chunks, then `finish`. Findings have the
/// path given at construction and byte offsets counted from the start of the
/// stream. Memory is bounded: the carry-over plus one window or chunk piece,
/// plus at most [`MAX_STREAM_FINDINGS`] findings.
#[derive(Debug)]
pub struct StreamScanner {
    detectors: Arc<Detectors>,
    path: Arc<str>,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: usize,
    /// Stream offset before which nothing new is reported.
    frontier: usize,
    findings: Vec<Finding>,
    count: u64,
}

impl StreamScanner {
    /// A scanner whose findings are reported at `path` (e.g.
    /// `$.choices[0].delta.content`, or `$` for a text stream).
    pub fn new(detectors: Arc<Detectors>, path: impl Into<Arc<str>>) -> Self {
        StreamScanner {
            detectors,
            path: path.into(),
            buf: Vec::new(),
            base: 0,
            frontier: 0,
            findings: Vec::new(),
            count: 0,
        }
    }

    /// Feeds the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        for piece in chunk.chunks(PIECE) {
            self.buf.extend_from_slice(piece);
            if self.buf.len() >= WINDOW {
                self.window(false);
            }
        }
    }

    /// Findings so far (the last up to [`CARRY_BYTES`] bytes are not scanned
    /// to the end until more arrives or [`finish`](Self::finish)).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// How many findings in all (may exceed the findings kept).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Scans what is left and returns every finding kept.
    pub fn finish(mut self) -> Vec<Finding> {
        self.window(true);
        self.findings
    }

    fn window(&mut self, last: bool) {
        let len = self.buf.len();
        let safe = if last {
            len
        } else {
            len.saturating_sub(MARGIN)
        };
        // Keep the tail from a whitespace byte, so the next window does not
        // start in the middle of a word.
        let keep_from = if last {
            len
        } else {
            let from = len.saturating_sub(CARRY_BYTES);
            self.buf[from..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .map_or(from, |k| from + k)
                .min(len.saturating_sub(MARGIN))
        };
        for hit in self.detectors.find(&self.buf) {
            let start = self.base + hit.start;
            if start < self.frontier {
                continue;
            }
            // A match that may still grow and will be seen whole next time waits.
            if hit.end > safe && hit.start >= keep_from {
                break;
            }
            self.frontier = self.base + hit.end;
            self.count += 1;
            if self.findings.len() < MAX_STREAM_FINDINGS {
                self.findings.push(Finding {
                    kind: hit.kind,
                    path: Arc::clone(&self.path),
                    start,
                    end: self.base + hit.end,
                    string: 0,
                });
            }
        }
        self.buf.drain(..keep_from);
        self.base += keep_from;
    }
}

#[cfg(test)]
mod tests;
