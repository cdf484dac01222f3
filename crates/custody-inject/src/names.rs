//! The Kubernetes name rules the webhook checks itself, so that a bad name in its
//! config or in a pod's annotation is refused with a clear message.

/// An RFC 1123 subdomain (ConfigMap and Secret names): at most 253 characters of
/// lower-case letters, digits, `-` and `.`, starting and ending alphanumeric.
pub(crate) fn check_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|part| label_chars(part) && !part.is_empty());
    valid(
        ok,
        name,
        "object name (lower-case letters, digits, '-' and '.', at most 253 characters)",
    )
}

/// An RFC 1123 label (namespace names): at most 63 characters of lower-case letters,
/// digits and `-`, starting and ending alphanumeric.
pub(crate) fn check_label(name: &str) -> Result<(), String> {
    valid(
        !name.is_empty() && name.len() <= 63 && label_chars(name),
        name,
        "namespace name (lower-case letters, digits and '-', at most 63 characters)",
    )
}

fn label_chars(part: &str) -> bool {
    let b = part.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_none_or(alnum)
        && b.last().is_none_or(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// A ConfigMap key: letters, digits, `-`, `_`, `.`; at most 253 characters.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    valid(ok, key, "ConfigMap key")
}

/// An environment variable name: letters, digits, `_`, `-`, `.`, not starting with
/// a digit (the rule every Kubernetes release accepts).
pub(crate) fn check_env(name: &str) -> Result<(), String> {
    let ok = name.bytes().next().is_some_and(|c| !c.is_ascii_digit())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    valid(ok, name, "environment variable name")
}

/// `Ok` if `ok`, else the message that `value` (as [`shown`]) is not a valid `what`.
fn valid(ok: bool, value: &str, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not a valid {what}", shown(value)))
    }
}

/// Annotation and label values are the pod author's input: keep what is shown back
/// (in a denial or a log line) short and printable.
pub(crate) fn shown(value: &str) -> String {
    let mut s: String = value
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > 64 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_subdomain("custody-config").is_ok());
        assert!(check_subdomain("a.b-c.d").is_ok());
        for bad in ["", "Upper", "-a", "a-", "a..b", "a_b", &"x".repeat(254)] {
            assert!(check_subdomain(bad).is_err(), "{bad}");
        }
        assert!(check_label("custody-system").is_ok());
        assert!(check_label("a.b").is_err());
        assert!(check_key("custody.yaml").is_ok());
        assert!(check_key("a/b").is_err());
        assert!(check_env("HTTPS_PROXY").is_ok());
        assert!(check_env("https_proxy").is_ok());
        assert!(check_env("1X").is_err());
        assert!(check_env("A=B").is_err());
        assert_eq!(shown("a\nb"), "a?b");
        assert_eq!(shown(&"x".repeat(70)).chars().count(), 65);
    }
}
