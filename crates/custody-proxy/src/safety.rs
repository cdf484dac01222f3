//! The content-safety stage: after policy, scan what the request carries for PII
//! and secrets (`custody-safety`) — the body, the query string's values, a form
//! body's fields and the tool template's path parameters, as custody decodes them
//! into `action.parameters` — record what was found where (never the value),
//! redact (body and query as forwarded) or block per the `safety` config (a path
//! parameter to redact is blocked), and store `action.parameters` only after
//! redaction. Responses are scanned as they stream by (log mode); where
//! `safety.responses: redact` applies, a non-streamed response is held, scanned
//! and redacted before the client sees it ([`Safety::response`]).
//!
//! Fail closed: when a body cannot be scanned (e.g. JSON nested deeper than
//! [`custody_safety::MAX_DEPTH`]) on a route or tool that redacts or blocks
//! something, the request is refused; elsewhere it is forwarded and the row says
//! it was not scanned.

use crate::error::ProxyError;
use crate::error::StartError;
use crate::inspect::RequestInspection;
use bytes::Bytes;
use custody_audit::{AuditRecord, Redaction};
use custody_inspect::Media;
use custody_safety::{
    Action, Finding, Kind, RedactStyle, SafetyPolicy, Scan, StreamScanner, TokenKey, redact,
    redact_parameters, scan_body, scan_fields, scan_form, summarize,
};
use std::sync::Arc;

/// Stored in `action.parameters` when they could not be scanned (so no unscanned
/// value reaches the audit files).
const UNSCANNED_PARAMETERS: &str = r#"{"_unscanned":true}"#;

/// The stage: the validated `safety` config and the redaction style.
#[derive(Debug)]
pub(crate) struct Safety {
    policy: SafetyPolicy,
    style: RedactStyle,
    /// Paths these detectors found nothing in.
    clean_paths: CleanPaths,
    /// The place a raw response scan reports its findings under, shared by every
    /// response's scanner.
    response_side: Arc<str>,
}

/// The most paths [`CleanPaths`] remembers; when full it starts again empty.
const CLEAN_PATHS: usize = 1024;

/// Request paths (as received, before decoding) in which the stage's detectors
/// found nothing at all. Agents call the same few paths over and over, and a
/// path's scan (decode each segment, JSON-encode, scan) gives the same answer
/// each time, so a path found clean is not scanned again. Only "nothing found"
/// is remembered: a path with a finding is scanned every time, because what is
/// done about a finding depends on the route. The set belongs to one `Safety`,
/// built from one config, so a reload that changes the detectors starts afresh.
#[derive(Debug, Default)]
struct CleanPaths(std::sync::Mutex<std::collections::HashSet<String>>);

impl CleanPaths {
    fn contains(&self, path: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(path)
    }

    fn insert(&self, path: &str) {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.len() >= CLEAN_PATHS {
            set.clear();
        }
        set.insert(path.to_owned());
    }
}

impl Safety {
    /// Builds the stage; reads `safety.redaction.key_file` for the token style.
    pub(crate) fn load(policy: &SafetyPolicy) -> Result<Self, StartError> {
        let redaction = policy.redaction();
        let style = match (&redaction.style, &redaction.key_file) {
            (custody_safety::StyleName::Token, Some(path)) => {
                let key = std::fs::read(path).map_err(|e| {
                    StartError::Internal(format!(
                        "safety.redaction.key_file {}: {e}",
                        path.display()
                    ))
                })?;
                let key = TokenKey::new(key.trim_ascii()).map_err(|e| {
                    StartError::Internal(format!(
                        "safety.redaction.key_file {}: {e}",
                        path.display()
                    ))
                })?;
                RedactStyle::Token(key)
            }
            _ => RedactStyle::Label,
        };
        Ok(Self {
            policy: policy.clone(),
            style,
            clean_paths: CleanPaths::default(),
            response_side: Arc::from(RESPONSE),
        })
    }

