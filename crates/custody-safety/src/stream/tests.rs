use super::*;

fn stream(chunks: &[&[u8]]) -> Vec<(String, usize, usize)> {
    let mut s = StreamScanner::new(Arc::new(Detectors::builtin()), "$");
    for c in chunks {
        s.feed(c);
    }
    s.finish()
        .into_iter()
        .map(|f| (f.kind.to_string(), f.start, f.end))
        .collect()
}

#[test]
fn values_split_across_chunks_are_found_once() {
    let text = format!(
        "{} mail alice@example.com and 123-45-6789 {}",
        "x ".repeat(400),
        "y ".repeat(400)
    );
    let whole = stream(&[text.as_bytes()]);
    assert_eq!(whole.len(), 2);
    for size in [1, 2, 3, 7, 64, 255, 256, 257, 1000] {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        assert_eq!(stream(&chunks), whole, "chunk size {size}");
    }
}

#[test]
fn many_findings_are_counted() {
    let text = "a@b.io ".repeat(10_000);
    let mut s = StreamScanner::new(Arc::new(Detectors::builtin()), "$");
    s.feed(text.as_bytes());
    let n = s.count();
    let all = s.finish();
    assert!(n >= 9_000);
    assert_eq!(all.len(), MAX_STREAM_FINDINGS);
}
