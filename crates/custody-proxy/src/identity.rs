//! The identity stage: finds the user's token, verifies it against the issuer's
//! keys, and fills the principal ([`authenticate`], the stage's one entry point,
//! with its [`Caller`]).
//!
//! Keys come from a JWKS file, a JWKS URL or OpenID discovery. Per issuer:
//! - loaded at startup (`/readyz` is 503 until every issuer has keys);
//! - refreshed on schedule: after the JWKS response's `Cache-Control: max-age`
//!   (or `Expires`), clamped to `jwks_refresh_min..=jwks_refresh_max`, one hour when
//!   the IdP sends neither; a `jwks_file` is reread every `jwks_refresh_min`;
//! - refetched on demand when a token names an unknown `kid`, at most once per
//!   [`REFETCH_INTERVAL`] (a flood of random `kid`s causes at most two fetches a
//!   minute);
//! - kept through an IdP outage: failed refreshes are retried every
//!   `min(jwks_refresh_min, 30 s)` and the last good keys stay in use until
//!   `jwks_max_stale` past their refresh time; after that the issuer's tokens are
//!   refused with `keys_unavailable` until a refresh succeeds. `/readyz` waits for
//!   the first load only: stale keys later show in metrics and in `/readyz`'s body,
//!   not as a not-ready sidecar (which would take every agent pod out of its
//!   Services during an IdP outage).
//!
//! Every fetch is bounded in time ([`FETCH_TIMEOUT`]) and size ([`FETCH_LIMIT`]).
//! Nothing a token names is ever fetched.
//!
//! The stage counts refused tokens by reason ([`REASONS`]) and key loads by issuer
//! and result, for `/metrics`.

use crate::config::{IdentityConfig, IdentityMode, IssuerConfig, KeyRefresh, KeySource, TokenFrom};
use crate::error::{ProxyError, chain};
use crate::route::Route;
use crate::upstream::HttpClient;
use bytes::Bytes;
use custody_audit::AuditRecord;
use custody_identity::{KeySet, Rejection, Verified, VerifiedCache, peek_issuer, verify};
use http::{HeaderMap, HeaderName, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

mod looked;
pub(crate) use looked::Looked;
#[cfg(test)]
pub(crate) use looked::looked;

/// Least time between two on-demand key fetches for one issuer.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest wait between retries of a failed scheduled refresh.
const RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// Refresh interval when the IdP sends no cache headers (then clamped).
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const FETCH_LIMIT: usize = 1 << 20;
/// Verified tokens kept (each until its `exp`).
const CACHE_TOKENS: usize = 10_000;

/// Every [`Rejection::reason`], the `reason` label of
/// `custody_identity_failures_total`; a reason not listed here counts as `other`.
pub(crate) const REASONS: [&str; 13] = [
    "missing",
    "malformed",
    "too_large",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "unknown_issuer",
    "wrong_audience",
    "unknown_key",
    "disallowed_algorithm",
    "unsupported_critical",
    "keys_unavailable",
    "other",
];

/// An issuer's current keys.
struct Loaded {
    keys: Arc<KeySet>,
    /// Past this, the keys are too old to trust (refresh time + `jwks_max_stale`).
    unusable_after: Instant,
}

struct Issuer {
    config: IssuerConfig,
    keys: RwLock<Option<Loaded>>,
    /// When the next scheduled refresh is due.
    next_refresh: Mutex<Instant>,
    /// When the last on-demand refetch started (scheduled refreshes do not count).
    last_on_demand: Mutex<Option<Instant>>,
    /// Key loads that succeeded and failed.
    loads: [AtomicU64; 2],
}

impl Issuer {
    /// The keys, if loaded and not past their staleness limit.
    fn usable_keys(&self, now: Instant) -> Option<Arc<KeySet>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|l| now <= l.unusable_after)
            .map(|l| l.keys.clone())
    }
}

