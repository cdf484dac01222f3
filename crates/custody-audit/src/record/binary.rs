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
//! Every struct's fields are listed once, in a `wire_struct!` declaration that
//! destructures it without `..` both to encode and to decode, so a field added to
//! the record (or to `custody_core`'s `Principal` and `Action`) does not compile
//! until it is encoded and decoded; `tests::every_field_round_trips` then checks
//! it on a record with every field set.
//!
//! Because only strings hold bytes above 0x7F, a reader checks once that the
//! whole payload is UTF-8 and then takes each string as a slice of it; a length
//! that does not end on a character boundary is damage.

use super::{
    AnomalyFinding, AuditRecord, ContentSafety, Links, Outcome, PolicyOutcome, Redaction,
    ToolResult, Usage,
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
    r.write(&mut Writer(out));
}

/// Decodes a payload written by [`encode`] into `out`, reusing its strings and
/// lists (a roller decodes row after row into one record without allocating).
/// On error `out` holds a partly decoded row.
pub(crate) fn decode_into(payload: &[u8], out: &mut AuditRecord) -> Result<(), DecodeError> {
    let Some((&TAG, body)) = payload.split_first() else {
        return Err(DecodeError::Malformed("not a binary row"));
    };
    // Every byte outside strings is ASCII, so a row whose strings are all UTF-8
    // is UTF-8 as a whole: one check here instead of one per string. A string is
    // then a slice of it, which must start and end on a character boundary.
    let body = std::str::from_utf8(body).map_err(|_| DecodeError::Malformed("invalid UTF-8"))?;
    out.read(&mut Reader(body))
}

/// A value with one encoding: how [`encode`] writes it and how [`decode_into`]
/// reads it back in place (reusing what it holds).
trait Wire {
    fn write(&self, w: &mut Writer<'_>);
    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError>;
}

/// A list item: what a new item holds before its encoding is read into it.
trait Item: Wire {
    fn blank() -> Self;
}

/// Declares how a struct is encoded: its fields in the order they are written,
/// each in its type's [`Wire`] form. Defines `$write` (writes the fields) and
/// `$read` (reads them), and makes the struct a [`Wire`] value: its fields behind
/// their length. A field after `not spooled` is neither written nor read; decoding
/// resets it to its default.
macro_rules! wire_struct {
    (
        $write:ident, $read:ident,
        $ty:ident { $($field:ident),* $(,)? } $(not spooled: $skipped:ident)?
    ) => {
        fn $write(w: &mut Writer<'_>, v: &$ty) {
            let $ty { $($field,)* $($skipped: _)? } = v;
            $($field.write(w);)*
        }

        fn $read(r: &mut Reader<'_>, v: &mut $ty) -> Result<(), DecodeError> {
            let $ty { $($field,)* $($skipped)? } = v;
            $(*$skipped = Default::default();)?
            $($field.read(r)?;)*
            Ok(())
        }

        impl Wire for $ty {
            fn write(&self, w: &mut Writer<'_>) {
                w.structure(|w| $write(w, self));
            }

            fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
                r.structure(|r| $read(r, self))
            }
        }
    };
}

wire_struct!(
    record_fields,
    read_record,
    AuditRecord {
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
        anomalies,
    }
    // Numbered when the row is built into a file.
    not spooled: row_seq
);

wire_struct!(
    anomaly_fields,
    read_anomaly,
    AnomalyFinding {
        signal,
        score,
        baseline,
        observed,
    }
);

wire_struct!(
    principal_fields,
    read_principal,
    Principal {
        sub,
        org,
        role,
        roles,
        issuer,
    }
);

wire_struct!(
    action_fields,
    read_action,
    Action {
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
        model,
        housekeeping,
    }
);

wire_struct!(call_fields, read_call, ToolCallRequest { id, name });

wire_struct!(
    policy_fields,
    read_policy,
    PolicyOutcome {
        decision,
        rule,
        scopes,
        version,
    }
);

wire_struct!(
    safety_fields,
    read_safety,
    ContentSafety {
        pii_detected,
        redactions,
        handling,
    }
);

wire_struct!(
    redaction_fields,
    read_redaction,
    Redaction {
        kind,
        path,
        count,
        action,
        side,
        handling,
    }
);

wire_struct!(
    usage_fields,
    read_usage,
    Usage {
        model,
        input_tokens,
        output_tokens,
        estimated_cost_usd,
        cached_input_tokens,
        cache_creation_input_tokens,
    }
);

wire_struct!(
    outcome_fields,
    read_outcome,
    Outcome {
        status,
        duration_ms,
        error,
        bytes_in,
        bytes_out,
        bytes_announced,
    }
);

