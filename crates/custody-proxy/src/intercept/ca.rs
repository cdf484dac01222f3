//! The pod-local CA: loaded from files (`intercept.ca.cert_file` / `key_file`) or
//! generated in memory at start, and its certificate exported for applications.
//!
//! Invariants:
//! - The private key is only ever in memory (and in the operator's own key file); it
//!   is never logged (`Debug` does not show it) and never written anywhere: the export
//!   directory receives `ca.pem` (the certificate) and `bundle.pem` (system roots +
//!   the certificate), each written to a temporary file and renamed into place, mode
//!   0644.
//! - A generated CA is ECDSA P-256, valid from an hour ago for [`GENERATED_VALIDITY`],
//!   constrained to issuing end-entity certificates (path length 0).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Validity of a CA generated at start (a pod rarely lives this long; a restart
/// generates a new one).
pub(crate) const GENERATED_VALIDITY: Duration = Duration::from_secs(365 * 86400);

/// Mode of the exported files: anyone in the pod may read the certificates.
pub(crate) const EXPORT_MODE: u32 = 0o644;

/// Where the system roots appended in `bundle.pem` are looked for, in order, after
/// `SSL_CERT_FILE`; the Mozilla roots built into custody (`webpki-root-certs`) are
/// the last resort.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Why the CA cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaError {
    #[error("intercept.ca.cert_file {}: {message}", path.display())]
    Cert { path: PathBuf, message: String },
    #[error("intercept.ca.key_file {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("intercept.ca.export_dir {}: {message}", path.display())]
    Export { path: PathBuf, message: String },
    #[error("generating the CA: {0}")]
    Generate(String),
    #[error("minting a certificate for {host}: {message}")]
    Mint { host: String, message: String },
}

/// The CA that signs leaf certificates.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Ca")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA (ECDSA P-256) named after `instance`.
    pub(crate) fn generate(instance: &str) -> Result<Ca, CaError> {
        let err = |e: rcgen::Error| CaError::Generate(e.to_string());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("custody pod-local CA ({instance})"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "custody");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + GENERATED_VALIDITY).into();
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Ca {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA in `cert_file` with its key in `key_file` (PEM). Warns when the key
    /// file can be read by anyone but its owner.
    pub(crate) fn from_files(cert_file: &Path, key_file: &Path) -> Result<Ca, CaError> {
        let cert_err = |message: String| CaError::Cert {
            path: cert_file.to_owned(),
            message,
        };
        let key_err = |message: String| CaError::Key {
            path: key_file.to_owned(),
            message,
        };
        let cert_pem = std::fs::read_to_string(cert_file).map_err(|e| cert_err(e.to_string()))?;
        let key_pem = std::fs::read_to_string(key_file).map_err(|e| key_err(e.to_string()))?;
        if let Ok(meta) = std::fs::metadata(key_file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %key_file.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the CA key file is readable by others than its owner; make it 0400 or 0600 (Secret defaultMode)"
            );
        }
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| key_err(format!("not a usable private key: {e}")))?;
        let cert_der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| cert_err(format!("no PEM certificate: {e}")))?;
        // The key must belong to the certificate.
        let signing = rustls::crypto::aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))
            .map_err(|e| key_err(e.to_string()))?;
        let certified =
            rustls::sign::CertifiedKey::new(vec![CertificateDer::clone(&cert_der)], signing);
        certified
            .keys_match()
            .map_err(|e| key_err(format!("does not belong to the certificate: {e}")))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| cert_err(format!("not a usable CA certificate: {e}")))?;
        Ok(Ca {
            issuer,
            cert_der,
            cert_pem: normalise_pem(&cert_pem),
        })
    }

    /// The CA certificate, PEM.
    #[cfg(test)]
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    #[cfg(test)]
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A leaf certificate for `host` (DNS name or IP address) with a fresh ECDSA
    /// P-256 key, valid from an hour ago for `lifetime`.
    pub(crate) fn mint(
        &self,
        host: &str,
        lifetime: Duration,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), CaError> {
        let err = |e: rcgen::Error| CaError::Mint {
            host: host.to_owned(),
            message: e.to_string(),
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        // `new` makes an IP address SAN for an address, a DNS SAN otherwise.
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + lifetime).into();
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok((
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }

    /// Writes `ca.pem` and `bundle.pem` into `dir` (created if missing); returns
    /// where the bundle's system roots came from.
    pub(crate) fn export(&self, dir: &Path) -> Result<String, CaError> {
        let export_err = |message: String| CaError::Export {
            path: dir.to_owned(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| export_err(e.to_string()))?;
        let bundle_path = dir.join("bundle.pem");
        let (mut bundle, source) = system_roots(&bundle_path);
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str("# custody pod-local CA\n");
        bundle.push_str(&self.cert_pem);
        write_atomically(&dir.join("ca.pem"), self.cert_pem.as_bytes())
            .map_err(|e| export_err(e.to_string()))?;
        write_atomically(&bundle_path, bundle.as_bytes()).map_err(|e| export_err(e.to_string()))?;
        Ok(source)
    }
}

/// PEM text ending with one newline.
fn normalise_pem(pem: &str) -> String {
    let mut s = pem.trim().to_owned();
    s.push('\n');
    s
}

/// The system's trust bundle (PEM) and where it came from: `SSL_CERT_FILE` (unless it
/// is the bundle being written), the first of [`SYSTEM_BUNDLES`] that exists, or the
/// Mozilla roots built into custody.
fn system_roots(bundle_path: &Path) -> (String, String) {
    let own = std::fs::canonicalize(bundle_path).ok();
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        if path == bundle_path || (own.is_some() && std::fs::canonicalize(&path).ok() == own) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&path)
            && text.contains("-----BEGIN CERTIFICATE-----")
        {
            return (text, path.display().to_string());
        }
    }
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        out.push_str(&pem_certificate(cert));
    }
    (out, "webpki-root-certs (built in)".to_owned())
}

/// `der` as a PEM `CERTIFICATE` block.
pub(crate) fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Writes `bytes` to a temporary file beside `path` (mode [`EXPORT_MODE`]), syncs it
/// and renames it over `path`: a reader sees the old file or the new one, never part.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(EXPORT_MODE)
        .open(&tmp)?;
    f.write_all(bytes)?;
    // The umask may have narrowed the mode.
    f.set_permissions(std::fs::Permissions::from_mode(EXPORT_MODE))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests;
