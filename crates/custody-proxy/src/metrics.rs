//! `/metrics` on the admin listener: Prometheus text exposition (version 0.0.4).
//! Every name, label and meaning is documented in `docs/metrics.md`.
//!
//! Request-path cost: [`Metrics`] is built once at startup from the config. Its
//! label sets are bounded and known then — the configured routes plus `""` for
//! requests no route served, three decisions, six status classes, the built-in and
//! configured detector kinds plus `other`, six content-coding labels and five
//! decoding results — so each family is a flat array of
//! `AtomicU64` indexed by position, and histograms have fixed atomic buckets
//! ([`histogram`]). Recording a request is a handful of relaxed `fetch_add`s: no
//! lock, no allocation, no map lookup. Label strings are escaped once, at startup;
//! only a scrape formats text.
//!
//! Exactly once: [`Metrics::exchange`] is called from the one place an exchange's
//! final row is emitted (`Exchange::emit`), so `custody_requests_total` counts
//! every request that reached the pipeline once, whether its row was spooled or
//! (spool full) not.

mod audit;
mod expo;
mod histogram;

use crate::admin::Health;
use crate::config::Config;
use crate::decode::{Label, Outcome};
use custody_audit::AuditRecord;
use expo::{Out, escape};
use histogram::{ADDED_LATENCY_BUCKETS, Histogram, REQUEST_DURATION_BUCKETS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `decision` label values, by index: the row's `policy.decision`, or `none` for
/// requests refused before a decision (no route, body too large, malformed, audit
/// spool full).
const DECISIONS: [&str; 3] = ["allow", "deny", "none"];
/// `code` label values, by index: the status class of the answer, or `none` when no
/// status was sent (the client went away or custody shut down before the response
/// headers).
const CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
/// `direction` label values of PII findings.
const DIRECTIONS: [&str; 2] = ["request", "response"];
/// The kind label of findings of a kind not configured (never expected).
const OTHER_KIND: &str = "other";

/// The request-path metrics: counted per request, rendered on a scrape.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Configured route names; index `routes.len()` is "no route" (`route=""`).
    routes: Vec<String>,
    /// Escaped route label values, index-aligned with `routes`, plus `""`.
    route_labels: Vec<String>,
    /// `[route][decision][code]`.
    requests: Box<[AtomicU64]>,
    /// Whole exchange duration, per route (index as `route_labels`).
    durations: Box<[Histogram]>,
    /// Custody's own time on the request path of forwarded requests.
    added_latency: Histogram,
    /// Detector kinds (built-in, then custom), then `other`.
    kinds: Vec<String>,
    kind_labels: Vec<String>,
    /// `[kind][direction]`.
    findings: Box<[AtomicU64]>,
    /// Requests refused because custody could not read them unambiguously.
    integrity: crate::integrity::Counters,
    /// Connections closed by `limits.idle_timeout`: `[no request ever, some]`.
    idle_closed: [AtomicU64; 2],
    /// HTTP/2 connections custody closed for a `limits.http2` limit
    /// ([`HTTP2_CLOSES`]).
    http2_closed: [AtomicU64; HTTP2_CLOSES.len()],
    /// Request bodies with a `Content-Encoding`: `[encoding][result]`.
    decodings: Box<[AtomicU64]>,
    /// Admin requests refused ([`ADMIN_REFUSALS`]).
    admin_refusals: [AtomicU64; ADMIN_REFUSALS.len()],
    /// Signals of unusual use tripped, by [`custody_anomaly::Signal::ALL`].
    anomalies: [AtomicU64; custody_anomaly::Signal::ALL.len()],
}

/// `reason` label values of `custody_http2_connections_closed_total`: a keep-alive
/// ping unanswered, too many streams reset (rapid reset), another protocol error
/// custody detected in what the client sent.
pub(crate) const HTTP2_CLOSES: [&str; 3] =
    ["keepalive_timeout", "too_many_resets", "protocol_error"];

