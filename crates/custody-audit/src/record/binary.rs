//! The compact binary encoding of an [`AuditRecord`] that the spool stores (row
//! encoding tag [`TAG`]; the spool's older payloads are the JSON rendering, which
//! starts with `{`, see [`crate::trail`]).
//!
//! ```text
//! payload   := TAG (0x01) struct(AuditRecord)
//! struct    := len:uint  field*          len = bytes of the fields that follow
//! string    := len:uint  UTF-8 bytes
//! opt<str>  := 0 | (len + 1):uint  UTF-8 bytes
//! opt<list> := 0 | (n + 1):uint  item*n      (items are strings or structs)
//! int       := zigzag(i64):uint
//! opt<int>  := 0 | 1 int
//! float     := f64 bits, bytes swapped:uint (round numbers are short; exact)
//! opt<float>:= 0 | 1 float
//! opt<bool> := 0 (none) | 1 (false) | 2 (true)
//! kind      := 1 llm | 2 tool | 3 http | 4 tunnel
//! uint      := 6 bits per byte, least significant first; 0x40 = more bytes follow
//! ```
//! Fields appear in the order [`encode`] writes them (struct by struct, in the
//! order of the Rust declarations). Every byte outside strings is below 0x80, and
//! strings are valid UTF-8, so a payload never contains the spool's record magic
//! (`B5 C7 8E A3`: not UTF-8, and its bytes are all ≥ 0x80): a damaged segment
//! cannot resynchronise inside a row.
//!
//! Evolution: a field is only ever added at the end of its struct. A reader
//! finding a struct shorter than it knows (written before the field existed) gives
//! the missing fields their defaults (`None`); one finding a longer struct (written
//! by a newer version) skips the fields it does not know, as the JSON reader did.
//! Every struct is destructured without `..` on both sides, so a field added to
//! the record (or to `custody_core`'s `Principal` and `Action`) does not compile
//! until it is encoded and decoded; `tests::every_field_round_trips` then checks
//! it on a record with every field set.

use super::{
    AuditRecord, ContentSafety, Links, Outcome, PolicyOutcome, Redaction, ToolResult, Usage,
};
use custody_core::{Action, ActionKind, Principal, ToolCallRequest};

/// The first byte of a binary row.
pub(crate) const TAG: u8 = 0x01;

/// Why a payload is not a row.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The payload ends inside a value.
    #[error("binary row truncated")]
    Truncated,
    /// A byte that cannot be there.
    #[error("binary row malformed: {0}")]
    Malformed(&'static str),
}

/// Appends the binary encoding of `r` (tag included) to `out`.
pub(crate) fn encode(r: &AuditRecord, out: &mut Vec<u8>) {
    out.push(TAG);
    let mut w = Writer(out);
    let AuditRecord {
        event_time,
        request_id,
        session_id,
        trace_id,
        schema_version,
        principal,
        action,
        policy,
        content_safety,
        usage,
        outcome,
        session_step,
        session_source,
        span_id,
        parent_span_id,
        links,
        intercepted_host,
        client_request_id,
        // Not spooled: numbered when the row is built into a file.
        row_seq: _,
    } = r;
    w.structure(|w| {
        w.int(*event_time);
        w.str(request_id);
        w.opt_str(session_id.as_deref());
        w.opt_str(trace_id.as_deref());
        w.int(i64::from(*schema_version));
        w.structure(|w| principal_fields(w, principal));
        w.structure(|w| action_fields(w, action));
        w.structure(|w| policy_fields(w, policy));
        w.structure(|w| safety_fields(w, content_safety));
        w.structure(|w| usage_fields(w, usage));
        w.structure(|w| outcome_fields(w, outcome));
        w.opt_int(*session_step);
        w.opt_str(session_source.as_deref());
        w.opt_str(span_id.as_deref());
        w.opt_str(parent_span_id.as_deref());
        w.structure(|w| links_fields(w, links));
        w.opt_str(intercepted_host.as_deref());
        w.opt_str(client_request_id.as_deref());
    });
}

