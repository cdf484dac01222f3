//! One layer of decoding: a whole encoded body in, its decoded bytes out, produced a
//! chunk at a time into a [`Capped`] buffer so that output past the cap is refused
//! before it is held. Each decoder insists on a complete stream that uses all of
//! its input: truncation, trailing bytes and bad checksums are [`Failure::Invalid`].

use super::Coding;
use std::io::Read;

/// Size of the scratch buffer each decoder writes into.
const CHUNK: usize = 16 * 1024;
/// The largest zstd window the `zstd` content coding allows (RFC 9659 §3: 8 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Why a layer could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The output would pass the cap.
    Exceeded,
    /// The data is not valid for its coding.
    Invalid(String),
}

/// Decodes one layer into at most `cap` bytes.
pub(crate) fn decode(coding: Coding, input: &[u8], cap: usize) -> Result<Vec<u8>, Failure> {
    match coding {
        Coding::Gzip => gzip(input, cap),
        Coding::Deflate => zlib(input, cap),
        Coding::Br => brotli(input, cap),
        Coding::Zstd => zstd(input, cap),
    }
}

/// A growing buffer that never holds, nor reserves, more than `cap` bytes.
pub(crate) struct Capped {
    out: Vec<u8>,
    cap: usize,
}

impl Capped {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            out: Vec::new(),
            cap,
        }
    }

    /// Appends `data`, or fails without growing when the cap would be passed.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), Failure> {
        let need = self.out.len() + data.len();
        if need > self.cap {
            return Err(Failure::Exceeded);
        }
        if need > self.out.capacity() {
            let target = need
                .max(self.out.capacity().saturating_mul(2))
                .min(self.cap);
            self.out.reserve_exact(target - self.out.len());
        }
        self.out.extend_from_slice(data);
        Ok(())
    }

    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.out
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.out.capacity()
    }
}

/// Reads `reader` to its end into a [`Capped`] buffer.
fn read_capped(mut reader: impl Read, cap: usize) -> Result<Capped, Failure> {
    let mut out = Capped::new(cap);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.push(&chunk[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Invalid(e.to_string())),
        }
    }
}

/// gzip (RFC 1952), every member: each member's CRC-32 and size are checked, and
/// anything after the last member must be another member.
fn gzip(input: &[u8], cap: usize) -> Result<Vec<u8>, Failure> {
    let mut decoder = flate2::bufread::MultiGzDecoder::new(input);
    let out = read_capped(&mut decoder, cap)?;
    if !decoder.get_ref().is_empty() {
        return Err(Failure::Invalid("bytes after the gzip stream".into()));
    }
    Ok(out.into_inner())
}

/// `deflate` as RFC 9110 defines it: a zlib stream (RFC 1950) with its Adler-32,
/// to its end and nothing after.
fn zlib(input: &[u8], cap: usize) -> Result<Vec<u8>, Failure> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut z = Decompress::new(true);
    let mut out = Capped::new(cap);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let start = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        let rest = input.get(start..).unwrap_or_default();
        let before = z.total_out();
        let status = z
            .decompress(rest, &mut chunk, FlushDecompress::None)
            .map_err(|e| Failure::Invalid(format!("{e} (deflate must be zlib-wrapped)")))?;
        let produced = usize::try_from(z.total_out() - before).unwrap_or(usize::MAX);
        out.push(chunk.get(..produced).unwrap_or_default())?;
        let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        match status {
            Status::StreamEnd if consumed == input.len() => return Ok(out.into_inner()),
            Status::StreamEnd => {
                return Err(Failure::Invalid("bytes after the zlib stream".into()));
            }
            // No progress: the stream is cut short.
            _ if produced == 0 && consumed == start => {
                return Err(Failure::Invalid("the zlib stream is truncated".into()));
            }
            _ => {}
        }
    }
}

/// Brotli (RFC 7932), to its last meta-block and nothing after. Large-window
/// streams are not accepted; a standard window is at most 16 MiB.
fn brotli(input: &[u8], cap: usize) -> Result<Vec<u8>, Failure> {
    use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
    // `new_strict`: RFC 7932's windows only; `new` would accept large-window
    // streams, whose window may be up to 1 GiB.
    let mut state = BrotliState::new_strict(
        StandardAlloc::default(),
        StandardAlloc::default(),
        StandardAlloc::default(),
    );
    let mut out = Capped::new(cap);
    let mut chunk = vec![0u8; CHUNK];
    let mut available_in = input.len();
    let mut input_offset = 0;
    let mut total_out = 0;
    loop {
        let mut available_out = chunk.len();
        let mut output_offset = 0;
        let result = BrotliDecompressStream(
            &mut available_in,
            &mut input_offset,
            input,
            &mut available_out,
            &mut output_offset,
            &mut chunk,
            &mut total_out,
            &mut state,
        );
        out.push(chunk.get(..output_offset).unwrap_or_default())?;
        match result {
            BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultSuccess if input_offset == input.len() => {
                return Ok(out.into_inner());
            }
            BrotliResult::ResultSuccess => {
                return Err(Failure::Invalid("bytes after the brotli stream".into()));
            }
            BrotliResult::NeedsMoreInput => {
                return Err(Failure::Invalid("the brotli stream is truncated".into()));
            }
            BrotliResult::ResultFailure => {
                return Err(Failure::Invalid("corrupt brotli stream".into()));
            }
        }
    }
}

/// Zstandard (RFC 8878), every frame (skippable frames skipped). A frame that
/// needs a window larger than the content coding allows (8 MiB, RFC 9659) is
/// refused rather than allocated.
fn zstd(input: &[u8], cap: usize) -> Result<Vec<u8>, Failure> {
    let invalid = |e: std::io::Error| Failure::Invalid(e.to_string());
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(invalid)?;
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(invalid)?;
    let out = read_capped(&mut decoder, cap)?;
    Ok(out.into_inner())
}
