//! The webhook's serving certificate: read from PEM files, swapped in while serving
//! when the files change. A mounted Secret changes by an atomic symlink swap
//! (`..data`), so both files are compared by the [`Stamp`] of what they point to
//! (custody's one file-change rule, [`custody_proxy::watch`]). A new pair that cannot be read, or
//! whose key does not match its certificate, is logged and the previous pair stays
//! in use; it is tried again at the next change (a cert and key written one after
//! the other converge).

use anyhow::Context as _;
use custody_proxy::watch::Stamp;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The certificate and key files.
#[derive(Clone, Debug)]
pub(crate) struct CertFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl CertFiles {
    fn stamps(&self) -> (Option<Stamp>, Option<Stamp>) {
        (Stamp::of(&self.cert).ok(), Stamp::of(&self.key).ok())
    }

    /// Reads and checks the pair: a chain of at least one certificate, a private
    /// key, and the key matching the first certificate.
    pub(crate) fn load(&self, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .with_context(|| format!("reading {}", self.cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing {}", self.cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{} holds no PEM certificate",
            self.cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading a PEM private key from {}", self.key.display()))?;
        CertifiedKey::from_der(chain, key, provider).with_context(|| {
            format!(
                "{} and {} do not make a usable pair",
                self.cert.display(),
                self.key.display()
            )
        })
    }
}

/// Hands every TLS handshake the current pair.
#[derive(Debug)]
pub(crate) struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    pub(crate) fn new(key: CertifiedKey) -> Resolver {
        Resolver {
            current: RwLock::new(Arc::new(key)),
        }
    }

    fn swap(&self, key: CertifiedKey) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(key);
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        Some(guard.clone())
    }
}

/// A short, loggable identity of the pair's leaf certificate: the first 8 bytes of
/// its SHA-256, in hex.
pub(crate) fn fingerprint(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return "none".into();
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one look at the files found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Unchanged,
    Reloaded,
    Failed,
}

/// Compares the files with `last`; when they changed, loads and swaps in the pair.
pub(crate) fn check(
    files: &CertFiles,
    last: &mut (Option<Stamp>, Option<Stamp>),
    resolver: &Resolver,
    provider: &CryptoProvider,
) -> Check {
    let now = files.stamps();
    if now == *last {
        return Check::Unchanged;
    }
    *last = now;
    match files.load(provider) {
        Ok(key) => {
            let fingerprint = fingerprint(&key);
            resolver.swap(key);
            tracing::info!(fingerprint, "serving certificate reloaded");
            Check::Reloaded
        }
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "serving certificate not reloaded; the previous one stays in use"
            );
            Check::Failed
        }
    }
}

/// Checks the files every `interval` until `stop`.
pub(crate) fn watch(
    files: CertFiles,
    resolver: Arc<Resolver>,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    stop: CancellationToken,
) {
    let last = Mutex::new(files.stamps());
    custody_proxy::watch::poll(interval, stop, move || {
        let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
        check(&files, &mut last, &resolver, &provider);
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    #[test]
    fn a_mismatched_or_missing_pair_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        assert!(files.load(&provider()).is_err());
        let (cert, _) = pair("a");
        let (_, other_key) = pair("b");
        std::fs::write(&files.cert, cert).expect("write");
        std::fs::write(&files.key, other_key).expect("write");
        let e = files.load(&provider()).expect_err("mismatch");
        assert!(format!("{e:#}").contains("usable pair"), "{e:#}");
        std::fs::write(&files.cert, "not pem").expect("write");
        assert!(files.load(&provider()).is_err());
    }

    /// The Secret-volume layout: files are symlinks through `..data`, which is
    /// swapped atomically; the check follows it and swaps the pair.
    #[test]
    fn a_symlink_swap_is_picked_up_and_a_bad_pair_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write_version = |name: &str, cert: &str, key: &str| {
            let v = dir.path().join(name);
            std::fs::create_dir(&v).expect("mkdir");
            std::fs::write(v.join("tls.crt"), cert).expect("write");
            std::fs::write(v.join("tls.key"), key).expect("write");
            let tmp = dir.path().join("..data_tmp");
            std::os::unix::fs::symlink(name, &tmp).expect("symlink");
            std::fs::rename(&tmp, dir.path().join("..data")).expect("swap");
        };
        let (c1, k1) = pair("one");
        write_version("v1", &c1, &k1);
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.path().join(f)).expect("link");
        }
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let provider = provider();
        let first = files.load(&provider).expect("first pair");
        let first_fp = fingerprint(&first);
        let resolver = Resolver::new(first);
        let current = || fingerprint(&resolver.current.read().expect("lock"));
        let mut last = files.stamps();
        assert_eq!(
            check(&files, &mut last, &resolver, &provider),
            Check::Unchanged
        );
        // A pair whose key is not the certificate's: the old pair stays.
        let (c2, _) = pair("two");
        let (_, wrong) = pair("three");
        write_version("v2", &c2, &wrong);
        assert_eq!(
            check(&files, &mut last, &resolver, &provider),
            Check::Failed
        );
        assert_eq!(current(), first_fp);
        assert_eq!(
            check(&files, &mut last, &resolver, &provider),
            Check::Unchanged
        );
        // A good pair replaces it.
        let (c3, k3) = pair("four");
        write_version("v3", &c3, &k3);
        assert_eq!(
            check(&files, &mut last, &resolver, &provider),
            Check::Reloaded
        );
        assert_ne!(current(), first_fp);
    }
}
