//! The detector on the request path: one `observe` for a known user among 10 000
//! (the default cap) with a session, a tool and a token — the common case, no
//! signal — and the memory accounting at the caps.
//!
//! `cargo bench -p custody-anomaly --bench detector`

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use custody_anomaly::{Detector, Observation, Settings};
use std::hint::black_box;

const T0: i64 = 1_772_409_600_000_000;

fn populated(users: usize) -> (Detector, Vec<String>) {
    let d = Detector::new(Settings::default(), T0);
    let names: Vec<String> = (0..users).map(|i| format!("auth0|{i:024}")).collect();
    for (i, name) in names.iter().enumerate() {
        d.observe(&Observation {
            at: T0 + i as i64,
            user: Some(name),
            session: Some("conv-1"),
            target: Some("gpt-4o-mini"),
            token: Some(i as u64),
            ..Observation::default()
        });
    }
    (d, names)
}

fn bench(c: &mut Criterion) {
    let (d, names) = populated(10_000);
    let mut i = 0usize;
    let mut t = T0 + 3_600_000_000;
    c.bench_function("observe: known user, session, tool, token", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            t += 1_000;
            black_box(d.observe(&Observation {
                at: t,
                user: Some(&names[i]),
                session: Some("conv-1"),
                target: Some("crm:contacts:search"),
                cost_usd: Some(0.0004),
                local_hour: 10,
                token: Some(i as u64),
                ..Observation::default()
            }))
        })
    });
    println!(
        "memory bound at the default caps: {} users × {} B + {} tokens × {} B = {:.1} MiB",
        d.settings().max_users,
        Detector::MAX_BYTES_PER_USER,
        d.settings().max_tokens,
        Detector::MAX_BYTES_PER_TOKEN,
        (d.settings().max_users * Detector::MAX_BYTES_PER_USER
            + d.settings().max_tokens * Detector::MAX_BYTES_PER_TOKEN) as f64
            / (1 << 20) as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
