//! Merge of a 1-hour two-direction call (SPEC R2; issue 14's target:
//! at least 1,000x real time, i.e. 1 h in 3.6 s or less). The call is
//! generated outside the timed part (`support/one_hour_call.rs`).
//! `cargo bench -p hotsite-recording --bench merge`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotsite_recording::merge::{merge, MergeOptions, Source};

#[path = "support/one_hour_call.rs"]
mod one_hour_call;

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hotsite-merge-bench-{}", std::process::id()));
    let call = one_hour_call::generate(&dir, 3600);
    let out = dir.join("merged.wav");
    let opts = MergeOptions::default();

    // Once outside the timing: the result is the one the bench claims.
    let report = merge(&call.journal, Some(&call.cloud), &out, &opts).unwrap();
    let cloud = report.cloud.as_ref().unwrap();
    let gaps: Vec<u64> = report.channels.iter().map(|c| c.gap_ms).collect();
    eprintln!(
        "merged {} s: gaps {:?} ms, cloud-filled {} ms, offset {:.3} ms (corr {:?}), epochs {}",
        report.output.duration_ms / 1000,
        gaps,
        report.channels[0].cloud_ms,
        cloud.offset_ms,
        cloud.correlation,
        report.epochs.len()
    );
    assert!(report
        .channels
        .iter()
        .all(|c| c.spans.iter().all(|s| s.source != Source::Gap)));

    let mut group = c.benchmark_group("merge");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // Throughput in seconds of call audio: criterion's "elem/s" is then the
    // real-time factor.
    group.throughput(Throughput::Elements(call.seconds));
    group.bench_function("one_hour_call", |b| {
        b.iter(|| merge(&call.journal, Some(&call.cloud), &out, &opts).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