wire_struct!(
    links_fields,
    read_links,
    Links {
        tool_call_id,
        model_request_id,
        tool_results,
    }
);

wire_struct!(
    tool_result_fields,
    read_tool_result,
    ToolResult {
        tool_call_id,
        model_request_id,
    }
);

/// `string`.
impl Wire for String {
    fn write(&self, w: &mut Writer<'_>) {
        w.str(self);
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        r.str_into(self)
    }
}

/// `opt<str>`.
impl Wire for Option<String> {
    fn write(&self, w: &mut Writer<'_>) {
        w.opt_str(self.as_deref());
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        r.opt_str_into(self)
    }
}

/// Implements [`Wire`] for plain values: written by the [`Writer`] method and
/// read by the [`Reader`] method of the given name.
macro_rules! wire_value {
    ($($ty:ty => $method:ident,)*) => {$(
        impl Wire for $ty {
            fn write(&self, w: &mut Writer<'_>) {
                w.$method(*self);
            }

            fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
                *self = r.$method()?;
                Ok(())
            }
        }
    )*};
}

wire_value! {
    i64 => int,
    Option<i64> => opt_int,
    f64 => float,
    Option<f64> => opt_float,
    Option<bool> => opt_bool,
}

/// `int`, in the range of an `i32`.
impl Wire for i32 {
    fn write(&self, w: &mut Writer<'_>) {
        w.int(i64::from(*self));
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        *self = i32::try_from(r.int()?).map_err(|_| DecodeError::Malformed("i32 out of range"))?;
        Ok(())
    }
}

/// `opt<int>`, in the range of an `i32` (the one such field is `outcome.status`).
impl Wire for Option<i32> {
    fn write(&self, w: &mut Writer<'_>) {
        w.opt_int(self.map(i64::from));
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        *self = r
            .opt_int()?
            .map(|s| i32::try_from(s).map_err(|_| DecodeError::Malformed("status out of range")))
            .transpose()?;
        Ok(())
    }
}

/// `kind`; `http` past the end of the struct.
impl Wire for ActionKind {
    fn write(&self, w: &mut Writer<'_>) {
        w.uint(kind_code(*self));
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        *self = if r.is_empty() {
            ActionKind::Http
        } else {
            kind_of(r.uint()?)?
        };
        Ok(())
    }
}

/// `opt<list>`.
impl<T: Item> Wire for Option<Vec<T>> {
    fn write(&self, w: &mut Writer<'_>) {
        w.opt_list(self.as_deref(), |w, item| item.write(w));
    }

    fn read(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        r.opt_list_into(self, T::blank, |r, item| item.read(r))
    }
}

impl Item for String {
    fn blank() -> Self {
        String::new()
    }
}

impl Item for ToolCallRequest {
    fn blank() -> Self {
        ToolCallRequest {
            id: None,
            name: String::new(),
        }
    }
}

impl Item for Redaction {
    fn blank() -> Self {
        Redaction {
            kind: String::new(),
            path: String::new(),
            count: 0,
            action: String::new(),
            side: None,
            handling: None,
        }
    }
}

impl Item for AnomalyFinding {
    fn blank() -> Self {
        AnomalyFinding {
            signal: String::new(),
            score: 0.0,
            baseline: None,
            observed: 0.0,
        }
    }
}

