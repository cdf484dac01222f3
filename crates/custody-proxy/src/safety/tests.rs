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

fn safety() -> Safety {
    let policy = crate::config::Config::from_yaml_str("safety: {}\n", "t.yaml")
        .expect("valid")
        .safety;
    Safety::load(&policy).expect("loads")
}

/// What a log-mode response scan writes into a row: (kind, path, count) sorted.
fn response_findings(
    media: Option<Media>,
    body: &[u8],
    chunk: usize,
) -> Vec<(String, String, i64)> {
    let mut scan = safety().response_scanner(media);
    for piece in body.chunks(chunk.max(1)) {
        scan.feed(piece);
    }
    let mut record = AuditRecord::new(
        std::time::SystemTime::now(),
        "r".into(),
        custody_core::Action::new(
            custody_core::ActionKind::Llm,
            "POST",
            "/v1/chat/completions",
        ),
    );
    record_response(&mut record, *scan);
    let mut found: Vec<_> = record
        .content_safety
        .redactions
        .unwrap_or_default()
        .into_iter()
        .inspect(|r| assert_eq!(r.side.as_deref(), Some("response")))
        .map(|r| (r.kind, r.path, r.count))
        .collect();
    found.sort();
    found
}

fn owned(found: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    found
        .iter()
        .map(|(k, p, n)| ((*k).to_owned(), (*p).to_owned(), *n))
        .collect()
}

#[test]
fn a_json_response_is_scanned_at_the_paths_of_its_values() {
    // An answer and a tool call, an address written with a JSON escape, and the
    // ids, keys and numbers of the envelope, none of which is PII.
    let body = serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-AB12CD34", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_6b68a8204b",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Write to ada.lovelace@example.org today.",
            "tool_calls": [{"id": "call_Q1W2E3", "type": "function", "function": {
                "name": "crm_lookup", "arguments": "{\"card\": \"4111 1111 1111 1111\"}"}}]}}],
        "usage": {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}
    }))
    .expect("json");
    let escaped = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace("lovelace@example", "lovelace\\u0040example");
    // As a serialiser that escapes everything beyond ASCII writes it: the card in
    // full-width digits, each a `\uXXXX` escape.
    let wide: String = "4111 1111 1111 1111"
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => format!("\\u{:04x}", 0xFF10 + d),
            None => c.to_string(),
        })
        .collect();
    let escaped_wide = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace("4111 1111 1111 1111", &wide);
    assert!(escaped_wide.contains("\\uff14\\uff11"), "{escaped_wide}");
    let want = owned(&[
        (
            "CARD",
            "response.choices[0].message.tool_calls[0].function.arguments",
            1,
        ),
        ("EMAIL", "response.choices[0].message.content", 1),
    ]);
    for (text, what) in [
        (&body[..], "plain"),
        (escaped.as_bytes(), "escaped @"),
        (escaped_wide.as_bytes(), "escaped full-width digits"),
    ] {
        for chunk in [1, 7, 64, text.len()] {
            assert_eq!(
                response_findings(Some(Media::Json), text, chunk),
                want,
                "{what}, fed {chunk} bytes at a time"
            );
        }
    }
}

#[test]
fn a_json_response_s_keys_never_reach_a_path() {
    // A tool's answer keyed by address: what is found under a key is placed at
    // its member, and the address is not written into the row's path.
    let body = br#"{"users": {"ada@example.org": {"plan": "pro"}, "bob@example.org": {"card": "4111 1111 1111 1111"}}}"#;
    assert_eq!(
        response_findings(Some(Media::Json), body, 9),
        owned(&[("CARD", "response.users['[REDACTED:EMAIL]'].card", 1)])
    );
}

#[test]
fn a_json_response_past_the_limit_is_scanned_as_bytes() {
    // An address at each end of a body one byte too long to hold.
    let mut text = String::from("{\"a\": \"ada@example.org\", \"pad\": \"");
    let tail = "\", \"b\": \"bob@example.org\"}";
    let pad = MAX_JSON_SCANNED_WHOLE + 1 - text.len() - tail.len();
    text.push_str(&"word ".repeat(pad / 5));
    text.push_str(&" ".repeat(pad % 5));
    text.push_str(tail);
    assert_eq!(text.len(), MAX_JSON_SCANNED_WHOLE + 1);
    let as_bytes = response_findings(None, text.as_bytes(), 4096);
    assert_eq!(as_bytes, owned(&[("EMAIL", "response", 2)]));
    for chunk in [1000, 4096, text.len()] {
        assert_eq!(
            response_findings(Some(Media::Json), text.as_bytes(), chunk),
            as_bytes,
            "fed {chunk} bytes at a time"
        );
    }
    // One byte shorter, it is held and scanned as JSON.
    let shorter = text.replacen("word ", "word", 1);
    assert_eq!(
        response_findings(Some(Media::Json), shorter.as_bytes(), 4096),
        owned(&[("EMAIL", "response.a", 1), ("EMAIL", "response.b", 1)])
    );
}

#[test]
fn a_json_labelled_response_that_is_not_json_is_scanned_as_text() {
    for body in [
        "upstream error: write to ada@example.org".to_owned(),
        // Truncated, and nested deeper than the walker goes.
        "{\"a\": \"ada@example.org".to_owned(),
        format!("{}\"ada@example.org\"{}", "[".repeat(200), "]".repeat(200)),
    ] {
        assert_eq!(
            response_findings(Some(Media::Json), body.as_bytes(), 16),
            owned(&[("EMAIL", "response", 1)]),
            "{body:.40}"
        );
    }
}
