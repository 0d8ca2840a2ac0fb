//! Generates a long call or merges it, as separate processes, so that the
//! merge's peak memory can be measured alone (SPEC R2: bounded memory):
//!
//! ```text
//! cargo run --release -p hotsite-recording --example merge_call -- gen DIR [SECONDS]
//! /usr/bin/time -v target/release/examples/merge_call merge DIR [SECONDS]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use hotsite_recording::merge::{merge, MergeOptions};

#[path = "../benches/support/one_hour_call.rs"]
mod one_hour_call;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: merge_call gen|merge DIR [SECONDS]");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let seconds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3600);
    match cmd.as_str() {
        "gen" => {
            one_hour_call::generate(&dir, seconds);
        }
        "merge" => {
            // Same files as `gen` wrote; the sidecar is rebuilt the same way.
            let call = one_hour_call::generate_paths(&dir, seconds);
            #[allow(clippy::disallowed_methods)] // a tool's stopwatch
            let start = Instant::now();
            let report = merge(
                &call.journal,
                Some(&call.cloud),
                &dir.join("merged.wav"),
                &MergeOptions::default(),
            )
            .unwrap_or_else(|e| {
                eprintln!("merge failed: {e}");
                std::process::exit(1)
            });
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(report.output.duration_ms / 1000, call.seconds);
            let cloud = report.cloud.as_ref();
            println!(
                "{} s of call merged in {secs:.3} s ({:.0}x real time); gaps {:?} ms; \
                 cloud-filled {:?} ms; offset {:?} ms, correlation {:?}; sha256 {}",
                report.output.duration_ms / 1000,
                report.output.duration_ms as f64 / 1000.0 / secs,
                report.channels.iter().map(|c| c.gap_ms).collect::<Vec<_>>(),
                report
                    .channels
                    .iter()
                    .map(|c| c.cloud_ms)
                    .collect::<Vec<_>>(),
                cloud.map(|c| c.offset_ms),
                cloud.and_then(|c| c.correlation),
                report.output.sha256
            );
        }
        other => {
            eprintln!("unknown command {other}");
            std::process::exit(2);
        }
    }
}
