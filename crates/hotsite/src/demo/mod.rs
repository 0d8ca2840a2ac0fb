//! `hotsite demo`: the messaging gateway through failures, end to end on
//! loopback, one scenario per kind of failure (`--scenario NAME`):
//!
//! - `bind-failover` (the default, [`bind_failover`]): SMPP binds to every SMSC
//!   of two sites; site `a` dies, SMSC `b1` is blackholed, both come back
//!   (SPEC M4–M8).
//! - `http-failover` ([`http_failover`]): the aggregator's HTTP API with two
//!   site URLs; the primary answers 503, then hangs, then recovers (SPEC M3, M12).
//! - `dns-move` ([`dns_move`]): one URL whose DNS record moves to the other
//!   site (SPEC M2).
//! - `digital-fallback` ([`digital_fallback`]): a chat route falling back to a
//!   secondary provider, then to e-mail (SPEC M10, M11).
//! - `trunk-failover` ([`trunk_failover`]): calls through the voice proxy while
//!   the preferred SIP trunk dies silently, then recovers (SPEC V1, V2). It
//!   has no gateway: lab trunks, the proxy and a lab caller, and a report of
//!   its own (calls, not messages).
//! - `site-failure` ([`site_failure`]), `link-failure` ([`link_failure`]) and
//!   `graceful-shutdown` ([`graceful_shutdown`]): site business continuity
//!   (SPEC S2, S3, S4, S7). Two sites of a peer pair behind hosts of their
//!   own, peered through a lab link, agents' phones, desktops (the API) and
//!   a media gateway ([`sites`]); site a dies, the link is cut, or site a is
//!   drained. Calls too, with a report of their own ([`site_report`]).
//! - `recording-failover` ([`recording_failover`]): calls through the
//!   anchored voice proxy to a lab cloud media server that hands them over
//!   mid-call; the edge recording, the merge, the signed manifest and the
//!   upload (SPEC R1-R5), a report of its own.
//! - `desktop-switchover`: `hotsite desktops` (`crate::desktops`) with a
//!   few hundred desktops and site a killed (SPEC D1–D8 with S2): switch
//!   times and reasons, a report of its own.
//!
//! Each one starts the simulated aggregator (`hotsite-lab`), the gateway on its
//! embedded store in a temporary folder, and a small application receiving the
//! signed MO/DR webhooks (SPEC M15); posts messages through the batch API with
//! idempotency keys; injects its faults as the traffic passes set fractions;
//! and ends with one [`Report`]: what reached the far end, once, and how long
//! each failover took.
//!
//! Shared by the scenarios: the arguments, the [`Report`] (`report.rs`), the
//! [`Traffic`] (`traffic.rs`: the sending loop, which can hold at a phase
//! boundary until the phase's effect shows) and the controller's [`Driver`]
//! with its [`Progress`]; and here the setup of the HTTP scenarios ([`Rig`]),
//! the customer's [`App`] and small helpers.

mod bind_failover;
mod digital_fallback;
mod dns_move;
mod graceful_shutdown;
mod http_failover;
mod link_failure;
mod recording_failover;
mod report;
mod site_failure;
mod site_report;
mod sites;
mod traffic;
mod trunk_failover;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotsite_core::BackoffConfig;
use hotsite_host::{Deps, HostConfig, Single};
use hotsite_lab::{Lab, LabConfig, LabHandle};
use hotsite_messaging::gateway::{ChannelConfig, RouteConfig};
use hotsite_messaging::policy::{AmbiguousPolicy, HopPolicy};
use hotsite_messaging::signing::{verify, SIGNATURE_HEADER};
use hotsite_messaging::webhook::WebhookConfig;
use hotsite_messaging::{GatewayConfig, GatewayHandle, GatewayView};
use hotsite_store::{SqliteOptions, SqliteStore};
use serde_json::{json, Value};

use self::report::{FailoverTiming, OwnReport, Report, Tally};
use self::traffic::{Driver, Progress, Traffic};
use crate::clock;