fn principal_fields(w: &mut Writer<'_>, p: &Principal) {
    let Principal {
        sub,
        org,
        role,
        roles,
        issuer,
    } = p;
    w.opt_str(sub.as_deref());
    w.opt_str(org.as_deref());
    w.opt_str(role.as_deref());
    w.opt_list(roles.as_deref(), |w, s| w.str(s));
    w.opt_str(issuer.as_deref());
}

fn action_fields(w: &mut Writer<'_>, a: &Action) {
    let Action {
        kind,
        route,
        method,
        path,
        upstream,
        tool,
        parameters,
        operation,
        inspected,
        model_tool_calls,
        raw_path,
    } = a;
    w.uint(kind_code(*kind));
    w.opt_str(route.as_deref());
    w.str(method);
    w.str(path);
    w.opt_str(upstream.as_deref());
    w.opt_str(tool.as_deref());
    w.opt_str(parameters.as_deref());
    w.opt_str(operation.as_deref());
    w.opt_bool(*inspected);
    w.opt_list(model_tool_calls.as_deref(), |w, c| {
        let ToolCallRequest { id, name } = c;
        w.structure(|w| {
            w.opt_str(id.as_deref());
            w.str(name);
        });
    });
    w.opt_str(raw_path.as_deref());
}

fn policy_fields(w: &mut Writer<'_>, p: &PolicyOutcome) {
    let PolicyOutcome {
        decision,
        rule,
        scopes,
        version,
    } = p;
    w.opt_str(decision.as_deref());
    w.opt_str(rule.as_deref());
    w.opt_list(scopes.as_deref(), |w, s| w.str(s));
    w.opt_str(version.as_deref());
}

fn safety_fields(w: &mut Writer<'_>, c: &ContentSafety) {
    let ContentSafety {
        pii_detected,
        redactions,
    } = c;
    w.opt_bool(*pii_detected);
    w.opt_list(redactions.as_deref(), |w, r| {
        let Redaction {
            kind,
            path,
            count,
            action,
        } = r;
        w.structure(|w| {
            w.str(kind);
            w.str(path);
            w.int(*count);
            w.str(action);
        });
    });
}

fn usage_fields(w: &mut Writer<'_>, u: &Usage) {
    let Usage {
        model,
        input_tokens,
        output_tokens,
        estimated_cost_usd,
        cached_input_tokens,
        cache_creation_input_tokens,
    } = u;
    w.opt_str(model.as_deref());
    w.opt_int(*input_tokens);
    w.opt_int(*output_tokens);
    w.opt_float(*estimated_cost_usd);
    w.opt_int(*cached_input_tokens);
    w.opt_int(*cache_creation_input_tokens);
}

fn outcome_fields(w: &mut Writer<'_>, o: &Outcome) {
    let Outcome {
        status,
        duration_ms,
        error,
        bytes_in,
        bytes_out,
        bytes_announced,
    } = o;
    w.opt_int(status.map(i64::from));
    w.float(*duration_ms);
    w.opt_str(error.as_deref());
    w.int(*bytes_in);
    w.int(*bytes_out);
    w.opt_int(*bytes_announced);
}

fn links_fields(w: &mut Writer<'_>, l: &Links) {
    let Links {
        tool_call_id,
        model_request_id,
        tool_results,
    } = l;
    w.opt_str(tool_call_id.as_deref());
    w.opt_str(model_request_id.as_deref());
    w.opt_list(tool_results.as_deref(), |w, t| {
        let ToolResult {
            tool_call_id,
            model_request_id,
        } = t;
        w.structure(|w| {
            w.str(tool_call_id);
            w.opt_str(model_request_id.as_deref());
        });
    });
}

/// `action.kind` on disk. Exhaustive both ways: a new kind needs a new code.
fn kind_code(kind: ActionKind) -> u64 {
    match kind {
        ActionKind::Llm => 1,
        ActionKind::Tool => 2,
        ActionKind::Http => 3,
        ActionKind::Tunnel => 4,
    }
}

