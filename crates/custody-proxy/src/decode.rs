//! Request `Content-Encoding`: the body custody inspects is the body it forwards.
//!
//! One entry point, [`Decoder::request`], runs right after the body is read and
//! before anything looks at it. Its contract:
//!
//! - **Codings.** `gzip` (and its alias `x-gzip`; every member of a multi-member
//!   stream), `deflate` (the zlib format of RFC 9110 §8.4.1.2 — raw deflate without
//!   the zlib wrapper is malformed), `br` and `zstd` (every frame; skippable frames
//!   skipped) are decoded. `identity` and empty list elements are ignored. Names are
//!   case-insensitive; several header lines are one list, in order.
//! - **Stacks.** `Content-Encoding: gzip, br` lists codings in the order they were
//!   applied, so they are undone last first (`br`, then `gzip`). At most
//!   [`MAX_CODINGS`] codings; a longer stack is unsupported.
//! - **Decoded.** The body becomes the decoded bytes; `Content-Encoding` is removed,
//!   and so are the digests of the encoded content (`Content-Digest`, `Repr-Digest`,
//!   `Digest`, `Content-MD5`), which no longer describe what is forwarded.
//!   `Content-Length` is set by the upstream client from the decoded body. Inspection,
//!   policy, safety, the row and the upstream all see the decoded bytes; the encoded
//!   ones are never forwarded.
//! - **Limits.** Every layer's output is capped while it is produced, never after:
//!   the decoder writes into a buffer that refuses to grow past the cap, so a bomb
//!   costs at most the cap in output memory, plus the format's own window (32 KiB
//!   for gzip and deflate; at most 8 MiB for zstd, RFC 9659's limit for the content
//!   coding, a frame asking for more being malformed; at most 16 MiB for br). The
//!   cap is `limits.max_request_body` ([`Refusal::TooLarge`]) or, when smaller,
//!   `limits.max_decompression_ratio` times the bytes received
//!   ([`Refusal::Ratio`]) — though never less than [`RATIO_FLOOR`], so small bodies
//!   are not refused for compressing well. Both are refused on every route.
//! - **Undecodable.** An unknown coding ([`Refusal::Unsupported`]) or data that is
//!   not what its coding says ([`Refusal::Malformed`]: corrupt, truncated, trailing
//!   bytes, a bad checksum) is refused on an enforcing route (a policy, or content
//!   safety that redacts or blocks): what custody cannot read it cannot allow. On
//!   other routes the request is forwarded exactly as received, header included,
//!   and [`RequestBody::note`] marks the row `action.inspected = false` with the
//!   reason in `outcome.error`.
//! - **Nothing to decode.** A request without a coding, with only `identity`, or
//!   with an empty body is passed through (the header dropped) and not counted.
//!
//! - **Over the budget.** The decoded body is held beside the encoded one and draws
//!   on `limits.buffer_budget` ([`crate::budget`]): decoding stops where the budget
//!   ends, 503 `buffer_budget_exhausted` (counted as `too_large` below).
//!
//! Every request with a coding is counted once in
//! `custody_request_decodings_total{encoding, result}` ([`Label`], [`Outcome`]).

use crate::budget::{Held, Lease};
use crate::config::LimitsConfig;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use bytes::Bytes;
use custody_audit::AuditRecord;
use http::{HeaderMap, header};
use std::sync::Arc;

mod codecs;
#[cfg(test)]
mod tests;

/// Most codings undone for one request.
pub(crate) const MAX_CODINGS: usize = 2;
/// A body that decodes to at most this many bytes is never refused for its ratio.
pub(crate) const RATIO_FLOOR: u64 = 64 << 10;
/// What a 415 answer lists in `Accept-Encoding` (RFC 9110 §12.5.3).
pub(crate) const ACCEPTED: &str = "gzip, deflate, br, zstd";
/// Longest coding name quoted in a message.
const MAX_NAME_CHARS: usize = 40;

/// A content coding custody decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

impl Coding {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The `encoding` label of `custody_request_decodings_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Label {
    One(Coding),
    /// More than one coding.
    Stacked,
    /// A coding custody does not know.
    Other,
}

impl Label {
    /// Every label value, in metric order.
    pub(crate) const ALL: [&'static str; 6] = ["gzip", "deflate", "br", "zstd", "stacked", "other"];

    pub(crate) fn index(self) -> usize {
        match self {
            Label::One(Coding::Gzip) => 0,
            Label::One(Coding::Deflate) => 1,
            Label::One(Coding::Br) => 2,
            Label::One(Coding::Zstd) => 3,
            Label::Stacked => 4,
            Label::Other => 5,
        }
    }
}

/// The `result` label of `custody_request_decodings_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Decoded,
    TooLarge,
    Ratio,
    Malformed,
    Unsupported,
}

