//! SPEC M17 end to end: the gateways of both sites, each a `hotsite run`
//! process, drain one queue in one PostgreSQL database (DESIGN.md "Storage"),
//! against one simulated aggregator with both sites' SMSCs. One gateway is
//! killed with SIGKILL, another is frozen past its lease (SIGSTOP) and thawed,
//! and the database is taken away (a [`Link`] in front of it, cut and
//! restored) or has its connections terminated: nothing acknowledged is lost,
//! nothing reaches a handset or the application twice.
//!
//! PostgreSQL: `127.0.0.1:5432`, user `postgres` (trust), database `test`. Each
//! test works in a schema of its own, `hs_it_<name>_<pid>`, dropped at the end
//! (pass or fail). Without a reachable server the tests print "PostgreSQL half
//! skipped" and pass, unless `CI` is set or `HOTSITE_TEST_PG=require` (then they
//! fail): see [`Db::open`].

#![allow(clippy::disallowed_methods)] // test clock: wall-clock times to compare with the store's

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotsite_lab::{Fault, Lab, LabHandle, Link, LinkConfig};
use hotsite_messaging::signing::{verify, SIGNATURE_HEADER};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::crash::free_port;
use crate::gateway::{batch, handsets, lab_config, now, temp_dir, RemovedOnDrop, SECRET, TOKEN};

/// Where the machine's PostgreSQL listens.
const PG_ADDR: &str = "127.0.0.1:5432";

/// The lease of every gateway here: short, so that a takeover happens within
/// the test (the default is 30 s).
const LEASE: Duration = Duration::from_secs(2);

/// Wall-clock milliseconds since the Unix epoch, as the store writes times.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as i64)
        .unwrap_or(0)
}

/// The PostgreSQL URL of database `test` at `addr`, as gateway `name`: its
/// connections carry `application_name`, so that a test can find them in
/// `pg_stat_activity`.
fn pg_url(addr: &str, name: &str) -> String {
    format!("postgres://postgres@{addr}/test?application_name={name}")
}

/// Whether an unreachable PostgreSQL fails the test instead of skipping it.
fn postgres_required() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("HOTSITE_TEST_PG").is_ok_and(|value| value == "require")
}

/// A test's schema in the machine's PostgreSQL, and a connection to inspect
/// it. Dropped (with everything in it) when the value is dropped, pass or fail.
struct Db {
    client: tokio_postgres::Client,
    schema: String,
}

impl Db {
    /// Connects and names the schema `hs_it_<name>_<pid>` (dropping a leftover
    /// of that name). `None` when PostgreSQL is unreachable and not required:
    /// the one place that decides whether the PostgreSQL half runs.
    async fn open(name: &str) -> Option<Db> {
        let url = format!("postgres://postgres@{PG_ADDR}/test");
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_postgres::connect(&url, tokio_postgres::NoTls),
        )
        .await;
        let (client, connection) = match connected {
            Ok(Ok(pair)) => pair,
            failed => {
                let reason = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => "no answer within 5 s".to_owned(),
                };
                assert!(
                    !postgres_required(),
                    "PostgreSQL at {PG_ADDR} is required here (CI or HOTSITE_TEST_PG=require) \
                     and unreachable: {reason}"
                );
                eprintln!("PostgreSQL half skipped: {PG_ADDR} unreachable: {reason}");
                return None;
            }
        };
        tokio::spawn(connection);
        let schema = format!("hs_it_{name}_{}", std::process::id());
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
        Some(Db { client, schema })
    }

    /// One number from `sql`, where `{s}` is the schema.
    async fn count(&self, sql: &str) -> i64 {
        let row = self
            .client
            .query_one(&sql.replace("{s}", &self.schema), &[])
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        row.get(0)
    }

    /// Rows of `sql` (`{s}`: the schema), each as strings (NULL: empty).
    async fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.client
            .query(&sql.replace("{s}", &self.schema), &[])
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// Ends every server process of connections named `application`: the
    /// gateway's connections die mid-whatever (answers how many there were).
    async fn terminate(&self, application: &str) -> i64 {
        let row = self
            .client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = 'test' AND application_name = $1",
                &[&application],
            )
            .await
            .unwrap();
        row.get(0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Async work in a drop (the test may be unwinding): a thread with a
        // runtime of its own, joined, so the schema is gone when the test ends.
        let schema = self.schema.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let url = format!("postgres://postgres@{PG_ADDR}/test");
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop schema {}", self.schema);
        }
    }
}

