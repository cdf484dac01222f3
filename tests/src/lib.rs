//! Test support for custody's end-to-end tests and load harness: a stub upstream
//! that speaks enough of the OpenAI API (JSON and SSE), a harness that runs the real
//! `custody` binary with a generated config, small HTTP clients over TCP and Unix
//! sockets, a reader that turns the Parquet audit files back into JSON rows, and
//! the floor (a bare forwarding hop) the load harness measures custody against.

pub mod client;
pub mod floor;
pub mod harness;
pub mod idp;
pub mod recorder;
pub mod rows;
pub mod s3;
pub mod stub;