fn kind_of(code: u64) -> Result<ActionKind, DecodeError> {
    Ok(match code {
        1 => ActionKind::Llm,
        2 => ActionKind::Tool,
        3 => ActionKind::Http,
        4 => ActionKind::Tunnel,
        _ => return Err(DecodeError::Malformed("unknown action kind")),
    })
}

/// Decodes a payload written by [`encode`] into `out`, reusing its strings and
/// lists (a roller decodes row after row into one record without allocating).
/// On error `out` holds a partly decoded row.
pub(crate) fn decode_into(payload: &[u8], out: &mut AuditRecord) -> Result<(), DecodeError> {
    let Some((&TAG, body)) = payload.split_first() else {
        return Err(DecodeError::Malformed("not a binary row"));
    };
    let AuditRecord {
        event_time,
        request_id,
        session_id,
        trace_id,
        schema_version,
        principal,
        action,
        policy,
        content_safety,
        usage,
        outcome,
        session_step,
        session_source,
        span_id,
        parent_span_id,
        links,
        intercepted_host,
        client_request_id,
        row_seq,
    } = out;
    *row_seq = None;
    let mut r = Reader(body);
    r.structure(|r| {
        *event_time = r.int()?;
        r.str_into(request_id)?;
        r.opt_str_into(session_id)?;
        r.opt_str_into(trace_id)?;
        *schema_version = r.int32()?;
        r.structure(|r| read_principal(r, principal))?;
        r.structure(|r| read_action(r, action))?;
        r.structure(|r| read_policy(r, policy))?;
        r.structure(|r| read_safety(r, content_safety))?;
        r.structure(|r| read_usage(r, usage))?;
        r.structure(|r| read_outcome(r, outcome))?;
        *session_step = r.opt_int()?;
        r.opt_str_into(session_source)?;
        r.opt_str_into(span_id)?;
        r.opt_str_into(parent_span_id)?;
        r.structure(|r| read_links(r, links))?;
        r.opt_str_into(intercepted_host)?;
        r.opt_str_into(client_request_id)
    })
}

fn read_principal(r: &mut Reader<'_>, p: &mut Principal) -> Result<(), DecodeError> {
    let Principal {
        sub,
        org,
        role,
        roles,
        issuer,
    } = p;
    r.opt_str_into(sub)?;
    r.opt_str_into(org)?;
    r.opt_str_into(role)?;
    r.opt_list_into(roles, String::new, Reader::str_into)?;
    r.opt_str_into(issuer)
}

fn read_action(r: &mut Reader<'_>, a: &mut Action) -> Result<(), DecodeError> {
    let Action {
        kind,
        route,
        method,
        path,
        upstream,
        tool,
        parameters,
        operation,
        inspected,
        model_tool_calls,
        raw_path,
    } = a;
    *kind = if r.is_empty() {
        ActionKind::Http
    } else {
        kind_of(r.uint()?)?
    };
    r.opt_str_into(route)?;
    r.str_into(method)?;
    r.str_into(path)?;
    r.opt_str_into(upstream)?;
    r.opt_str_into(tool)?;
    r.opt_str_into(parameters)?;
    r.opt_str_into(operation)?;
    *inspected = r.opt_bool()?;
    let new = || ToolCallRequest {
        id: None,
        name: String::new(),
    };
    r.opt_list_into(model_tool_calls, new, |r, c: &mut ToolCallRequest| {
        let ToolCallRequest { id, name } = c;
        r.structure(|r| {
            r.opt_str_into(id)?;
            r.str_into(name)
        })
    })?;
    r.opt_str_into(raw_path)
}

fn read_policy(r: &mut Reader<'_>, p: &mut PolicyOutcome) -> Result<(), DecodeError> {
    let PolicyOutcome {
        decision,
        rule,
        scopes,
        version,
    } = p;
    r.opt_str_into(decision)?;
    r.opt_str_into(rule)?;
    r.opt_list_into(scopes, String::new, Reader::str_into)?;
    r.opt_str_into(version)
}

