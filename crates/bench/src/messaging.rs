//! `hotsite bench`: throughput, latency and memory of hotsite's messaging
//! gateway, and of Kannel, against the same simulated aggregator
//! (`hotsite-lab`) on the same machine in the same run.
//!
//! - The gateway runs as a child process (`<hotsite> run --config`, the
//!   program the caller names: the `hotsite` binary passes itself), its
//!   SQLite store (fsync on) in a work directory on disk, or (`--store
//!   postgres`) on PostgreSQL in a fresh schema per run, dropped after; with
//!   `--gateways 2`, two gateways share that schema (SPEC M17) and the load
//!   driver splits its connections between their APIs. Kannel's bearerbox and
//!   smsbox run as child processes with a copy of the peers' config. All are
//!   stopped by PID.
//! - The lab and the HTTP load driver run in this process. Every message has a
//!   unique destination, so arrivals at the lab are matched per message.
//! - Receipts (`--receipts on|off|both`, on by default): hotsite asks for one
//!   per message and posts each to the bench's application (`[webhook]`, SPEC
//!   M13, M15); Kannel's sendsms requests carry `dlr-mask` (final states) and a
//!   `dlr-url` to the same in-process receiver (`bench/receiver.rs`). Receipts
//!   are counted per message; missing ones are reported, and the ratios compare
//!   receipts on with on, off with off.
//! - Throughput = distinct messages at the lab / (last distinct submit_sm at
//!   the lab − first HTTP request). Lost = accepted − distinct at the lab after
//!   settling; duplicates = repeated submits of an arrived message.
//!
//! Everything is bounded: message counts, per-phase time limits, per-request
//! timeouts; children are killed if the bench stops early.

mod analysis;
mod driver;
mod fleet;
mod pg;
mod procs;
mod receiver;
mod render;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotsite_lab::{Fault, Lab, LabConfig, LabHandle};
use serde::Serialize;
use serde_json::json;

use analysis::{arrivals, latencies, quantile, settle, Arrivals, Progress};
use driver::{drive, Api, Driven, Load};
use fleet::{Fleet, FleetSetup, Store};
use procs::{CpuMeter, CpuUse, GatewayCounters, Kannel, WorkDir, KANNEL_INSTALL, TOKEN};
use receiver::{ReceiptCounts, Receiver};
use render::{print_run_line, render};

/// Now, on the process's monotonic clock (tokio's, like the lab's).
#[allow(clippy::disallowed_methods)] // the bench's one clock read: it measures time
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Which products to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Product {
    Hotsite,
    Kannel,
    Both,
}

/// Which hotsite APIs to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// `{"messages": [...]}` of --batch messages per request.
    Batch,
    /// One message per request.
    Single,
    /// Both.
    All,
    /// No throughput runs (only --latency / --backlog).
    None,
}

/// Which lab layouts hotsite is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Layout {
    /// 2 sites × 2 SMSC instances; hotsite binds to all four.
    Four,
    /// One SMSC instance, like Kannel's.
    One,
    /// Both.
    Both,
}

/// Whether the runs ask for delivery receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Receipts {
    /// A receipt per message: hotsite's default; Kannel with `dlr-mask`/`dlr-url`.
    On,
    /// None asked for.
    Off,
    /// Each product once with and once without (on first).
    Both,
}

/// Which store(s) hotsite's runs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreArg {
    /// A SQLite file per run (fsync on): one gateway.
    Sqlite,
    /// PostgreSQL (`--pg-url`), a fresh schema per run.
    Postgres,
    /// Each hotsite run once on SQLite, then once on PostgreSQL.
    Both,
}

/// Options of `hotsite bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "both")]
    target: Product,
    /// hotsite throughput runs: batch API, one message per request, or both.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// Lab layout(s) for hotsite's throughput runs (Kannel always gets one SMSC).
    #[arg(long, value_enum, default_value = "both")]
    smsc: Layout,
    /// Messages per run [default: 200000 batch, 50000 single and Kannel].
    #[arg(long)]
    messages: Option<u64>,
    /// HTTP keep-alive connections of the load driver.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Messages per request with the batch API (at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,
    /// hotsite's SMPP window per bind (Kannel's config uses 10).
    #[arg(long, default_value_t = 10)]
    window: usize,
    /// Delivery receipts: with `on`, hotsite asks for one per message, stores
    /// and correlates each and posts it to the bench's in-process application
    /// (`[webhook]`); Kannel's sendsms requests carry `dlr-mask` (final states)
    /// and a `dlr-url` to the same application. Both are counted per message.
    #[arg(long, value_enum, default_value = "on")]
    receipts: Receipts,
    /// Same as `--receipts off`.
    #[arg(long, conflicts_with = "receipts")]
    no_receipts: bool,
    /// With receipts on, hotsite keeps them in its store without posting them
    /// to the bench's application (no `[webhook]`; not like Kannel's dlr-url).
    #[arg(long)]
    no_webhook: bool,
    /// Also run a paced batch-API run at half the measured peak (4 SMSCs) and
    /// report accept→submit_sm latency percentiles.
    #[arg(long)]
    latency: bool,
    /// Pace of the latency run in msg/s, instead of half the measured peak.
    #[arg(long)]
    latency_rate: Option<f64>,
    /// Length of the latency run in seconds.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// hotsite's store: a SQLite file (fsync on), PostgreSQL (`--pg-url`; a
    /// fresh schema `hotsite_bench_<pid>_<n>` per run, dropped after), or
    /// both, each hotsite run on SQLite then on PostgreSQL with the ratio.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreArg,
    /// The PostgreSQL database for `--store postgres|both` (the bench creates
    /// and drops its schemas there with psql).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    /// hotsite gateways per run, on one PostgreSQL schema, each bound to every
    /// SMSC of the lab, the load split between their APIs (`--store postgres`
    /// only: a SQLite file belongs to one gateway, SPEC M17).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=2))]
    gateways: u64,
    /// Memory run: push this many messages while the lab rejects binds, sample
    /// the gateway's RSS, then let it drain (e.g. 1000000).
    #[arg(long)]
    backlog: Option<u64>,
    /// Time limit of each phase (sending, settling, draining), in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Where the work directory (stores, configs, logs) goes; must be on disk,
    /// not tmpfs [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Kannel config to copy and adapt.
    #[arg(long, default_value = "/work/shared/peers/kannel/kannel.conf")]
    kannel_config: PathBuf,
    /// Print the results as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
}

