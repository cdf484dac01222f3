//! Corpus evaluation: per-detector precision and recall on the generated,
//! labelled corpus (`tests/corpus/generate.rs`); asserts recall >= 99 % and
//! precision >= 98 % for every built-in detector and prints the table that
//! docs/safety.md reproduces. Set `CUSTODY_SAFETY_CORPUS_OUT=file.jsonl` to
//! write the corpus out.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "corpus/generate.rs"]
mod generate;

use custody_safety::{Detectors, Kind, scan_body, scan_text};
use std::collections::BTreeMap;

#[derive(Default)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
}

#[test]
fn precision_and_recall_per_detector() {
    let detectors = Detectors::builtin();
    let corpus = generate::corpus();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for kind in Kind::BUILTIN {
        counts.insert(kind.to_string(), Counts::default());
    }
    let mut misses = Vec::new();
    let mut out = std::env::var_os("CUSTODY_SAFETY_CORPUS_OUT").map(|_| String::new());
    for sample in &corpus {
        let body = if sample.json {
            serde_json::to_vec(&serde_json::json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": sample.text}],
            }))
            .unwrap()
        } else {
            sample.text.clone().into_bytes()
        };
        // Text samples are scanned as text (a text body that happens to parse
        // as JSON, like `[4111…]`, would report offsets within its tokens).
        let scan = if sample.json {
            scan_body(&detectors, &body).unwrap()
        } else {
            scan_text(&detectors, &body)
        };
        let mut found: Vec<(String, String)> = scan
            .findings
            .iter()
            .map(|f| (f.kind.to_string(), sample.text[f.start..f.end].to_owned()))
            .collect();
        for (kind, value) in &sample.labels {
            let c = counts.get_mut(*kind).unwrap();
            match found.iter().position(|(k, v)| k == kind && v == value) {
                Some(i) => {
                    found.remove(i);
                    c.tp += 1;
                }
                None => {
                    c.fn_ += 1;
                    misses.push(format!("MISS {kind} {value:?} in {:?}", sample.text));
                }
            }
        }
        for (kind, value) in found {
            counts.get_mut(&kind).unwrap().fp += 1;
            misses.push(format!("FALSE {kind} {value:?} in {:?}", sample.text));
        }
        if let Some(out) = out.as_mut() {
            let labels: Vec<_> = sample
                .labels
                .iter()
                .map(|(k, v)| serde_json::json!({"kind": k, "value": v}))
                .collect();
            out.push_str(
                &serde_json::json!({"text": sample.text, "json": sample.json, "labels": labels})
                    .to_string(),
            );
            out.push('\n');
        }
    }
    if let (Some(out), Some(path)) = (out, std::env::var_os("CUSTODY_SAFETY_CORPUS_OUT")) {
        std::fs::write(path, out).unwrap();
    }
    let positives = corpus.iter().filter(|s| !s.negative).count();
    println!(
        "corpus: {} samples ({} with values, {} hard negatives)\n",
        corpus.len(),
        positives,
        corpus.len() - positives
    );
    println!("| detector | values | TP | FN | FP | recall | precision |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut failed = Vec::new();
    for (kind, c) in &counts {
        let recall = c.tp as f64 / (c.tp + c.fn_).max(1) as f64;
        let precision = c.tp as f64 / (c.tp + c.fp).max(1) as f64;
        println!(
            "| {kind} | {} | {} | {} | {} | {:.2} % | {:.2} % |",
            c.tp + c.fn_,
            c.tp,
            c.fn_,
            c.fp,
            recall * 100.0,
            precision * 100.0
        );
        if recall < 0.99 || precision < 0.98 {
            failed.push(kind.clone());
        }
    }
    for m in misses.iter().take(40) {
        println!("{m}");
    }
    assert!(failed.is_empty(), "below target: {failed:?}");
}