impl Outcome {
    /// Every result value, in metric order.
    pub(crate) const ALL: [&'static str; 5] =
        ["decoded", "too_large", "ratio", "malformed", "unsupported"];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Why a request's body was not decoded. On enforcing routes (and always for the
/// two limits) the request is refused with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The decoded body would exceed `limits.max_request_body`.
    #[error(
        "the request body decoded from content-encoding {encoding} exceeds the limit of {limit} bytes (limits.max_request_body)"
    )]
    TooLarge {
        /// The `Content-Encoding` as sent (shortened).
        encoding: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The decoded body would be more than `limits.max_decompression_ratio` times
    /// the bytes received.
    #[error(
        "the request body decoded from content-encoding {encoding} expands more than {ratio} times its {received} bytes (limits.max_decompression_ratio)"
    )]
    Ratio {
        /// The `Content-Encoding` as sent (shortened).
        encoding: String,
        /// The configured ratio.
        ratio: u64,
        /// Bytes received.
        received: u64,
    },
    /// A coding custody does not decode, or too many codings.
    #[error(
        "content-encoding {encoding} is not supported: custody decodes {ACCEPTED}, at most {MAX_CODINGS} stacked"
    )]
    Unsupported {
        /// The `Content-Encoding` as sent (shortened).
        encoding: String,
    },
    /// The body is not valid data of its coding.
    #[error("the request body is not valid {coding} data: {cause}")]
    Malformed {
        /// The coding that failed.
        coding: &'static str,
        /// What the decoder said.
        cause: String,
    },
}

impl Refusal {
    /// `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "decoded_body_too_large",
            Refusal::Ratio { .. } => "decompression_ratio_exceeded",
            Refusal::Unsupported { .. } => "unsupported_content_encoding",
            Refusal::Malformed { .. } => "malformed_content_encoding",
        }
    }

    /// `policy.rule`.
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "integrity:decoded_body_too_large",
            Refusal::Ratio { .. } => "integrity:decompression_ratio",
            Refusal::Unsupported { .. } | Refusal::Malformed { .. } => "integrity:content_encoding",
        }
    }

    /// 413 for the limits, 415 for an unknown coding, 400 for malformed data.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::TooLarge { .. } | Refusal::Ratio { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Unsupported { .. } => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Malformed { .. } => http::StatusCode::BAD_REQUEST,
        }
    }

    fn outcome(&self) -> Outcome {
        match self {
            Refusal::TooLarge { .. } => Outcome::TooLarge,
            Refusal::Ratio { .. } => Outcome::Ratio,
            Refusal::Unsupported { .. } => Outcome::Unsupported,
            Refusal::Malformed { .. } => Outcome::Malformed,
        }
    }
}

/// The body to inspect and forward.
#[derive(Debug)]
pub(crate) struct RequestBody {
    /// Decoded, or (undecodable on a non-enforcing route) as received.
    pub(crate) body: Bytes,
    /// Why the body was forwarded undecoded.
    undecoded: Option<Refusal>,
}

impl RequestBody {
    /// After inspection: a body forwarded undecoded was not inspected, whatever
    /// inspection made of its bytes; the row says why.
    pub(crate) fn note(&self, record: &mut AuditRecord) {
        if let Some(why) = &self.undecoded {
            record.action.inspected = Some(false);
            record.outcome.error = Some(format!("{why}; forwarded as received, not inspected"));
        }
    }
}

/// Why decoding stopped short.
#[derive(Debug)]
enum Stop {
    /// A limit or a malformed body ([`Refusal`]).
    Refused(Refusal),
    /// The buffer budget had no room for more of the decoded body.
    Budget,
}

/// The decoding step: its limits and its counter.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_body: u64,
    max_ratio: u64,
    metrics: Arc<Metrics>,
}

