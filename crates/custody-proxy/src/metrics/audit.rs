//! The audit path's metrics: spool, rolling and shipping counters of the
//! [`AuditTrail`] (`docs/metrics.md`, "Audit path").

use super::expo::Out;
use custody_audit::AuditTrail;
use std::sync::atomic::{AtomicU64, Ordering};

/// The audit path's families.
pub(crate) fn render(o: &mut Out, audit: &AuditTrail) {
    let a = audit.stats();
    let s = audit.spool_stats();
    let u = audit.ship_stats();
    let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
    o.counter(
        "custody_audit_intents_spooled_total",
        "Intents (requests about to be forwarded) appended to the audit spool.",
        &a.intents_spooled,
    );
    o.counter(
        "custody_audit_rows_spooled_total",
        "Final audit rows appended to the spool (completions, rows of requests not forwarded, gap and incomplete rows).",
        &a.rows_spooled,
    );
    o.counter(
        "custody_audit_files_written_total",
        "Parquet files built from sealed spool segments (rebuilds included).",
        &a.files_built,
    );
    o.counter(
        "custody_audit_files_uploaded_total",
        "Parquet files stored in the sink (created, or found already there).",
        &a.files_uploaded,
    );
    o.counter(
        "custody_audit_rows_uploaded_total",
        "Rows in the files stored in the sink.",
        &a.rows_uploaded,
    );
    o.metric(
        "custody_audit_uploads_total",
        "counter",
        "Upload attempts that ended, by result.",
        &[
            ("{result=\"succeeded\"}", load(&u.uploads_succeeded)),
            (
                "{result=\"already_present\"}",
                load(&u.uploads_already_present),
            ),
            ("{result=\"failed\"}", load(&u.uploads_failed)),
        ],
    );
    o.counter(
        "custody_audit_upload_retries_total",
        "Upload attempts repeated after a transient failure.",
        &u.upload_retries,
    );
    o.counter(
        "custody_audit_upload_conflicts_total",
        "Uploads that found a different object under the file's name (left untouched).",
        &a.upload_conflicts,
    );
    o.counter(
        "custody_audit_uploaded_bytes_total",
        "Bytes of the objects created in the sink.",
        &u.bytes_uploaded,
    );
    o.gauge(
        "custody_audit_backlog_bytes",
        "Bytes in the audit spool (what audit.spool.max_bytes caps).",
        load(&s.backlog_bytes),
    );
    o.gauge(
        "custody_audit_backlog_max_bytes",
        "audit.spool.max_bytes.",
        audit.max_bytes(),
    );
    o.gauge(
        "custody_audit_spool_segments",
        "Live spool segment files (the active one included).",
        load(&s.live_segments),
    );
    o.counter(
        "custody_audit_spool_corrupt_records_total",
        "Spool records found lost to disk damage at start (each reported by a gap row).",
        &a.corrupt_records,
    );
    o.counter(
        "custody_audit_spool_corrupt_bytes_total",
        "Damaged spool bytes dropped at start (torn tails included).",
        &a.corrupt_bytes,
    );
    o.counter(
        "custody_audit_spool_fsyncs_total",
        "Group fsyncs of the spool (durability: fsync).",
        &s.fsyncs,
    );
    o.counter(
        "custody_audit_rows_rejected_total",
        "Requests refused with 503 audit_backlog_full because the spool could not record them.",
        &a.rows_rejected,
    );
    o.counter(
        "custody_audit_rows_dropped_total",
        "Requests that got no audit row because the spool was full (forwarded under on_full: drop, or answered by custody).",
        &a.rows_dropped,
    );
    o.counter(
        "custody_audit_gap_rows_total",
        "Gap rows written for requests not recorded while the spool was full.",
        &a.gap_rows,
    );
    o.counter(
        "custody_audit_digests_written_total",
        "Signed digests stored on the sink (audit.digests): one per interval and one at shutdown.",
        &a.digests_written,
    );
    o.counter(
        "custody_audit_digest_failures_total",
        "Digests that could not be stored (retried at the next round), and delivered files that could not be recorded for one.",
        &a.digest_failures,
    );
    o.counter(
        "custody_audit_damage_gap_rows_total",
        "Gap rows written for spool records lost to disk damage, or for an unreadable count of unrecorded requests.",
        &a.damage_gap_rows,
    );
    o.counter(
        "custody_audit_incomplete_rows_total",
        "Rows for requests forwarded before a restart that never finished (incomplete: custody restarted).",
        &a.incomplete_rows,
    );
    o.counter(
        "custody_audit_rows_lost_total",
        "Rows lost for good (completions the spool never had room for before exit).",
        &a.rows_lost,
    );
    o.counter(
        "custody_audit_rows_abandoned_total",
        "Rows a shutdown left in an ephemeral spool (audit.spool.ephemeral) because the sink did not take them before the deadline: lost with the pod.",
        &a.rows_abandoned,
    );
    o.gauge(
        "custody_audit_completions_waiting",
        "Completions held in memory until the spool has room.",
        load(&a.completions_waiting),
    );
    o.gauge(
        "custody_audit_uploads_failing",
        "1 while the most recent upload round failed.",
        u64::from(a.failing.load(Ordering::Relaxed)),
    );
    o.gauge(
        "custody_audit_accepting",
        "1 while the spool has room for new requests.",
        u64::from(audit.accepting()),
    );
}