    /// Scans what the request carries — the body (JSON-aware, a form body field
    /// by field, text otherwise), the query string's values and the tool
    /// template's path parameters, all as custody decodes them into
    /// `action.parameters` — records the findings, then blocks, redacts (the body
    /// is returned and the query rewritten in `parts.uri`) or lets it pass;
    /// always redacts `action.parameters`. A path parameter that would need
    /// redacting is blocked instead: the path names the resource and is not
    /// rewritten.
    pub(crate) fn request(
        &self,
        record: &mut AuditRecord,
        route: &str,
        parts: &mut http::request::Parts,
        body: Bytes,
        inspected: &RequestInspection,
    ) -> Result<Bytes, ProxyError> {
        let tool = record.action.tool.clone();
        let action_for = |kind: &Kind| self.policy.action(Some(route), tool.as_deref(), kind);
        self.redact_parameters(record, &action_for);
        let detectors = self.policy.detectors();
        let effective = |kind: &Kind| action_for(kind).unwrap_or(Action::Log);
        let in_path = |kind: &Kind| match effective(kind) {
            Action::Redact => Action::Block,
            a => a,
        };
        let body_scan = if body.is_empty() {
            Some(Scan::default())
        } else if is_form(&parts.headers) {
            Some(scan_form(detectors, &body, "$.body"))
        } else {
            match scan_body(detectors, &body) {
                Ok(scan) => Some(scan),
                Err(e) if self.policy.enforcing(Some(route), tool.as_deref()) => {
                    return Err(ProxyError::SafetyUnscannable(e.to_string()));
                }
                Err(e) => {
                    tracing::warn!(route, error = %e, "request body not scanned for PII");
                    None
                }
            }
        };
        let query = parts.uri.query().map(str::to_owned);
        let query_scan = query
            .as_deref()
            .map(|q| scan_form(detectors, q.as_bytes(), "$.query"))
            .unwrap_or_default();
        let path_findings = scan_fields(
            detectors,
            "$.path",
            inspected
                .facts()
                .path_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let kept = |findings: &'_ [Finding]| -> Vec<Finding> {
            findings
                .iter()
                .filter(|f| action_for(&f.kind).is_some())
                .cloned()
                .collect()
        };
        let body_kept = body_scan.as_ref().map(|s| kept(&s.findings));
        let query_kept = kept(&query_scan.findings);
        let path_kept = kept(&path_findings);
        if body_kept.is_none() && query_kept.is_empty() && path_kept.is_empty() {
            // Not scanned, nothing else found: the row says so (no verdict).
            return Ok(body);
        }
        record_findings(
            record,
            body_kept.iter().flatten(),
            &effective,
            None,
            Side::Request,
        );
        record_findings(record, &query_kept, &effective, None, Side::Request);
        record_findings(record, &path_kept, &in_path, None, Side::Request);
        let actions = || {
            body_kept
                .iter()
                .flatten()
                .chain(&query_kept)
                .map(|f| (&f.kind, effective(&f.kind)))
                .chain(path_kept.iter().map(|f| (&f.kind, in_path(&f.kind))))
        };
        match actions().map(|(_, a)| a).max() {
            Some(Action::Block) => {
                // Nothing of the request is forwarded: every value in it was blocked.
                mark_blocked(record);
                let mut kinds: Vec<&str> = actions()
                    .filter(|(_, a)| *a == Action::Block)
                    .map(|(k, _)| k.as_str())
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                Err(ProxyError::ContentBlocked {
                    kinds: kinds.join(","),
                    jsonrpc: inspected.jsonrpc_call(),
                })
            }
            Some(Action::Redact) => {
                if let Some(q) = &query
                    && let Some(redacted) =
                        redact(q.as_bytes(), &query_scan, &self.style, effective)
                            .map_err(|e| ProxyError::SafetyUnscannable(e.to_string()))?
                {
                    parts.uri = with_query(&parts.uri, &String::from_utf8_lossy(&redacted))?;
                }
                match &body_scan {
                    Some(scan) => match redact(&body, scan, &self.style, effective) {
                        Ok(Some(redacted)) => Ok(Bytes::from(redacted)),
                        Ok(None) => Ok(body),
                        Err(e) => Err(ProxyError::SafetyUnscannable(e.to_string())),
                    },
                    None => Ok(body),
                }
            }
            _ => Ok(body),
        }
    }