/// `reason` label values of `custody_admin_refusals_total`: the admin listener's
/// Host and Origin checks (`crate::loopback`).
const ADMIN_REFUSALS: [crate::integrity::Reason; 2] = [
    crate::integrity::Reason::Host,
    crate::integrity::Reason::Origin,
];

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Metrics {
    pub(crate) fn new(config: &Config) -> Self {
        let routes: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
        let mut route_labels: Vec<String> = routes.iter().map(|r| escape(r)).collect();
        route_labels.push(String::new());
        let mut kinds: Vec<String> = custody_safety::Kind::BUILTIN
            .iter()
            .map(|k| k.as_str().to_owned())
            .chain(
                config
                    .safety
                    .detectors()
                    .custom_kinds()
                    .map(|k| k.as_str().to_owned()),
            )
            .collect();
        kinds.push(OTHER_KIND.to_owned());
        let kind_labels = kinds.iter().map(|k| escape(k)).collect();
        Self {
            requests: zeros(route_labels.len() * DECISIONS.len() * CODES.len()),
            durations: route_labels
                .iter()
                .map(|_| Histogram::new(REQUEST_DURATION_BUCKETS))
                .collect(),
            added_latency: Histogram::new(ADDED_LATENCY_BUCKETS),
            findings: zeros(kinds.len() * DIRECTIONS.len()),
            integrity: crate::integrity::Counters::default(),
            idle_closed: Default::default(),
            http2_closed: Default::default(),
            decodings: zeros(Label::ALL.len() * Outcome::ALL.len()),
            admin_refusals: Default::default(),
            anomalies: Default::default(),
            routes,
            route_labels,
            kinds,
            kind_labels,
        }
    }

    /// A call tripped `signal` (docs/anomalies.md).
    pub(crate) fn anomaly(&self, signal: custody_anomaly::Signal) {
        if let Some(i) = custody_anomaly::Signal::ALL
            .iter()
            .position(|s| *s == signal)
        {
            self.anomalies[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one finished exchange from its final row: the request by route,
    /// decision and status class, its duration, and its PII findings. Called once
    /// per request, where the row is emitted.
    pub(crate) fn exchange(&self, record: &AuditRecord, elapsed: Duration) {
        let route = record
            .action
            .route
            .as_deref()
            .and_then(|name| self.routes.iter().position(|r| r == name))
            .unwrap_or(self.routes.len());
        let decision = match record.policy.decision.as_deref() {
            Some("allow") => 0,
            Some("deny") => 1,
            _ => 2,
        };
        let code = match record.outcome.status {
            Some(s @ 100..=599) => usize::try_from(s / 100 - 1).unwrap_or(5),
            _ => 5,
        };
        let i = (route * DECISIONS.len() + decision) * CODES.len() + code;
        if let Some(c) = self.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = self.durations.get(route) {
            h.observe(elapsed);
        }
        if decision == 1 {
            self.integrity.count_rule(record.policy.rule.as_deref());
        }
        for r in record.content_safety.redactions.iter().flatten() {
            let kind = self
                .kinds
                .iter()
                .position(|k| *k == r.kind)
                .unwrap_or(self.kinds.len() - 1);
            // The finding's side (schema v8); its path says the same for findings
            // made without one.
            let response = match r.side.as_deref() {
                Some(side) => side == "response",
                None => r.path.starts_with("response"),
            };
            let direction = usize::from(response);
            if let Some(c) = self.findings.get(kind * DIRECTIONS.len() + direction) {
                c.fetch_add(u64::try_from(r.count).unwrap_or(0), Ordering::Relaxed);
            }
        }
    }

    /// One request body with a `Content-Encoding`, by what became of it.
    pub(crate) fn decoding(&self, encoding: Label, result: Outcome) {
        let i = encoding.index() * Outcome::ALL.len() + result.index();
        if let Some(c) = self.decodings.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many request bodies were counted with `encoding` and `result`.
    #[cfg(test)]
    pub(crate) fn decodings(&self, encoding: Label, result: Outcome) -> u64 {
        let i = encoding.index() * Outcome::ALL.len() + result.index();
        self.decodings[i].load(Ordering::Relaxed)
    }

    /// One admin request refused for `reason` (no row: admin requests have none).
    pub(crate) fn admin_refused(&self, reason: crate::integrity::Reason) {
        if let Some(i) = ADMIN_REFUSALS.iter().position(|r| *r == reason) {
            self.admin_refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection closed for being idle; `served`: it carried a request.
    pub(crate) fn idle_connection_closed(&self, served: bool) {
        self.idle_closed[usize::from(served)].fetch_add(1, Ordering::Relaxed);
    }

    /// An HTTP/2 connection closed for [`HTTP2_CLOSES`]`[reason]`.
    pub(crate) fn http2_connection_closed(&self, reason: usize) {
        if let Some(n) = self.http2_closed.get(reason) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Custody's added latency for one forwarded request (see `docs/metrics.md`).
    pub(crate) fn added_latency(&self, d: Duration) {
        self.added_latency.observe(d);
    }

    fn render(&self, o: &mut Out) {
        o.family(
            "custody_requests_total",
            "counter",
            "Requests answered (one per audit row), by route, policy decision and status class.",
        );
        for (r, route) in self.route_labels.iter().enumerate() {
            for (d, decision) in DECISIONS.iter().enumerate() {
                for (c, code) in CODES.iter().enumerate() {
                    let i = (r * DECISIONS.len() + d) * CODES.len() + c;
                    let n = self.requests[i].load(Ordering::Relaxed);
                    if n > 0 {
                        o.sample(
                            "custody_requests_total",
                            &format!(
                                "{{route=\"{route}\",decision=\"{decision}\",code=\"{code}\"}}"
                            ),
                            n,
                        );
                    }
                }
            }
        }
        o.family(
            "custody_request_duration_seconds",
            "histogram",
            "Whole exchanges, from the request's arrival to the row (the response's end), by route.",
        );
        for (h, route) in self.durations.iter().zip(&self.route_labels) {
            if h.count() > 0 {
                o.histogram(
                    "custody_request_duration_seconds",
                    &format!("route=\"{route}\""),
                    h,
                );
            }
        }
        o.family(
            "custody_added_latency_seconds",
            "histogram",
            "Custody's own time on forwarded requests: arrival to upstream dispatch, plus upstream response headers to their release to the client.",
        );
        o.histogram("custody_added_latency_seconds", "", &self.added_latency);
        o.family(
            "custody_accept_errors_total",
            "counter",
            "Failed accepts on a listener (descriptor exhaustion, aborted handshakes); each backs off exponentially up to 1 s.",
        );
        for (listener, n) in crate::accept::counts() {
            o.sample(
                "custody_accept_errors_total",
                &format!("{{listener=\"{listener}\"}}"),
                n,
            );
        }
        o.family(
            "custody_idle_connections_closed_total",
            "counter",
            "Connections closed by limits.idle_timeout (no request in flight, no byte received), by whether they ever carried a request.",
        );
        for (requests, n) in ["none", "some"].iter().zip(&self.idle_closed) {
            o.sample(
                "custody_idle_connections_closed_total",
                &format!("{{requests=\"{requests}\"}}"),
                n.load(Ordering::Relaxed),
            );
        }
        o.family(
            "custody_http2_connections_closed_total",
            "counter",
            "HTTP/2 client connections custody closed for a limits.http2 limit: a keep-alive ping unanswered within keep_alive_timeout, too many streams reset (rapid reset), or another protocol error in what the client sent.",
        );
        for (reason, n) in HTTP2_CLOSES.iter().zip(&self.http2_closed) {
            o.sample(
                "custody_http2_connections_closed_total",
                &format!("{{reason=\"{reason}\"}}"),
                n.load(Ordering::Relaxed),
            );
        }
        o.family(
            "custody_integrity_refusals_total",
            "counter",
            "Requests refused because custody could not read them unambiguously (policy.rule integrity:<reason>), by reason.",
        );
        for (reason, n) in self.integrity.snapshot() {
            o.sample(
                "custody_integrity_refusals_total",
                &format!("{{reason=\"{reason}\"}}"),
                n,
            );
        }
        o.family(
            "custody_admin_refusals_total",
            "counter",
            "Admin listener requests refused: naming a host custody does not answer for (host) or sent by a browser page from an origin not listed (origin).",
        );
        for (reason, n) in ADMIN_REFUSALS.iter().zip(&self.admin_refusals) {
            o.sample(
                "custody_admin_refusals_total",
                &format!("{{reason=\"{}\"}}", reason.as_str()),
                n.load(Ordering::Relaxed),
            );
        }
        o.family(
            "custody_pii_findings_total",
            "counter",
            "PII and secret findings recorded in audit rows, by detector kind and direction.",
        );
        for (k, kind) in self.kind_labels.iter().enumerate() {
            for (d, direction) in DIRECTIONS.iter().enumerate() {
                let n = self.findings[k * DIRECTIONS.len() + d].load(Ordering::Relaxed);
                if n > 0 {
                    o.sample(
                        "custody_pii_findings_total",
                        &format!("{{kind=\"{kind}\",direction=\"{direction}\"}}"),
                        n,
                    );
                }
            }
        }
        o.family(
            "custody_anomalies_total",
            "counter",
            "Calls that tripped a signal of unusual use for their user (docs/anomalies.md), by signal.",
        );
        for (signal, n) in custody_anomaly::Signal::ALL.iter().zip(&self.anomalies) {
            o.sample(
                "custody_anomalies_total",
                &format!("{{signal=\"{}\"}}", signal.name()),
                n.load(Ordering::Relaxed),
            );
        }
        o.family(
            "custody_request_decodings_total",
            "counter",
            "Request bodies with a Content-Encoding, by coding and result: decoded, or refused or forwarded undecoded.",
        );
        for (e, encoding) in Label::ALL.iter().enumerate() {
            for (r, result) in Outcome::ALL.iter().enumerate() {
                let n = self.decodings[e * Outcome::ALL.len() + r].load(Ordering::Relaxed);
                if n > 0 {
                    o.sample(
                        "custody_request_decodings_total",
                        &format!("{{encoding=\"{encoding}\",result=\"{result}\"}}"),
                        n,
                    );
                }
            }
        }
    }
}

/// The exposition text.
pub(crate) fn render(health: &Health) -> String {
    let mut o = Out::new();
    o.metric(
        "custody_build_info",
        "gauge",
        "Always 1; the custody version in a label.",
        &[(concat!("{version=\"", env!("CARGO_PKG_VERSION"), "\"}"), 1)],
    );
    health.metrics.render(&mut o);
    render_identity(&mut o, health.identity.as_deref());
    let policy = &health.policy;
    o.metric(
        "custody_policy_reloads_total",
        "counter",
        "Policy file changes handled: a new policy put in force, or an invalid or unreadable file rejected (the last good policy stays).",
        &[
            (
                "{result=\"succeeded\"}",
                policy.reloads.load(Ordering::Relaxed),
            ),
            (
                "{result=\"failed\"}",
                policy.reload_failures.load(Ordering::Relaxed),
            ),
        ],
    );
    let c = &health.connections;
    let (open, evicted, refused) = c.counts();
    o.metric(
        "custody_connections_open",
        "gauge",
        "Open client connections on the proxy listeners (the admin listener is not counted).",
        &[("", open)],
    );
    o.metric(
        "custody_connections_limit",
        "gauge",
        "limits.max_connections in force (by default half the descriptor limit left after a reserve).",
        &[("", c.limit() as u64)],
    );
    o.metric(
        "custody_connections_evicted_total",
        "counter",
        "Idle connections closed at the connection limit to make room for a new one.",
        &[("", evicted)],
    );
    o.metric(
        "custody_connections_refused_total",
        "counter",
        "New connections closed at once at the connection limit because every open one was busy.",
        &[("", refused)],
    );
    let budget = &health.budget;
    o.metric(
        "custody_buffer_budget_bytes",
        "gauge",
        "Bytes of bodies held in memory now (request bodies, decoded bodies, responses held for redaction), out of limits.buffer_budget.",
        &[("", budget.in_use())],
    );
    o.metric(
        "custody_buffer_budget_peak_bytes",
        "gauge",
        "The most bytes of bodies ever held in memory at once since start.",
        &[("", budget.peak())],
    );
    o.metric(
        "custody_buffer_budget_limit_bytes",
        "gauge",
        "limits.buffer_budget in force.",
        &[("", budget.limit())],
    );
    let refusals = budget
        .refusals()
        .map(|(what, n)| (format!("{{what=\"{}\"}}", what.as_str()), n));
    o.metric(
        "custody_buffer_budget_refusals_total",
        "counter",
        "Requests answered 503 buffer_budget_exhausted, by what could not be held: the request body, its decoded form, or the response held for redaction.",
        &refusals
            .iter()
            .map(|(l, n)| (l.as_str(), *n))
            .collect::<Vec<_>>(),
    );
    audit::render(&mut o, &health.audit);
    // Declared always (no sample without an `intercept` section), like identity's.
    let intercept = health.intercept.as_deref();
    let sample = |v: Option<u64>| v.map(|v| ("", v)).into_iter().collect::<Vec<_>>();
    o.metric(
        "custody_intercept_leaf_certificates_minted_total",
        "counter",
        "Leaf certificates signed for intercepted hosts (a cached leaf signs nothing).",
        &sample(intercept.map(|i| i.leaves.mints())),
    );
    o.metric(
        "custody_intercept_leaf_certificates_cached",
        "gauge",
        "Leaf certificates in the cache (intercept.leaf_cache_size at most).",
        &sample(intercept.map(|i| i.leaves.cached() as u64)),
    );
    o.metric(
        "custody_intercept_tunnels_opened_total",
        "counter",
        "Blind tunnels opened to hosts intercept.tunnel allows.",
        &sample(intercept.map(|i| i.counts.opened_total())),
    );
    o.family(
        "custody_intercept_tunnels_refused_total",
        "counter",
        "CONNECTs to hosts no route claims that were refused, by reason (intercept.others: deny, not on intercept.tunnel.allow, or the class of a forbidden target address).",
    );
    for (reason, n) in intercept.iter().flat_map(|i| i.counts.refused_totals()) {
        o.sample(
            "custody_intercept_tunnels_refused_total",
            &format!("{{reason=\"{reason}\"}}"),
            n,
        );
    }
    o.0
}

/// Identity families: every reason and every issuer is written (zero included), so
/// alerts see a series from the start; without an `identity` section, none.
fn render_identity(o: &mut Out, identity: Option<&crate::identity::Identity>) {
    o.family(
        "custody_identity_failures_total",
        "counter",
        "Tokens refused: on routes that require one, every refusal; on optional routes, tokens sent but invalid. By reason.",
    );
    o.family(
        "custody_identity_keys_usable",
        "gauge",
        "1 while every issuer has signing keys within jwks_max_stale, 0 while some issuer's are missing or too stale (its tokens are refused with keys_unavailable; /readyz stays 200 once keys were loaded).",
    );
    if let Some(identity) = identity {
        o.sample(
            "custody_identity_keys_usable",
            "",
            u64::from(identity.ready()),
        );
    }
    let Some(identity) = identity else {
        o.family(
            "custody_jwks_fetches_total",
            "counter",
            "Loads of an issuer's signing keys (startup, scheduled refresh, unknown kid; a jwks_file reread counts), by issuer and result.",
        );
        return;
    };
    for (reason, n) in identity.failure_counts() {
        o.sample(
            "custody_identity_failures_total",
            &format!("{{reason=\"{reason}\"}}"),
            n,
        );
    }
    o.family(
        "custody_jwks_fetches_total",
        "counter",
        "Loads of an issuer's signing keys (startup, scheduled refresh, unknown kid; a jwks_file reread counts), by issuer and result.",
    );
    for (issuer, succeeded, failed) in identity.fetch_counts() {
        let issuer = escape(issuer);
        for (result, n) in [("succeeded", succeeded), ("failed", failed)] {
            o.sample(
                "custody_jwks_fetches_total",
                &format!("{{issuer=\"{issuer}\",result=\"{result}\"}}"),
                n,
            );
        }
    }
}

#[cfg(test)]
mod tests;
