//! SPEC M17 end to end: the gateways of both sites, each a `hotsite run`
//! process, drain one queue in one PostgreSQL database (DESIGN.md "Storage"),
//! against one simulated aggregator with both sites' SMSCs. One gateway is
//! killed with SIGKILL, another is frozen past its lease (SIGSTOP) and thawed,
//! and the database is taken away (a [`Link`] in front of it, cut and
//! restored) or has its connections terminated: nothing acknowledged is lost,
//! nothing reaches a handset twice, and nothing reaches the application twice
//! except SPEC M15's repeat of a delivery whose outcome its gateway lost.
//!
//! PostgreSQL: the server of `HOTSITE_TEST_PG_URL`, as the store suite's,
//! default `postgres://postgres@127.0.0.1:5432/test` (trust). Each test works
//! in a schema of its own, `hs_it_<name>_<pid>`, dropped at the end (pass or
//! fail; those of test processes that died are dropped by the next run).
//! Without a reachable server the tests print "PostgreSQL half skipped" and
//! pass, unless `CI` is set or `HOTSITE_TEST_PG=require` (then they fail): see
//! [`Db::open`].

#![allow(clippy::disallowed_methods)] // test clock: wall-clock times to compare with the store's

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hotsite_lab::{Fault, Lab, LabHandle, Link, LinkConfig};
use hotsite_messaging::signing::{verify, SIGNATURE_HEADER};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::crash::free_port;
use crate::gateway::{batch, handsets, lab_config, now, temp_dir, RemovedOnDrop, SECRET, TOKEN};

