//! SQLite against PostgreSQL on the hot path, through the `Store` trait: insert
//! N messages (batches from concurrent tasks, as the API does), record their
//! submit responses, then store their receipts; msgs/s per phase. Both durable
//! (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit` as configured,
//! `on` by default).
//!
//! ```text
//! cargo bench -p hotsite-store --bench throughput -- [N] [BATCH] [TASKS]
//! ```
//! Defaults: 100000 messages, batches of 500, 8 tasks. PostgreSQL from
//! `HOTSITE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
//! schema of its own dropped at the end; skipped if unreachable.
#![allow(clippy::disallowed_methods)] // a benchmark measures wall time

use std::time::{Duration, Instant};

use hotsite_store::{
    InboundKind, MessageId, NewInbound, NewMessage, PgOptions, PgStore, ReceiptIdFormat,
    SqliteOptions, SqliteStore, Store, Update,
};

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .nth(index)
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

struct Run {
    total: usize,
    batch: usize,
    tasks: usize,
}

async fn phases<S: Store>(store: S, run: &Run) -> [Duration; 3] {
    let per_task = run.total / run.tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..run.tasks {
        let store = store.clone();
        let batch = run.batch;
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(per_task);
            for chunk in (0..per_task).collect::<Vec<_>>().chunks(batch) {
                let messages = chunk
                    .iter()
                    .map(|i| NewMessage {
                        key: format!("t{task}-m{i}"),
                        source: "hotsite".to_owned(),
                        destination: format!("+4670{task}{i:07}"),
                        body: b"Your code is 123456. It expires in 10 minutes.".to_vec(),
                        data_coding: 0,
                        route: String::new(),
                        email: None,
                        received_at_ms: 1_700_000_000_000,
                    })
                    .collect();
                let inserted = store.insert_messages(messages).await.expect("insert");
                ids.extend(inserted.into_iter().map(|inserted| inserted.id()));
            }
            ids
        }));
    }
    let mut ids_per_task: Vec<Vec<MessageId>> = Vec::new();
    for handle in handles {
        ids_per_task.push(handle.await.expect("task"));
    }
    let insert = started.elapsed();

    let started = Instant::now();
    let mut handles = Vec::new();
    for ids in ids_per_task.clone() {
        let store = store.clone();
        let batch = run.batch;
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
                store.update(updates).await.expect("update");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let submit = started.elapsed();

    let started = Instant::now();
    let mut handles = Vec::new();
    for ids in ids_per_task {
        let store = store.clone();
        let batch = run.batch;
        handles.push(tokio::spawn(async move {
            for chunk in ids.chunks(batch) {
                let receipts = chunk
                    .iter()
                    .map(|id| NewInbound {
                        kind: InboundKind::Receipt,
                        dedupe_key: format!("dr-{id}"),
                        provider_message_id: Some(format!("P{id}")),
                        message_state: Some(2),
                        source: "+4670".to_owned(),
                        destination: "hotsite".to_owned(),
                        body: b"id:x stat:DELIVRD".to_vec(),
                        site: "b".to_owned(),
                        smsc: "b1".to_owned(),
                        received_at_ms: 1_700_000_000_200,
                        id_format: ReceiptIdFormat::Same,
                        dedupe_window_ms: None,
                    })
                    .collect();
                store.insert_inbound(receipts).await.expect("receipts");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let receipts = started.elapsed();
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.final_states as usize, per_task * run.tasks);
    println!("           ({} commits in all)", stats.commits);
    [insert, submit, receipts]
}

fn report(name: &str, run: &Run, times: [Duration; 3]) -> f64 {
    let n = (run.total / run.tasks * run.tasks) as f64;
    let rate = |elapsed: Duration| n / elapsed.as_secs_f64();
    let all: Duration = times.iter().sum();
    println!(
        "{name:<10} insert {:>8.0}/s  submitted {:>8.0}/s  receipts {:>8.0}/s  all three {:>8.0} msgs/s ({all:.2?})",
        rate(times[0]),
        rate(times[1]),
        rate(times[2]),
        rate(all),
    );
    rate(all)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let run = Run {
        total: arg(0, 100_000),
        batch: arg(1, 500),
        tasks: arg(2, 8),
    };
    println!(
        "{} messages, batches of {}, {} tasks",
        run.total, run.batch, run.tasks
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite =
        SqliteStore::open(&dir.path().join("bench.db"), SqliteOptions::default()).expect("open");
    let sqlite_rate = report("sqlite", &run, phases(sqlite, &run).await);

    let url = std::env::var("HOTSITE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("hs_bench_{}", std::process::id());
    let pg = match PgStore::connect(PgOptions {
        url: url.clone(),
        schema: Some(schema.clone()),
        // HOTSITE_BENCH_PG_WRITERS: write connections (PgOptions::writers).
        writers: std::env::var("HOTSITE_BENCH_PG_WRITERS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(PgOptions::default().writers),
        ..PgOptions::default()
    })
    .await
    {
        Ok(store) => store,
        Err(error) => {
            println!("postgres   skipped: {error}");
            return;
        }
    };
    let pg_rate = report("postgres", &run, phases(pg.clone(), &run).await);
    println!("postgres / sqlite: {:.0} %", 100.0 * pg_rate / sqlite_rate);
    drop(pg);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the bench schema");
}
