//! The principal: who a call is attributed to.

use serde::{Deserialize, Serialize};

/// The verified identity behind a call. Every field is `None` for an anonymous
/// caller (no identity configured, or identity `off` on the route).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The token's verified `sub` claim.
    pub sub: Option<String>,
    /// Organisation / tenant.
    pub org: Option<String>,
    /// The primary role.
    pub role: Option<String>,
    /// All roles; `None` when unknown (as opposed to known to be empty).
    pub roles: Option<Vec<String>>,
    /// The token issuer (`iss`).
    pub issuer: Option<String>,
}