/// Delivery receipts of one run, as the bench's application got them.
#[derive(Debug, Clone, Serialize)]
struct ReceiptReport {
    /// Where they went: hotsite's webhook, Kannel's dlr-url, or nowhere
    /// (hotsite with --no-webhook: kept in the store, not counted here).
    delivered_to: &'static str,
    /// Accepted messages: one final receipt each is expected.
    expected: u64,
    /// Messages with at least one final receipt at the application.
    received: u64,
    /// All callbacks, final or not.
    callbacks: u64,
    duplicates: u64,
    /// Final receipts saying "not delivered".
    not_delivered: u64,
    /// Callbacks for no message of this run.
    foreign: u64,
    /// Callbacks that are not a final receipt (Kannel's intermediate DLRs, MOs).
    intermediate: u64,
    /// Final receipts posted by each hotsite gateway (empty for Kannel).
    by_gateway: Vec<u64>,
    all_received: bool,
    /// First HTTP request → last final receipt at the application.
    seconds: f64,
    /// Messages with a receipt / seconds.
    throughput: f64,
}

impl ReceiptReport {
    fn new(
        delivered_to: &'static str,
        expected: u64,
        counts: &ReceiptCounts,
        all_received: bool,
        t0: Instant,
    ) -> ReceiptReport {
        let seconds = secs(t0, counts.last);
        ReceiptReport {
            delivered_to,
            expected,
            received: counts.distinct,
            callbacks: counts.callbacks,
            duplicates: counts.duplicates,
            not_delivered: counts.not_delivered,
            foreign: counts.foreign,
            intermediate: counts.intermediate,
            by_gateway: counts.by_gateway.clone(),
            all_received,
            seconds,
            throughput: rate(counts.distinct, seconds),
        }
    }
}

impl BenchArgs {
    /// Receipts on and/or off, in the order the runs go.
    fn receipt_modes(&self) -> &'static [bool] {
        if self.no_receipts {
            return &[false];
        }
        match self.receipts {
            Receipts::On => &[true],
            Receipts::Off => &[false],
            Receipts::Both => &[true, false],
        }
    }

    /// hotsite's stores, in the order the runs go.
    fn stores(&self) -> &'static [Store] {
        match self.store {
            StoreArg::Sqlite => &[Store::Sqlite],
            StoreArg::Postgres => &[Store::Postgres],
            StoreArg::Both => &[Store::Sqlite, Store::Postgres],
        }
    }

    /// Refuses what cannot be measured, before anything starts.
    fn check(&self) -> anyhow::Result<()> {
        let hotsite = matches!(self.target, Product::Hotsite | Product::Both);
        if hotsite && self.gateways > 1 && self.store != StoreArg::Postgres {
            anyhow::bail!(
                "--gateways {} needs --store postgres: a SQLite store belongs to one gateway \
                 (one process per file, SPEC M17); gateways share a queue only through PostgreSQL",
                self.gateways
            );
        }
        Ok(())
    }
}

/// One throughput run.
#[derive(Debug, Clone, Serialize)]
struct RunReport {
    product: &'static str,
    /// hotsite's store, `sqlite` or `postgres` (Kannel: none).
    store: Option<&'static str>,
    /// hotsite gateways sharing the store (Kannel: 1).
    gateways: usize,
    api: &'static str,
    /// A delivery receipt asked for every message.
    receipts: bool,
    smsc_instances: usize,
    connections: usize,
    per_request: u64,
    window: usize,
    messages: u64,
    accepted: u64,
    rejected: u64,
    errors: u64,
    unique_at_lab: u64,
    lost: i64,
    duplicates: u64,
    all_arrived: bool,
    http_seconds: f64,
    http_rate: f64,
    seconds: f64,
    throughput: f64,
    /// Peak RSS of the gateway(s) (Kannel: bearerbox + smsbox), MiB.
    peak_rss_mib: f64,
    /// The store on disk once settled: SQLite's database and WAL files, or
    /// PostgreSQL's schema (tables, indexes, TOAST), in bytes.
    store_bytes: Option<u64>,
    /// CPU cores used from the first request until settled: the product
    /// (gateway, or bearerbox + smsbox), this process (lab + driver), and the
    /// rest of the machine (anything else running: noise).
    cpu_cores: CpuUse,
    /// Receipts at the bench's application (receipts on, counted).
    receipt: Option<ReceiptReport>,
    /// Each hotsite gateway's own counters, read at the end (`/metrics`).
    per_gateway: Vec<GatewayCounters>,
    first_failure: Option<String>,
}

/// What a throughput run was asked to do.
struct RunSetup {
    product: &'static str,
    store: Option<&'static str>,
    gateways: usize,
    api: &'static str,
    receipts: bool,
    smsc_instances: usize,
    connections: usize,
    per_request: u64,
    window: usize,
    messages: u64,
}

