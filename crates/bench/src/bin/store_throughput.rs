//! A quick sanity number for the store, not a benchmark suite: inserts N messages in
//! batches with concurrent tasks, then marks them all Submitted, on a temp file with
//! `synchronous=FULL` (every group commit fsynced), and prints msgs/s per phase.
//!
//! ```text
//! cargo run --release -p hotsite-bench --bin store_throughput -- [N] [BATCH] [TASKS]
//! ```
//! Defaults: 200000 messages, batches of 1000, 8 tasks. `STORE_DIR` picks the
//! directory of the database file (default: the system temp dir).

use std::time::{Duration, Instant};

use hotsite_store::{MessageId, NewMessage, SqliteOptions, SqliteStore, Store, Update};

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .nth(index)
        .map(|text| text.parse().expect("a number"))
        .unwrap_or(default)
}

// The one clock read of this program: a benchmark measures wall time.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total = arg(1, 200_000);
    let batch = arg(2, 1_000);
    let tasks = arg(3, 8);
    let dir = match std::env::var_os("STORE_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let path = dir.path().join("throughput.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    println!(
        "{total} messages, batches of {batch}, {tasks} tasks, synchronous=FULL, {}",
        path.display()
    );

    let per_task = total / tasks;
    let started = now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(per_task);
            for chunk in (0..per_task).collect::<Vec<_>>().chunks(batch) {
                let messages = chunk
                    .iter()
                    .map(|i| NewMessage {
                        key: format!("t{task}-m{i}"),
                        source: "hotsite".to_owned(),
                        destination: format!("+4670{:07}", i),
                        body: b"Your code is 123456. It expires in 10 minutes.".to_vec(),
                        data_coding: 0,
                        route: String::new(),
                        email: None,
                        received_at_ms: 1_700_000_000_000,
                    })
                    .collect();
                // Through the trait: its futures must be Send to be spawned.
                let inserted = Store::insert_messages(&store, messages)
                    .await
                    .expect("insert");
                ids.extend(inserted.into_iter().map(|inserted| inserted.id()));
            }
            ids
        }));
    }
    let mut ids_per_task: Vec<Vec<MessageId>> = Vec::new();
    for handle in handles {
        ids_per_task.push(handle.await.expect("task"));
    }
    let insert_elapsed = started.elapsed();
    let commits_after_insert = store.stats().await.expect("stats").commits;

    let started = now();
    let mut handles = Vec::new();
    for ids in ids_per_task {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for chunk in ids.chunks(batch) {
                let updates = chunk
                    .iter()
                    .map(|id| Update::Submitted {
                        id: *id,
                        provider_message_id: format!("P{id}"),
                        site: "a".to_owned(),
                        smsc: "a1".to_owned(),
                        at_ms: 1_700_000_000_100,
                    })
                    .collect();
                Store::update(&store, updates).await.expect("update");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let update_elapsed = started.elapsed();
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.submitted as usize, per_task * tasks);

    let rate = |elapsed: Duration| (per_task * tasks) as f64 / elapsed.as_secs_f64();
    println!(
        "insert:  {:>9.0} msgs/s ({:.2?}, {} commits)",
        rate(insert_elapsed),
        insert_elapsed,
        commits_after_insert
    );
    println!(
        "update:  {:>9.0} msgs/s ({:.2?}, {} commits)",
        rate(update_elapsed),
        update_elapsed,
        stats.commits - commits_after_insert
    );
    println!(
        "both:    {:>9.0} msgs/s end to end (insert + Submitted)",
        rate(insert_elapsed + update_elapsed)
    );
}
