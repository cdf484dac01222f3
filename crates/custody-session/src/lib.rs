//! Session correlation (work in progress).

#![deny(missing_docs)]
