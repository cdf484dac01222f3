//! The audit trail: one [`AuditRecord`] per request, allowed or denied, persisted
//! in a local [spool] before the request is forwarded, rolled into
//! Hive-partitioned Parquet files (`dt=YYYY-MM-DD/hour=HH/<file>.parquet`, zstd) and
//! [shipped](ship) to a local directory or object storage.
//!
//! Words, each with one meaning: the **trail** is the audit rows, written by
//! [`trail`] (spool, roller, files) and read back by [`read`]; the **sink** is
//! where files go (`audit.sink`: a directory or an object store URL, [`ship::SinkUrl`]);
//! **shipping** is uploading files to the sink ([`ship`]).
//!
//! Invariants:
//! - [`schema::audit_schema`] is the single definition of the public schema; the
//!   Arrow batch builder ([`batch`]) derives its struct fields from it, so the two
//!   cannot drift. The schema version is [`SCHEMA_VERSION`]; changes to the schema
//!   bump it and are documented in `docs/audit-schema.md`.
//! - A request that reaches an upstream has its intent in the spool first; its row
//!   is in the trail exactly once — its final row, or after a crash a row saying
//!   `incomplete: custody restarted` ([`trail`]).
//! - Recording never waits on more than one write(2) (plus, with `durability:
//!   fsync`, an awaited group fsync for intents); encoding and uploads run on the
//!   dedicated roller thread.
//! - File names are deterministic (instance, spool id, segment id): a file rebuilt
//!   after a crash has the same name and bytes, and uploads are conditional creates,
//!   so retries and restarts never duplicate rows.
//! - Rows that cannot be recorded (a full spool) are counted and reported by a gap
//!   row; records lost to disk damage by gap rows too. Nothing is dropped silently.

#![deny(missing_docs)]

pub mod batch;
pub mod compact;
pub mod config;
pub mod ddl;
pub mod digest;
pub mod read;
mod record;
pub mod schema;
pub mod ship;
pub mod trail;
/// The durable spool ([`custody_spool`], a crate of its own: it depends on nothing
/// here), under the name the audit path has always used.
pub use custody_spool as spool;
mod writer;

pub use record::{
    AnomalyFinding, AuditRecord, ContentSafety, Links, Outcome, Partition, PolicyOutcome,
    Redaction, ToolResult, Usage,
};
pub use schema::SCHEMA_VERSION;
pub use trail::{
    Admission, AuditError, AuditHandle, AuditStats, AuditTrail, INCOMPLETE, IntentKey, OnFull,
    ROLLER_NICE, Refusal, StopReport, TrailConfig,
};
pub use writer::WriteError;
#[cfg(feature = "internals")]
pub use writer::{FileNamer, ParquetDirWriter};