/// Options of `hotsite demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Which failure to show.
    #[arg(long, value_enum, value_name = "NAME", default_value_t = Scenario::BindFailover)]
    scenario: Scenario,
    /// Messages to send; for the call scenarios (trunk-failover,
    /// site-failure, link-failure, graceful-shutdown), calls to place
    /// (--calls says the same); for desktop-switchover, desktops
    /// (--desktops) [default: 20000 for bind-failover, 600 for
    /// trunk-failover, 120 for the site scenarios, 200 for
    /// desktop-switchover, 2000 for the others].
    #[arg(long, visible_aliases = ["calls", "desktops"])]
    messages: Option<u64>,
    /// Submit rate in messages per second, or calls per second for the call
    /// scenarios; 0 sends as fast as the API takes them (places every call
    /// at once); desktops started per second for desktop-switchover
    /// [default: 2000 for bind-failover, 50 for trunk-failover, 20 for the
    /// site scenarios, 500 for desktop-switchover, 200 for the others].
    #[arg(long)]
    rate: Option<u64>,
    /// Messages per API request, 1 to 1000 [default: 100 for bind-failover,
    /// 10 for the others].
    #[arg(long)]
    batch: Option<u64>,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The demo's scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// SMPP binds to two sites of two SMSCs: site a dies, SMSC b1 is
    /// blackholed, both recover (SPEC M4-M8).
    BindFailover,
    /// The aggregator's HTTP API with two site URLs: the primary answers 503,
    /// then hangs, then recovers (SPEC M3, M12).
    HttpFailover,
    /// One URL whose DNS record (TTL 1 s) moves to the other site (SPEC M2).
    DnsMove,
    /// Route chat = primary-chat, secondary-chat, e-mail: the chat providers
    /// answer 503 in turn, then recover (SPEC M10, M11).
    DigitalFallback,
    /// Calls through the voice proxy to three SIP trunks: the first dies
    /// silently, then recovers (SPEC V1, V2).
    TrunkFailover,
    /// Two peered sites: site a dies mid-call; phones re-register and agents
    /// log in at b, new calls complete at b (SPEC S2).
    SiteFailure,
    /// Two peered sites: the link between them is cut, each runs alone with
    /// its own agents (no forwarding, no split brain), then peers again
    /// (SPEC S3, S4).
    LinkFailure,
    /// Two peered sites: site a is drained while an agent is on a call; new
    /// calls get 603, agents are logged out (idle ones at once) and move to
    /// b, a stops once no call is left (SPEC S7).
    GracefulShutdown,
    /// Agent desktops: a few hundred simulated desktops at two sites, site
    /// a killed; every desktop of a logs in at b within site_timeout + 2 s
    /// (SPEC D1-D8 with S2).
    DesktopSwitchover,
    /// Calls through the anchored voice proxy to a cloud media server that
    /// hands them over mid-call (15-20 s gap): the edge recording fills the
    /// gap, the manifest verifies, the files are uploaded (SPEC R1-R5).
    RecordingFailover,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::BindFailover => "bind-failover",
            Scenario::HttpFailover => "http-failover",
            Scenario::DnsMove => "dns-move",
            Scenario::DigitalFallback => "digital-fallback",
            Scenario::TrunkFailover => "trunk-failover",
            Scenario::SiteFailure => "site-failure",
            Scenario::LinkFailure => "link-failure",
            Scenario::GracefulShutdown => "graceful-shutdown",
            Scenario::DesktopSwitchover => "desktop-switchover",
            Scenario::RecordingFailover => "recording-failover",
        }
    }
}

/// The demo's arguments with the scenario's defaults filled in.
struct Settings {
    scenario: Scenario,
    messages: u64,
    rate: u64,
    batch: u64,
}