/// The PostgreSQL the tests use (the store suite's variable and default).
fn admin_url() -> String {
    std::env::var("HOTSITE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The server of [`admin_url`], split: where it listens, who to log in as.
struct Server {
    /// `host:port`.
    addr: String,
    /// `user[:password]`.
    login: String,
    database: String,
}

fn server() -> Server {
    let url = admin_url();
    let config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|error| panic!("HOTSITE_TEST_PG_URL: {error}"));
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("HOTSITE_TEST_PG_URL: a TCP host is needed, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let login = match config.get_password() {
        Some(password) => format!("{user}:{}", String::from_utf8_lossy(password)),
        None => user.to_owned(),
    };
    Server {
        addr: format!("{host}:{port}"),
        login,
        database: config.get_dbname().unwrap_or("test").to_owned(),
    }
}

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

/// The URL of the test database through `addr` (the server, or a link in
/// front of it), as gateway `name`: its connections carry `application_name`,
/// so that a test can find them in `pg_stat_activity`.
fn pg_url(addr: &str, name: &str) -> String {
    let Server {
        login, database, ..
    } = server();
    format!("postgres://{login}@{addr}/{database}?application_name={name}")
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
        let url = admin_url();
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_postgres::connect(&url, tokio_postgres::NoTls),
        )
        .await;
        let (client, connection) = match connected {
            Ok(Ok(pair)) => pair,
            failed => {
                let reason = match failed {
                    Ok(Err(error)) => match std::error::Error::source(&error) {
                        Some(cause) => format!("{error}: {cause}"),
                        None => error.to_string(),
                    },
                    _ => "no answer within 5 s".to_owned(),
                };
                let addr = server().addr;
                assert!(
                    !postgres_required(),
                    "PostgreSQL half required (CI or HOTSITE_TEST_PG=require) but there is \
                     no server at {addr}: {reason}"
                );
                eprintln!(
                    "PostgreSQL half skipped: no server at {addr} ({reason}); start one or \
                     set HOTSITE_TEST_PG_URL (HOTSITE_TEST_PG=require makes this fail)"
                );
                return None;
            }
        };
        tokio::spawn(connection);
        // Schemas of test processes that died (their pid is gone), and a
        // leftover of this one's name.
        let schema = format!("hs_it_{name}_{}", std::process::id());
        for row in client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'hs\\_it\\_%'",
                &[],
            )
            .await
            .unwrap()
        {
            let stale: String = row.get(0);
            let pid = stale
                .rsplit('_')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok());
            let dead = pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if dead || stale == schema {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {stale} CASCADE"))
                    .await
                    .unwrap();
            }
        }
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
                let (client, connection) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
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
# Longer than a test freezes a gateway (SIGSTOP): its binds outlive the
# freeze (no answer overdue when it thaws), so what it does after the thaw is
# what its leases allow, not a rebind 35 s later.
dead_peer_timeout = "30s"
response_timeout = "30s"
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
            // Not the per-message lines: what happened to binds and leases.
            let lines: Vec<&str> = lines
                .into_iter()
                .filter(|line| !line.contains("lease lost: another gateway has the message"))
                .collect();
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
    let mut last = String::new();
    for _ in 0..300 {
        for (index, api) in apis.iter().enumerate() {
            let sent = http
                .post(format!("{api}/v1/messages"))
                .bearer_auth(TOKEN)
                .json(body)
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 202 => return index,
                Ok(response) => {
                    let status = response.status();
                    last = format!(
                        "{api}: {status} {}",
                        response.text().await.unwrap_or_default()
                    );
                    assert!(!status.is_client_error(), "refused: {last}");
                }
                Err(error) => last = format!("{api}: {error}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no API accepted the batch within 300 rounds; last answer: {last}");
}

/// Posts messages `range` in batches of 500, each as
/// [`post_to_first_accepting`].
async fn post_range(http: &reqwest::Client, apis: &[&str], range: std::ops::Range<u64>) {
    for first in range.clone().step_by(500) {
        let body = batch(first..(first + 500).min(range.end));
        post_to_first_accepting(http, apis, &body).await;
    }
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
    assert!(
        lost.is_empty(),
        "lost (first 10 of {}): {lost:?}",
        total - seen.len() as u64
    );
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
async fn wait_all_delivered(db: &Db, total: i64, limit: Duration) -> Duration {
    wait_for(
        limit,
        "every message Delivered, every receipt at the app",
        || async {
            db.count("SELECT count(*) FROM {s}.messages WHERE state = 'Delivered'")
                .await
                == total
                && db
                    .count("SELECT count(*) FROM {s}.inbound WHERE delivered_at_ms IS NULL")
                    .await
                    == 0
        },
    )
    .await
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
    assert_eq!(
        states,
        [("Delivered".to_owned(), total)],
        "every message Delivered"
    );
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
        db.count("SELECT count(*) FROM {s}.inbound WHERE kind = 'Receipt' AND message_id IS NULL")
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
    assert!(
        missing.is_empty(),
        "receipts never at the app (first 10): {missing:?}"
    );
    let unknown: Vec<&i64> = got.difference(&stored).take(10).collect();
    assert!(
        unknown.is_empty(),
        "ids the store does not hold: {unknown:?}"
    );
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
            pg: &server().addr,
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
            pg: &server().addr,
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
    wait_for(
        Duration::from_secs(60),
        "a's batches in, thousands out",
        || {
            let (lab, a_accepted) = (&lab, &a_accepted);
            async move {
                a_accepted.load(Ordering::SeqCst) >= KILL_AFTER_A_BATCHES
                    && lab.stats().totals.unique >= 3_000
            }
        },
    )
    .await;
    let at_handsets = lab.stats().totals.unique;
    let kill_ms = wall_ms();
    a.kill_9().await;
    let dead_ms = wall_ms();
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
    // copy came from a, by the time a was dead (the app may take a moment to
    // log a request a sent just before), and the repeat from b. There can be
    // many: a records its deliveries in batches, one store request at a time
    // (webhook.rs), so what the application answered during the last request
    // or two is unrecorded; a holds at most 4 × 1,024 rows (read, being
    // delivered, or delivered and not yet recorded).
    let twice = app_got_every_receipt(&db, &app).await;
    assert!(twice.len() <= 4 * 1_024, "{} receipts twice", twice.len());
    let hooks = app.hooks();
    for id in &twice {
        let copies: Vec<&Hook> = hooks.iter().filter(|hook| hook.id == *id).collect();
        assert_eq!(copies.len(), 2, "receipt {id}: {copies:?}");
        assert!(
            copies[0].from == "a" && copies[0].at_ms <= dead_ms + 1_000 && copies[1].from == "b",
            "receipt {id} twice, not a's unrecorded delivery before the kill (dead at \
             {dead_ms}): {copies:?}"
        );
    }
    // A submit a had on the wire (or answered and not recorded) when killed is
    // sent again by b with the same reference, and the provider drops it. Such
    // a message reached its handset through a's SMSCs but is recorded as sent
    // through b's: every repeat the provider saw must be one of those (or an
    // ambiguous submit of b's own, none expected with a 30 s response timeout).
    let delivered_through: HashMap<u64, String> = lab
        .handset_log()
        .into_iter()
        .filter_map(|message| {
            let index = message.text.strip_prefix("gateway test #")?.parse().ok()?;
            Some((index, message.smsc))
        })
        .collect();
    let mut resent_by_b = 0u64;
    for row in db.rows("SELECT key, smsc FROM {s}.messages").await {
        let (key, smsc): (String, String) = (row.get(0), row.get(1));
        let index: u64 = key.trim_start_matches("m-").parse().unwrap();
        let through = delivered_through.get(&index).map(String::as_str);
        if ["a2", "b2"].contains(&smsc.as_str()) && matches!(through, Some("a1" | "b1")) {
            resent_by_b += 1;
        }
    }
    let dropped = lab.stats().totals.duplicates_dropped;
    let ambiguous_b = b
        .counter("submits_ambiguous_total")
        .await
        .map_or(0, |(_, n)| n);
    eprintln!(
        "{TOTAL} delivered in {elapsed:?}; a sent {by_a} ({by_a_receipt_at_b} receipts through \
         b's binds, {by_a_receipt_after_kill} after the kill); {} of a's batches went to b; \
         provider dropped {dropped} repeats ({resent_by_b} b's resends of a's submits); \
         {ignored} submit_ignored; {} receipts repeated to the app after the kill",
        a_via_b.load(Ordering::SeqCst),
        twice.len()
    );
    assert!(
        resent_by_b <= dropped && dropped <= resent_by_b + ambiguous_b,
        "{dropped} repeats dropped by the provider, {resent_by_b} of them b's resends of \
         a's submits, {ambiguous_b} ambiguous at b: a gateway sent a message twice"
    );
    drop(b);
}

/// SPEC M17, M8: gateway a is frozen (SIGSTOP) while it holds claimed messages
/// — the SMSCs answer slowly, so a has submits on the wire and more waiting to
/// go — until b has taken them over (their leases ran out); a thaws (SIGCONT)
/// and runs on. Every message reaches a handset once, no history has two
/// `submitted` lines, a counts the leases it lost, and after the thaw a sends
/// none of the messages whose leases are b's: the only repeats the provider
/// sees are b's resends of what a had on the wire when it froze (SPEC M8's
/// ambiguous case: sent under the lease, answered after it passed).
///
/// As in the kill test, a binds a1 and b1, b binds a2 and b2, so the lab's
/// per-SMSC counters and handset log say which gateway sent what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_gateway_after_its_lease_was_taken_sends_nothing_twice() {
    const FIRST: u64 = 1_500;
    const TOTAL: u64 = 2_000;
    /// Outstanding submits per bind (`[smpp] window`, default 10).
    const WINDOW: u64 = 10;
    const A_SMSCS: [&str; 2] = ["a1", "b1"];
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
    let a = Gateway::start(
        &dir,
        &db,
        GatewaySpec {
            site: "a",
            pg: &server().addr,
            smscs: smscs(&lab, &A_SMSCS),
            webhook: App::url(app_addr, "a"),
        },
    )
    .await;
    let b = Gateway::start(
        &dir,
        &db,
        GatewaySpec {
            site: "b",
            pg: &server().addr,
            smscs: smscs(&lab, &["a2", "b2"]),
            webhook: App::url(app_addr, "b"),
        },
    )
    .await;
    // a's SMSCs' (submits, repeats dropped) so far.
    let sent_by_a = |lab: &LabHandle| {
        lab.stats()
            .smsc
            .iter()
            .filter(|smsc| A_SMSCS.contains(&smsc.name.as_str()))
            .fold((0, 0), |(submits, repeats), smsc| {
                (submits + smsc.submits, repeats + smsc.duplicates_dropped)
            })
    };
    let targets: Vec<_> = lab.smsc_addrs().into_iter().map(|(t, _)| t).collect();
    for target in &targets {
        lab.set_fault(target, Fault::Slow { delay_ms: 200 })
            .unwrap();
    }
    let http = http_client();
    // Through a's API: a is woken at once and claims a page of them.
    post_range(&http, &[&a.api], 0..FIRST).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claimed_by_a = db
        .count("SELECT count(*) FROM {s}.messages WHERE state = 'Queued' AND claimed_by LIKE 'a/%'")
        .await;
    a.signal("STOP");
    let stopped = now();
    let (frozen_submits, _) = sent_by_a(&lab);
    assert!(
        claimed_by_a > 100,
        "a holds many claimed messages: {claimed_by_a}"
    );
    // Past the lease: b claims a's messages once their claims ran out (and b
    // has room for them).
    wait_for(Duration::from_secs(15), "b took a's messages over", || {
        let db = &db;
        async move {
            db.count("SELECT count(*) FROM {s}.messages WHERE state = 'Queued' AND claimed_by LIKE 'a/%'")
                .await
                == 0
        }
    })
    .await;
    let (thaw_submits, thaw_repeats) = sent_by_a(&lab);
    let thaw_dropped = lab.stats().totals.duplicates_dropped;
    // What b holds at the thaw: a must send none of it. (Messages nobody had
    // claimed yet are fair game for a once it runs again.)
    let b_held: std::collections::HashSet<u64> = db
        .rows("SELECT key FROM {s}.messages WHERE state = 'Queued' AND claimed_by LIKE 'b/%'")
        .await
        .iter()
        .filter_map(|row| row.get::<_, String>(0).strip_prefix("m-")?.parse().ok())
        .collect();
    a.signal("CONT");
    assert_eq!(thaw_submits, frozen_submits, "a sent nothing while frozen");
    eprintln!(
        "a froze holding {claimed_by_a} ({frozen_submits} submits from a so far), thawed after {:?}",
        stopped.elapsed()
    );
    for target in &targets {
        lab.set_fault(target, Fault::Recover).unwrap();
    }
    // Time for a to do what it would do with what it held, then run on: more
    // work through both.
    tokio::time::sleep(Duration::from_secs(1)).await;
    post_range(&http, &[&a.api], FIRST..FIRST + 250).await;
    post_range(&http, &[&b.api], FIRST + 250..TOTAL).await;
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
    let ids: Vec<i64> = db
        .rows("SELECT id FROM {s}.messages ORDER BY id")
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    let views = futures_util::stream::iter(ids.into_iter().map(|id| {
        let request = http
            .get(format!("{}/v1/messages/{id}", b.api))
            .bearer_auth(TOKEN)
            .send();
        async move {
            let view: Value = request.await.unwrap().json().await.unwrap();
            let submitted = view["events"].as_array().map_or(0, |events| {
                events.iter().filter(|e| e["kind"] == "submitted").count()
            });
            (id, submitted)
        }
    }));
    let not_once: Vec<(i64, usize)> = views
        .buffer_unordered(16)
        .filter(|(_, submitted)| std::future::ready(*submitted != 1))
        .collect()
        .await;
    assert!(
        not_once.is_empty(),
        "histories without exactly one submitted line: {:?}",
        &not_once[..not_once.len().min(10)]
    );

    // After the thaw nothing is sent twice. a's SMSCs drop no repeat from
    // then on (a sent nothing b had sent), and the provider's repeats in all
    // stay within what a had on the wire when it froze (asserted below): b
    // sends those again, before or after the thaw. What a had queued in its
    // SMPP client is past its send deadline (the lease's margin) and dropped
    // unsent; what b holds a cannot claim. (a may send, after the thaw,
    // messages that b let go meanwhile: b's own queue behind the slow SMSCs
    // outlasted its send deadlines, so b gave them back; a handover, not a
    // repeat.)
    let dropped_at_thaw = thaw_dropped;
    let (end_submits, end_repeats) = sent_by_a(&lab);
    let dropped = lab.stats().totals.duplicates_dropped;
    let twice = app_got_every_receipt(&db, &app).await;
    let (name, lost) = a
        .counter("leases_lost_total")
        .await
        .expect("a's /metrics has the leases lost counter");
    eprintln!(
        "b held {} at the thaw; after the thaw a sent {}; provider dropped {dropped} repeats \
         in all ({dropped_at_thaw} before the thaw); {ignored} submit_ignored; {name} = {lost}; \
         receipts twice at the app: {}",
        b_held.len(),
        end_submits - thaw_submits,
        twice.len()
    );
    assert!(
        !b_held.is_empty(),
        "b held some of a's messages at the thaw"
    );
    assert_eq!(
        end_repeats, thaw_repeats,
        "after the thaw a's SMSCs dropped repeats: a stale gateway sent what another had"
    );
    // What a had on the wire when it froze: at most a window per bind. b sends
    // those again, the provider drops the repeat, and a's late answer finds
    // them sent (`submit_ignored`).
    let on_the_wire = WINDOW * A_SMSCS.len() as u64;
    assert!(
        dropped <= on_the_wire,
        "the provider dropped {dropped} repeats"
    );
    assert!(
        ignored as u64 <= on_the_wire,
        "{ignored} submit responses for messages already sent"
    );
    assert_eq!(name, "hotsite_leases_lost_total");
    // What a had queued in its SMPP client when it froze was dropped unsent at
    // its lease's send deadline, and counted.
    let (_, expired) = a
        .counter("sends_expired_total")
        .await
        .expect("a's /metrics has the expired sends counter");
    assert!(expired > 0, "sends_expired_total = {expired}");
    assert!(lost > 0, "{name} = {lost}: a lost leases to b");
    // A webhook a had posted when it froze, answered but not recorded, comes
    // again from b (SPEC M15: a repeat only after a delivery whose outcome the
    // gateway does not know): at most a's deliveries in flight (16).
    let hooks = app.hooks();
    for id in &twice {
        let from: Vec<&str> = hooks
            .iter()
            .filter(|hook| hook.id == *id)
            .map(|hook| hook.from.as_str())
            .collect();
        assert_eq!(from, ["a", "b"], "receipt {id}");
    }
    assert!(twice.len() <= 16, "receipts twice at the app: {twice:?}");
    drop((a, b));
}

/// The database behind a cuttable link.
async fn pg_link() -> Link {
    let postgres = std::net::ToSocketAddrs::to_socket_addrs(&server().addr)
        .unwrap()
        .next()
        .expect("the server's address");
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
    post_range(&http, &[&gateway.api], 0..BEFORE).await;
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
        .json(&batch(BEFORE..BEFORE + 500))
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
    assert!(
        answered < Duration::from_secs(4),
        "answered after {answered:?}"
    );
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
    post_range(&http, &[&gateway.api], BEFORE..TOTAL).await;
    let recovered = restored.elapsed();
    assert!(
        recovered < Duration::from_secs(15),
        "accepting again after {recovered:?}"
    );
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
    let gateway = one_gateway(&dir, &db, &lab, &server().addr, &app).await;
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
        wait_for(
            Duration::from_secs(60),
            "handsets before a termination",
            || {
                let lab = &lab;
                async move { lab.stats().totals.unique >= at }
            },
        )
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

/// Runs `hotsite check-config --runtime` on a gateway file whose store is the
/// PostgreSQL URL `url`: (exit code, stdout, stderr, how long it took).
async fn check_config_runtime(url: &str) -> (Option<i32>, String, String, Duration) {
    let text = format!(
        r#"
[site]
name = "check"
[api]
listen = "127.0.0.1:{api}"
tokens = ["{TOKEN}"]
[store]
url = "{url}"
connect_timeout = "1s"
[smpp]
system_id = "hotsite"
password = "secret"
[[smpp.smsc]]
site = "a"
name = "a1"
address = "127.0.0.1:1"
"#,
        api = free_port()
    );
    let file = crate::cli::temp_file("shared-store-check.toml", &text);
    let started = now();
    let output = crate::cli::hotsite()
        .arg("check-config")
        .arg("--runtime")
        .arg(file.path())
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
        started.elapsed(),
    )
}

/// Invariant 3: `check-config --runtime` names a database it cannot reach,
/// with the key and where it tried, never the password, within the connect
/// timeout; a database that answers passes.
#[tokio::test]
async fn check_config_runtime_names_an_unreachable_database() {
    let port = free_port(); // nothing listens there
    let (code, _, stderr, took) = check_config_runtime(&format!(
        "postgres://hotsite:s3cret-pw@127.0.0.1:{port}/hotsite"
    ))
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "store.url: cannot reach PostgreSQL at 127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password is never shown: {stderr}"
    );
    assert!(
        took < Duration::from_secs(10),
        "bounded by connect_timeout: {took:?}"
    );

    let Some(_db) = Db::open("check").await else {
        return;
    };
    let (code, stdout, stderr, _) = check_config_runtime(&pg_url(&server().addr, "check")).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("database answering"), "{stdout}");
}
