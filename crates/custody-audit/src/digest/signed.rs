//! Reading a signed object (a digest or a compaction record) and deciding whether to
//! trust it: the same checks for both, in the order `docs/verify.md` gives.

use super::keys::PublicKey;
use super::{SIGNATURE_SUFFIX, sha256_hex, unb64};
use crate::ship::{ShipError, Shipper};
use serde::de::DeserializeOwned;

/// A signed JSON object custody writes.
pub(crate) trait Signed: DeserializeOwned {
    /// The findings' prefix: `digest` or `compaction`.
    const WHAT: &'static str;
    /// The fingerprint of the key it says signed it.
    fn fingerprint(&self) -> &str;
    /// Why its version cannot be read, if it cannot.
    fn version_problem(&self) -> Option<String>;
    /// The key its own fields give.
    fn own_key(&self) -> String;
}

/// A stored signed object, trusted or not.
pub(crate) struct Read<T> {
    /// Hex SHA-256 of its stored bytes.
    pub(crate) sha256: String,
    /// Its stored signature (base64; empty when there is none).
    pub(crate) signature: String,
    /// The object, or why it is not trusted: `(finding kind, detail)`.
    pub(crate) trusted: Result<T, (&'static str, String)>,
}

/// Reads the object at `key` (and `key.sig` when `signed`, i.e. it is listed) and
/// checks it against the trusted `keys`.
pub(crate) async fn read<T: Signed>(
    sink: &Shipper,
    key: &str,
    signed: bool,
    keys: &[PublicKey],
) -> Result<Read<T>, ShipError> {
    let body = sink.get(key).await?;
    let sha256 = sha256_hex(&body);
    let sig_key = format!("{key}{SIGNATURE_SUFFIX}");
    let signature = if signed {
        String::from_utf8_lossy(&sink.get(&sig_key).await?)
            .trim()
            .to_owned()
    } else {
        String::new()
    };
    let trusted = check::<T>(&body, &signature, key, &sig_key, keys);
    Ok(Read {
        sha256,
        signature,
        trusted,
    })
}

fn check<T: Signed>(
    body: &[u8],
    signature: &str,
    key: &str,
    sig_key: &str,
    keys: &[PublicKey],
) -> Result<T, (&'static str, String)> {
    let kind = |k: Kind| k.name(T::WHAT);
    if signature.is_empty() {
        return Err((kind(Kind::Unsigned), format!("no signature ({sig_key})")));
    }
    let value = match serde_json::from_slice::<T>(body) {
        Ok(v) => v,
        Err(e) => {
            let what = T::WHAT;
            return Err((kind(Kind::Unreadable), format!("not a {what}: {e}")));
        }
    };
    if let Some(problem) = value.version_problem() {
        return Err((kind(Kind::Unreadable), problem));
    }
    let Some(public) = keys.iter().find(|k| k.fingerprint() == value.fingerprint()) else {
        return Err((
            kind(Kind::UnknownKey),
            format!(
                "signed with {}, which is not among the trusted keys",
                value.fingerprint()
            ),
        ));
    };
    if !unb64(signature).is_some_and(|s| public.verifies(body, &s)) {
        return Err((
            kind(Kind::BadSignature),
            format!("the signature does not verify with {}", value.fingerprint()),
        ));
    }
    let own = value.own_key();
    if own != key {
        return Err((kind(Kind::Misplaced), format!("its fields name {own}")));
    }
    Ok(value)
}

#[derive(Clone, Copy)]
enum Kind {
    Unsigned,
    Unreadable,
    UnknownKey,
    BadSignature,
    Misplaced,
}

impl Kind {
    fn name(self, what: &str) -> &'static str {
        let digest = what == "digest";
        match (self, digest) {
            (Kind::Unsigned, true) => "digest_unsigned",
            (Kind::Unreadable, true) => "digest_unreadable",
            (Kind::UnknownKey, true) => "digest_unknown_key",
            (Kind::BadSignature, true) => "digest_bad_signature",
            (Kind::Misplaced, true) => "digest_misplaced",
            (Kind::Unsigned, false) => "compaction_unsigned",
            (Kind::Unreadable, false) => "compaction_unreadable",
            (Kind::UnknownKey, false) => "compaction_unknown_key",
            (Kind::BadSignature, false) => "compaction_bad_signature",
            (Kind::Misplaced, false) => "compaction_misplaced",
        }
    }
}

impl Signed for super::Digest {
    const WHAT: &'static str = "digest";
    fn fingerprint(&self) -> &str {
        &self.key_fingerprint
    }
    fn version_problem(&self) -> Option<String> {
        (!super::DIGEST_VERSIONS_READ.contains(&self.digest_version)).then(|| {
            format!(
                "digest_version {} is not one of 1..={}",
                self.digest_version,
                super::DIGEST_VERSION
            )
        })
    }
    fn own_key(&self) -> String {
        self.key()
    }
}

impl Signed for super::compaction::Compaction {
    const WHAT: &'static str = "compaction";
    fn fingerprint(&self) -> &str {
        &self.key_fingerprint
    }
    fn version_problem(&self) -> Option<String> {
        let known = super::compaction::COMPACTION_VERSION;
        (self.compaction_version != known).then(|| {
            format!(
                "compaction_version {} is not {known}",
                self.compaction_version
            )
        })
    }
    fn own_key(&self) -> String {
        self.key()
    }
}