impl Item for ToolResult {
    fn blank() -> Self {
        ToolResult::default()
    }
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

/// The bytes of a `uint`: 6 bits each, least significant first, 0x40 set on all
/// but the last.
fn uint_bytes(mut v: u64) -> impl Iterator<Item = u8> {
    let mut more = true;
    std::iter::from_fn(move || {
        if !more {
            return None;
        }
        let low = v as u8 & 0x3F;
        v >>= 6;
        more = v != 0;
        Some(if more { 0x40 | low } else { low })
    })
}

/// Bytes a `uint` of `v` takes.
fn uint_len(v: u64) -> usize {
    uint_bytes(v).count()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A `float` as the `uint` written for it.
fn float_bits(v: f64) -> u64 {
    v.to_bits().swap_bytes()
}

fn float_of_bits(v: u64) -> f64 {
    f64::from_bits(v.swap_bytes())
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    #[inline]
    fn uint(&mut self, v: u64) {
        // Most values (lengths, small counts, tags) fit one byte.
        if v < 0x40 {
            self.0.push(v as u8);
        } else {
            self.long_uint(v);
        }
    }

    #[inline(never)]
    fn long_uint(&mut self, v: u64) {
        // At most 11 bytes of six bits; gathered first, so that the vector grows
        // once rather than being checked byte by byte.
        let mut buf = [0u8; 11];
        let mut n = 0;
        for b in uint_bytes(v) {
            buf[n] = b;
            n += 1;
        }
        self.0.extend_from_slice(&buf[..n]);
    }

    fn int(&mut self, v: i64) {
        self.uint(zigzag(v));
    }

    fn opt_int(&mut self, v: Option<i64>) {
        self.opt_uint(v.map(zigzag));
    }

    fn float(&mut self, v: f64) {
        self.uint(float_bits(v));
    }

    fn opt_float(&mut self, v: Option<f64>) {
        self.opt_uint(v.map(float_bits));
    }

    /// `0`, or `1` and the `uint`.
    fn opt_uint(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.0.push(1);
                self.uint(v);
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
        self.opt_len(s.map(str::len));
        if let Some(s) = s {
            self.0.extend_from_slice(s.as_bytes());
        }
    }

    fn opt_list<T>(&mut self, items: Option<&[T]>, mut item: impl FnMut(&mut Self, &T)) {
        self.opt_len(items.map(<[T]>::len));
        for i in items.into_iter().flatten() {
            item(self, i);
        }
    }

    /// The length of an optional string or list: `0` for none, else `len + 1`.
    fn opt_len(&mut self, len: Option<usize>) {
        self.uint(len.map_or(0, |n| n as u64 + 1));
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
        for (slot, b) in self.0[at..at + width].iter_mut().zip(uint_bytes(len)) {
            *slot = b;
        }
    }
}

/// The bytes of one struct still to read, checked to be UTF-8 once for the whole
/// row ([`decode_into`]). Reading past its end gives the field's default (a field
/// the writer did not know yet).
struct Reader<'a>(&'a str);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A byte outside a string: always ASCII.
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let &b = self.0.as_bytes().first().ok_or(DecodeError::Truncated)?;
        if b >= 0x80 {
            return Err(DecodeError::Malformed("byte above 0x7F outside a string"));
        }
        // One ASCII byte is one character: the rest starts on a boundary.
        self.0 = self.0.get(1..).ok_or(DecodeError::Truncated)?;
        Ok(b)
    }

    /// The next `n` bytes: a string or a struct. Both end before an ASCII byte
    /// (or at the row's end), so a length that cuts a character is damage.
    fn bytes(&mut self, n: u64) -> Result<&'a str, DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let Some((head, rest)) = self.0.split_at_checked(n) else {
            return Err(DecodeError::Malformed("invalid UTF-8"));
        };
        self.0 = rest;
        Ok(head)
    }

    fn uint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
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

    /// A `uint`, or 0 past the end of the struct.
    fn uint_or_0(&mut self) -> Result<u64, DecodeError> {
        if self.is_empty() {
            return Ok(0);
        }
        self.uint()
    }

    /// The first byte of an option, or 0 (none) past the end of the struct.
    fn flag(&mut self) -> Result<u8, DecodeError> {
        if self.is_empty() {
            return Ok(0);
        }
        self.byte()
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        self.uint_or_0().map(unzigzag)
    }

    fn opt_int(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(self.opt_uint()?.map(unzigzag))
    }

    fn float(&mut self) -> Result<f64, DecodeError> {
        self.uint_or_0().map(float_of_bits)
    }

    fn opt_float(&mut self) -> Result<Option<f64>, DecodeError> {
        Ok(self.opt_uint()?.map(float_of_bits))
    }

    /// `0`, or `1` and a `uint`.
    fn opt_uint(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.flag()? {
            0 => Ok(None),
            1 => self.uint().map(Some),
            _ => Err(DecodeError::Malformed("option flag")),
        }
    }

    fn opt_bool(&mut self) -> Result<Option<bool>, DecodeError> {
        match self.flag()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(DecodeError::Malformed("option flag")),
        }
    }

    fn str_into(&mut self, dst: &mut String) -> Result<(), DecodeError> {
        dst.clear();
        let len = self.uint_or_0()?;
        dst.push_str(self.bytes(len)?);
        Ok(())
    }

    /// The length of an optional string or list: `None` for none (also past the
    /// end of the struct).
    fn opt_len(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(self.uint_or_0()?.checked_sub(1))
    }

    fn opt_str_into(&mut self, dst: &mut Option<String>) -> Result<(), DecodeError> {
        let Some(len) = self.opt_len()? else {
            *dst = None;
            return Ok(());
        };
        let s = self.bytes(len)?;
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
        let Some(n) = self.opt_len()? else {
            *dst = None;
            return Ok(());
        };
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
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
        let len = self.uint_or_0()?;
        let body = self.bytes(len)?;
        f(&mut Reader(body))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
