//! The audit trail: one [`AuditRecord`] per request, allowed or denied, rolled into
//! Hive-partitioned Parquet files (`dt=YYYY-MM-DD/hour=HH/<file>.parquet`, zstd).
//!
//! Invariants:
//! - [`schema::audit_schema`] is the single definition of the public schema; the
//!   Arrow batch builder ([`batch`]) derives its struct fields from it, so the two
//!   cannot drift. The schema version is [`SCHEMA_VERSION`]; changes to the schema
//!   bump it and are documented in `docs/audit-schema.md`.
//! - Recording a row never waits on I/O: [`AuditSink::record`] appends it to
//!   columnar builders under a short mutex; a dedicated writer thread encodes and
//!   stores files ([`sink`]).
//! - Files appear atomically: a file is written under a hidden temporary name,
//!   fsync'd, then renamed into place, so readers globbing `**/*.parquet` never see a
//!   partial file.
//! - A row that cannot be written stays buffered and is retried on the next flush;
//!   it is never dropped silently.

#![deny(missing_docs)]

pub mod batch;
pub mod read;
mod record;
pub mod schema;
pub mod ship;
pub mod sink;
pub mod spool;
mod writer;

pub use record::{
    AuditRecord, ContentSafety, Links, Outcome, Partition, PolicyOutcome, Redaction, ToolResult,
    Usage,
};
pub use schema::SCHEMA_VERSION;
pub use sink::{AuditHandle, AuditSink, AuditStats, SinkConfig};
pub use writer::{FileNamer, ParquetDirWriter, WriteError};
