//! Content safety: find personal data and secrets in prompts, tool arguments
//! and responses, and redact or block them before they leave the pod. The audit
//! row records what was found where (`content_safety.pii_detected` and
//! `content_safety.redactions`: kind, JSON path, count, action) — never a value.
//!
//! # Detectors
//! Built-in, hand-written and validated (see docs/safety.md for the rules and
//! the measured precision / recall): [`Kind::Email`], [`Kind::Phone`] (E.164,
//! `00`-prefixed international, NANP), [`Kind::Ssn`] (area/group/serial
//! rules), [`Kind::Card`] (13–19 digits, Luhn, issuer ranges), [`Kind::Iban`]
//! (country length, mod-97), [`Kind::IpAddress`] (IPv4, IPv6), and secrets:
//! [`Kind::AwsAccessKey`], [`Kind::ApiKey`] (`sk-…`, OpenAI and Anthropic),
//! [`Kind::GithubToken`], [`Kind::SlackToken`], [`Kind::Jwt`],
//! [`Kind::PrivateKey`] (PEM) and [`Kind::Secret`] (`api_key=…`-style
//! assignments, and JSON members named like secrets). Plus named custom regexes
//! and dictionaries ([`CustomDetector`], aho-corasick).
//!
//! # What is scanned
//! Every string is normalised before the detectors read it (one place,
//! `normalize.rs`: default-ignorable characters such as zero-width spaces
//! removed, typographic dashes read as `-`, characters whose NFKC form is ASCII
//! replaced by it — full-width `４１１１` and `＠`); findings keep offsets in the
//! original string. JSON bodies: string values, integers (however written:
//! `4.111111111111111e15`), and the `text` parts of one message joined.
//! Query strings and form bodies: [`scan_form`] (decoded values, redactable);
//! path parameters: [`scan_fields`].
//!
//! # Use
//! ```
//! use custody_safety::{Action, Detectors, Kind, RedactStyle, redact, scan_body, summarize};
//!
//! let detectors = Detectors::builtin();
//! let body = br#"{"messages":[{"role":"user","content":"mail alice@example.com"}]}"#;
//! let scan = scan_body(&detectors, body).expect("scan");
//! let action_for = |k: &Kind| if *k == Kind::Email { Action::Redact } else { Action::Log };
//! let rows = summarize(&scan.findings, action_for);
//! assert_eq!(&*rows[0].path, "$.messages[0].content");
//! let forwarded = redact(body, &scan, &RedactStyle::Label, action_for).expect("redact");
//! assert_eq!(
//!     forwarded.as_deref(),
//!     Some(&br#"{"messages":[{"role":"user","content":"mail [REDACTED:EMAIL]"}]}"#[..])
//! );
//! ```
//!
//! # Invariants
//! - Pure: no I/O, no panics on any input, no unsafe code. [`Detectors`] is
//!   immutable and `Send + Sync`; share one in an `Arc`.
//! - A finding never carries the matched value; [`Summary`] and `Debug` output
//!   neither. Only [`redact()`] reads values (to hash them for tokens).
//! - Redacted JSON is valid JSON with the same structure, keys and key order:
//!   only the string tokens holding a redacted value are re-encoded.
//! - Matches never overlap; a match never starts inside a longer word or number.
//! - Scanning fails ([`SafetyError`]) only on JSON nested deeper than
//!   [`MAX_DEPTH`]; the proxy then refuses the request on routes configured to
//!   redact or block (fail closed) and logs the failure elsewhere.
//! - [`StreamScanner`] memory is bounded ([`CARRY_BYTES`] of carry-over, a
//!   bounded list of findings) and its findings do not depend on chunking for
//!   values up to [`CARRY_BYTES`] long.

#![deny(missing_docs)]

mod config;
mod detect;
mod error;
mod json;
mod kind;
mod normalize;
mod redact;
mod scan;
mod stream;
mod summary;

pub use config::{
    ConfigProblem, RedactionConfig, ResponseMode, Rules, SafetyConfig, SafetyPolicy, Setting,
    StyleName,
};
pub use detect::{CustomDetector, Detectors, Hit};
pub use error::SafetyError;
pub use json::MAX_DEPTH;
pub use kind::{Action, Kind};
pub use redact::{MIN_TOKEN_KEY_BYTES, RedactStyle, TokenKey, redact, redact_parameters};
pub use scan::{Finding, Scan, scan_body, scan_fields, scan_form, scan_text};
pub use stream::{CARRY_BYTES, MAX_STREAM_FINDINGS, StreamScanner};
pub use summary::{Summary, summarize, verdict};
