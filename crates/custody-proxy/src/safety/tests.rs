use super::*;

fn policy_with_key(dir: &std::path::Path, key: &[u8]) -> SafetyPolicy {
    let path = dir.join("safety-key");
    std::fs::write(&path, key).expect("write key");
    let yaml = format!(
        "safety:\n  redaction: {{style: token, key_file: '{}'}}\n",
        path.display()
    );
    crate::config::Config::from_yaml_str(&yaml, "t.yaml")
        .expect("valid")
        .safety
}

#[test]
fn a_short_key_file_stops_custody_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Err(err) = Safety::load(&policy_with_key(dir.path(), b"abcde\n")) else {
        panic!("a 5-byte key is refused");
    };
    let message = err.to_string();
    assert!(
        message.contains("safety.redaction.key_file")
            && message.contains("redaction key is 5 bytes; at least 32 are required"),
        "{message}"
    );
    // The documented recipe, `openssl rand -hex 32 > FILE`: 64 characters and a newline.
    let hex = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    assert!(Safety::load(&policy_with_key(dir.path(), hex)).is_ok());
}
