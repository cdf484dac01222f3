//! The sidecar injection webhook's logic: an AdmissionReview v1 for a Pod in, the
//! AdmissionReview answer (with a base64 JSON Patch that adds custody) out.
//!
//! Pure: no I/O, no async, no clock. The `custody webhook` command serves
//! [`review()`] over HTTPS; [`InjectConfig`] is its checked configuration. The
//! `custody inject` command runs the same [`review()`] on the Pods and pod templates
//! of a manifest ([`manifest`]).
//! docs/injection.md is the user's guide to the same rules.
//!
//! # Which pods reach the webhook
//! The API server sends only what the chart's MutatingWebhookConfiguration selects:
//! namespaces labelled `custody.dev/inject=enabled` (to `POST /mutate`,
//! [`Selected::ByNamespace`]) and, elsewhere, pods that opt in themselves (to
//! `POST /mutate/opt-in`, [`Selected::ByPod`]). The webhook never sees namespace
//! labels; it sees the pod's own annotations and labels and its namespace's name.
//!
//! # Rules, in the order they apply
//! | input | answer |
//! |---|---|
//! | body larger than the limit ([`MAX_REVIEW_BYTES`], 4 MiB: above the API server's own 3 MiB request limit) | HTTP 413 `{"error":{"type":"body_too_large",...}}` (the transport checks it; [`too_large`]) |
//! | not JSON; not `admission.k8s.io/v1` `AdmissionReview`; no `request`; no string `request.uid` | HTTP 400 `{"error":{"type":"bad_request",...}}`: there is no uid to answer |
//! | anything else | HTTP 200 with an AdmissionReview whose `response.uid` is the request's |
//! | `request.kind` not core `v1 Pod`, resource not `pods`, or a subresource | allowed, no patch (`not_a_pod`) |
//! | operation other than `CREATE` | allowed, no patch (`not_create`) |
//! | namespace is the webhook's own / in `exclude_namespaces` | allowed, no patch (`own_namespace` / `excluded_namespace`) |
//! | `request.object` missing; `metadata`, its `name`, `annotations` or `labels` of the wrong type | **denied** (malformed) |
//! | `custody.dev/inject` (annotation, else label) neither `"true"` nor `"false"` | **denied**, naming it |
//! | `custody.dev/inject: "false"` in a namespace of `mandatory_namespaces` | ignored, with a warning: the rules below apply |
//! | `custody.dev/inject: "false"` | allowed, no patch (`opted_out`) |
//! | on `/mutate/opt-in` without `custody.dev/inject: "true"`, outside `mandatory_namespaces` | allowed, no patch (`not_opted_in`) |
//! | `spec` missing; `containers` not a non-empty array; a container, volume, `env` or `volumeMounts` entry, `imagePullSecrets` or `terminationGracePeriodSeconds` of the wrong shape | **denied**, naming every such field |
//! | annotation `custody.dev/injected` and a container named `custody` (in `containers` or `initContainers`) | allowed, no patch (`already_injected`: idempotent); a warning when its `custody.dev/sidecar-hash` is not [`sidecar_hash`] |
//! | annotation `custody.dev/injected` without such a container | the claim is false: a warning, and the rules below apply (the pod is injected, not skipped nor denied) |
//! | `spec.os.name: windows` | allowed, no patch, a warning (`windows`); **denied** in a mandatory namespace |
//! | `hostNetwork: true` | per `host_network`: `skip` (default: allowed, no patch, a warning; **denied** in a mandatory namespace), `deny`, or `inject` (with a warning) |
//! | an unknown `custody.dev/` annotation, one not in `allowed_annotations`, a bad value, a value above its bound (`max_resources`, `max_spool_size_limit`), a request above its limit | **denied**, naming every one (annotation, value, bound) |
//! | a container already named `custody`, a volume named like ours, an app container already mounting `/run/custody`, a container declaring port 15080 or 15090 | **denied** (conflict) |
//! | otherwise | allowed with the patch (`injected`) |
//!
//! Denials carry `status.code` 400 and a message starting `custody: cannot inject
//! the sidecar:`; they are for pods that asked for custody but cannot get it, so an
//! audited workload never starts unaudited by mistake. Every answer has
//! `auditAnnotations.decision` (`injected`, `skipped: <reason>` or `denied`).
//!
//! # The patch
//! RFC 6902 `add` operations only: a missing array or object is added whole, an
//! existing one is appended to (`/-`), an existing member replaced; annotation keys
//! are escaped (`~1`). In order: the annotations `custody.dev/injected: <version>`,
//! `custody.dev/sidecar-image: <image>`, `custody.dev/sidecar-hash:`
//! [`sidecar_hash`] and the label `custody.dev/injected: "true"`;
//! `terminationGracePeriodSeconds` when `termination_grace.action: raise` changes it
//! (native sidecar: the pod's value, or 30, plus `sidecar_seconds`; regular
//! container: at least `sidecar_seconds`; with a warning); the volumes (`custody-run`
//! shared `emptyDir`, `custody-spool` an `emptyDir` with a `sizeLimit` or a generic
//! ephemeral volume, the config and policy ConfigMaps, the provider-key and
//! digest-key Secrets); the `image_pull_secrets` the pod lacks; per app container
//! the read-only mount of `/run/custody` and the mode's environment (names the
//! container already sets are kept, with a warning); last the custody container:
//! first of `initContainers` with `restartPolicy: Always` (native sidecar), or last
//! of `containers` when `native_sidecar: false`. Init containers are not changed.

#![deny(missing_docs)]

mod annotations;
mod config;
mod hash;
pub mod manifest;
mod names;
mod patch;
mod pod;
mod quantity;
mod review;
mod sidecar;

pub use annotations::{
    CONFIG_CONFIGMAP, CPU_LIMIT, CPU_REQUEST, INJECT, INJECTED, KNOWN as ANNOTATIONS, MEMORY_LIMIT,
    MEMORY_REQUEST, MODE, POLICY_CONFIGMAP, SETTABLE as SETTABLE_ANNOTATIONS, SIDECAR_HASH,
    SIDECAR_IMAGE, SPOOL_SIZE_LIMIT,
};
pub use config::{
    AppEnv, ConfigError, GraceAction, HostNetwork, InjectConfig, MaxResources, Mode, PullPolicy,
    Quantities, RawConfig, Resources, SpoolKind, SpoolVolume, TerminationGrace,
};
pub use hash::sidecar_hash;
pub use review::{Answer, Outcome, Selected, http_error, review, too_large};
pub use sidecar::{
    CONFIG_DIR, CONTAINER, DATA_DIR, DIGEST_DIR, KEYS_DIR, POLICY_DIR, RUN_DIR, VOLUMES,
};

/// The largest request body the webhook reads by default: 4 MiB. The API server
/// refuses requests over 3 MiB (and etcd stores objects up to 1.5 MiB), so the
/// AdmissionReview around any pod it accepted fits, envelope included.
pub const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// The webhook's version, written to `custody.dev/injected`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