    /// Redacts `action.parameters` for storage (as [`Safety::request`] does first):
    /// for rows of requests refused before the safety stage. Redacting twice
    /// changes nothing.
    pub(crate) fn seal_parameters(&self, record: &mut AuditRecord) {
        let route = record.action.route.clone();
        let tool = record.action.tool.clone();
        let action_for = |kind: &Kind| self.policy.action(route.as_deref(), tool.as_deref(), kind);
        self.redact_parameters(record, &action_for);
    }

    /// Whether content safety redacts or blocks something on `route` (for any call).
    pub(crate) fn enforcing_on_route(&self, route: &str) -> bool {
        self.policy.enforcing_on_route(route)
    }

    /// Whether the response to this call is held and redacted (non-streamed only).
    pub(crate) fn redacts_responses(&self, record: &AuditRecord) -> bool {
        self.policy.redacts_responses(
            record.action.route.as_deref(),
            record.action.tool.as_deref(),
        )
    }

    /// Scans a held (complete, non-streamed) response and redacts every value of a
    /// kind set to `redact` or `block` on this route / tool (a response cannot be
    /// refused after the upstream acted, so `block` redacts too). Findings are
    /// recorded under `response…` paths. Fails closed: a response that cannot be
    /// scanned is not passed on.
    pub(crate) fn response(
        &self,
        record: &mut AuditRecord,
        body: Bytes,
    ) -> Result<Bytes, ProxyError> {
        let route = record.action.route.clone();
        let tool = record.action.tool.clone();
        let action_for = |kind: &Kind| {
            self.policy
                .action(route.as_deref(), tool.as_deref(), kind)
                .map(|a| {
                    if a == Action::Block {
                        Action::Redact
                    } else {
                        a
                    }
                })
        };
        let scan = scan_body(self.policy.detectors(), &body)
            .map_err(|e| ProxyError::ResponseUnscannable(e.to_string()))?;
        let kept: Vec<&Finding> = scan
            .findings
            .iter()
            .filter(|f| action_for(&f.kind).is_some())
            .collect();
        let effective = |kind: &Kind| action_for(kind).unwrap_or(Action::Log);
        record_findings(
            record,
            kept.iter().copied(),
            &effective,
            Some(RESPONSE),
            Side::Response,
        );
        if kept.iter().all(|f| effective(&f.kind) != Action::Redact) {
            return Ok(body);
        }
        match redact(&body, &scan, &self.style, effective) {
            Ok(Some(redacted)) => Ok(Bytes::from(redacted)),
            Ok(None) => Ok(body),
            Err(e) => Err(ProxyError::ResponseUnscannable(e.to_string())),
        }
    }