impl RunReport {
    /// The report of one run: what the driver saw and what reached the lab.
    fn new(
        setup: RunSetup,
        driven: &Driven,
        arrived: &Arrivals,
        all_arrived: bool,
        peak_rss_kb: Option<u64>,
        cpu_cores: CpuUse,
    ) -> RunReport {
        let seconds = secs(driven.t0, arrived.last);
        let http_seconds = secs(driven.t0, driven.last_accept);
        RunReport {
            product: setup.product,
            store: setup.store,
            gateways: setup.gateways,
            api: setup.api,
            receipts: setup.receipts,
            smsc_instances: setup.smsc_instances,
            connections: setup.connections,
            per_request: setup.per_request,
            window: setup.window,
            messages: setup.messages,
            accepted: driven.accepted,
            rejected: driven.rejected,
            errors: driven.errors,
            unique_at_lab: arrived.unique,
            lost: driven.accepted as i64 - arrived.unique as i64,
            duplicates: arrived.duplicates,
            all_arrived,
            http_seconds,
            http_rate: rate(driven.accepted, http_seconds),
            seconds,
            throughput: rate(arrived.unique, seconds),
            peak_rss_mib: mib(peak_rss_kb),
            store_bytes: None,
            cpu_cores,
            receipt: None,
            per_gateway: Vec::new(),
            first_failure: driven.first_failure.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct LatencyReport {
    store: &'static str,
    gateways: usize,
    rate: f64,
    per_request: u64,
    messages: u64,
    accepted: u64,
    unique_at_lab: u64,
    achieved_throughput: f64,
    /// Microseconds, 202 at the driver → submit_sm at the lab.
    accept_to_submit_us: Percentiles,
    /// Microseconds, request written → submit_sm at the lab.
    request_to_submit_us: Percentiles,
    submits_before_202: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Percentiles {
    min: i64,
    p50: i64,
    p90: i64,
    p99: i64,
    max: i64,
}

#[derive(Debug, Clone, Serialize)]
struct MemorySample {
    t_s: f64,
    phase: &'static str,
    accepted: u64,
    at_lab: u64,
    rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
struct BacklogReport {
    store: &'static str,
    gateways: usize,
    messages: u64,
    accepted: u64,
    push_seconds: f64,
    push_rate: f64,
    rss_at_queued: Vec<(u64, f64)>,
    drain_rss_mib_min: f64,
    drain_rss_mib_max: f64,
    rss_at_drained: Vec<(u64, f64)>,
    unique_at_lab: u64,
    lost: i64,
    duplicates: u64,
    drain_seconds: f64,
    drain_throughput: f64,
    store_bytes: u64,
    samples: Vec<MemorySample>,
}

struct Ctx {
    args: BenchArgs,
    /// The `hotsite` binary the gateway runs as.
    gateway_program: PathBuf,
    work: WorkDir,
    limit: Duration,
    /// PostgreSQL runs so far: the `<n>` of the next schema's name.
    pg_runs: AtomicU64,
}

/// Runs the bench with `gateway_program` (the `hotsite` binary) as the
/// gateway under test; prints the report and returns the exit code.
pub async fn run(args: BenchArgs, gateway_program: PathBuf) -> anyhow::Result<ExitCode> {
    tokio::select! {
        result = bench(args, gateway_program) => result,
        signal = tokio::signal::ctrl_c() => {
            signal?;
            // Dropping `bench` kills its children and removes the work directory.
            anyhow::bail!("interrupted");
        }
    }
}

async fn bench(args: BenchArgs, gateway_program: PathBuf) -> anyhow::Result<ExitCode> {
    args.check()?;
    let work = WorkDir::create(args.dir.as_deref())?;
    if let Some(kind) = procs::fs_type(work.path()) {
        if kind == "tmpfs" || kind == "ramfs" {
            eprintln!(
                "warning: {} is on {kind}: fsync costs nothing there; use --dir on a disk",
                work.path().display()
            );
        }
    }
    let limit = Duration::from_secs(args.timeout.max(1));
    let ctx = Ctx {
        args,
        gateway_program,
        work,
        limit,
        pg_runs: AtomicU64::new(0),
    };
    let args = &ctx.args;
    let mut runs: Vec<RunReport> = Vec::new();
    let mut latency = None;
    let mut backlog = None;
    let mut notes: Vec<String> = Vec::new();
    let hotsite = matches!(args.target, Product::Hotsite | Product::Both);
    let mut postgres = None;
    if hotsite && args.stores().contains(&Store::Postgres) {
        // Fail before any run when the database cannot be reached.
        let server = pg::describe_server(&args.pg_url)
            .context("PostgreSQL for --store postgres (see --pg-url)")?;
        eprintln!("{server}");
        notes.push(format!("Store: {server}."));
        postgres = Some(server);
    }

    if hotsite {
        let layouts: &[usize] = match args.smsc {
            Layout::Four => &[4],
            Layout::One => &[1],
            Layout::Both => &[4, 1],
        };
        let apis: Vec<Api> = match args.mode {
            Mode::Batch => vec![Api::Batch(args.batch as usize)],
            Mode::Single => vec![Api::Single],
            Mode::All => vec![Api::Batch(args.batch as usize), Api::Single],
            Mode::None => vec![],
        };
        for &receipts in args.receipt_modes() {
            for &instances in layouts {
                for &api in &apis {
                    let messages = args.messages.unwrap_or(match api {
                        Api::Batch(_) => 200_000,
                        _ => 50_000,
                    });
                    for &store in args.stores() {
                        let report =
                            hotsite_run(&ctx, store, instances, api, messages, None, receipts)
                                .await
                                .with_context(|| {
                                    format!(
                                        "hotsite {} run on {}, {instances} SMSC, receipts {}",
                                        api.label(),
                                        store.label(),
                                        on_off(receipts)
                                    )
                                })?;
                        print_run_line(&report);
                        runs.push(report.0);
                    }
                }
            }
        }
        let receipts = args.receipt_modes()[0];
        // The latency and memory runs use the first store asked for.
        let store = args.stores()[0];
        if args.latency {
            let rate = match args.latency_rate {
                Some(rate) => rate,
                None => {
                    let peak = match runs.iter().find(|r| {
                        r.product == "hotsite"
                            && r.store == Some(store.label())
                            && r.api == "batch"
                            && r.smsc_instances == 4
                            && r.receipts == receipts
                    }) {
                        Some(run) => run.throughput,
                        None => {
                            let messages = args.messages.unwrap_or(200_000);
                            let report = hotsite_run(
                                &ctx,
                                store,
                                4,
                                Api::Batch(args.batch as usize),
                                messages,
                                None,
                                receipts,
                            )
                            .await
                            .context("hotsite batch run for the latency pace")?;
                            print_run_line(&report);
                            runs.push(report.0.clone());
                            report.0.throughput
                        }
                    };
                    peak / 2.0
                }
            };
            latency = Some(
                latency_run(&ctx, store, rate, receipts)
                    .await
                    .context("latency run")?,
            );
        }
        if let Some(messages) = args.backlog {
            backlog = Some(
                backlog_run(&ctx, store, messages, receipts)
                    .await
                    .context("backlog run")?,
            );
        }
    }

    if matches!(args.target, Product::Kannel | Product::Both) {
        match procs::kannel_binaries() {
            None => {
                let note = format!(
                    "Kannel is not installed (no bearerbox/smsbox in PATH or /usr/sbin): skipped. Install it with:\n  {KANNEL_INSTALL}"
                );
                eprintln!("{note}");
                notes.push(note);
            }
            Some(binaries) => {
                let messages = args.messages.unwrap_or(50_000);
                for &receipts in args.receipt_modes() {
                    let report = kannel_run(&ctx, &binaries, messages, receipts)
                        .await
                        .with_context(|| format!("Kannel run, receipts {}", on_off(receipts)))?;
                    print_run_line(&(report.clone(), ()));
                    runs.push(report);
                }
            }
        }
    }

    let ratios = ratios(&runs);
    let store_ratios = store_ratios(&runs);
    if args.json {
        let out = json!({
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
            "work_dir_fs": procs::fs_type(ctx.work.path()),
            "store": args.stores().iter().map(|s| s.label()).collect::<Vec<_>>(),
            "gateways": args.gateways,
            "postgres": postgres,
            "runs": runs,
            "ratios": ratios,
            "store_ratios": store_ratios,
            "latency": latency,
            "backlog": backlog,
            "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!(
            "{}",
            render(
                &runs,
                &ratios,
                &store_ratios,
                latency.as_ref(),
                backlog.as_ref(),
                &notes
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn lab_config(instances: usize) -> anyhow::Result<LabConfig> {
    let mut text = String::from(
        "[lab]\ncontrol = \"127.0.0.1:0\"\nseed = 1\n\n[[lab.accounts]]\nsystem_id = \"hotsite\"\npassword = \"secret\"\n\n[[lab.accounts]]\nsystem_id = \"kannel\"\npassword = \"pass\"\n",
    );
    let sites: &[(&str, &[&str])] = if instances == 1 {
        &[("a", &["a1"])]
    } else {
        &[("a", &["a1", "a2"]), ("b", &["b1", "b2"])]
    };
    for (site, names) in sites {
        let _ = write!(text, "\n[[lab.sites]]\nname = \"{site}\"\n");
        for name in *names {
            let _ = write!(
                text,
                "[[lab.sites.smsc]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n"
            );
        }
    }
    Ok(LabConfig::from_toml_str(&text)?)
}

async fn start_lab(instances: usize) -> anyhow::Result<Arc<LabHandle>> {
    Ok(Arc::new(Lab::start(lab_config(instances)?).await?))
}

async fn stop_lab(lab: Arc<LabHandle>) {
    if let Ok(lab) = Arc::try_unwrap(lab) {
        lab.shutdown().await;
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn secs(from: Instant, to: Option<Instant>) -> f64 {
    to.map_or(0.0, |to| to.saturating_duration_since(from).as_secs_f64())
}

fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn mib(kb: Option<u64>) -> f64 {
    kb.unwrap_or(0) as f64 / 1024.0
}

/// The name of the next PostgreSQL run's schema.
fn next_schema(ctx: &Ctx) -> String {
    pg::schema_name(
        std::process::id(),
        ctx.pg_runs.fetch_add(1, Ordering::Relaxed) + 1,
    )
}

/// One hotsite throughput run (or, with `pace`, a paced run) on `store` with
/// `--gateways` gateways; returns the report and what the latency run needs.
async fn hotsite_run(
    ctx: &Ctx,
    store: Store,
    instances: usize,
    api: Api,
    messages: u64,
    pace: Option<f64>,
    receipts: bool,
) -> anyhow::Result<(RunReport, Option<(driver::Driven, analysis::Arrivals)>)> {
    let args = &ctx.args;
    let gateways = gateway_count(args, store);
    let label = format!(
        "hotsite {} ×{gateways} {} {instances} SMSC, receipts {}{}",
        store.label(),
        api.label(),
        on_off(receipts),
        if pace.is_some() { " paced" } else { "" }
    );
    let lab = start_lab(instances).await?;
    let dir = ctx.work.sub(&format!(
        "hotsite-{}-{}-{instances}",
        store.label(),
        api.label()
    ))?;
    let app = if receipts && !args.no_webhook {
        Some(Receiver::start(messages).await?)
    } else {
        None
    };
    let mut fleet = Fleet::start(FleetSetup {
        program: &ctx.gateway_program,
        dir: &dir,
        store,
        postgres: (store == Store::Postgres).then(|| (args.pg_url.as_str(), next_schema(ctx))),
        gateways,
        smsc: &lab.smsc_addrs(),
        window: args.window,
        receipts,
        app: app.as_ref(),
    })
    .await?;
    fleet.wait_binds(instances, Duration::from_secs(20)).await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(label, messages, Arc::clone(&accepted), Arc::clone(&lab));
    let cpu = CpuMeter::start(&fleet.pids(), fleet.database_pids().as_deref());
    let driven = drive(Load {
        api,
        bases: fleet.apis(),
        token: TOKEN.to_owned(),
        total: messages,
        connections: args.connections,
        rate: pace,
        limit: ctx.limit,
        accepted,
        dlr_url: None,
    })
    .await;
    let driven = match driven {
        Ok(driven) => driven,
        Err(error) => {
            progress.stop();
            fleet.stop().await;
            return Err(error);
        }
    };
    let all_arrived = settle(&lab, driven.accepted, ctx.limit).await;
    let receipt = match &app {
        Some(app) => Some(receipts_settle(app, "webhook", driven.accepted, driven.t0, ctx).await),
        None => None,
    };
    let cpu_cores = cpu.finish(fleet.database_pids().as_deref());
    progress.stop();
    let arrived = arrivals(&lab, messages);
    let peak = fleet.memory_kb("VmHWM");
    let store_bytes = fleet.store_bytes();
    let per_gateway = fleet.counters().await;
    fleet.stop().await;
    stop_lab(lab).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = RunReport::new(
        RunSetup {
            product: "hotsite",
            store: Some(store.label()),
            gateways,
            api: api.label(),
            receipts,
            smsc_instances: instances,
            connections: args.connections,
            per_request: match api {
                Api::Batch(size) => size as u64,
                _ => 1,
            },
            window: args.window,
            messages,
        },
        &driven,
        &arrived,
        all_arrived,
        peak,
        cpu_cores,
    );
    let report = RunReport {
        receipt,
        store_bytes,
        per_gateway,
        ..report
    };
    Ok((report, Some((driven, arrived))))
}

/// `--gateways` for PostgreSQL; always one gateway on a SQLite file.
fn gateway_count(args: &BenchArgs, store: Store) -> usize {
    match store {
        Store::Sqlite => 1,
        Store::Postgres => usize::try_from(args.gateways).unwrap_or(1).max(1),
    }
}

async fn latency_run(
    ctx: &Ctx,
    store: Store,
    rate_per_s: f64,
    receipts: bool,
) -> anyhow::Result<LatencyReport> {
    anyhow::ensure!(
        rate_per_s >= 1.0,
        "latency pace {rate_per_s} msg/s is too low"
    );
    let messages = ((rate_per_s * ctx.args.latency_seconds as f64) as u64).max(1);
    // A request every ~10 ms, so a message waits little for its batch-mates.
    let per_request = ((rate_per_s / 100.0) as u64).clamp(1, ctx.args.batch);
    let (report, detail) = hotsite_run(
        ctx,
        store,
        4,
        Api::Batch(per_request as usize),
        messages,
        Some(rate_per_s),
        receipts,
    )
    .await?;
    let (driven, arrived) = detail.context("no detail")?;
    let lat = latencies(&driven, &arrived);
    let percentiles = |v: &[i64]| Percentiles {
        min: v.first().copied().unwrap_or(0),
        p50: quantile(v, 0.50).unwrap_or(0),
        p90: quantile(v, 0.90).unwrap_or(0),
        p99: quantile(v, 0.99).unwrap_or(0),
        max: v.last().copied().unwrap_or(0),
    };
    let latency = LatencyReport {
        store: store.label(),
        gateways: report.gateways,
        rate: rate_per_s,
        per_request,
        messages,
        accepted: report.accepted,
        unique_at_lab: report.unique_at_lab,
        achieved_throughput: report.throughput,
        accept_to_submit_us: percentiles(&lat.from_accept),
        request_to_submit_us: percentiles(&lat.from_request),
        submits_before_202: lat.from_accept.iter().filter(|&&l| l < 0).count() as u64,
    };
    eprintln!(
        "latency at {:.0} msg/s: accept→submit_sm p50 {:.1} ms, p99 {:.1} ms",
        rate_per_s,
        latency.accept_to_submit_us.p50 as f64 / 1000.0,
        latency.accept_to_submit_us.p99 as f64 / 1000.0
    );
    Ok(latency)
}

async fn backlog_run(
    ctx: &Ctx,
    store: Store,
    messages: u64,
    receipts: bool,
) -> anyhow::Result<BacklogReport> {
    let args = &ctx.args;
    let gateways = gateway_count(args, store);
    let lab = start_lab(4).await?;
    let targets: Vec<_> = lab.smsc_addrs().into_iter().map(|(t, _)| t).collect();
    for target in &targets {
        lab.set_fault(target, Fault::RejectBinds)?;
    }
    let dir = ctx.work.sub("hotsite-backlog")?;
    let fleet = Fleet::start(FleetSetup {
        program: &ctx.gateway_program,
        dir: &dir,
        store,
        postgres: (store == Store::Postgres).then(|| (args.pg_url.as_str(), next_schema(ctx))),
        gateways,
        smsc: &lab.smsc_addrs(),
        window: args.window,
        receipts,
        app: None,
    })
    .await?;
    let pids = fleet.pids();
    let accepted = Arc::new(AtomicU64::new(0));
    let phase = Arc::new(AtomicU64::new(0)); // 0 push, 1 wait, 2 drain
    let start = clock();
    let sampler = {
        let accepted = Arc::clone(&accepted);
        let phase = Arc::clone(&phase);
        let lab = Arc::clone(&lab);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            // Bounded by the caller's abort; one sample per 0.5 s.
            loop {
                samples.push(MemorySample {
                    t_s: clock().duration_since(start).as_secs_f64(),
                    phase: match phase.load(Ordering::Relaxed) {
                        0 => "push",
                        1 => "wait_bind",
                        _ => "drain",
                    },
                    accepted: accepted.load(Ordering::Relaxed),
                    at_lab: lab.stats().totals.unique,
                    rss_mib: mib(pids.iter().map(|&pid| procs::proc_kb(pid, "VmRSS")).sum()),
                });
                if phase.load(Ordering::Relaxed) >= 3 {
                    return samples;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let progress = Progress::start(
        "backlog push (binds rejected)".to_owned(),
        messages,
        Arc::clone(&accepted),
        Arc::clone(&lab),
    );
    let driven = drive(Load {
        api: Api::Batch(args.batch as usize),
        bases: fleet.apis(),
        token: TOKEN.to_owned(),
        total: messages,
        connections: args.connections,
        rate: None,
        limit: ctx.limit,
        accepted: Arc::clone(&accepted),
        dlr_url: None,
    })
    .await;
    progress.stop();
    let driven = driven?;
    let push_seconds = secs(driven.t0, driven.last_accept);
    // A few quiet samples with the whole backlog queued.
    tokio::time::sleep(Duration::from_secs(2)).await;
    phase.store(1, Ordering::Relaxed);
    for target in &targets {
        lab.set_fault(target, Fault::Recover)?;
    }
    eprintln!(
        "backlog of {} queued in {push_seconds:.1} s; lab recovered, waiting for the gateway's next bind attempt (rebind_interval 30 s) and the drain",
        driven.accepted
    );
    let progress = Progress::start(
        "backlog drain".to_owned(),
        messages,
        Arc::clone(&accepted),
        Arc::clone(&lab),
    );
    // The drain starts with the first bind, up to rebind_interval + jitter later.
    let drain_deadline = clock() + ctx.limit + Duration::from_secs(40);
    while clock() < drain_deadline && lab.stats().totals.unique == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    phase.store(2, Ordering::Relaxed);
    let all_arrived = settle(&lab, driven.accepted, ctx.limit).await;
    progress.stop();
    phase.store(3, Ordering::Relaxed);
    let samples = sampler.await?;
    let arrived = arrivals(&lab, messages);
    let store_bytes = fleet.store_bytes().unwrap_or(0);
    fleet.stop().await;
    stop_lab(lab).await;
    let _ = std::fs::remove_dir_all(&dir);
    if !all_arrived {
        eprintln!("warning: the backlog did not drain completely within the limit");
    }
    let at_queued = (0..=4)
        .map(|q| {
            let mark = messages * q / 4;
            let rss = samples
                .iter()
                .find(|s| s.phase == "push" && s.accepted >= mark)
                .or_else(|| samples.iter().rev().find(|s| s.phase == "push"))
                .map_or(0.0, |s| s.rss_mib);
            (mark, rss)
        })
        .collect();
    let drain: Vec<&MemorySample> = samples.iter().filter(|s| s.phase == "drain").collect();
    let at_drained = (0..=4)
        .filter_map(|q| {
            let mark = driven.accepted * q / 4;
            drain
                .iter()
                .find(|s| s.at_lab >= mark)
                .map(|s| (mark, s.rss_mib))
        })
        .collect();
    let drain_seconds = match (arrived.first, arrived.last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    Ok(BacklogReport {
        store: store.label(),
        gateways,
        messages,
        accepted: driven.accepted,
        push_seconds,
        push_rate: rate(driven.accepted, push_seconds),
        rss_at_queued: at_queued,
        drain_rss_mib_min: drain
            .iter()
            .map(|s| s.rss_mib)
            .fold(f64::INFINITY, f64::min),
        drain_rss_mib_max: drain.iter().map(|s| s.rss_mib).fold(0.0, f64::max),
        rss_at_drained: at_drained,
        unique_at_lab: arrived.unique,
        lost: driven.accepted as i64 - arrived.unique as i64,
        duplicates: arrived.duplicates,
        drain_seconds,
        drain_throughput: rate(arrived.unique, drain_seconds),
        store_bytes,
        samples,
    })
}

async fn kannel_run(
    ctx: &Ctx,
    binaries: &(PathBuf, PathBuf),
    messages: u64,
    receipts: bool,
) -> anyhow::Result<RunReport> {
    let args = &ctx.args;
    let (template, source) = procs::kannel_template(&ctx.args.kannel_config);
    eprintln!("Kannel config: {source} (copied and adapted in the work directory)");
    let lab = start_lab(1).await?;
    let (_, smsc_addr) = lab.smsc_addrs()[0].clone();
    let dir = ctx.work.sub("kannel")?;
    let app = if receipts {
        Some(Receiver::start(messages).await?)
    } else {
        None
    };
    let kannel = Kannel::start(&dir, &template, smsc_addr, binaries).await?;
    // Bound within reconnect-delay; wait for it.
    let deadline = clock() + Duration::from_secs(20);
    while lab.stats().smsc[0].bound_sessions == 0 {
        if clock() > deadline {
            let log = procs::tail(&kannel.dir.join("run/bearerbox.log"), 20);
            kannel.stop().await;
            anyhow::bail!("Kannel did not bind to the lab within 20 s:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        format!("Kannel sendsms 1 SMSC, receipts {}", on_off(receipts)),
        messages,
        Arc::clone(&accepted),
        Arc::clone(&lab),
    );
    let cpu = CpuMeter::start(&[kannel.bearerbox_pid(), kannel.smsbox_pid()], None);
    let driven = drive(Load {
        api: Api::Kannel,
        bases: vec![kannel.sendsms.clone()],
        token: String::new(),
        total: messages,
        connections: args.connections,
        rate: None,
        limit: ctx.limit,
        accepted,
        dlr_url: app.as_ref().map(Receiver::kannel_url),
    })
    .await;
    let driven = match driven {
        Ok(driven) => driven,
        Err(error) => {
            progress.stop();
            kannel.stop().await;
            return Err(error);
        }
    };
    let all_arrived = settle(&lab, driven.accepted, ctx.limit).await;
    let receipt = match &app {
        Some(app) => Some(receipts_settle(app, "dlr-url", driven.accepted, driven.t0, ctx).await),
        None => None,
    };
    let cpu_cores = cpu.finish(None);
    progress.stop();
    let arrived = arrivals(&lab, messages);
    let peak = procs::proc_kb(kannel.bearerbox_pid(), "VmHWM").unwrap_or(0)
        + procs::proc_kb(kannel.smsbox_pid(), "VmHWM").unwrap_or(0);
    kannel.stop().await;
    stop_lab(lab).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RunReport::new(
        RunSetup {
            product: "kannel",
            store: None,
            gateways: 1,
            api: Api::Kannel.label(),
            receipts,
            smsc_instances: 1,
            connections: args.connections,
            per_request: 1,
            window: 10,
            messages,
        },
        &driven,
        &arrived,
        all_arrived,
        Some(peak),
        cpu_cores,
    ))
    .map(|report| RunReport { receipt, ..report })
}

/// Waits for the receipts of `expected` messages at the bench's application
/// (bounded: `ctx.limit`, or 15 s without a callback) and reports them.
async fn receipts_settle(
    app: &Receiver,
    delivered_to: &'static str,
    expected: u64,
    t0: Instant,
    ctx: &Ctx,
) -> ReceiptReport {
    let all = app
        .settle(expected, Duration::from_secs(15), ctx.limit)
        .await;
    let counts = app.counts();
    if !all {
        eprintln!(
            "warning: receipts via {delivered_to}: {} of {expected} messages got a final receipt ({} callbacks)",
            counts.distinct, counts.callbacks
        );
    }
    ReceiptReport::new(delivered_to, expected, &counts, all, t0)
}

#[derive(Debug, Clone, Serialize)]
struct Ratio {
    hotsite: String,
    /// Both runs asked for receipts (or both did not): like with like.
    receipts: bool,
    /// The hotsite run's store and gateways.
    store: &'static str,
    gateways: usize,
    hotsite_throughput: f64,
    kannel_throughput: f64,
    ratio: f64,
    /// Both products got every receipt to the application (receipts on).
    receipts_complete: Option<bool>,
}

/// How a hotsite run is named in ratios and tables: its API, SMSC layout,
/// store and gateways.
fn run_name(r: &RunReport) -> String {
    format!(
        "{} API, {} SMSC, {} ×{}",
        r.api,
        r.smsc_instances,
        r.store.unwrap_or("-"),
        r.gateways
    )
}

/// hotsite / Kannel, each hotsite run against the Kannel run with receipts
/// the same way.
fn ratios(runs: &[RunReport]) -> Vec<Ratio> {
    runs.iter()
        .filter(|r| r.product == "hotsite")
        .filter_map(|r| {
            let kannel = runs
                .iter()
                .find(|k| k.product == "kannel" && k.receipts == r.receipts)?;
            (kannel.throughput > 0.0).then(|| Ratio {
                hotsite: run_name(r),
                receipts: r.receipts,
                store: r.store.unwrap_or("-"),
                gateways: r.gateways,
                hotsite_throughput: r.throughput,
                kannel_throughput: kannel.throughput,
                ratio: r.throughput / kannel.throughput,
                receipts_complete: r.receipts.then(|| {
                    [r, kannel]
                        .iter()
                        .all(|run| run.receipt.as_ref().is_some_and(|c| c.all_received))
                }),
            })
        })
        .collect()
}

/// A PostgreSQL run against the SQLite run of the same API, layout and
/// receipts in the same invocation.
#[derive(Debug, Clone, Serialize)]
struct StoreRatio {
    api: &'static str,
    smsc_instances: usize,
    receipts: bool,
    /// Gateways on the PostgreSQL store (SQLite: always one).
    gateways: usize,
    postgres_throughput: f64,
    sqlite_throughput: f64,
    /// PostgreSQL / SQLite.
    ratio: f64,
}

fn store_ratios(runs: &[RunReport]) -> Vec<StoreRatio> {
    runs.iter()
        .filter(|r| r.product == "hotsite" && r.store == Some("postgres"))
        .filter_map(|pg| {
            let sqlite = runs.iter().find(|s| {
                s.product == "hotsite"
                    && s.store == Some("sqlite")
                    && s.api == pg.api
                    && s.smsc_instances == pg.smsc_instances
                    && s.receipts == pg.receipts
            })?;
            (sqlite.throughput > 0.0).then(|| StoreRatio {
                api: pg.api,
                smsc_instances: pg.smsc_instances,
                receipts: pg.receipts,
                gateways: pg.gateways,
                postgres_throughput: pg.throughput,
                sqlite_throughput: sqlite.throughput,
                ratio: pg.throughput / sqlite.throughput,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(product: &'static str, receipts: bool, throughput: f64, all: Option<bool>) -> RunReport {
        RunReport {
            product,
            store: (product == "hotsite").then_some("sqlite"),
            gateways: 1,
            api: if product == "kannel" {
                "sendsms"
            } else {
                "batch"
            },
            receipts,
            smsc_instances: 4,
            connections: 16,
            per_request: 1,
            window: 10,
            messages: 10,
            accepted: 10,
            rejected: 0,
            errors: 0,
            unique_at_lab: 10,
            lost: 0,
            duplicates: 0,
            all_arrived: true,
            http_seconds: 1.0,
            http_rate: 10.0,
            seconds: 1.0,
            throughput,
            peak_rss_mib: 0.0,
            store_bytes: None,
            cpu_cores: CpuUse::default(),
            receipt: all.map(|all_received| ReceiptReport {
                delivered_to: "test",
                expected: 10,
                received: if all_received { 10 } else { 9 },
                callbacks: 10,
                duplicates: 0,
                not_delivered: 0,
                foreign: 0,
                intermediate: 0,
                by_gateway: Vec::new(),
                all_received,
                seconds: 1.0,
                throughput: 10.0,
            }),
            per_gateway: Vec::new(),
            first_failure: None,
        }
    }

    fn parse(args: &[&str]) -> BenchArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let argv = std::iter::once("bench").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv)
            .expect("parses")
            .bench
    }

    /// SPEC M17: one gateway per SQLite file; two gateways share a queue only
    /// through PostgreSQL, so `--gateways 2` is refused unless the store is
    /// PostgreSQL, and existing commands keep meaning SQLite.
    #[test]
    fn two_gateways_need_postgres() {
        let default = parse(&[]);
        assert_eq!(default.stores(), &[Store::Sqlite]);
        assert_eq!(default.gateways, 1);
        default.check().expect("the default is measurable");
        for store in ["sqlite", "both"] {
            let error = parse(&["--gateways", "2", "--store", store])
                .check()
                .expect_err("refused");
            assert!(
                error.to_string().contains("needs --store postgres"),
                "{error}"
            );
        }
        parse(&["--gateways", "2", "--store", "postgres"])
            .check()
            .expect("two gateways on PostgreSQL");
        parse(&["--gateways", "2", "--target", "kannel"])
            .check()
            .expect("no hotsite run: nothing to refuse");
        assert_eq!(
            parse(&["--store", "both"]).stores(),
            &[Store::Sqlite, Store::Postgres]
        );
    }

    /// Issue 15's comparison: each PostgreSQL run is set against the SQLite
    /// run of the same API, layout and receipts, and shows in the
    /// side-by-side table next to Kannel.
    #[test]
    fn postgres_runs_are_compared_with_sqlite_like_for_like() {
        let postgres = |receipts: bool, throughput: f64| RunReport {
            store: Some("postgres"),
            ..run("hotsite", receipts, throughput, None)
        };
        let runs = [
            run("hotsite", true, 20_000.0, None),
            postgres(true, 8_000.0),
            run("hotsite", false, 40_000.0, None),
            postgres(false, 30_000.0),
            run("kannel", true, 500.0, None),
            run("kannel", false, 5_000.0, None),
        ];
        let ratios = store_ratios(&runs);
        assert_eq!(ratios.len(), 2);
        let on = ratios.iter().find(|r| r.receipts).expect("receipts on");
        assert_eq!((on.sqlite_throughput, on.ratio), (20_000.0, 0.4));
        let off = ratios.iter().find(|r| !r.receipts).expect("receipts off");
        assert_eq!((off.sqlite_throughput, off.ratio), (40_000.0, 0.75));
        let text = render(&runs, &super::ratios(&runs), &ratios, None, None, &[]);
        let line = text
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with("PostgreSQL ×1 / SQLite, batch, 4 SMSC")
            })
            .expect("a PostgreSQL / SQLite row");
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells[1..], ["40 %", "75 %"], "{text}");
        assert!(
            text.contains(
                "Target PostgreSQL ×1 ≥ 50 % of SQLite, batch API, receipts on: NOT met (40 %"
            ),
            "{text}"
        );
        assert!(
            text.contains("Target PostgreSQL ×1 ≥ 5× Kannel, receipts off: met (6.0×"),
            "{text}"
        );
    }

    // SPEC M13: with receipts on, hotsite is compared with Kannel asking for
    // receipts too (like with like), off with off; a product whose receipts did
    // not all reach the app marks the ratio.
    #[test]
    fn ratios_compare_receipts_on_with_on_and_off_with_off() {
        let runs = [
            run("hotsite", true, 40_000.0, Some(true)),
            run("hotsite", false, 60_000.0, None),
            run("kannel", true, 1_000.0, Some(false)),
            run("kannel", false, 5_000.0, None),
        ];
        let ratios = ratios(&runs);
        assert_eq!(ratios.len(), 2);
        let on = ratios
            .iter()
            .find(|r| r.receipts)
            .expect("receipts-on ratio");
        assert_eq!(on.kannel_throughput, 1_000.0);
        assert_eq!(on.ratio, 40.0);
        assert_eq!(on.receipts_complete, Some(false));
        let off = ratios
            .iter()
            .find(|r| !r.receipts)
            .expect("receipts-off ratio");
        assert_eq!(off.kannel_throughput, 5_000.0);
        assert_eq!(off.ratio, 12.0);
        assert_eq!(off.receipts_complete, None);
    }
}
