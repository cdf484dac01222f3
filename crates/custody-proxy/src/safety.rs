//! The content-safety stage: after policy, scan the request body for PII and
//! secrets (`custody-safety`), record what was found where (never the value),
//! redact or block per the `safety` config, and store `action.parameters` only
//! after redaction. Responses are scanned as they stream by (log mode).
//!
//! Fail closed: when a body cannot be scanned (e.g. JSON nested deeper than
//! [`custody_safety::MAX_DEPTH`]) on a route or tool that redacts or blocks
//! something, the request is refused; elsewhere it is forwarded and the row says
//! it was not scanned.

use crate::error::{JsonRpcCall, ProxyError};
use crate::server::StartError;
use bytes::Bytes;
use custody_audit::{AuditRecord, Redaction};
use custody_safety::{
    Action, Finding, Kind, RedactStyle, SafetyPolicy, StreamScanner, TokenKey, redact,
    redact_parameters, scan_body, summarize, verdict,
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
        })
    }

    /// Scans the request body: records the findings, then blocks, redacts (returns
    /// the body to forward) or lets it pass; always redacts `action.parameters`.
    pub(crate) fn request(
        &self,
        record: &mut AuditRecord,
        route: &str,
        body: Bytes,
        jsonrpc: Option<JsonRpcCall>,
    ) -> Result<Bytes, ProxyError> {
        let tool = record.action.tool.clone();
        let action_for = |kind: &Kind| self.policy.action(Some(route), tool.as_deref(), kind);
        self.redact_parameters(record, &action_for);
        if body.is_empty() {
            record.content_safety.pii_detected = Some(false);
            record.content_safety.redactions = Some(Vec::new());
            return Ok(body);
        }
        let scan = match scan_body(self.policy.detectors(), &body) {
            Ok(scan) => scan,
            Err(e) if self.policy.enforcing(Some(route), tool.as_deref()) => {
                return Err(ProxyError::SafetyUnscannable(e.to_string()));
            }
            Err(e) => {
                tracing::warn!(route, error = %e, "request body not scanned for PII");
                return Ok(body);
            }
        };
        let kept: Vec<&Finding> = scan
            .findings
            .iter()
            .filter(|f| action_for(&f.kind).is_some())
            .collect();
        let effective = |kind: &Kind| action_for(kind).unwrap_or(Action::Log);
        record_findings(record, kept.iter().copied(), &effective);
        match verdict(kept.iter().copied(), effective) {
            Some(Action::Block) => {
                let kinds = blocked_kinds(&kept, &effective);
                Err(ProxyError::ContentBlocked { kinds, jsonrpc })
            }
            Some(Action::Redact) => match redact(&body, &scan, &self.style, effective) {
                Ok(Some(redacted)) => Ok(Bytes::from(redacted)),
                Ok(None) => Ok(body),
                Err(e) => Err(ProxyError::SafetyUnscannable(e.to_string())),
            },
            _ => Ok(body),
        }
    }

    /// `action.parameters` as stored: every finding not turned `off` is redacted
    /// (label style), whatever the action on the wire.
    fn redact_parameters(
        &self,
        record: &mut AuditRecord,
        action_for: &dyn Fn(&Kind) -> Option<Action>,
    ) {
        let Some(parameters) = record.action.parameters.take() else {
            return;
        };
        let stored = redact_parameters(
            self.policy.detectors(),
            &parameters,
            &RedactStyle::Label,
            |kind| match action_for(kind) {
                None => Action::Log,
                Some(_) => Action::Redact,
            },
        );
        record.action.parameters = Some(match stored {
            Ok((text, _)) => text,
            Err(e) => {
                tracing::warn!(error = %e, "parameters not scanned; not stored");
                UNSCANNED_PARAMETERS.to_owned()
            }
        });
    }

    /// A scanner for the response body (log mode), findings under path `response`.
    pub(crate) fn response_scanner(&self) -> Box<StreamScanner> {
        Box::new(StreamScanner::new(
            self.policy.detectors().clone(),
            Arc::<str>::from("response"),
        ))
    }
}

/// Adds the response's findings (logged) to the row.
pub(crate) fn record_response(record: &mut AuditRecord, scanner: StreamScanner) {
    let findings = scanner.finish();
    record_findings(record, findings.iter(), &|_| Action::Log);
}

fn record_findings<'a>(
    record: &mut AuditRecord,
    findings: impl IntoIterator<Item = &'a Finding>,
    action_for: &dyn Fn(&Kind) -> Action,
) {
    let summaries = summarize(findings, action_for);
    let cs = &mut record.content_safety;
    let found = !summaries.is_empty();
    cs.pii_detected = Some(cs.pii_detected.unwrap_or(false) || found);
    let list = cs.redactions.get_or_insert_with(Vec::new);
    list.extend(summaries.into_iter().map(|s| Redaction {
        kind: s.kind.as_str().to_owned(),
        path: s.path.to_string(),
        count: i64::try_from(s.count).unwrap_or(i64::MAX),
        action: s.action.as_str().to_owned(),
    }));
}

fn blocked_kinds(findings: &[&Finding], action_for: &dyn Fn(&Kind) -> Action) -> String {
    let mut kinds: Vec<&str> = findings
        .iter()
        .filter(|f| action_for(&f.kind) == Action::Block)
        .map(|f| f.kind.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join(",")
}
