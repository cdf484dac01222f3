//! The durable local spool (work in progress).
