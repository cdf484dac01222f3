//! Errors.

use thiserror::Error;

/// Why building detectors, scanning or redacting failed. On a route configured
/// to redact or block, the proxy refuses the request (fail closed).
#[derive(Debug, Error)]
pub enum SafetyError {
    /// A custom detector's name is not usable.
    #[error("custom detector {name:?}: {reason}")]
    CustomName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A custom detector's regex does not compile.
    #[error("custom detector {name:?}: invalid regex: {source}")]
    CustomRegex {
        /// The detector's name.
        name: String,
        /// The compiler's complaint.
        #[source]
        source: Box<regex::Error>,
    },
    /// A custom detector's term list could not be compiled.
    #[error("custom detector {name:?}: {reason}")]
    CustomTerms {
        /// The detector's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The JSON body nests deeper than the scanner follows.
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
    /// The redaction key is unusable (empty).
    #[error("redaction key must not be empty")]
    EmptyKey,
    /// The redaction key is shorter than [`crate::MIN_TOKEN_KEY_BYTES`].
    #[error(
        "redaction key is {0} bytes; at least {min} are required (make one with `openssl rand -hex 32`)",
        min = crate::MIN_TOKEN_KEY_BYTES
    )]
    ShortKey(usize),
    /// A scan result was applied to a body it did not come from.
    #[error("scan does not belong to this body")]
    ScanMismatch,
}