/// One `hotsite run` process. Its stderr goes to `<site>.log` in the test's
/// folder; when the test fails, the log's end is printed.
struct Gateway {
    site: String,
    child: Child,
    api: String,
    log: PathBuf,
}

/// What changes between the gateways' configurations.
struct GatewaySpec<'a> {
    /// `[site] name`, also its lease owner's name.
    site: &'a str,
    /// The database's address (PostgreSQL, or a link in front of it).
    pg: &'a str,
    /// The SMSC instances it binds to.
    smscs: Vec<(hotsite_core::Target, SocketAddr)>,
    /// The application's webhook URL.
    webhook: String,
}

impl Gateway {
    /// Writes the configuration and starts the process; returns once its API
    /// answers healthy with every bind up (or fails, with the log).
    async fn start(dir: &Path, db: &Db, spec: GatewaySpec<'_>) -> Gateway {
        let port = free_port();
        let GatewaySpec {
            site,
            pg,
            smscs,
            webhook,
        } = spec;
        let mut text = format!(
            r#"
[site]
name = "{site}"
[api]
listen = "127.0.0.1:{port}"
tokens = ["{TOKEN}"]
[store]
url = "{url}"
schema = "{schema}"
connect_timeout = "1s"
lease = "{lease}s"
[webhook]
url = "{webhook}"
secret = "{SECRET}"
timeout = "2s"
[smpp]
system_id = "hotsite"
password = "secret"
enquire_link_interval = "500ms"
dead_peer_timeout = "3s"
response_timeout = "5s"
"#,
            url = pg_url(pg, &application_name(db, site)),
            schema = db.schema,
            lease = LEASE.as_secs(),
        );
        for (target, addr) in smscs {
            text.push_str(&format!(
                "[[smpp.smsc]]\nsite = \"{}\"\nname = \"{}\"\naddress = \"{addr}\"\n",
                target.site, target.name
            ));
        }
        let config = dir.join(format!("{site}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = dir.join(format!("{site}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_hotsite"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("HOTSITE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut gateway = Gateway {
            site: site.to_owned(),
            child,
            api: format!("http://127.0.0.1:{port}"),
            log,
        };
        gateway.wait_ready(Duration::from_secs(20)).await;
        gateway
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends `signal` (`STOP`, `CONT`) with kill(1).
    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// SIGKILL, and waits for the process to be gone.
    async fn kill_9(&mut self) {
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("killed within 5 s")
            .unwrap();
        assert!(!status.success(), "{} was killed", self.site);
    }

    /// Polls `/v1/health` until it answers 200 with every bind up.
    async fn wait_ready(&mut self, limit: Duration) {
        let http = http_client();
        let start = now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited at start: {status}", self.site);
            }
            if let Ok(response) = http.get(format!("{}/v1/health", self.api)).send().await {
                if response.status() == 200 {
                    let body: Value = response.json().await.unwrap_or_default();
                    if body["binds"].as_u64() > Some(0) && body["binds_up"] == body["binds"] {
                        return;
                    }
                }
            }
            assert!(
                start.elapsed() < limit,
                "{} not healthy within {limit:?}",
                self.site
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of the counter whose name ends with `suffix` in `/metrics`,
    /// with its full name.
    async fn counter(&self, suffix: &str) -> Option<(String, u64)> {
        let text = http_client()
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.split_once(' ')?;
                name.ends_with(suffix)
                    .then(|| Some((name.to_owned(), value.trim().parse().ok()?)))?
            })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            eprintln!("--- {} log, last lines ---\n{tail}", self.site);
        }
    }
}

/// The `application_name` of gateway `site`'s connections in this test.
fn application_name(db: &Db, site: &str) -> String {
    format!("{}_{site}", db.schema)
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Posts `body` to the first of `apis` that accepts it (202), trying them in
/// order, over and over: the application's client-side failover, with the
/// same keys every time (SPEC M8). Answers the index of the API that took it.
async fn post_to_first_accepting(http: &reqwest::Client, apis: &[&str], body: &Value) -> usize {
    for _ in 0..300 {
        for (index, api) in apis.iter().enumerate() {
            let sent = http
                .post(format!("{api}/v1/messages"))
                .bearer_auth(TOKEN)
                .json(body)
                .send()
                .await;
            if matches!(&sent, Ok(response) if response.status() == 202) {
                return index;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no API accepted the batch within 300 rounds");
}

/// Polls `done` (async) every 100 ms until it holds; fails after `limit`.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// One webhook the application received: which gateway sent it (the URL's
/// `from`), the inbound id, when (wall clock, ms).
#[derive(Debug, Clone)]
struct Hook {
    from: String,
    id: i64,
    at_ms: i64,
    body: Value,
}

/// The customer's application: checks signatures (SPEC M15) and logs every
/// webhook with the gateway that sent it. Each gateway's `[webhook] url` is
/// `http://ADDR/hook?from=SITE`.
#[derive(Clone, Default)]
struct App {
    hooks: Arc<Mutex<Vec<Hook>>>,
    bad_signatures: Arc<AtomicUsize>,
}

impl App {
    async fn start(&self) -> SocketAddr {
        let app = self.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |query: axum::extract::Query<HashMap<String, String>>,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let app = app.clone();
                    async move {
                        let signature = headers
                            .get(SIGNATURE_HEADER)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("");
                        if !verify(SECRET.as_bytes(), &body, signature) {
                            app.bad_signatures.fetch_add(1, Ordering::Relaxed);
                            return axum::http::StatusCode::UNAUTHORIZED;
                        }
                        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                            return axum::http::StatusCode::BAD_REQUEST;
                        };
                        app.hooks.lock().unwrap().push(Hook {
                            from: query.get("from").cloned().unwrap_or_default(),
                            id: body["id"].as_i64().unwrap_or(-1),
                            at_ms: wall_ms(),
                            body,
                        });
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    fn url(addr: SocketAddr, site: &str) -> String {
        format!("http://{addr}/hook?from={site}")
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }
}

/// The SMSC instances named `names` of `lab`.
fn smscs(lab: &LabHandle, names: &[&str]) -> Vec<(hotsite_core::Target, SocketAddr)> {
    lab.smsc_addrs()
        .into_iter()
        .filter(|(target, _)| names.contains(&target.name.to_string().as_str()))
        .collect()
}

/// Every message index `0..total` reached a handset exactly once.
fn assert_handsets_once(lab: &LabHandle, total: u64) {
    let seen = handsets(lab);
    let lost: Vec<u64> = (0..total)
        .filter(|i| !seen.contains_key(i))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "lost (first 10 of {}): {lost:?}", total - seen.len() as u64);
    let twice: Vec<(u64, u64)> = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&i, &n)| (i, n))
        .take(10)
        .collect();
    assert!(twice.is_empty(), "at a handset twice (first 10): {twice:?}");
    assert_eq!(seen.len() as u64, total, "nothing else reached a handset");
}

/// Waits until the store has `total` messages, every one `Delivered` (its
/// final receipt applied) and every inbound item delivered to the application.
async fn wait_all_delivered(db: &Db, total: i64, limit: Duration) {
    wait_for(limit, "every message Delivered, every receipt at the app", || async {
        db.count("SELECT count(*) FROM {s}.messages WHERE state = 'Delivered'")
            .await
            == total
            && db
                .count("SELECT count(*) FROM {s}.inbound WHERE delivered_at_ms IS NULL")
                .await
                == 0
    })
    .await;
}

/// What the store says of a finished run: `total` messages, all `Delivered`,
/// none `Queued`, each with a receipt event, every receipt correlated; and
/// how many `submit_ignored` lines (a second submit response for a message
/// already sent) the histories hold.
async fn assert_store_finished(db: &Db, total: i64) -> i64 {
    assert_eq!(db.count("SELECT count(*) FROM {s}.messages").await, total);
    let states = db
        .rows("SELECT state, count(*) FROM {s}.messages GROUP BY state ORDER BY state")
        .await
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect::<Vec<_>>();
    assert_eq!(states, [("Delivered".to_owned(), total)], "every message Delivered");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM {s}.messages m WHERE NOT EXISTS \
             (SELECT 1 FROM {s}.events e WHERE e.message_id = m.id AND e.kind = 'receipt')"
        )
        .await,
        0,
        "every message has its receipt in its history (SPEC M13)"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM {s}.inbound WHERE kind = 'Receipt' AND message_id IS NULL"
        )
        .await,
        0,
        "every receipt matched its message (SPEC M1, M13)"
    );
    db.count("SELECT count(*) FROM {s}.events WHERE kind = 'submit_ignored'")
        .await
}

