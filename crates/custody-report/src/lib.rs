//! `custody report`: evidence for auditors from the audit trail (docs/report.md).
//!
//! One pass over the audit files of the period and of the period before it
//! ([`scan`]), each row's report columns ([`rows`]) folded into every section's
//! figures ([`aggregate`]), then one [`model::Report`] rendered as JSON, as a
//! self-contained HTML page ([`html`]) or as CSV files ([`csv`]).
//!
//! The engine is this crate: the report's questions are a fixed set of group-bys
//! over a few columns, which a single streaming pass answers in memory bounded by
//! the distinct users, tools and sessions rather than the rows, with the arrow and
//! parquet crates the workspace already builds. An embedded SQL engine (DataFusion)
//! would add a few hundred crates and minutes to every fresh build for queries
//! this small; analysts who want SQL get it in docs/auditor-queries.md, run where
//! their trail lives.

#![deny(missing_docs)]

pub mod aggregate;
pub mod csv;
pub mod html;
pub mod model;
pub mod period;
pub mod rows;
pub mod scan;

use custody_audit::digest::PublicKey;
use custody_audit::digest::verify::{Options as VerifyOptions, verify};
use model::{Integrity, IntegrityFinding, Report};
use period::Period;
use scan::{Sink, Unreadable};
use std::time::Duration;

/// What to report on.
pub struct Options {
    /// The sink, as given (a directory or an object-store URL).
    pub sink: String,
    /// The period.
    pub period: Period,
    /// Rows per table at most (the rest summed as `(others)`).
    pub top: usize,
    /// Keys to check the trail's digests with; empty: integrity not checked.
    pub public_keys: Vec<PublicKey>,
    /// The writers' `audit.digests.interval` (for verify's unclosed chains).
    pub digest_interval: Duration,
}

/// Reads the trail and makes the report.
pub async fn build(options: &Options) -> Result<Report, String> {
    let sink = Sink::open(&options.sink)?;
    let mut agg = aggregate::Aggregator::new(options.period.clone(), options.top, &options.sink);
    let before = options.period.before();
    for key in sink.files(before.from, options.period.to).await? {
        let mut failure = None;
        let result = sink
            .read(&key, |columns| {
                for i in 0..columns.len() {
                    if agg.wants(columns.time(i)) {
                        agg.add(&columns.row(i));
                    }
                }
            })
            .await;
        if let Err(error) = result {
            failure = Some(Unreadable { key, error });
        }
        agg.file(failure);
    }
    let integrity = if options.public_keys.is_empty() {
        Integrity {
            summary: "integrity not checked (give --public-key to check the trail against its signed digests)".into(),
            ..Integrity::default()
        }
    } else {
        check(&sink, options).await?
    };
    Ok(agg.finish(integrity))
}

async fn check(sink: &Sink, options: &Options) -> Result<Integrity, String> {
    let report = verify(
        sink.shipper(),
        &VerifyOptions {
            keys: options.public_keys.clone(),
            from: Some(options.period.from),
            to: Some(options.period.to),
            interval: options.digest_interval,
        },
    )
    .await
    .map_err(|e| format!("checking integrity: {e}"))?;
    let total = report.findings.len() as u64;
    let verifies = total == 0;
    Ok(Integrity {
        checked: true,
        verifies,
        files: report.files,
        rows: report.rows,
        findings_total: total,
        summary: if verifies {
            format!(
                "verified: {} files ({} rows) match their signed digests, no findings",
                report.files, report.rows
            )
        } else {
            format!("NOT verified: {total} findings (custody verify lists them)")
        },
        findings: report
            .findings
            .into_iter()
            .take(options.top)
            .map(|f| IntegrityFinding {
                kind: f.kind.to_owned(),
                key: f.key,
                detail: f.detail,
            })
            .collect(),
    })
}