/// Verifies tokens for every configured issuer.
pub(crate) struct Identity {
    token_header: HeaderName,
    issuers: Vec<Issuer>,
    refresh: KeyRefresh,
    max_token_bytes: usize,
    cache: VerifiedCache,
    client: HttpClient,
    /// Refused tokens, by index in [`REASONS`].
    failures: [AtomicU64; REASONS.len()],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| &i.config.policy.issuer)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Identity {
    /// Builds the stage and loads every issuer's keys; an issuer whose keys cannot be
    /// loaded is logged and retried (and `/readyz` stays 503 until the first load).
    pub(crate) async fn start(config: &IdentityConfig, client: HttpClient) -> Self {
        let now = Instant::now();
        let identity = Self {
            token_header: config.token_header.clone(),
            max_token_bytes: config
                .issuers
                .iter()
                .map(|i| i.policy.max_token_bytes)
                .max()
                .unwrap_or(0),
            issuers: config
                .issuers
                .iter()
                .map(|c| Issuer {
                    config: c.clone(),
                    keys: RwLock::new(None),
                    next_refresh: Mutex::new(now),
                    last_on_demand: Mutex::new(None),
                    loads: Default::default(),
                })
                .collect(),
            refresh: config.refresh,
            cache: VerifiedCache::new(CACHE_TOKENS),
            client,
            failures: Default::default(),
        };
        for issuer in &identity.issuers {
            identity.load(issuer).await;
        }
        identity
    }

    /// Runs the scheduled refreshes in the background for as long as the stage
    /// lives.
    pub(crate) fn spawn_refresher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let due = {
                    let Some(identity) = weak.upgrade() else {
                        return;
                    };
                    identity
                        .issuers
                        .iter()
                        .map(|i| {
                            *i.next_refresh
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                        })
                        .min()
                };
                let Some(due) = due else { return };
                tokio::time::sleep_until(due.into()).await;
                let Some(identity) = weak.upgrade() else {
                    return;
                };
                let now = Instant::now();
                for issuer in &identity.issuers {
                    let is_due = *issuer
                        .next_refresh
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        <= now;
                    if is_due {
                        identity.load(issuer).await;
                    }
                }
            }
        });
    }

    /// The header that carries the user's token on `token_from: header` routes.
    pub(crate) fn token_header(&self) -> &HeaderName {
        &self.token_header
    }

    /// Whether every issuer's keys have been loaded at least once (they may have
    /// gone stale since): what readiness waits for at start.
    pub(crate) fn loaded(&self) -> bool {
        self.issuers.iter().all(|i| {
            i.keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        })
    }

    /// Whether every issuer has keys that are not too stale to use.
    pub(crate) fn ready(&self) -> bool {
        let now = Instant::now();
        self.issuers.iter().all(|i| i.usable_keys(now).is_some())
    }

    /// Counts a refused token (`custody_identity_failures_total`).
    pub(crate) fn count_failure(&self, rejection: &Rejection) {
        let reason = rejection.reason();
        let i = REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(REASONS.len() - 1);
        self.failures[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Refused tokens by reason, every reason listed.
    pub(crate) fn failure_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REASONS
            .iter()
            .zip(&self.failures)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
    }

    /// Key loads per issuer: `(issuer, succeeded, failed)`.
    pub(crate) fn fetch_counts(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.issuers.iter().map(|i| {
            (
                i.config.policy.issuer.as_str(),
                i.loads[0].load(Ordering::Relaxed),
                i.loads[1].load(Ordering::Relaxed),
            )
        })
    }

    /// Verifies `token`, or finds it among the tokens already verified.
    pub(crate) async fn verify(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(hit) = self.cache.get(token, now) {
            return Ok(hit);
        }
        let verified = Arc::new(self.verify_fresh(token).await?);
        self.cache.insert(token, verified.clone(), now);
        Ok(verified)
    }

    /// The configured issuer a token names in its `iss` (read without verifying
    /// anything), for the row of a refused token: which of custody's issuers it
    /// was checked against. `None` for a token naming none of them.
    pub(crate) fn named_issuer(&self, token: &str) -> Option<&str> {
        let iss = peek_issuer(token, self.max_token_bytes).ok()?;
        self.issuers
            .iter()
            .map(|i| i.config.policy.issuer.as_str())
            .find(|configured| *configured == iss)
    }

    async fn verify_fresh(&self, token: &str) -> Result<Verified, Rejection> {
        let iss = peek_issuer(token, self.max_token_bytes)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.policy.issuer == iss)
            .ok_or(Rejection::UnknownIssuer(iss))?;
        let first = match issuer.usable_keys(Instant::now()) {
            Some(keys) => verify(token, &issuer.config.policy, &keys),
            None => Err(Rejection::KeysUnavailable),
        };
        match first {
            Err(Rejection::UnknownKey | Rejection::KeysUnavailable)
                if self.refetch_on_demand(issuer).await =>
            {
                match issuer.usable_keys(Instant::now()) {
                    Some(keys) => verify(token, &issuer.config.policy, &keys),
                    None => Err(Rejection::KeysUnavailable),
                }
            }
            other => other,
        }
    }

    /// A refetch because a token named an unknown `kid` (or the keys are missing):
    /// at most once per [`REFETCH_INTERVAL`] per issuer. Returns whether new keys
    /// were installed.
    async fn refetch_on_demand(&self, issuer: &Issuer) -> bool {
        {
            let mut last = issuer
                .last_on_demand
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.load(issuer).await
    }

    /// Fetches and installs the issuer's keys and schedules the next refresh; on
    /// failure the last good keys stay (within their staleness limit) and the
    /// refresh is retried soon.
    async fn load(&self, issuer: &Issuer) -> bool {
        let name = &issuer.config.policy.issuer;
        let started = Instant::now();
        let result = self.load_keys(&issuer.config.keys).await;
        let mut next = issuer
            .next_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((keys, ttl)) => {
                let ttl = ttl
                    .unwrap_or(DEFAULT_TTL)
                    .clamp(self.refresh.min, self.refresh.max);
                tracing::info!(issuer = %name, keys = keys.len(), refresh_in = ?ttl, "issuer keys loaded");
                *issuer.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Loaded {
                    keys: Arc::new(keys),
                    unusable_after: started + ttl + self.refresh.max_stale,
                });
                *next = started + ttl;
                issuer.loads[0].fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(issuer = %name, error = %e, "cannot load issuer keys; keeping the last good ones");
                *next = Instant::now() + self.refresh.min.min(RETRY_INTERVAL);
                issuer.loads[1].fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The key set and, for fetched keys, how long the IdP says it may be cached.
    async fn load_keys(&self, source: &KeySource) -> Result<(KeySet, Option<Duration>), String> {
        let (bytes, ttl) = match source {
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                (bytes.into(), Some(self.refresh.min))
            }
            KeySource::Uri(uri) => self.fetch(uri).await?,
            KeySource::Discovery(uri) => {
                let (doc, _) = self.fetch(uri).await?;
                let doc: serde_json::Value = serde_json::from_slice(&doc)
                    .map_err(|e| format!("{uri}: not a discovery document: {e}"))?;
                let jwks_uri = doc
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| format!("{uri}: no jwks_uri"))?;
                let jwks_uri: Uri = jwks_uri
                    .parse()
                    .map_err(|e| format!("{uri}: bad jwks_uri: {e}"))?;
                self.fetch(&jwks_uri).await?
            }
        };
        let keys = KeySet::from_jwks(&bytes).map_err(|e| e.to_string())?;
        Ok((keys, ttl))
    }

    /// GET `uri` with a time and size bound; the body and its cache lifetime.
    async fn fetch(&self, uri: &Uri) -> Result<(Bytes, Option<Duration>), String> {
        let request = Request::get(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| e.to_string())?;
        let work = async {
            let response = self.client.request(request).await.map_err(|e| chain(&e))?;
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            let ttl = cache_lifetime(response.headers(), SystemTime::now());
            Limited::new(response.into_body(), FETCH_LIMIT)
                .collect()
                .await
                .map(|c| (c.to_bytes(), ttl))
                .map_err(|e| chain(&*e))
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| format!("timed out after {FETCH_TIMEOUT:?}"))?
            .map_err(|e| format!("{uri}: {e}"))
    }
}

