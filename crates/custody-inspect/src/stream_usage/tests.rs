use super::*;

#[test]
fn adds_stream_options_keeping_the_other_bytes() {
    let body =
        br#"{"model":"gpt-4o-mini", "stream": true, "messages":[{"role":"user","content":"hi"}]}"#;
    let out = force_stream_usage(body).expect("rewritten");
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        r#"{"stream_options":{"include_usage":true},"model":"gpt-4o-mini", "stream": true, "messages":[{"role":"user","content":"hi"}]}"#
    );
}

#[test]
fn merges_into_existing_stream_options() {
    let body =
        br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false}}"#;
    let out: Value =
        serde_json::from_slice(&force_stream_usage(body).expect("rewritten")).expect("json");
    assert_eq!(
        out,
        serde_json::json!({"model":"gpt-4o","stream":true,
            "stream_options":{"include_obfuscation":false,"include_usage":true}})
    );
    let body = br#"{"stream":true,"stream_options":{"include_usage":false}}"#;
    let out: Value =
        serde_json::from_slice(&force_stream_usage(body).expect("rewritten")).expect("json");
    assert_eq!(out["stream_options"]["include_usage"], Value::Bool(true));
    let body = br#"{"stream":true,"stream_options":null}"#;
    let out: Value =
        serde_json::from_slice(&force_stream_usage(body).expect("rewritten")).expect("json");
    assert_eq!(out["stream_options"]["include_usage"], Value::Bool(true));
}

#[test]
fn leaves_other_bodies_alone() {
    for body in [
        &br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#[..],
        br#"{"model":"gpt-4o","stream":false}"#,
        br#"{"model":"gpt-4o"}"#,
        br#"{"stream":"true"}"#,
        br#"{"stream":true,"stream_options":"x"}"#,
        br#"[{"stream":true}]"#,
        b"not json",
        b"",
    ] {
        assert_eq!(
            force_stream_usage(body),
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

const USAGE: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#;
const CHUNK: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#;

fn stream(eol: &str) -> (String, String) {
    let input = format!(
        ": comment{eol}{eol}{CHUNK}{eol}{eol}{CHUNK}{eol}{eol}{USAGE}{eol}{eol}data: [DONE]{eol}{eol}"
    );
    let expected =
        format!(": comment{eol}{eol}{CHUNK}{eol}{eol}{CHUNK}{eol}{eol}data: [DONE]{eol}{eol}");
    (input, expected)
}

fn run(chunks: &[&[u8]]) -> (Vec<u8>, u64) {
    let mut s = UsageChunkStripper::new();
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    (out, s.dropped())
}

#[test]
fn drops_only_the_usage_chunk_at_any_split() {
    for eol in ["\n", "\r\n", "\r"] {
        let (input, expected) = stream(eol);
        let input = input.as_bytes();
        assert_eq!(
            run(&[input]),
            (expected.as_bytes().to_vec(), 1),
            "whole, eol {eol:?}"
        );
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            run(&bytes),
            (expected.as_bytes().to_vec(), 1),
            "bytes, eol {eol:?}"
        );
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                run(&[a, b]).0,
                expected.as_bytes(),
                "split at {at}, eol {eol:?}"
            );
        }
    }
}

#[test]
fn crlf_after_dropped_event_split_across_chunks() {
    let input = format!("{USAGE}\r\n\r");
    let (out, dropped) = run(&[input.as_bytes(), b"\n", b"data: [DONE]\r\n\r\n"]);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "data: [DONE]\r\n\r\n"
    );
    assert_eq!(dropped, 1);
}

#[test]
fn keeps_chunks_with_choices_or_null_usage() {
    let keep = [
        CHUNK.to_owned(),
        r#"data: {"choices":[],"usage":null}"#.to_owned(),
        r#"data: {"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1}}"#.to_owned(),
        r#"data: {"usage":{"prompt_tokens":1}}"#.to_owned(),
        r#"data: not json "usage""#.to_owned(),
    ];
    for event in keep {
        let input = format!("{event}\n\n");
        assert_eq!(
            run(&[input.as_bytes()]),
            (input.as_bytes().to_vec(), 0),
            "{event}"
        );
    }
}

#[test]
fn multi_line_data_usage_chunk_is_dropped() {
    let input =
        "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
    assert_eq!(run(&[input.as_bytes()]).0, b"data: [DONE]\n\n");
}

#[test]
fn cut_stream_flushes_the_partial_event() {
    let input = format!("{CHUNK}\n\n{}", &USAGE[..40]);
    assert_eq!(run(&[input.as_bytes()]).0, input.as_bytes());
}

#[test]
fn large_events_pass_through_without_being_held() {
    let big = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}",
        "x".repeat(200_000)
    );
    let mut s = UsageChunkStripper::new();
    let mut out = Vec::new();
    for c in big.as_bytes().chunks(4096) {
        s.push(c, &mut out);
        assert!(s.pending.len() <= MAX_HELD_BYTES + 4096);
    }
    s.push(b"\n\n", &mut out);
    s.finish(&mut out);
    assert_eq!(out, format!("{big}\n\n").as_bytes());
}
