//! End-to-end tests: the real `custody` binary between real sockets, a stub
//! upstream, and the Parquet files it writes.

mod anomalies;
mod compact;
mod config_check;
mod config_files;
mod cut_short;
mod durability;
mod encoding;
mod errors;
mod identity;
mod inspect;
mod integrity;
mod intercept;
mod keys;
mod lifecycle;
mod loopback;
mod metrics;
mod policy;
mod protocol;
mod proxy;
mod resources;
mod safety;
mod safety_params;
mod sessions;
mod slow_peers;
mod trail;
mod trail_find;
mod verify;

use custody_tests::stub::Stub;

/// Routes used by most tests: an OpenAI-kind route and an HTTP-kind route to the stub.
pub(crate) fn routes(stub: &Stub) -> String {
    format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\n  - {{name: echo, prefix: /tools/echo, upstream: '{u}/echo', kind: http}}\n",
        u = stub.url()
    )
}