/// Who is calling, as the identity stage ([`authenticate`]) found out.
#[derive(Debug)]
pub(crate) enum Caller {
    /// A valid token: its principal and scopes are in the row.
    Verified(Arc<Verified>),
    /// No identity on this route, or no valid token where one is optional: the
    /// row keeps the default (anonymous) principal.
    Anonymous,
}

impl Caller {
    /// The verified token, if any (its claims and scopes, for the policy).
    pub(crate) fn verified(&self) -> Option<&Verified> {
        match self {
            Caller::Verified(verified) => Some(verified),
            Caller::Anonymous => None,
        }
    }
}

/// The identity stage's one entry point: the user's token. `identity` is `None`
/// without an `identity` section. Custody's token header never leaves custody; on
/// a route with `token_from: authorization` the bearer token is the user's and is
/// forwarded as it is. In forward-proxy mode, a request without custody's token
/// header uses `proxy_token`, the bearer token of the `CONNECT`'s
/// `Proxy-Authorization`. A verified token fills the row's `principal` and
/// `policy.scopes`; a missing or invalid one is refused (401) where the route
/// requires one.
pub(crate) async fn authenticate(
    identity: Option<&Identity>,
    record: &mut AuditRecord,
    headers: &mut HeaderMap,
    route: &Route,
    proxy_token: Option<&str>,
) -> Result<Caller, ProxyError> {
    let Some(identity) = identity else {
        // No identity configured: still never forward a token sent in custody's
        // default header.
        headers.remove(crate::config::DEFAULT_TOKEN_HEADER);
        return Ok(Caller::Anonymous);
    };
    if route.identity == IdentityMode::Off {
        headers.remove(identity.token_header());
        return Ok(Caller::Anonymous);
    }
    let verified_header = match route.token_from {
        TokenFrom::Header => identity.token_header(),
        TokenFrom::Authorization => &http::header::AUTHORIZATION,
    };
    let single =
        crate::integrity::credentials::single(headers, verified_header).map(|v| v.cloned());
    let own = headers.remove(identity.token_header());
    let had_own = own.is_some();
    let token = match (single, route.token_from) {
        (Err(refusal), _) => return Err(refusal.into()),
        (Ok(_), TokenFrom::Header) => own,
        (Ok(value), TokenFrom::Authorization) => value,
    };
    let token = token
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            let t = t.trim();
            t.strip_prefix("Bearer ")
                .or_else(|| t.strip_prefix("bearer "))
                .unwrap_or(t)
                .trim()
        })
        .or(match route.token_from {
            TokenFrom::Header => proxy_token,
            TokenFrom::Authorization => None,
        });
    let result = match token {
        None | Some("") => Err(Rejection::Missing),
        Some(token) => identity.verify(token).await,
    };
    match result {
        Ok(verified) => {
            record.principal = verified.principal.clone();
            record.policy.scopes.clone_from(&verified.scopes);
            Ok(Caller::Verified(verified))
        }
        Err(rejection) if route.identity == IdentityMode::Required => {
            identity.count_failure(&rejection);
            // Who was refused, as far as it is known: the configured issuer the
            // token named, and the subject of a token whose signature verified but
            // whose time was wrong (never the `sub` of a token that did not verify).
            if let Some(token) = token {
                record.principal.issuer = identity.named_issuer(token).map(str::to_owned);
                record.principal.sub = rejection.verified_subject().map(str::to_owned);
            }
            let looked = looked::looked(
                route.token_from,
                identity.token_header(),
                headers,
                had_own,
                &rejection,
                proxy_token.is_some(),
            );
            Err(ProxyError::Unauthenticated(rejection, looked))
        }
        Err(rejection) => {
            if rejection != Rejection::Missing {
                identity.count_failure(&rejection);
            }
            tracing::debug!(
                reason = rejection.reason(),
                "optional identity: no valid token; anonymous"
            );
            Ok(Caller::Anonymous)
        }
    }
}

