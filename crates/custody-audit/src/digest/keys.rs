//! Ed25519 keys for signing digests: private keys as PKCS#8 PEM (`PRIVATE KEY`, v1
//! as `openssl genpkey -algorithm ed25519` writes, or v2), public keys as SPKI PEM
//! (`PUBLIC KEY`, as `openssl pkey -pubout` writes). A key is named by its
//! fingerprint: `sha256:` and the hex SHA-256 of its SPKI DER.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use std::path::Path;

/// The SPKI DER of an Ed25519 public key is this prefix and the 32 key bytes
/// (RFC 8410: `SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }`).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what it should be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The private key custody signs digests with.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.public.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        read_pem(path, Self::from_pem)
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let der = pem_body(text, "PRIVATE KEY")?;
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key ({e})"))?;
        let public = PublicKey::from_raw(pair.public_key().as_ref())?;
        Ok(Self { pair, public })
    }

    /// A new random key: its PKCS#8 v1 PEM and the key.
    pub fn generate() -> Result<(String, Self), String> {
        let pair = Ed25519KeyPair::generate().map_err(|_| "key generation failed".to_owned())?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| "cannot encode the key".to_owned())?;
        let pem = pem("PRIVATE KEY", der.as_ref());
        let key = Self::from_pem(&pem)?;
        Ok((pem, key))
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

/// A public key a verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
    fingerprint: String,
}

impl PublicKey {
    /// Reads an SPKI PEM public key.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        read_pem(path, Self::from_pem)
    }

    /// Parses an SPKI PEM public key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let der = pem_body(text, "PUBLIC KEY")?;
        match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(raw) if raw.len() == 32 => Self::from_raw(raw),
            _ => Err("not an Ed25519 public key (SPKI, OID 1.3.101.112)".into()),
        }
    }

    fn from_raw(raw: &[u8]) -> Result<Self, String> {
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| "an Ed25519 public key has 32 bytes".to_owned())?;
        let fingerprint = format!("sha256:{}", super::sha256_hex(&spki(&raw)));
        Ok(Self { raw, fingerprint })
    }

    /// `sha256:<hex of the SHA-256 of the SPKI DER>`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The SPKI PEM.
    pub fn to_pem(&self) -> String {
        pem("PUBLIC KEY", &spki(&self.raw))
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

/// Reads `path` and parses it with `parse`, naming the file in any error.
fn read_pem<T>(path: &Path, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, KeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text).map_err(|reason| KeyError::Invalid {
        path: shown,
        reason,
    })
}

fn spki(raw: &[u8; 32]) -> Vec<u8> {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(raw);
    der
}

/// The DER inside the one PEM block labelled `label`.
fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no \"{begin}\" block (PEM)"))?;
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(&end)
        .ok_or_else(|| format!("no \"{end}\" line"))?;
    let b64: String = rest[..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem_and_sign() {
        let (pem, key) = SigningKey::generate().expect("generate");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let again = SigningKey::from_pem(&pem).expect("parse");
        assert_eq!(again.public(), key.public());
        let public = PublicKey::from_pem(&key.public().to_pem()).expect("public");
        assert_eq!(&public, key.public());
        assert!(public.fingerprint().starts_with("sha256:"));
        assert_eq!(public.fingerprint().len(), 7 + 64);
        let signature = key.sign(b"digest bytes");
        assert!(public.verifies(b"digest bytes", &signature));
        assert!(!public.verifies(b"digest bytez", &signature));
        let (_, other) = SigningKey::generate().expect("generate");
        assert!(!other.public().verifies(b"digest bytes", &signature));
    }

    #[test]
    fn an_openssl_pkcs8_v1_key_is_accepted() {
        // `openssl genpkey -algorithm ed25519` (RFC 8410 §10.3's example key).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem).expect("v1");
        // RFC 8410 §10.1's public key is this key's.
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert_eq!(key.public(), &PublicKey::from_pem(public).expect("spki"));
    }

    #[test]
    fn wrong_material_is_refused_with_a_reason() {
        assert!(
            SigningKey::from_pem("hello")
                .expect_err("no pem")
                .contains("BEGIN PRIVATE KEY")
        );
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(SigningKey::from_pem(public).is_err());
        // A P-256 SPKI is not an Ed25519 key.
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n";
        assert!(
            PublicKey::from_pem(p256)
                .expect_err("p256")
                .contains("not an Ed25519")
        );
    }
}