fn read_safety(r: &mut Reader<'_>, c: &mut ContentSafety) -> Result<(), DecodeError> {
    let ContentSafety {
        pii_detected,
        redactions,
    } = c;
    *pii_detected = r.opt_bool()?;
    let new = || Redaction {
        kind: String::new(),
        path: String::new(),
        count: 0,
        action: String::new(),
    };
    r.opt_list_into(redactions, new, |r, item: &mut Redaction| {
        let Redaction {
            kind,
            path,
            count,
            action,
        } = item;
        r.structure(|r| {
            r.str_into(kind)?;
            r.str_into(path)?;
            *count = r.int()?;
            r.str_into(action)
        })
    })
}

fn read_usage(r: &mut Reader<'_>, u: &mut Usage) -> Result<(), DecodeError> {
    let Usage {
        model,
        input_tokens,
        output_tokens,
        estimated_cost_usd,
        cached_input_tokens,
        cache_creation_input_tokens,
    } = u;
    r.opt_str_into(model)?;
    *input_tokens = r.opt_int()?;
    *output_tokens = r.opt_int()?;
    *estimated_cost_usd = r.opt_float()?;
    *cached_input_tokens = r.opt_int()?;
    *cache_creation_input_tokens = r.opt_int()?;
    Ok(())
}

fn read_outcome(r: &mut Reader<'_>, o: &mut Outcome) -> Result<(), DecodeError> {
    let Outcome {
        status,
        duration_ms,
        error,
        bytes_in,
        bytes_out,
        bytes_announced,
    } = o;
    *status = r
        .opt_int()?
        .map(|s| i32::try_from(s).map_err(|_| DecodeError::Malformed("status out of range")))
        .transpose()?;
    *duration_ms = r.float()?;
    r.opt_str_into(error)?;
    *bytes_in = r.int()?;
    *bytes_out = r.int()?;
    *bytes_announced = r.opt_int()?;
    Ok(())
}

fn read_links(r: &mut Reader<'_>, l: &mut Links) -> Result<(), DecodeError> {
    let Links {
        tool_call_id,
        model_request_id,
        tool_results,
    } = l;
    r.opt_str_into(tool_call_id)?;
    r.opt_str_into(model_request_id)?;
    r.opt_list_into(
        tool_results,
        ToolResult::default,
        |r, t: &mut ToolResult| {
            let ToolResult {
                tool_call_id,
                model_request_id,
            } = t;
            r.structure(|r| {
                r.str_into(tool_call_id)?;
                r.opt_str_into(model_request_id)
            })
        },
    )
}

/// Bytes a `uint` of `v` takes.
fn uint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x40 {
        v >>= 6;
        n += 1;
    }
    n
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn uint(&mut self, mut v: u64) {
        while v >= 0x40 {
            self.0.push(0x40 | (v as u8 & 0x3F));
            v >>= 6;
        }
        self.0.push(v as u8);
    }

    fn int(&mut self, v: i64) {
        self.uint(zigzag(v));
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.0.push(1);
                self.int(v);
            }
            None => self.0.push(0),
        }
    }

    fn float(&mut self, v: f64) {
        self.uint(v.to_bits().swap_bytes());
    }

    fn opt_float(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.0.push(1);
                self.float(v);
            }
            None => self.0.push(0),
        }
    }

    fn opt_bool(&mut self, v: Option<bool>) {
        self.0.push(match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }

    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.uint(s.len() as u64 + 1);
                self.0.extend_from_slice(s.as_bytes());
            }
            None => self.0.push(0),
        }
    }

    fn opt_list<T>(&mut self, items: Option<&[T]>, mut item: impl FnMut(&mut Self, &T)) {
        match items {
            Some(items) => {
                self.uint(items.len() as u64 + 1);
                for i in items {
                    item(self, i);
                }
            }
            None => self.0.push(0),
        }
    }

    /// Writes the fields `f` writes, behind their length.
    fn structure(&mut self, f: impl FnOnce(&mut Self)) {
        let at = self.0.len();
        self.0.push(0);
        f(self);
        let len = (self.0.len() - at - 1) as u64;
        let width = uint_len(len);
        if width > 1 {
            // Rare (a struct of 64 bytes or more): make room for a longer length.
            let end = self.0.len();
            self.0.resize(end + width - 1, 0);
            self.0.copy_within(at + 1..end, at + width);
        }
        let mut v = len;
        for b in &mut self.0[at..at + width] {
            *b = if v >= 0x40 {
                0x40 | (v as u8 & 0x3F)
            } else {
                v as u8
            };
            v >>= 6;
        }
    }
}