impl Decoder {
    pub(crate) fn new(limits: &LimitsConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            max_body: limits.max_request_body,
            max_ratio: limits.max_decompression_ratio,
            metrics,
        }
    }

    /// Decodes `body` as its `Content-Encoding` says, rewriting `headers` to match
    /// what is returned (see the module docs). `enforcing`: the route enforces a
    /// policy or content safety, so an undecodable body is refused.
    ///
    /// The decoded body is held beside the encoded one, so it draws on `lease` as it
    /// grows: decoding stops where the budget ends ([`crate::budget`], 503).
    pub(crate) fn request(
        &self,
        headers: &mut HeaderMap,
        body: Bytes,
        enforcing: bool,
        lease: &mut Lease,
    ) -> Result<RequestBody, ProxyError> {
        let plain = |body| {
            Ok(RequestBody {
                body,
                undecoded: None,
            })
        };
        let room = lease.available();
        let Some((label, result)) = self.decode(headers, &body, room) else {
            headers.remove(header::CONTENT_ENCODING);
            return plain(body);
        };
        let outcome = match &result {
            Ok(_) => Outcome::Decoded,
            Err(Stop::Refused(refusal)) => refusal.outcome(),
            Err(Stop::Budget) => Outcome::TooLarge,
        };
        self.metrics.decoding(label, outcome);
        let result = match result {
            Err(Stop::Budget) => return Err(lease.refuse(Held::Decoded, room + 1).into()),
            Ok(decoded) => lease
                .grow(Held::Decoded, decoded.len() as u64)
                .map(|()| decoded)
                .map_err(ProxyError::from),
            Err(Stop::Refused(refusal)) => Err(ProxyError::Encoding(refusal)),
        };
        match result {
            Err(ProxyError::Encoding(refusal)) => self.refused(body, refusal, enforcing),
            Err(e) => Err(e),
            Ok(decoded) => {
                for name in [
                    header::CONTENT_ENCODING.as_str(),
                    "content-digest",
                    "repr-digest",
                    "digest",
                    "content-md5",
                ] {
                    headers.remove(name);
                }
                plain(decoded)
            }
        }
    }

    /// A body that could not be decoded: refused when too large or on an enforcing
    /// route, else forwarded as received.
    fn refused(
        &self,
        body: Bytes,
        refusal: Refusal,
        enforcing: bool,
    ) -> Result<RequestBody, ProxyError> {
        match refusal {
            Refusal::TooLarge { .. } | Refusal::Ratio { .. } => Err(refusal.into()),
            _ if enforcing => Err(refusal.into()),
            _ => {
                tracing::debug!(error = %refusal, "request body forwarded undecoded");
                Ok(RequestBody {
                    body,
                    undecoded: Some(refusal),
                })
            }
        }
    }

    /// `None` when there is nothing to decode; else the metric label and the
    /// decoded body or why not.
    /// `room`: the budget left for the decoded body.
    fn decode(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        room: u64,
    ) -> Option<(Label, Result<Bytes, Stop>)> {
        let mut names = Vec::new();
        for value in headers.get_all(header::CONTENT_ENCODING) {
            let text = String::from_utf8_lossy(value.as_bytes());
            names.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("identity"))
                    .map(str::to_owned),
            );
        }
        if names.is_empty() || body.is_empty() {
            return None;
        }
        let shown = shorten(&names.join(", "));
        let codings: Option<Vec<Coding>> = names.iter().map(|n| Coding::parse(n)).collect();
        let label = match (&codings, names.len()) {
            (None, _) => Label::Other,
            (Some(c), 1) => Label::One(c[0]),
            (Some(_), _) => Label::Stacked,
        };
        let Some(codings) = codings.filter(|c| c.len() <= MAX_CODINGS) else {
            let refusal = Refusal::Unsupported { encoding: shown };
            return Some((label, Err(Stop::Refused(refusal))));
        };
        let received = body.len() as u64;
        let by_ratio = self.max_ratio.saturating_mul(received).max(RATIO_FLOOR);
        let (cap, exceeded) = if by_ratio < self.max_body {
            let e = Refusal::Ratio {
                encoding: shown,
                ratio: self.max_ratio,
                received,
            };
            (by_ratio, e)
        } else {
            let e = Refusal::TooLarge {
                encoding: shown,
                limit: self.max_body,
            };
            (self.max_body, e)
        };
        // The budget binds first when it leaves less room than the limits.
        let (cap, exceeded) = if room < cap {
            (room, Stop::Budget)
        } else {
            (cap, Stop::Refused(exceeded))
        };
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let mut current = body.clone();
        for coding in codings.iter().rev() {
            current = match codecs::decode(*coding, &current, cap) {
                Ok(out) => Bytes::from(out),
                Err(codecs::Failure::Exceeded) => return Some((label, Err(exceeded))),
                Err(codecs::Failure::Invalid(cause)) => {
                    let refusal = Refusal::Malformed {
                        coding: coding.as_str(),
                        cause,
                    };
                    return Some((label, Err(Stop::Refused(refusal))));
                }
            };
        }
        Some((label, Ok(current)))
    }
}

/// A client-sent header value made safe and short for a message.
fn shorten(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_NAME_CHARS)
        .collect();
    if text.chars().count() > MAX_NAME_CHARS {
        out.push('…');
    }
    out
}
