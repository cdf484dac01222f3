//! Leaf certificates per intercepted host, minted from the [`Ca`] and cached.
//!
//! Each host gets one TLS server configuration holding its leaf (ECDSA P-256, SAN =
//! the host name or IP address), TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`. The cache
//! is bounded (`intercept.leaf_cache_size`; the least recently used host is evicted)
//! and a leaf is re-minted once half of its lifetime has passed, so a cached leaf is
//! always valid for at least half of `intercept.leaf_lifetime`. A cache hit signs
//! nothing: [`Leaves::mints`] counts the certificates signed.

use super::ca::{Ca, CaError};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cache of per-host TLS configurations.
#[derive(Debug)]
pub(crate) struct Leaves {
    ca: Ca,
    lifetime: Duration,
    capacity: usize,
    provider: Arc<rustls::crypto::CryptoProvider>,
    cache: Mutex<Cache>,
    mints: AtomicU64,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    /// Incremented on every lookup; an entry's `used` is the tick of its last use.
    tick: u64,
}

#[derive(Debug)]
struct Entry {
    config: Arc<ServerConfig>,
    renew_at: Instant,
    used: u64,
}

/// Always presents one leaf (the host was chosen before the handshake started).
#[derive(Debug)]
struct Leaf(Arc<CertifiedKey>);

impl ResolvesServerCert for Leaf {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl Leaves {
    pub(crate) fn new(ca: Ca, lifetime: Duration, capacity: usize) -> Self {
        Self {
            ca,
            lifetime,
            capacity: capacity.max(1),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            cache: Mutex::default(),
            mints: AtomicU64::new(0),
        }
    }

    /// Certificates signed so far.
    pub(crate) fn mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    /// Hosts cached now.
    pub(crate) fn cached(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.entries.len())
    }

    /// The TLS configuration presenting a leaf for `host` (lowercase host name or IP
    /// address), from the cache or minted now.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.tick += 1;
        let tick = cache.tick;
        if let Some(e) = cache.entries.get_mut(host)
            && e.renew_at > now
        {
            e.used = tick;
            return Ok(e.config.clone());
        }
        // Minted under the lock: concurrent first handshakes to one host sign once.
        let config = self.mint(host)?;
        if cache.entries.len() >= self.capacity && !cache.entries.contains_key(host) {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(h, _)| h.clone());
            if let Some(h) = oldest {
                cache.entries.remove(&h);
            }
        }
        cache.entries.insert(
            host.to_owned(),
            Entry {
                config: config.clone(),
                renew_at: now + self.lifetime / 2,
                used: tick,
            },
        );
        Ok(config)
    }

    fn mint(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let err = |message: String| CaError::Mint {
            host: host.to_owned(),
            message,
        };
        let (cert, key) = self.ca.mint(host, self.lifetime)?;
        self.mints.fetch_add(1, Ordering::Relaxed);
        let key = self
            .provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| err(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(vec![cert], key));
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| err(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Leaf(certified)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tracing::debug!(host, "minted a leaf certificate");
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(capacity: usize) -> Leaves {
        Leaves::new(
            Ca::generate("test").expect("ca"),
            Duration::from_secs(3600),
            capacity,
        )
    }

    #[test]
    fn a_cached_leaf_is_reused_without_signing() {
        let l = leaves(8);
        let a = l.server_config("api.openai.com").expect("config");
        for _ in 0..100 {
            let b = l.server_config("api.openai.com").expect("config");
            assert!(Arc::ptr_eq(&a, &b));
        }
        assert_eq!(l.mints(), 1);
        l.server_config("127.0.0.1").expect("ip leaf");
        assert_eq!(l.mints(), 2);
        assert_eq!(a.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
        let l = leaves(3);
        for h in ["a.test", "b.test", "c.test"] {
            l.server_config(h).expect("config");
        }
        // `a` is used again, so `b` is the least recently used.
        l.server_config("a.test").expect("config");
        l.server_config("d.test").expect("config");
        assert_eq!(l.cached(), 3);
        assert_eq!(l.mints(), 4);
        l.server_config("a.test").expect("config");
        assert_eq!(l.mints(), 4, "a stayed cached");
        l.server_config("b.test").expect("config");
        assert_eq!(l.mints(), 5, "b was evicted");
        assert_eq!(l.cached(), 3);
    }

    #[test]
    fn an_expiring_leaf_is_reminted() {
        let l = Leaves::new(
            Ca::generate("test").expect("ca"),
            Duration::from_millis(2),
            4,
        );
        l.server_config("a.test").expect("config");
        std::thread::sleep(Duration::from_millis(5));
        l.server_config("a.test").expect("config");
        assert_eq!(l.mints(), 2);
        assert_eq!(l.cached(), 1);
    }
}