/// The bytes of one struct still to read. Reading past its end gives the field's
/// default (a field the writer did not know yet).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn uint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if b >= 0x80 {
                return Err(DecodeError::Malformed("byte above 0x7F outside a string"));
            }
            let bits = u64::from(b & 0x3F);
            if shift >= 64 || (shift > 58 && bits >> (64 - shift) != 0) {
                return Err(DecodeError::Malformed("integer overflow"));
            }
            v |= bits << shift;
            if b & 0x40 == 0 {
                return Ok(v);
            }
            shift += 6;
        }
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        if self.is_empty() {
            return Ok(0);
        }
        self.uint().map(unzigzag)
    }

    fn int32(&mut self) -> Result<i32, DecodeError> {
        i32::try_from(self.int()?).map_err(|_| DecodeError::Malformed("i32 out of range"))
    }

    fn opt_int(&mut self) -> Result<Option<i64>, DecodeError> {
        if self.is_empty() {
            return Ok(None);
        }
        match self.byte()? {
            0 => Ok(None),
            1 => self.uint().map(unzigzag).map(Some),
            _ => Err(DecodeError::Malformed("option flag")),
        }
    }

    fn float(&mut self) -> Result<f64, DecodeError> {
        if self.is_empty() {
            return Ok(0.0);
        }
        Ok(f64::from_bits(self.uint()?.swap_bytes()))
    }

    fn opt_float(&mut self) -> Result<Option<f64>, DecodeError> {
        if self.is_empty() {
            return Ok(None);
        }
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(f64::from_bits(self.uint()?.swap_bytes()))),
            _ => Err(DecodeError::Malformed("option flag")),
        }
    }

    fn opt_bool(&mut self) -> Result<Option<bool>, DecodeError> {
        if self.is_empty() {
            return Ok(None);
        }
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(DecodeError::Malformed("option flag")),
        }
    }

    fn text(&mut self, len: u64) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(len)?).map_err(|_| DecodeError::Malformed("invalid UTF-8"))
    }

    fn str_into(&mut self, dst: &mut String) -> Result<(), DecodeError> {
        dst.clear();
        if self.is_empty() {
            return Ok(());
        }
        let len = self.uint()?;
        dst.push_str(self.text(len)?);
        Ok(())
    }

    fn opt_str_into(&mut self, dst: &mut Option<String>) -> Result<(), DecodeError> {
        let len = if self.is_empty() { 0 } else { self.uint()? };
        if len == 0 {
            *dst = None;
            return Ok(());
        }
        let s = self.text(len - 1)?;
        match dst {
            Some(d) => {
                d.clear();
                d.push_str(s);
            }
            None => *dst = Some(s.to_owned()),
        }
        Ok(())
    }

    fn opt_list_into<T>(
        &mut self,
        dst: &mut Option<Vec<T>>,
        new: impl FnMut() -> T,
        mut item: impl FnMut(&mut Self, &mut T) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let n = if self.is_empty() { 0 } else { self.uint()? };
        if n == 0 {
            *dst = None;
            return Ok(());
        }
        let n = usize::try_from(n - 1).map_err(|_| DecodeError::Truncated)?;
        // Every item takes at least one byte: a bogus count cannot allocate much.
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let items = dst.get_or_insert_with(Vec::new);
        items.truncate(n);
        items.resize_with(n, new);
        for i in items {
            item(self, i)?;
        }
        Ok(())
    }

    /// Reads one struct: `f` reads the fields it knows; fields after those (from
    /// a newer writer) are skipped.
    fn structure(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let body = if self.is_empty() {
            &[][..]
        } else {
            let len = self.uint()?;
            self.bytes(len)?
        };
        f(&mut Reader(body))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