/// The principal of a valid bearer token (forward-proxy `Proxy-Authorization`,
/// for the row of a `CONNECT`), or the default (anonymous) principal; never
/// fails, never logs the token.
pub(crate) async fn proxy_principal(
    identity: Option<&Identity>,
    token: Option<&str>,
) -> custody_core::Principal {
    match (identity, token) {
        (Some(identity), Some(token)) => match identity.verify(token).await {
            Ok(verified) => verified.principal.clone(),
            Err(rejection) => {
                tracing::debug!(
                    reason = rejection.reason(),
                    "Proxy-Authorization token not valid; anonymous"
                );
                custody_core::Principal::default()
            }
        },
        _ => custody_core::Principal::default(),
    }
}

/// How long a response may be cached, by its headers: `Cache-Control: no-store` or
/// `no-cache` → zero, else `max-age`, else `Expires` (relative to `Date`, or `now`).
/// `None` when the headers say nothing usable.
fn cache_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.trim_matches('"').parse::<u64>().ok())
            {
                max_age = Some(Duration::from_secs(secs));
            }
        }
    }
    if max_age.is_some() {
        return max_age;
    }
    let date = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let expires = date(http::header::EXPIRES)?;
    let origin = date(http::header::DATE).unwrap_or(now);
    Some(expires.duration_since(origin).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::try_from(*k).expect("name"),
                    v.parse().expect("value"),
                )
            })
            .collect()
    }

    #[test]
    fn every_rejection_reason_has_its_label() {
        let all = [
            Rejection::Missing,
            Rejection::Malformed(String::new()),
            Rejection::TooLarge(1),
            Rejection::Expired { sub: None },
            Rejection::NotYetValid { sub: None },
            Rejection::BadSignature,
            Rejection::UnknownIssuer(String::new()),
            Rejection::WrongAudience,
            Rejection::UnknownKey,
            Rejection::DisallowedAlgorithm(String::new()),
            Rejection::UnsupportedCritical,
            Rejection::KeysUnavailable,
        ];
        for r in &all {
            // A new variant stops this match from compiling: list it above.
            match r {
                Rejection::Missing
                | Rejection::Malformed(_)
                | Rejection::TooLarge(_)
                | Rejection::Expired { .. }
                | Rejection::NotYetValid { .. }
                | Rejection::BadSignature
                | Rejection::UnknownIssuer(_)
                | Rejection::WrongAudience
                | Rejection::UnknownKey
                | Rejection::DisallowedAlgorithm(_)
                | Rejection::UnsupportedCritical
                | Rejection::KeysUnavailable => {}
            }
            assert!(REASONS.contains(&r.reason()), "{}", r.reason());
        }
        assert_eq!(REASONS.len(), all.len() + 1, "every reason, then other");
    }

    #[test]
    fn cache_lifetime_follows_cache_control_then_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |h: &[(&str, &str)]| cache_lifetime(&headers(h), now);
        assert_eq!(
            at(&[("cache-control", "public, max-age=600, must-revalidate")]),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            at(&[("cache-control", "MAX-AGE=\"30\"")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            at(&[
                ("cache-control", "no-store"),
                ("expires", "Fri, 15 Jan 2027 08:00:00 GMT")
            ]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            at(&[
                ("date", "Fri, 15 Jan 2027 07:00:00 GMT"),
                ("expires", "Fri, 15 Jan 2027 08:00:00 GMT")
            ]),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            at(&[("expires", "0")]),
            None,
            "an unparsable Expires says nothing"
        );
        assert_eq!(at(&[("cache-control", "public")]), None);
        assert_eq!(at(&[]), None);
    }
}