/// The application got every inbound item the store holds, and nothing else:
/// answers the ids it got more than once.
async fn app_got_every_receipt(db: &Db, app: &App) -> Vec<i64> {
    assert_eq!(app.bad_signatures.load(Ordering::Relaxed), 0, "SPEC M15");
    let stored: HashSet<i64> = db
        .rows("SELECT id FROM {s}.inbound")
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    let hooks = app.hooks();
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for hook in &hooks {
        *seen.entry(hook.id).or_default() += 1;
        assert_eq!(hook.body["type"], "receipt", "{:?}", hook.body);
    }
    let got: HashSet<i64> = seen.keys().copied().collect();
    let missing: Vec<&i64> = stored.difference(&got).take(10).collect();
    assert!(missing.is_empty(), "receipts never at the app (first 10): {missing:?}");
    let unknown: Vec<&i64> = got.difference(&stored).take(10).collect();
    assert!(unknown.is_empty(), "ids the store does not hold: {unknown:?}");
    let mut twice: Vec<i64> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect();
    twice.sort_unstable();
    twice
}

/// SPEC M17, M8, M9, M1, M6, M13, M15: gateways a and b (two `hotsite run`
/// processes) share one PostgreSQL queue; 20,000 messages are posted, half
/// through each API; a is killed with SIGKILL mid-run and not restarted, and
/// the application posts a's remaining half to b (the batch a may not have
/// answered included, same keys). Every message reaches a handset once, is
/// `Delivered` with its receipt (those a submitted too, their receipts taken in
/// by b), nothing stays queued, and the application gets each receipt once,
/// except those a delivered and died before recording (SPEC M15's repeat after
/// an unanswered delivery), which must have come from a before the kill.
///
/// a binds one SMSC of each site (a1, b1) and b the others (a2, b2): so the
/// SMSC a message went out on says which gateway sent it, and since the lab
/// sends a receipt on any bind of the site (or of the other site), about half
/// of a's receipts reach b even before the kill. The provider drops a repeat of
/// (account, destination, reference) on any instance of any site, which is
/// what makes b's resend of a submit a had on the wire harmless (SPEC M8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_on_one_postgres_survive_a_kill_9() {
    const BATCHES: u64 = 40;
    const PER_BATCH: u64 = 500;
    const TOTAL: u64 = BATCHES * PER_BATCH;
    /// a's batches accepted before the kill comes.
    const KILL_AFTER_A_BATCHES: usize = 12;
    let Some(db) = Db::open("kill9").await else {
        return;
    };
    let dir = temp_dir("shared-kill9");
    let _removed = RemovedOnDrop(dir.clone());
    let lab = Lab::start(lab_config(0.2, 0.5)).await.unwrap();
    let app = App::default();
    let app_addr = app.start().await;
    let mut a = Gateway::start(
        &dir,
        &db,
        GatewaySpec {
            site: "a",
            pg: PG_ADDR,
            smscs: smscs(&lab, &["a1", "b1"]),
            webhook: App::url(app_addr, "a"),
        },
    )
    .await;
    let b = Gateway::start(
        &dir,
        &db,
        GatewaySpec {
            site: "b",
            pg: PG_ADDR,
            smscs: smscs(&lab, &["a2", "b2"]),
            webhook: App::url(app_addr, "b"),
        },
    )
    .await;
    let started = now();

    // The application: even batches to a (b when a does not answer), odd to
    // b. Paced, so that the kill lands while messages are still arriving.
    let a_accepted = Arc::new(AtomicUsize::new(0));
    let a_via_b = Arc::new(AtomicUsize::new(0));
    let sender_a = {
        let (api_a, api_b) = (a.api.clone(), b.api.clone());
        let (a_accepted, a_via_b) = (a_accepted.clone(), a_via_b.clone());
        tokio::spawn(async move {
            let http = http_client();
            for n in (0..BATCHES).step_by(2) {
                let body = batch(n * PER_BATCH..(n + 1) * PER_BATCH);
                match post_to_first_accepting(&http, &[&api_a, &api_b], &body).await {
                    0 => a_accepted.fetch_add(1, Ordering::SeqCst),
                    _ => a_via_b.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let sender_b = {
        let api_b = b.api.clone();
        tokio::spawn(async move {
            let http = http_client();
            for n in (1..BATCHES).step_by(2) {
                let body = batch(n * PER_BATCH..(n + 1) * PER_BATCH);
                post_to_first_accepting(&http, &[&api_b], &body).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    // The kill: once a took its share of batches and thousands are out.
    wait_for(Duration::from_secs(60), "a's batches in, thousands out", || {
        let (lab, a_accepted) = (&lab, &a_accepted);
        async move {
            a_accepted.load(Ordering::SeqCst) >= KILL_AFTER_A_BATCHES
                && lab.stats().totals.unique >= 3_000
        }
    })
    .await;
    let at_handsets = lab.stats().totals.unique;
    let kill_ms = wall_ms();
    a.kill_9().await;
    eprintln!(
        "a killed after {:?}: {at_handsets} at the handsets, {} of a's batches in",
        started.elapsed(),
        a_accepted.load(Ordering::SeqCst)
    );
    assert!(at_handsets < TOTAL, "the kill came before the end");

    tokio::time::timeout(Duration::from_secs(120), async {
        sender_a.await.unwrap();
        sender_b.await.unwrap();
    })
    .await
    .expect("every batch accepted by a gateway");
    assert!(
        a_via_b.load(Ordering::SeqCst) > 0,
        "a's remaining half went to b"
    );
    wait_for(Duration::from_secs(120), "20,000 at the handsets", || {
        let lab = &lab;
        async move { lab.stats().totals.unique >= TOTAL }
    })
    .await;
    wait_all_delivered(&db, TOTAL as i64, Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    // Late repeats (a receipt sent twice) have time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_handsets_once(&lab, TOTAL);
    let ignored = assert_store_finished(&db, TOTAL as i64).await;

    // a's submits: sent through a1 or b1. Every one is Delivered (above); their
    // receipts came in through b's binds too, after the kill necessarily so.
    let by_a = db
        .count("SELECT count(*) FROM {s}.messages WHERE smsc IN ('a1', 'b1')")
        .await;
    let by_a_receipt_at_b = db
        .count(
            "SELECT count(DISTINCT m.id) FROM {s}.messages m JOIN {s}.inbound i \
             ON i.message_id = m.id WHERE m.smsc IN ('a1', 'b1') AND i.smsc IN ('a2', 'b2')",
        )
        .await;
    let by_a_receipt_after_kill = db
        .count(&format!(
            "SELECT count(DISTINCT m.id) FROM {{s}}.messages m JOIN {{s}}.inbound i \
             ON i.message_id = m.id WHERE m.smsc IN ('a1', 'b1') AND i.received_at_ms > {kill_ms}"
        ))
        .await;
    assert!(by_a > 0 && by_a < TOTAL as i64, "a sent some: {by_a}");
    assert!(
        by_a_receipt_at_b > 0,
        "receipts of a's submits matched at b (SPEC M1, M6)"
    );

    // The application: every receipt, each once, except a delivery a made and
    // could not record before it died (SPEC M15: a repeat only after a
    // delivery whose outcome the gateway does not know). Such a repeat's first
    // copy came from a, before the kill, and the repeat from b.
    let twice = app_got_every_receipt(&db, &app).await;
    let hooks = app.hooks();
    for id in &twice {
        let copies: Vec<&Hook> = hooks.iter().filter(|hook| hook.id == *id).collect();
        assert_eq!(copies.len(), 2, "receipt {id}: {copies:?}");
        assert!(
            copies[0].from == "a" && copies[0].at_ms <= kill_ms && copies[1].from == "b",
            "receipt {id} twice, not a's unrecorded delivery before the kill: {copies:?}"
        );
    }
    // A submit a had on the wire (or answered and not recorded) when killed is
    // sent again by b with the same reference, and the provider drops it: at
    // most as many as a owned at once (its dispatcher's concurrency, 512).
    let dropped = lab.stats().totals.duplicates_dropped;
    let ambiguous_b = b
        .counter("submits_ambiguous_total")
        .await
        .map_or(0, |(_, n)| n);
    assert!(
        dropped <= 512 + ambiguous_b,
        "{dropped} repeats dropped by the provider"
    );
    eprintln!(
        "{TOTAL} delivered in {elapsed:?}; a sent {by_a} ({by_a_receipt_at_b} receipts through \
         b's binds, {by_a_receipt_after_kill} after the kill); {} of a's batches went to b; \
         provider dropped {dropped} repeats; {ignored} submit_ignored; {} receipts repeated \
         to the app after the kill",
        a_via_b.load(Ordering::SeqCst),
        twice.len()
    );
    drop(b);
}

/// SPEC M17, M8: gateway a is frozen (SIGSTOP) while it holds claimed messages
/// — the SMSCs answer slowly, so a has submits on the wire and more waiting —
/// for longer than its lease; b takes them over and delivers them; a thaws
/// (SIGCONT) and runs on. Every message reaches a handset once, no history has
/// two `submitted` lines, a counts the leases it lost, and the provider saw at
/// most the submits a had on the wire when it froze again (SPEC M8's ambiguous
/// case: sent before the lease passed, answered after): a must not send the
/// messages it had queued but not sent once their leases are b's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_gateway_after_its_lease_was_taken_sends_nothing_twice() {
    const FIRST: u64 = 1_500;
    const TOTAL: u64 = 2_000;
    /// Outstanding submits per bind (`[smpp] window`, default 10).
    const WINDOW: u64 = 10;
    let Some(db) = Db::open("stale").await else {
        return;
    };
    let dir = temp_dir("shared-stale");
    let _removed = RemovedOnDrop(dir.clone());
    let mut config = lab_config(0.0, 0.0);
    // Receipts sent to the frozen a go to another bind after 1 s.
    config.deliveries.response_timeout_ms = 1_000;
    config.deliveries.retry_interval_ms = 200;
    let lab = Lab::start(config).await.unwrap();
    let app = App::default();
    let app_addr = app.start().await;
    let all: Vec<&str> = vec!["a1", "a2", "b1", "b2"];
    let a = Gateway::start(
        &dir,
        &db,
        GatewaySpec {
            site: "a",
            pg: PG_ADDR,
            smscs: smscs(&lab, &all),
            webhook: App::url(app_addr, "a"),
        },
    )
    .await;
    let b = Gateway::start(
        &dir,
        &db,
        GatewaySpec {
            site: "b",
            pg: PG_ADDR,
            smscs: smscs(&lab, &all),
            webhook: App::url(app_addr, "b"),
        },
    )
    .await;
    let targets: Vec<_> = lab.smsc_addrs().into_iter().map(|(t, _)| t).collect();
    for target in &targets {
        lab.set_fault(target, Fault::Slow { delay_ms: 200 }).unwrap();
    }
    let http = http_client();
    // Through a's API: a is woken at once and claims a page (1,000) of them.
    post_to_first_accepting(&http, &[&a.api], &batch(0..FIRST)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claimed_by_a = db
        .count("SELECT count(*) FROM {s}.messages WHERE state = 'Queued' AND claimed_by LIKE 'a/%'")
        .await;
    let before_stop = lab.stats().totals.submits;
    a.signal("STOP");
    let stopped = now();
    eprintln!("a frozen holding {claimed_by_a}; {before_stop} submits so far");
    assert!(claimed_by_a > 100, "a holds many claimed messages: {claimed_by_a}");
    // Past the lease: b claims a's messages once their claims ran out.
    tokio::time::sleep(LEASE * 2).await;
    let submits_while_stopped = lab.stats().totals.submits;
    a.signal("CONT");
    eprintln!(
        "a thawed after {:?}; {} submits while frozen",
        stopped.elapsed(),
        submits_while_stopped - before_stop
    );
    for target in &targets {
        lab.set_fault(target, Fault::Recover).unwrap();
    }
    // Run on: more work through both.
    post_to_first_accepting(&http, &[&a.api], &batch(FIRST..FIRST + 250)).await;
    post_to_first_accepting(&http, &[&b.api], &batch(FIRST + 250..TOTAL)).await;
    wait_for(Duration::from_secs(60), "2,000 at the handsets", || {
        let lab = &lab;
        async move { lab.stats().totals.unique >= TOTAL }
    })
    .await;
    wait_all_delivered(&db, TOTAL as i64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_handsets_once(&lab, TOTAL);
    let ignored = assert_store_finished(&db, TOTAL as i64).await;
    // No history with two submitted lines, as the API shows it.
    let mut two_submitted = Vec::new();
    for id in db
        .rows("SELECT id FROM {s}.messages ORDER BY id")
        .await
        .iter()
        .map(|row| row.get::<_, i64>(0))
    {
        let view: Value = http
            .get(format!("{}/v1/messages/{id}", b.api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let submitted = view["events"]
            .as_array()
            .map_or(0, |events| events.iter().filter(|e| e["kind"] == "submitted").count());
        if submitted != 1 {
            two_submitted.push((id, submitted));
        }
    }
    assert!(
        two_submitted.is_empty(),
        "histories without exactly one submitted line: {:?}",
        &two_submitted[..two_submitted.len().min(10)]
    );
    let (name, lost) = a
        .counter("leases_lost_total")
        .await
        .expect("a's /metrics has the leases lost counter");
    assert!(lost > 0, "{name} = {lost}: a lost leases to b");
    let twice = app_got_every_receipt(&db, &app).await;
    let dropped = lab.stats().totals.duplicates_dropped;
    eprintln!(
        "{name} = {lost}; provider dropped {dropped} repeats; {ignored} submit_ignored; \
         receipts twice at the app: {}",
        twice.len()
    );
    // What a had on the wire when frozen: at most a window per bind.
    let on_the_wire = WINDOW * targets.len() as u64;
    assert!(
        dropped <= on_the_wire,
        "the provider dropped {dropped} repeats: a sent after its leases passed to b \
         (at most {on_the_wire} were on the wire when it froze)"
    );
    assert!(
        ignored as u64 <= on_the_wire,
        "{ignored} submit responses for messages already sent"
    );
    drop((a, b));
}

/// The database behind a cuttable link.
async fn pg_link() -> Link {
    let postgres: SocketAddr = PG_ADDR.parse().unwrap();
    // Only a → b carries anything (the gateway connects to `a_addr`); the
    // other side's target is a port nobody listens on.
    let unused = SocketAddr::from(([127, 0, 0, 1], free_port()));
    Link::start(LinkConfig::new("postgres", unused, postgres))
        .await
        .unwrap()
}

/// One gateway on the database at `pg`, on all four SMSCs, with the app.
async fn one_gateway(dir: &Path, db: &Db, lab: &LabHandle, pg: &str, app: &App) -> Gateway {
    let app_addr = app.start().await;
    Gateway::start(
        dir,
        db,
        GatewaySpec {
            site: "a",
            pg,
            smscs: smscs(lab, &["a1", "a2", "b1", "b2"]),
            webhook: App::url(app_addr, "a"),
        },
    )
    .await
}

/// SPEC M9, invariant 1: the database goes away (the link to it cut: open
/// connections reset, new ones refused) for longer than the lease. The API
/// answers 503 naming the store within a few seconds (connect_timeout 1 s),
/// not a hang; health says the store is unavailable; when the link is back the
/// gateway accepts again by itself, and every message accepted before and
/// after reaches a handset once, with nothing sent twice to the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_keeps_everything_and_recovers() {
    const BEFORE: u64 = 3_000;
    const TOTAL: u64 = 4_000;
    let Some(db) = Db::open("outage").await else {
        return;
    };
    let dir = temp_dir("shared-outage");
    let _removed = RemovedOnDrop(dir.clone());
    let lab = Lab::start(lab_config(0.0, 0.0)).await.unwrap();
    let link = pg_link().await;
    let app = App::default();
    let gateway = one_gateway(&dir, &db, &lab, &link.a_addr().to_string(), &app).await;
    let http = http_client();
    post_to_first_accepting(&http, &[&gateway.api], &batch(0..BEFORE)).await;
    // Mid-delivery: submits are on the wire, outcomes on their way to the store.
    wait_for(Duration::from_secs(30), "some delivered", || {
        let lab = &lab;
        async move { lab.stats().totals.unique >= 500 }
    })
    .await;
    link.cut();
    let cut = now();

    let post = http
        .post(format!("{}/v1/messages", gateway.api))
        .bearer_auth(TOKEN)
        .json(&batch(BEFORE..TOTAL))
        .send()
        .await
        .expect("an answer, not a hang");
    let answered = cut.elapsed();
    let status = post.status();
    let body: Value = post.json().await.unwrap_or_default();
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("store unavailable: ") && error.contains("database"),
        "the error names the database: {body}"
    );
    assert!(answered < Duration::from_secs(4), "answered after {answered:?}");
    let health = http
        .get(format!("{}/v1/health", gateway.api))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503, "not ready without its store");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["store"], "unavailable", "{health}");

    // Out for longer than the lease: the gateway's claims run out meanwhile.
    tokio::time::sleep((LEASE + Duration::from_secs(1)).saturating_sub(cut.elapsed())).await;
    link.restore().unwrap();
    let restored = now();
    post_to_first_accepting(&http, &[&gateway.api], &batch(BEFORE..TOTAL)).await;
    let recovered = restored.elapsed();
    assert!(recovered < Duration::from_secs(15), "accepting again after {recovered:?}");
    wait_for(Duration::from_secs(60), "4,000 at the handsets", || {
        let lab = &lab;
        async move { lab.stats().totals.unique >= TOTAL }
    })
    .await;
    wait_all_delivered(&db, TOTAL as i64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_handsets_once(&lab, TOTAL);
    let ignored = assert_store_finished(&db, TOTAL as i64).await;
    let twice = app_got_every_receipt(&db, &app).await;
    let dropped = lab.stats().totals.duplicates_dropped;
    eprintln!(
        "503 after {answered:?}; accepting {recovered:?} after the restore; provider dropped \
         {dropped} repeats; {ignored} submit_ignored; link: {:?}",
        link.stats().a_to_b
    );
    assert!(twice.is_empty(), "receipts twice at the app: {twice:?}");
    // One gateway, the SMSCs fine: nothing had to be sent twice.
    assert_eq!(dropped, 0, "repeats dropped by the provider");
    drop(gateway);
    link.shutdown().await;
}

/// SPEC M9, invariant 1: the gateway's database connections are terminated by
/// the server (`pg_terminate_backend`) twice during a run of 4,000 messages:
/// the gateway reconnects by itself; what the application posts meanwhile is
/// accepted (a 503 is retried with the same keys); every message reaches a
/// handset once and its receipt the application once, nothing sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_database_connections_lose_and_repeat_nothing() {
    const BATCHES: u64 = 8;
    const PER_BATCH: u64 = 500;
    const TOTAL: u64 = BATCHES * PER_BATCH;
    let Some(db) = Db::open("terminate").await else {
        return;
    };
    let dir = temp_dir("shared-terminate");
    let _removed = RemovedOnDrop(dir.clone());
    let lab = Lab::start(lab_config(0.0, 0.0)).await.unwrap();
    let app = App::default();
    let gateway = one_gateway(&dir, &db, &lab, PG_ADDR, &app).await;
    let application = application_name(&db, "a");
    let sender = {
        let api = gateway.api.clone();
        tokio::spawn(async move {
            let http = http_client();
            for n in 0..BATCHES {
                let body = batch(n * PER_BATCH..(n + 1) * PER_BATCH);
                post_to_first_accepting(&http, &[&api], &body).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut terminated = Vec::new();
    for at in [800, 2_400] {
        wait_for(Duration::from_secs(60), "handsets before a termination", || {
            let lab = &lab;
            async move { lab.stats().totals.unique >= at }
        })
        .await;
        terminated.push(db.terminate(&application).await);
    }
    assert!(
        terminated.iter().all(|&n| n > 0),
        "the gateway's connections were there to terminate: {terminated:?}"
    );
    tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .expect("every batch accepted")
        .unwrap();
    wait_for(Duration::from_secs(60), "4,000 at the handsets", || {
        let lab = &lab;
        async move { lab.stats().totals.unique >= TOTAL }
    })
    .await;
    wait_all_delivered(&db, TOTAL as i64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_handsets_once(&lab, TOTAL);
    let ignored = assert_store_finished(&db, TOTAL as i64).await;
    let twice = app_got_every_receipt(&db, &app).await;
    let dropped = lab.stats().totals.duplicates_dropped;
    let http = http_client();
    let health = http
        .get(format!("{}/v1/health", gateway.api))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "healthy again by itself");
    eprintln!(
        "terminated {terminated:?} connections; provider dropped {dropped} repeats; \
         {ignored} submit_ignored"
    );
    assert!(twice.is_empty(), "receipts twice at the app: {twice:?}");
    assert_eq!(dropped, 0, "repeats dropped by the provider");
    drop(gateway);
}

/// Invariant 3: `check-config --runtime` names a database it cannot reach,
/// with the key and where it tried, never the password. Needs no PostgreSQL:
/// nothing listens on the port.
#[tokio::test]
async fn check_config_runtime_names_an_unreachable_database() {
    let port = free_port();
    let api = free_port();
    let text = format!(
        r#"
[site]
name = "check"
[api]
listen = "127.0.0.1:{api}"
tokens = ["{TOKEN}"]
[store]
url = "postgres://hotsite:s3cret-pw@127.0.0.1:{port}/hotsite"
connect_timeout = "1s"
[smpp]
system_id = "hotsite"
password = "secret"
[[smpp.smsc]]
site = "a"
name = "a1"
address = "127.0.0.1:1"
"#
    );
    let file = crate::cli::temp_file("unreachable-pg.toml", &text);
    let started = now();
    let output = crate::cli::hotsite()
        .arg("check-config")
        .arg("--runtime")
        .arg(file.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "store.url: cannot reach PostgreSQL at 127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "the password is never shown: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by connect_timeout");
}
