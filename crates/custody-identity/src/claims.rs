//! Claims → principal: which claim (name or dotted path) holds org, role(s), scopes.

use serde_json::Value;

/// Where an issuer puts the attributes custody records. Each is a claim name or a
/// dotted path into nested claims (`realm_access.roles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNames {
    /// Organisation / tenant.
    pub org: Option<String>,
    /// The primary role.
    pub role: Option<String>,
    /// All roles (a list, or a space-separated string).
    pub roles: Option<String>,
    /// Scopes (a space-separated string as in `scope`, or a list as in `scp`).
    pub scopes: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            org: Some("org_id".into()),
            role: Some("role".into()),
            roles: Some("roles".into()),
            scopes: Some("scope".into()),
        }
    }
}

/// The value at a dotted path, if any.
pub(crate) fn at<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    // An exact top-level name wins, so claim names containing dots (URLs as claim
    // names are common) still work.
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, part| v.get(part))
}

/// A claim as a short string (strings as they are, numbers and booleans printed).
pub(crate) fn string(claims: &Value, path: Option<&str>) -> Option<String> {
    match at(claims, path?)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim as a list of strings: a JSON list, or a space-separated string.
pub(crate) fn list(claims: &Value, path: Option<&str>) -> Option<Vec<String>> {
    match at(claims, path?)? {
        Value::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_lists_and_strings() {
        let c = json!({"scope": "a b  c", "scp": ["x", "y"], "realm_access": {"roles": ["admin"]},
                       "https://example.com/org": "acme", "n": 42});
        assert_eq!(
            list(&c, Some("scope")),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(list(&c, Some("scp")), Some(vec!["x".into(), "y".into()]));
        assert_eq!(
            list(&c, Some("realm_access.roles")),
            Some(vec!["admin".into()])
        );
        assert_eq!(
            string(&c, Some("https://example.com/org")).as_deref(),
            Some("acme")
        );
        assert_eq!(string(&c, Some("n")).as_deref(), Some("42"));
        assert_eq!(string(&c, Some("missing.path")), None);
        assert_eq!(string(&c, None), None);
    }
}