    /// `action.parameters` and the stored paths (`action.path`, `action.raw_path`,
    /// the path of `action.upstream`) as stored: every finding not turned `off` is
    /// redacted (label style), whatever the action on the wire. A path segment
    /// holding a finding is stored as its label (`/users/[REDACTED:EMAIL]`).
    fn redact_parameters(
        &self,
        record: &mut AuditRecord,
        action_for: &dyn Fn(&Kind) -> Option<Action>,
    ) {
        let scanned = |text: &str| {
            redact_parameters(self.policy.detectors(), text, &RedactStyle::Label, |kind| {
                match action_for(kind) {
                    None => Action::Log,
                    Some(_) => Action::Redact,
                }
            })
            .ok()
        };
        let stored = |text: &str| scanned(text).map(|(text, _)| text);
        let action = &mut record.action;
        for path in [Some(&mut action.path), action.raw_path.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(redacted) = self.redact_path(path, 0, &scanned) {
                *path = redacted;
            }
        }
        if let Some(upstream) = &mut action.upstream {
            // `scheme://authority/path`: the path starts at the third `/`.
            // (A byte scan: `match_indices` with a `char` costs more per call.)
            let at = upstream
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'/')
                .nth(2)
                .map_or(upstream.len(), |(i, _)| i);
            if let Some(redacted) = self.redact_path(upstream, at, &scanned) {
                *upstream = redacted;
            }
        }
        let Some(parameters) = record.action.parameters.take() else {
            return;
        };
        record.action.parameters = Some(stored(&parameters).unwrap_or_else(|| {
            tracing::warn!("parameters not scanned; not stored");
            UNSCANNED_PARAMETERS.to_owned()
        }));
    }

    /// `text` with each `/`-separated segment after byte `from` that holds a
    /// finding replaced by its label (segments are scanned percent-decoded), or
    /// `None` when nothing in it is redacted. `scanned` redacts a JSON text (the
    /// stored form) and returns the scan. A path the detectors find nothing in is
    /// remembered ([`CleanPaths`]) and not scanned again.
    fn redact_path(
        &self,
        text: &str,
        from: usize,
        scanned: &dyn Fn(&str) -> Option<(String, Scan)>,
    ) -> Option<String> {
        let (head, path) = text.split_at(from.min(text.len()));
        if self.clean_paths.contains(path) {
            return None;
        }
        let decoded: Vec<String> = path
            .split('/')
            .map(|segment| custody_core::percent::decode_str(segment, false))
            .collect();
        // One scan of the whole path first: most paths hold nothing.
        let whole = serde_json::to_string(&decoded).ok()?;
        let (redacted, scan) = scanned(&whole)?;
        if scan.findings.is_empty() {
            self.clean_paths.insert(path);
            return None;
        }
        if redacted == whole {
            return None;
        }
        let segments: Vec<String> = path
            .split('/')
            .zip(&decoded)
            .map(|(raw, decoded)| {
                let json = serde_json::to_string(decoded).unwrap_or_default();
                match scanned(&json) {
                    Some((redacted, _)) if redacted != json => {
                        serde_json::from_str::<String>(&redacted)
                            .unwrap_or_else(|_| "[REDACTED]".to_owned())
                    }
                    _ => raw.to_owned(),
                }
            })
            .collect();
        Some(format!("{head}{}", segments.join("/")))
    }

    /// A scanner for the response body (log mode), by its media (`None`: no
    /// `Content-Type`).
    pub(crate) fn response_scanner(&self, media: Option<Media>) -> Box<ResponseScan> {
        let detectors = self.policy.detectors().clone();
        Box::new(match media {
            Some(Media::EventStream) => ResponseScan::Sse {
                parser: custody_inspect::SseParser::new(MAX_EVENT_BYTES),
                detectors,
                texts: Vec::new(),
            },
            Some(Media::Json) => ResponseScan::Json {
                detectors,
                held: Vec::new(),
                side: self.response_side.clone(),
            },
            Some(Media::Other) | None => {
                ResponseScan::Raw(StreamScanner::new(detectors, self.response_side.clone()))
            }
        })
    }
}

/// Where a response's findings are placed in the row: the whole body, or the
/// prefix of a JSON path (`response.choices[0]`).
const RESPONSE: &str = "response";
/// Largest SSE event whose text is scanned.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most separate text streams (choices, content blocks) followed in one response.
const MAX_TEXTS: usize = 16;
/// Largest JSON response scanned as JSON in log mode; a longer one is scanned as
/// bytes as it streams (findings under `response`), so what a response's scan
/// holds stays bounded by this.
pub(crate) const MAX_JSON_SCANNED_WHOLE: usize = 64 * 1024;

/// Scans a response as it streams by (log mode).
///
/// A JSON body (`Content-Type` says JSON) of up to [`MAX_JSON_SCANNED_WHOLE`]
/// bytes is held by the scan and scanned at its end as JSON, as redact mode scans
/// it: only its string and number values, escapes decoded, secrets named by their
/// keys, each finding at the value's path (`response.choices[0].message.content`).
/// A longer one, and any other plain body, is scanned as bytes (path `response`).
/// An SSE body is scanned as the texts its events carry, each text on its own
/// scanner, so a value the model writes across many deltas is still found: OpenAI
/// chat `choices[i].delta.content` (path `response.choices[i]`), Responses API
/// `response.output_text.delta` (`response.output[i]`), Anthropic
/// `content_block_delta` text and tool input (`response.content[i]`); any other
/// event's data is scanned as it is (`response.events`).
#[derive(Debug)]
pub(crate) enum ResponseScan {
    /// A JSON body so far, while it fits in [`MAX_JSON_SCANNED_WHOLE`].
    Json {
        detectors: Arc<custody_safety::Detectors>,
        held: Vec<u8>,
        /// Where a body scanned as bytes after all (too long, or nested too
        /// deep) reports its findings: `response`.
        side: Arc<str>,
    },
    /// Bytes, findings under `response`.
    Raw(StreamScanner),
    /// SSE: one scanner per text stream.
    Sse {
        parser: custody_inspect::SseParser,
        detectors: Arc<custody_safety::Detectors>,
        texts: Vec<(String, StreamScanner)>,
    },
}

