//! Byte layout of segment headers and records (specified in the [`super`] doc).

use super::RecordKind;

/// Bytes in a segment header.
pub(super) const HEADER_LEN: usize = 32;
/// The first eight bytes of every segment file.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"CSTDSPL\0";
/// The only segment format version this code reads and writes.
pub(super) const FORMAT_VERSION: u16 = 1;
/// The first four bytes of every record. `C7 8E` is a complete UTF-8 character and
/// `A3` a lone continuation byte, so the sequence never occurs in valid UTF-8.
pub const RECORD_MAGIC: [u8; 4] = [0xB5, 0xC7, 0x8E, 0xA3];
/// Bytes in a record header (magic, length, CRC, kind, sequence number).
pub(super) const RECORD_HEADER_LEN: usize = 21;
/// Largest payload accepted by an append (and believed by a reader).
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Payload bytes of a gap record: first lost seq, last lost seq, bytes dropped.
pub(super) const GAP_PAYLOAD_LEN: usize = 24;

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SegmentHeader {
    pub(super) id: u64,
    pub(super) first_seq: u64,
}

/// What the first [`HEADER_LEN`] bytes of a file say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeaderCheck {
    Valid(SegmentHeader),
    /// A checksummed header of a format version this code does not know.
    UnknownVersion(u16),
    /// Too short, wrong magic or wrong checksum.
    Damaged,
}

pub(super) fn encode_header(h: SegmentHeader) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&SEGMENT_MAGIC);
    b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // 10..12: flags, zero.
    b[12..20].copy_from_slice(&h.id.to_le_bytes());
    b[20..28].copy_from_slice(&h.first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(super) fn decode_header(b: &[u8]) -> HeaderCheck {
    let Some(b) = b.get(..HEADER_LEN) else {
        return HeaderCheck::Damaged;
    };
    if b[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&b[0..28]) != le_u32(&b[28..32]) {
        return HeaderCheck::Damaged;
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != FORMAT_VERSION {
        return HeaderCheck::UnknownVersion(version);
    }
    HeaderCheck::Valid(SegmentHeader {
        id: le_u64(&b[12..20]),
        first_seq: le_u64(&b[20..28]),
    })
}

/// A record being built: header bytes reserved, payload copied and checksummed
/// outside the spool lock; [`PendingRecord::seal`] fills in the sequence number.
pub(super) struct PendingRecord {
    bytes: Vec<u8>,
    payload_crc: u32,
}

impl PendingRecord {
    pub(super) fn new(kind: RecordKind, payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
        bytes.extend_from_slice(&RECORD_MAGIC);
        // The caller checked payload.len() <= MAX_PAYLOAD, which fits a u32.
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.push(kind.code());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(payload);
        Self {
            bytes,
            payload_crc: crc32c::crc32c(payload),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Sets the sequence number and the checksum; returns the bytes to write.
    pub(super) fn seal(&mut self, seq: u64) -> &[u8] {
        self.bytes[13..21].copy_from_slice(&seq.to_le_bytes());
        let crc = record_crc(self.payload_crc, &self.bytes[..RECORD_HEADER_LEN]);
        self.bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        &self.bytes
    }
}

/// The record checksum: CRC32C of the payload, continued over length, kind and seq.
fn record_crc(payload_crc: u32, header: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(payload_crc, &header[4..8]);
    crc32c::crc32c_append(crc, &header[12..21])
}

/// The fixed part of a record header, before the payload is checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecordHeader {
    pub(super) len: usize,
    pub(super) crc: u32,
    pub(super) kind: u8,
    pub(super) seq: u64,
}

/// Parses a record header if it starts with the magic and claims a plausible length.
pub(super) fn parse_record_header(b: &[u8]) -> Option<RecordHeader> {
    let b = b.get(..RECORD_HEADER_LEN)?;
    if b[0..4] != RECORD_MAGIC {
        return None;
    }
    let len = le_u32(&b[4..8]) as usize;
    if len > MAX_PAYLOAD || b[12] == 0 {
        return None;
    }
    Some(RecordHeader {
        len,
        crc: le_u32(&b[8..12]),
        kind: b[12],
        seq: le_u64(&b[13..21]),
    })
}

/// Whether `payload` matches the checksum in `header_bytes` (the 21 header bytes).
pub(super) fn record_crc_ok(header_bytes: &[u8], h: &RecordHeader, payload: &[u8]) -> bool {
    record_crc(crc32c::crc32c(payload), header_bytes) == h.crc
}

/// The payload of a gap record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// First sequence number lost.
    pub first_lost: u64,
    /// Last sequence number lost (inclusive).
    pub last_lost: u64,
    /// Damaged bytes dropped where these records were.
    pub bytes: u64,
}

impl Gap {
    pub(super) fn encode(&self) -> [u8; GAP_PAYLOAD_LEN] {
        let mut b = [0u8; GAP_PAYLOAD_LEN];
        b[0..8].copy_from_slice(&self.first_lost.to_le_bytes());
        b[8..16].copy_from_slice(&self.last_lost.to_le_bytes());
        b[16..24].copy_from_slice(&self.bytes.to_le_bytes());
        b
    }

    /// Decodes a gap record's payload; `None` if it is not one.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() != GAP_PAYLOAD_LEN {
            return None;
        }
        let gap = Self {
            first_lost: le_u64(&payload[0..8]),
            last_lost: le_u64(&payload[8..16]),
            bytes: le_u64(&payload[16..24]),
        };
        (gap.first_lost <= gap.last_lost).then_some(gap)
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
