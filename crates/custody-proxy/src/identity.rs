//! The identity stage: finds the user's token, verifies it against the issuer's
//! keys, and fills the principal. Keys come from a JWKS file, a JWKS URL or OpenID
//! discovery; they are loaded at startup and refetched when a token names an unknown
//! `kid`, at most once per [`REFETCH_INTERVAL`] per issuer, keeping the last good keys
//! when the IdP is unreachable.

use crate::config::{IdentityConfig, IssuerConfig, KeySource};
use crate::error::chain;
use crate::upstream::HttpClient;
use bytes::Bytes;
use custody_identity::{KeySet, Rejection, Verified, VerifiedCache, peek_issuer, verify};
use http::{HeaderName, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Least time between two key fetches for one issuer (a flood of random `kid`s
/// causes at most two fetches a minute).
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const FETCH_LIMIT: usize = 1 << 20;

struct Issuer {
    config: IssuerConfig,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// When the last on-demand refetch started (the startup load does not count).
    last_fetch: Mutex<Option<Instant>>,
}

/// Verifies tokens for every configured issuer.
pub(crate) struct Identity {
    token_header: HeaderName,
    issuers: Vec<Issuer>,
    max_token_bytes: usize,
    cache: VerifiedCache,
    client: HttpClient,
}

/// Verified tokens kept (each until its `exp`).
const CACHE_TOKENS: usize = 10_000;

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
    /// loaded is logged and retried on demand (and `/readyz` stays 503 meanwhile).
    pub(crate) async fn start(config: &IdentityConfig, client: HttpClient) -> Self {
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
                    last_fetch: Mutex::new(None),
                })
                .collect(),
            cache: VerifiedCache::new(CACHE_TOKENS),
            client,
        };
        for issuer in &identity.issuers {
            identity.load(issuer).await;
        }
        identity
    }

    /// Until every issuer has keys, retries the missing ones every
    /// [`REFETCH_INTERVAL`] (an IdP that was down at startup), so `/readyz` recovers
    /// without waiting for a token to arrive.
    pub(crate) fn retry_missing_keys(self: &Arc<Self>) {
        if self.ready() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFETCH_INTERVAL).await;
                let Some(identity) = weak.upgrade() else {
                    return;
                };
                for issuer in &identity.issuers {
                    let missing = issuer
                        .keys
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_none();
                    if missing {
                        identity.refresh(issuer).await;
                    }
                }
                if identity.ready() {
                    return;
                }
            }
        });
    }

    /// The header that carries the user's token on `token_from: header` routes.
    pub(crate) fn token_header(&self) -> &HeaderName {
        &self.token_header
    }

    /// Whether every issuer has keys.
    pub(crate) fn ready(&self) -> bool {
        self.issuers.iter().all(|i| {
            i.keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        })
    }

    /// Verifies `token`, or finds it among the tokens already verified.
    pub(crate) async fn verify(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(hit) = self.cache.get(token, now) {
            return Ok(hit);
        }
        let verified = Arc::new(self.verify_fresh(token).await?);
        self.cache.insert(token, verified.clone(), now);
        Ok(verified)
    }

    async fn verify_fresh(&self, token: &str) -> Result<Verified, Rejection> {
        let iss = peek_issuer(token, self.max_token_bytes)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.policy.issuer == iss)
            .ok_or(Rejection::UnknownIssuer(iss))?;
        let keys = issuer
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let first = match &keys {
            Some(keys) => verify(token, &issuer.config.policy, keys),
            None => Err(Rejection::UnknownKey),
        };
        match first {
            Err(Rejection::UnknownKey) if self.refresh(issuer).await => {
                let keys = issuer
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match keys {
                    Some(keys) => verify(token, &issuer.config.policy, &keys),
                    None => Err(Rejection::UnknownKey),
                }
            }
            other => other,
        }
    }

    /// On-demand refetch (a token named an unknown `kid`, or the keys never
    /// loaded): at most once per [`REFETCH_INTERVAL`] per issuer. Returns whether new
    /// keys were installed.
    async fn refresh(&self, issuer: &Issuer) -> bool {
        {
            let mut last = issuer
                .last_fetch
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.load(issuer).await
    }

    /// Fetches and installs the issuer's keys; on failure the last good keys stay.
    async fn load(&self, issuer: &Issuer) -> bool {
        let name = &issuer.config.policy.issuer;
        match self.load_keys(&issuer.config.keys).await {
            Ok(keys) => {
                tracing::info!(issuer = %name, keys = keys.len(), "issuer keys loaded");
                *issuer.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(keys));
                true
            }
            Err(e) => {
                tracing::warn!(issuer = %name, error = %e, "cannot load issuer keys; keeping the last good ones");
                false
            }
        }
    }

    async fn load_keys(&self, source: &KeySource) -> Result<KeySet, String> {
        let bytes = match source {
            KeySource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
                .into(),
            KeySource::Uri(uri) => self.fetch(uri).await?,
            KeySource::Discovery(uri) => {
                let doc = self.fetch(uri).await?;
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
        KeySet::from_jwks(&bytes).map_err(|e| e.to_string())
    }

    /// GET `uri` with a time and size bound.
    async fn fetch(&self, uri: &Uri) -> Result<Bytes, String> {
        let request = Request::get(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| e.to_string())?;
        let work = async {
            let response = self.client.request(request).await.map_err(|e| chain(&e))?;
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            Limited::new(response.into_body(), FETCH_LIMIT)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| chain(&*e))
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| format!("timed out after {FETCH_TIMEOUT:?}"))?
            .map_err(|e| format!("{uri}: {e}"))
    }
}
