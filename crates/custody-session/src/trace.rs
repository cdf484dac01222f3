//! W3C Trace Context (level 1): parsing and producing `traceparent`.
//!
//! `traceparent: {version}-{trace-id}-{parent-id}-{trace-flags}`, lowercase hex
//! only. Version `00` must be exactly 55 characters; a higher version (not `ff`)
//! is parsed by the spec's forward-compatibility rule: at least 55 characters, the
//! known fields in their places, and either the end or a `-` after the flags.
//! All-zero trace or parent ids are invalid. custody always *emits* version `00`
//! and keeps only the flag it understands (`sampled`, `0x01`).

use crate::ids::{IdGen, hex, push_hex};
use std::fmt;

/// The W3C `sampled` flag.
pub const SAMPLED: u8 = 0x01;

/// One span's place in a trace: what a `traceparent` header carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The span id: in a received header the caller's span (custody's parent), in
    /// one custody sends the span custody opened (never all zero).
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` header value (surrounding spaces and tabs allowed);
    /// `None` when malformed, which per the spec means "start a new trace".
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim_matches([' ', '\t']).as_bytes();
        if v.len() < 55 {
            return None;
        }
        let version = hex_byte(v[0], v[1])?;
        if version == 0xff || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        if version == 0 && v.len() != 55 {
            return None;
        }
        if version > 0 && v.len() > 55 && v[55] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, out) in trace_id.iter_mut().enumerate() {
            *out = hex_byte(v[3 + 2 * i], v[4 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, out) in span_id.iter_mut().enumerate() {
            *out = hex_byte(v[36 + 2 * i], v[37 + 2 * i])?;
        }
        let flags = hex_byte(v[53], v[54])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new trace with a random trace id and span id, `sampled` set (custody
    /// records every call in its audit trail).
    pub fn new_root(ids: &IdGen) -> Self {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&ids.next_u64().to_be_bytes());
        trace_id[8..].copy_from_slice(&ids.next_nonzero_u64().to_be_bytes());
        Self::in_trace(trace_id, SAMPLED, ids)
    }

    /// A new span in trace `trace_id` (which must not be all zero; a zero id is
    /// replaced by a random one).
    pub fn in_trace(trace_id: [u8; 16], flags: u8, ids: &IdGen) -> Self {
        let trace_id = if trace_id == [0; 16] {
            let mut t = [0u8; 16];
            t[8..].copy_from_slice(&ids.next_nonzero_u64().to_be_bytes());
            t
        } else {
            trace_id
        };
        Self {
            trace_id,
            span_id: ids.next_nonzero_u64().to_be_bytes(),
            flags: flags & SAMPLED,
        }
    }

    /// A child span: same trace, new span id, the sampled flag kept. The child's
    /// parent is `self.span_id`.
    pub fn child(&self, ids: &IdGen) -> Self {
        Self::in_trace(self.trace_id, self.flags, ids)
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The header value (version `00`).
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.span_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        s
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

/// The W3C ids recorded in an audit row, as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanIds {
    /// 32 hex digits.
    pub trace_id: String,
    /// The span custody opened for this call (16 hex digits); it is the parent id
    /// of the `traceparent` custody forwards upstream.
    pub span_id: String,
    /// The caller's span (from the incoming `traceparent`), `None` when custody
    /// started or continued the trace on its own.
    pub parent_span_id: Option<String>,
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(nibble(hi)? << 4 | nibble(lo)?)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