impl ResponseScan {
    /// The next bytes of the response body.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        match self {
            ResponseScan::Json {
                detectors,
                held,
                side,
            } => {
                if held.len() + chunk.len() <= MAX_JSON_SCANNED_WHOLE {
                    // Exactly what is held: the bound is on the allocation too.
                    held.reserve_exact(chunk.len());
                    held.extend_from_slice(chunk);
                    return;
                }
                // Too long to hold: scanned as bytes from its start.
                let mut scanner = StreamScanner::new(detectors.clone(), side.clone());
                scanner.feed(held);
                scanner.feed(chunk);
                *self = ResponseScan::Raw(scanner);
            }
            ResponseScan::Raw(scanner) => scanner.feed(chunk),
            ResponseScan::Sse {
                parser,
                detectors,
                texts,
            } => parser.feed(chunk, |event| {
                let (path, text) = event_text(event.data);
                let Some(text) = text else { return };
                let slot = match texts.iter().position(|(p, _)| *p == path) {
                    Some(i) => i,
                    None if texts.len() < MAX_TEXTS => {
                        let scanner =
                            StreamScanner::new(detectors.clone(), Arc::<str>::from(path.as_str()));
                        texts.push((path, scanner));
                        texts.len() - 1
                    }
                    None => return,
                };
                texts[slot].1.feed(text.as_bytes());
            }),
        }
    }

    /// Every finding, and the prefix its JSON path (`$…`) takes in the row
    /// (`None`: the path is already the row's).
    fn finish(self) -> (Vec<Finding>, Option<&'static str>) {
        match self {
            ResponseScan::Json {
                detectors,
                held,
                side,
            } => match scan_body(&detectors, &held) {
                // Text (not a JSON document) is reported at `$`: `response`.
                Ok(scan) => (scan.findings, Some(RESPONSE)),
                // Nested too deep to walk: scanned as bytes, as a longer body is.
                Err(_) => {
                    let mut scanner = StreamScanner::new(detectors, side);
                    scanner.feed(&held);
                    (scanner.finish(), None)
                }
            },
            ResponseScan::Raw(scanner) => (scanner.finish(), None),
            ResponseScan::Sse {
                mut parser, texts, ..
            } => {
                parser.finish();
                let findings = texts.into_iter().flat_map(|(_, s)| s.finish()).collect();
                (findings, None)
            }
        }
    }
}

/// The text an SSE event adds to a stream, and that stream's path.
fn event_text(data: &str) -> (String, Option<String>) {
    let raw = || ("response.events".to_owned(), Some(data.to_owned()));
    if data == "[DONE]" || data.is_empty() {
        return (String::new(), None);
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
        return raw();
    };
    let str_at = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    if let Some(choices) = v.get("choices").and_then(|c| c.as_array()) {
        // OpenAI chat chunk (one choice per chunk in practice).
        let Some(choice) = choices.first() else {
            return (String::new(), None);
        };
        let index = choice
            .get("index")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        return (
            format!("response.choices[{index}]"),
            str_at(&choice["delta"]["content"]),
        );
    }
    // The payload's own `type` names the event in both protocols.
    match v.get("type").and_then(serde_json::Value::as_str) {
        Some("content_block_delta") => {
            let index = v
                .get("index")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let delta = &v["delta"];
            let text = str_at(&delta["text"]).or_else(|| str_at(&delta["partial_json"]));
            (format!("response.content[{index}]"), text)
        }
        Some("response.output_text.delta") => {
            let index = v
                .get("output_index")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            (format!("response.output[{index}]"), str_at(&v["delta"]))
        }
        // The other events of those two protocols repeat text already seen
        // (`response.completed` carries the whole output) or carry none.
        Some(t)
            if t.starts_with("response.")
                || t.starts_with("message_")
                || t.starts_with("content_block_")
                || t == "ping" =>
        {
            (String::new(), None)
        }
        _ => raw(),
    }
}