impl Settings {
    fn new(args: &DemoArgs) -> anyhow::Result<Settings> {
        let (messages, rate, batch) = match args.scenario {
            Scenario::BindFailover => (20_000, 2_000, 100),
            Scenario::TrunkFailover => (600, 50, 10),
            Scenario::SiteFailure | Scenario::LinkFailure | Scenario::GracefulShutdown => {
                (120, 20, 10)
            }
            Scenario::DesktopSwitchover => (200, 500, 10),
            Scenario::RecordingFailover => (3, 2, 10),
            _ => (2_000, 200, 10),
        };
        let settings = Settings {
            scenario: args.scenario,
            messages: args.messages.unwrap_or(messages),
            rate: args.rate.unwrap_or(rate),
            batch: args.batch.unwrap_or(batch),
        };
        if settings.messages == 0 || !(1..=1000).contains(&settings.batch) {
            bail!("--messages must be at least 1 and --batch between 1 and 1000");
        }
        Ok(settings)
    }
}

const TOKEN: &str = "demo-token-0001";
const WEBHOOK_SECRET: &str = "demo-webhook-secret-0001";
/// Every message's text starts with this, followed by its index.
const TEXT_PREFIX: &str = "hotsite demo #";

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::new(&args)?;
    let progress = Progress::new(!args.json || std::io::stderr().is_terminal());
    let dir = std::env::temp_dir().join(format!("hotsite-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = match settings.scenario {
        Scenario::BindFailover => bind_failover::run(&settings, &dir, &progress).await,
        Scenario::HttpFailover => http_failover::run(&settings, &dir, &progress).await,
        Scenario::DnsMove => dns_move::run(&settings, &dir, &progress).await,
        Scenario::DigitalFallback => digital_fallback::run(&settings, &dir, &progress).await,
        Scenario::TrunkFailover => {
            // Calls, not messages: no gateway, no store, a report of its own.
            let _ = std::fs::remove_dir_all(&dir);
            return trunk_failover::run(&settings, &progress)
                .await?
                .finish(args.json);
        }
        Scenario::DesktopSwitchover => {
            // Desktops, not messages: the desktops tool, a report of its own
            // (--rate 0: start them as fast as they go).
            let _ = std::fs::remove_dir_all(&dir);
            let desktops = usize::try_from(settings.messages).unwrap_or(usize::MAX);
            let ramp = if settings.rate == 0 {
                1_000_000
            } else {
                settings.rate
            };
            return crate::desktops::demo(desktops, ramp, args.json).await;
        }
        Scenario::RecordingFailover => {
            // Calls and their recordings: no gateway; the files are kept
            // (the report says where) so they can be verified by hand.
            let _ = std::fs::remove_dir_all(&dir);
            return recording_failover::run(&settings, &progress)
                .await?
                .finish(args.json);
        }
        Scenario::SiteFailure | Scenario::LinkFailure | Scenario::GracefulShutdown => {
            // Calls and agents at two sites: no gateway, no store either.
            let _ = std::fs::remove_dir_all(&dir);
            let report = match settings.scenario {
                Scenario::SiteFailure => site_failure::run(&settings, &progress).await?,
                Scenario::LinkFailure => link_failure::run(&settings, &progress).await?,
                _ => graceful_shutdown::run(&settings, &progress).await?,
            };
            return report.finish(args.json);
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Seconds from `from` to `to`.
fn secs(from: Instant, to: Option<Instant>) -> Option<f64> {
    to.map(|to| to.saturating_duration_since(from).as_secs_f64())
}

/// Seconds from `from` to the earliest of `times_us` (microseconds since the
/// lab's epoch, as the lab logs arrivals) at or after it.
fn first_after(
    lab: &LabHandle,
    from: Instant,
    times_us: impl IntoIterator<Item = u64>,
) -> Option<f64> {
    let from_us = from.saturating_duration_since(lab.epoch()).as_micros() as u64;
    times_us
        .into_iter()
        .filter(|at| *at >= from_us)
        .min()
        .map(|at| (at - from_us) as f64 / 1e6)
}

/// The index in a message's text.
fn index_of(text: &str) -> Option<u64> {
    text.strip_prefix(TEXT_PREFIX)?.parse().ok()
}

/// Message `i` as the API takes it, an SMS on the default route.
fn sms_message(i: u64) -> Value {
    json!({
        "id": format!("demo-{i}"),
        "to": format!("+4917{i:08}"),
        "text": format!("{TEXT_PREFIX}{i}"),
    })
}

/// Waits (up to 5 s) until nothing is queued and every stored receipt has
/// gone to the application.
async fn settle(store: &SqliteStore) -> anyhow::Result<()> {
    let until = clock::now() + Duration::from_secs(5);
    while clock::now() < until {
        let stats = store.stats().await?;
        if stats.inbound_pending == 0 && stats.queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The gateway and what surrounds it

/// A gateway behind a host of its own, as `hotsite run` serves it; reads
/// like the gateway (binds, channels, counters) through [`GatewayView`].
type Served = Single<GatewayView>;

/// Starts the gateway on `store` behind a host listening on `listen`.
async fn serve(
    listen: SocketAddr,
    config: GatewayConfig,
    store: SqliteStore,
) -> anyhow::Result<Served> {
    let host = HostConfig {
        listen,
        server: Default::default(),
        tokens: vec![TOKEN.into()],
    };
    let start = |deps: Deps| async move { hotsite_messaging::start(config, store, &deps).await };
    Single::start(host, start, GatewayHandle::view)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the gateway: {e}"))
}

/// The gateway's store in the demo's folder.
fn open_store(dir: &Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(&dir.join("hotsite.db"), SqliteOptions::default())
        .context("cannot open the store")
}

/// Where the gateway sends MO and receipts: the demo's application.
fn app_webhook(app: &App) -> Option<WebhookConfig> {
    Some(WebhookConfig {
        url: format!("http://{}/hotsite", app.addr),
        secret: WEBHOOK_SECRET.into(),
        timeout: Duration::from_secs(5),
        backoff: Default::default(),
        concurrency: 16,
    })
}

/// A route hop's policy: `budget` sends (unlimited: `None`), backoff between them.
fn hop(budget: Option<u32>, initial_ms: u64, max_ms: u64) -> HopPolicy {
    HopPolicy {
        budget,
        backoff: BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier: 2,
        },
        ambiguous: AmbiguousPolicy::Resubmit,
    }
}

/// The HTTP aggregator channel's name, in the callback URLs.
const AGGREGATOR: &str = "agg";
/// The secret the lab signs its receipt and MO callbacks with (SPEC M15).
const CALLBACK_SECRET: &str = "demo-callback-secret-0001";

/// The gateway without SMPP, its store and the application, around a lab.
struct Rig {
    lab: LabHandle,
    gateway: Served,
    store: SqliteStore,
    app: App,
    api: String,
}

impl Rig {
    /// Starts the lab (its HTTP API's callbacks pointed at the gateway's
    /// [`AGGREGATOR`] channel, signed with [`CALLBACK_SECRET`]), the
    /// application, and the gateway with `channels(&lab)` and `routes`.
    async fn start(
        dir: &Path,
        mut lab: LabConfig,
        channels: impl FnOnce(&LabHandle) -> Vec<(String, ChannelConfig)>,
        routes: Vec<RouteConfig>,
    ) -> anyhow::Result<Rig> {
        // The lab's callbacks need the gateway's address: pick its port first.
        let api_listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port for the gateway's API")?;
        if let Some(http) = &mut lab.http {
            http.dr_url = Some(format!(
                "http://{api_listen}/v1/callbacks/{AGGREGATOR}/receipt"
            ));
            http.mo_url = Some(format!("http://{api_listen}/v1/callbacks/{AGGREGATOR}/mo"));
            http.callback_secret = Some(CALLBACK_SECRET.to_owned());
        }
        let lab = Lab::start(lab).await.context("cannot start the lab")?;
        let app = App::start().await?;
        let store = open_store(dir)?;
        let config = GatewayConfig {
            inbox: Default::default(),
            smpp: None,
            channels: channels(&lab),
            routes,
            default_route: None,
            default_from: "hotsite".to_owned(),
            dispatcher: Default::default(),
            webhook: app_webhook(&app),
        };
        let gateway = serve(api_listen, config, store.clone()).await?;
        Ok(Rig {
            api: format!("http://{}", gateway.local_addr()),
            lab,
            gateway,
            store,
            app,
        })
    }

    /// Ends an HTTP scenario's traffic: waits for the sender and for the
    /// queue to drain, then starts the report from what reached the handsets
    /// (returned too, for the scenario's own figures).
    async fn finish(
        &self,
        settings: &Settings,
        title: &'static str,
        traffic: Traffic,
        driver: &Driver<'_>,
    ) -> anyhow::Result<(Report, Vec<(u64, String, u64)>)> {
        let accepted = traffic.accepted();
        traffic.join().await?;
        settle(&self.store).await?;
        let arrivals = self.handsets();
        let report = Report::new(
            settings,
            title,
            accepted,
            Tally::count(settings.messages, arrivals.iter().map(|(i, _, _)| *i)),
            self.failed().await?,
            driver.duration(),
        );
        Ok((report, arrivals))
    }

    /// Messages failed for good.
    async fn failed(&self) -> anyhow::Result<u64> {
        Ok(self.store.stats().await?.failed)
    }

    /// Every HTTP API message at the handsets: (index, site, when in µs since
    /// the lab's epoch).
    fn handsets(&self) -> Vec<(u64, String, u64)> {
        self.lab
            .handset_log()
            .into_iter()
            .filter_map(|m| index_of(&m.text).map(|i| (i, m.site, m.received_us)))
            .collect()
    }

    /// Seconds from `from` to the first message at the HTTP site `site`.
    fn first_at_site(&self, site: &str, from: Instant) -> Option<f64> {
        let arrivals = self.handsets();
        first_after(
            &self.lab,
            from,
            arrivals
                .iter()
                .filter(|(_, at_site, _)| at_site == site)
                .map(|(_, _, us)| *us),
        )
    }

    /// Adds what the application got (receipts, each once) to `report`,
    /// after waiting (up to 5 s) for a receipt of every delivered message.
    async fn report_receipts(&self, report: &mut Report) {
        let until = clock::now() + Duration::from_secs(5);
        while self.app.counts().0 < report.delivered() && clock::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (once, twice) = self.app.counts();
        report.extra("receipts_delivered_to_app", once);
        report.must_be_zero("app_received_twice", twice);
    }

    async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.lab.shutdown().await;
    }
}

/// The customer's application: receives webhooks, checks signatures, counts.
struct App {
    addr: SocketAddr,
    seen: Arc<Mutex<(HashSet<i64>, u64, u64)>>,
}

impl App {
    async fn start() -> anyhow::Result<App> {
        let seen: Arc<Mutex<(HashSet<i64>, u64, u64)>> = Arc::default();
        let state = seen.clone();
        let app = axum::Router::new().route(
            "/hotsite",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        let signature = headers
                            .get(SIGNATURE_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if !verify(WEBHOOK_SECRET.as_bytes(), &body, signature) {
                            return axum::http::StatusCode::UNAUTHORIZED;
                        }
                        let id = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["id"].as_i64());
                        let mut seen = state.lock().unwrap_or_else(|e| e.into_inner());
                        match id {
                            Some(id) if seen.0.insert(id) => seen.1 += 1,
                            Some(_) => seen.2 += 1,
                            None => return axum::http::StatusCode::BAD_REQUEST,
                        }
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start the demo application")?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(App { addr, seen })
    }

    /// (delivered once, delivered again).
    fn counts(&self) -> (u64, u64) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        (seen.1, seen.2)
    }
}