/// Adds the response's findings (logged) to the row. Not inlined, so that a
/// profile (`scripts/instructions`) shows the response's scan as one function.
#[inline(never)]
pub(crate) fn record_response(record: &mut AuditRecord, scan: ResponseScan) {
    let (findings, prefix) = scan.finish();
    record_findings(
        record,
        findings.iter(),
        &|_| Action::Log,
        prefix,
        Side::Response,
    );
}

/// Where a finding was made (`content_safety.redactions[].side`).
#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// What happened to a value found, given the action taken on its kind
/// (`content_safety.redactions[].handling`).
fn handling(action: Action) -> &'static str {
    match action {
        Action::Log => "logged",
        Action::Redact => "redacted",
        Action::Block => "blocked",
    }
}

/// The row's `content_safety.handling`: the strongest handling of its findings
/// (`blocked` > `redacted` > `logged`), `none` when the call was scanned and
/// nothing was found.
fn row_handling(findings: &[Redaction]) -> &'static str {
    let rank = |h: Option<&str>| match h {
        Some("blocked") => 3,
        Some("redacted") => 2,
        Some("logged") => 1,
        _ => 0,
    };
    match findings
        .iter()
        .map(|f| rank(f.handling.as_deref()))
        .max()
        .unwrap_or(0)
    {
        3 => "blocked",
        2 => "redacted",
        1 => "logged",
        _ => "none",
    }
}

/// Sets the row's `content_safety.handling` from its findings; the string is
/// allocated only when the value changes (the stage records findings up to four
/// times per call: body, query, path, response).
fn update_handling(cs: &mut custody_audit::ContentSafety) {
    let handling = row_handling(cs.redactions.as_deref().unwrap_or_default());
    if cs.handling.as_deref() != Some(handling) {
        cs.handling = Some(handling.to_owned());
    }
}

/// The request was refused for what it carried: none of its values went on.
fn mark_blocked(record: &mut AuditRecord) {
    let cs = &mut record.content_safety;
    for finding in cs.redactions.iter_mut().flatten() {
        if finding.side.as_deref() == Some(Side::Request.as_str()) {
            finding.handling = Some(handling(Action::Block).to_owned());
        }
    }
    update_handling(cs);
}

/// Adds findings to the row; with `prefix`, a JSON path `$.a.b` is recorded as
/// `<prefix>.a.b` (and `$` as `<prefix>`).
fn record_findings<'a>(
    record: &mut AuditRecord,
    findings: impl IntoIterator<Item = &'a Finding>,
    action_for: &dyn Fn(&Kind) -> Action,
    prefix: Option<&str>,
    side: Side,
) {
    let summaries = summarize(findings, action_for);
    let cs = &mut record.content_safety;
    let found = !summaries.is_empty();
    cs.pii_detected = Some(cs.pii_detected.unwrap_or(false) || found);
    let list = cs.redactions.get_or_insert_with(Vec::new);
    list.extend(summaries.into_iter().map(|s| Redaction {
        kind: s.kind.as_str().to_owned(),
        path: match prefix {
            None => s.path.to_string(),
            Some(prefix) => format!("{prefix}{}", s.path.strip_prefix('$').unwrap_or(&s.path)),
        },
        count: i64::try_from(s.count).unwrap_or(i64::MAX),
        action: s.action.as_str().to_owned(),
        side: Some(side.as_str().to_owned()),
        handling: Some(handling(s.action).to_owned()),
    }));
    update_handling(cs);
}

/// Whether the body is a form (`application/x-www-form-urlencoded`), as
/// inspection reads it.
fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `uri` with its query replaced by `query` (redacted values).
fn with_query(uri: &http::Uri, query: &str) -> Result<http::Uri, ProxyError> {
    let mut parts = uri.clone().into_parts();
    let path_and_query = format!("{}?{query}", uri.path());
    parts.path_and_query = Some(path_and_query.parse().map_err(|e| {
        ProxyError::SafetyUnscannable(format!("cannot rewrite the redacted query: {e}"))
    })?);
    http::Uri::from_parts(parts).map_err(|e| {
        ProxyError::SafetyUnscannable(format!("cannot rewrite the redacted query: {e}"))
    })
}

#[cfg(test)]
mod tests;
