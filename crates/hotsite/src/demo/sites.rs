//! What the site scenarios share (`site-failure`, `link-failure`,
//! `graceful-shutdown`; SPEC S1–S8): two sites of a peer pair on loopback,
//! the inter-site link between them, the agents' phones and desktops, and a
//! media gateway placing calls.
//!
//! - [`DemoSite`]: one site (`hotsite_site`) behind a host of its own, as
//!   `hotsite run` serves it: the API with `/v1/agents` and `/v1/site`, the
//!   event stream, the drain watch. Both run in this process, as
//!   `trunk-failover` runs its voice proxy: stopping a site's host ([`DemoSite::stop`])
//!   closes its API, its SIP socket and its task, which from outside is what
//!   a killed process looks like.
//! - [`Pair`]: sites `a` and `b`, each with the other as its peer trunk
//!   through a lab [`Link`] (the relay's address facing a site is that site's
//!   `dr_peer_trunk`), probing each other every [`OOS_CHECK`] and declaring
//!   the peer out of service after [`OOS_FORCE`] without an answer: short
//!   timers, so that a demo takes seconds.
//! - [`Phones`]: one lab phone per DN, registering with digest at one site or
//!   both (SPEC S8). The agents' desktops are the API calls of
//!   [`DemoSite::log_in`].
//! - [`Gateway`]: the media gateway, one lab caller per DN and site (a
//!   caller calls one user at one address), its calls split evenly.
//! - [`split_brain`]: from both sites' events, the agents that were logged in
//!   at both sites at the same moment (SPEC S4: never).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hotsite_core::{Event, EventKind};
use hotsite_host::events::RING_CAPACITY;
use hotsite_host::{EventBus, Host, HostConfig, Record, RunningHost};
use hotsite_lab::{
    CallRecord, Link, LinkConfig, SipCaller, SipCallerConfig, SipPhone, SipPhoneConfig,
};
use hotsite_site::{DrainWatch, SiteConfig};
use serde_json::{json, Value};

use super::{Progress, TOKEN};
use crate::clock;

/// The phones' SIP domain and the sites' digest realm.
pub(super) const DOMAIN: &str = "cc.demo";
/// `oos_check`: each site probes its peer this often (SPEC S4).
pub(super) const OOS_CHECK: Duration = Duration::from_millis(200);
/// `oos_force`: a peer silent this long is out of service (SPEC S4).
pub(super) const OOS_FORCE: Duration = Duration::from_secs(1);
/// `peer_rise`: answered probes in a row before peering again.
pub(super) const PEER_RISE: u32 = 2;
/// How long the gateway's calls last.
pub(super) const HOLD: Duration = Duration::from_millis(300);
/// The longest any one wait of a scenario lasts (registrations, logins, a
/// mode change, a drain): past it, the scenario goes on and the report shows
/// what did not happen.
pub(super) const WAIT: Duration = Duration::from_secs(10);
/// How often the controller looks.
pub(super) const TICK: Duration = Duration::from_millis(20);

/// The agents and the DN each logs in on, by the DNs' order.
pub(super) const AGENTS: [(&str, &str); 4] = [
    ("alice", "1001"),
    ("bob", "1002"),
    ("carol", "1003"),
    ("dave", "1004"),
];

/// The agent of `dn`.
pub(super) fn agent_of(dn: &str) -> &'static str {
    AGENTS
        .iter()
        .find(|(_, agent_dn)| *agent_dn == dn)
        .map_or("nobody", |(agent, _)| agent)
}

/// The digest password of `dn`'s phone.
fn password(dn: &str) -> String {
    format!("demo-phone-{dn}")
}

/// Seconds from `from` to `to`.
pub(super) fn after(from: Instant, to: Option<Instant>) -> Option<f64> {
    to.map(|to| to.saturating_duration_since(from).as_secs_f64())
}

/// `1.23 s`, or `never`.
pub(super) fn seconds(value: Option<f64>) -> String {
    value.map_or("never".to_owned(), |s| format!("{s:.2} s"))
}

/// A seed no other lab peer of this process gets. The lab's default seed
/// is the wall clock in milliseconds and the process id: peers started in
/// the same millisecond would share it, and with it their Call-IDs,
/// branches and tags (two calls with one Call-ID at one site are one dialog).
fn unique_seed(default: u64) -> u64 {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let nth = STARTED.fetch_add(1, Ordering::Relaxed) + 1;
    default ^ nth.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One site behind a host of its own.
pub(super) struct DemoSite {
    pub(super) name: &'static str,
    /// Its SIP address (UDP): phones, the gateway and the peer reach it here.
    pub(super) sip: SocketAddr,
    api: String,
    http: reqwest::Client,
    host: Option<RunningHost>,
    bus: EventBus,
    drained: DrainWatch,
    stopped_at: Option<Instant>,
}

impl DemoSite {
    /// Starts `config` behind a host on a free loopback port, as `hotsite run`
    /// does (`Host::bind`, the site's `start`, `serve`).
    async fn start(name: &'static str, config: &SiteConfig) -> anyhow::Result<DemoSite> {
        let host = HostConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: Default::default(),
            tokens: vec![TOKEN.into()],
        };
        let mut host = Host::bind(host)
            .await
            .with_context(|| format!("cannot start site {name}'s API"))?;
        let deps = host.deps();
        let (site, routes) = hotsite_site::start(config, &deps)
            .await
            .with_context(|| format!("cannot start site {name}"))?;
        let sip = site.local_addr();
        let drained = site.drain_watch();
        host.add(Box::new(site), routes);
        let host = host.serve()?;
        Ok(DemoSite {
            name,
            sip,
            api: format!("http://{}", host.local_addr()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            host: Some(host),
            bus: deps.bus().clone(),
            drained,
            stopped_at: None,
        })
    }

    /// Kills the site: its API, its SIP socket and its task stop.
    pub(super) async fn stop(&mut self) {
        if let Some(host) = self.host.take() {
            self.stopped_at = Some(clock::now());
            host.shutdown().await;
        }
    }

    /// `GET /v1/site`.
    pub(super) async fn status(&self) -> anyhow::Result<Value> {
        let (code, body) = self.request(reqwest::Method::GET, "/v1/site", None).await?;
        if code != 200 {
            bail!("site {}: GET /v1/site answered {code}: {body}", self.name);
        }
        Ok(body)
    }

    /// An API request: its status code and JSON body.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("site {}'s API ({path})", self.name))?;
        let code = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((code, body))
    }

    /// `POST /v1/site/drain` (SPEC S7): the answer's code and the site as it
    /// was right after the drain started.
    pub(super) async fn drain(&self) -> anyhow::Result<(u16, Value)> {
        self.request(reqwest::Method::POST, "/v1/site/drain", None)
            .await
    }

    /// What resolves once a drain is over.
    pub(super) fn drain_watch(&self) -> DrainWatch {
        self.drained.clone()
    }

    /// The agent's desktop logs it in on `dn` and sets it Ready. While the
    /// sites are peered, a login needs the DN's phone registered here (SPEC
    /// S3): a `409` is tried again every [`TICK`], for up to [`WAIT`].
    /// Returns when the login was accepted, or `None` if it never was.
    pub(super) async fn log_in(&self, agent: &str, dn: &str) -> anyhow::Result<Option<Instant>> {
        let until = clock::now() + WAIT;
        loop {
            let (code, body) = self
                .request(
                    reqwest::Method::POST,
                    &format!("/v1/agents/{agent}/login"),
                    Some(json!({ "dn": dn })),
                )
                .await?;
            if code == 200 {
                let at = clock::now();
                let (code, body) = self
                    .request(
                        reqwest::Method::POST,
                        &format!("/v1/agents/{agent}/ready"),
                        None,
                    )
                    .await?;
                if code != 200 {
                    bail!("site {}: {agent} ready answered {code}: {body}", self.name);
                }
                return Ok(Some(at));
            }
            if code != 409 || clock::now() >= until {
                tracing::info!(site = self.name, agent, code, %body, "login refused");
                return Ok(None);
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Waits (up to [`WAIT`]) until every one of `dns` has a phone
    /// registered here; returns when, or `None`.
    pub(super) async fn wait_in_service(&self, dns: &[&str]) -> anyhow::Result<Option<Instant>> {
        let until = clock::now() + WAIT;
        loop {
            let status = self.status().await?;
            let in_service = |dn: &str| {
                status["dns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["dn"] == dn && d["in_service"] == true)
            };
            if dns.iter().all(|dn| in_service(dn)) {
                return Ok(Some(clock::now()));
            }
            if clock::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// The agents logged in here now, with their DN and state.
    pub(super) async fn logged_in(&self) -> anyhow::Result<BTreeMap<String, (String, String)>> {
        let status = self.status().await?;
        Ok(agents_of(&status))
    }

    /// A call counter of `GET /v1/site` (`forwarded`, `drain_rejected`, …).
    pub(super) async fn calls(&self, counter: &str) -> anyhow::Result<u64> {
        let status = self.status().await?;
        status["calls"][counter]
            .as_u64()
            .ok_or_else(|| anyhow!("site {}: no calls.{counter} in {status}", self.name))
    }

    /// The site's events so far, oldest first (the host's ring keeps
    /// [`RING_CAPACITY`], far more than a demo makes).
    fn events(&self) -> Vec<Arc<Record>> {
        self.bus.recent_where(RING_CAPACITY, |record| {
            record.system == hotsite_site::SYSTEM
        })
    }

    /// When the site first went to `mode` at or after `since`.
    pub(super) fn mode_since(&self, mode: &str, since: Instant) -> Option<Instant> {
        self.events()
            .iter()
            .find_map(|record| match &record.event.kind {
                EventKind::SiteMode { mode: to, .. } if *to == mode && record.event.at >= since => {
                    Some(record.event.at)
                }
                _ => None,
            })
    }

    /// Waits (up to `limit`) until the site went to `mode` at or after
    /// `since`; returns when, or `None`.
    pub(super) async fn wait_mode(
        &self,
        mode: &str,
        since: Instant,
        limit: Duration,
    ) -> Option<Instant> {
        let until = clock::now() + limit;
        loop {
            if let Some(at) = self.mode_since(mode, since) {
                return Some(at);
            }
            if clock::now() >= until {
                return None;
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// When `agent` was logged out here at or after `since`, and why.
    pub(super) fn logout_since(&self, agent: &str, since: Instant) -> Option<(Instant, String)> {
        self.events()
            .iter()
            .find_map(|record| match &record.event.kind {
                EventKind::Agent {
                    agent: who,
                    state: "logged_out",
                    reason,
                    ..
                } if who == agent && record.event.at >= since => {
                    Some((record.event.at, reason.clone()))
                }
                _ => None,
            })
    }

    /// Every stretch of time an agent was logged in here.
    fn logins(&self) -> Vec<Stretch> {
        let events = self.events();
        stretches(events.iter().map(|record| &record.event), self.stopped_at)
    }
}

/// The agents logged in according to a `GET /v1/site` body: id → (DN, state).
pub(super) fn agents_of(status: &Value) -> BTreeMap<String, (String, String)> {
    status["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|agent| agent["state"] != "logged_out")
        .map(|agent| {
            let text = |key: &str| agent[key].as_str().unwrap_or_default().to_owned();
            (text("id"), (text("dn"), text("state")))
        })
        .collect()
}

/// A stretch of time an agent was logged in at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stretch {
    agent: String,
    from: Instant,
    /// `None`: still logged in, at a site still running.
    until: Option<Instant>,
}

/// The login stretches in a site's events, oldest first. A stretch still
/// open ends when the site stopped, if it did: a stopped site holds no login.
fn stretches<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    stopped_at: Option<Instant>,
) -> Vec<Stretch> {
    let mut open: BTreeMap<String, Instant> = BTreeMap::new();
    let mut stretches = Vec::new();
    for event in events {
        let EventKind::Agent { agent, state, .. } = &event.kind else {
            continue;
        };
        if *state == "logged_out" {
            if let Some(from) = open.remove(agent) {
                stretches.push(Stretch {
                    agent: agent.clone(),
                    from,
                    until: Some(event.at),
                });
            }
        } else {
            open.entry(agent.clone()).or_insert(event.at);
        }
    }
    for (agent, from) in open {
        stretches.push(Stretch {
            agent,
            from,
            until: stopped_at,
        });
    }
    stretches
}

/// The agents with a stretch at one site overlapping one at the other.
fn overlapping(a: &[Stretch], b: &[Stretch]) -> Vec<String> {
    let before = |at: Instant, until: Option<Instant>| until.is_none_or(|until| at < until);
    let mut agents: Vec<String> = a
        .iter()
        .filter(|x| {
            b.iter()
                .any(|y| x.agent == y.agent && before(y.from, x.until) && before(x.from, y.until))
        })
        .map(|x| x.agent.clone())
        .collect();
    agents.sort();
    agents.dedup();
    agents
}

/// The agents that were logged in at both sites at the same moment, from
/// the two sites' events (one process, one clock): a split brain (SPEC S4).
pub(super) fn split_brain(a: &DemoSite, b: &DemoSite) -> Vec<String> {
    overlapping(&a.logins(), &b.logins())
}

/// Sites `a` and `b`, peered through a lab link.
pub(super) struct Pair {
    pub(super) a: DemoSite,
    pub(super) b: DemoSite,
    pub(super) link: Link,
}

impl Pair {
    /// Starts the link and both sites, each serving `dns` and every agent
    /// with `dr_forward`, then waits until both are peered.
    pub(super) async fn start(
        dns: &[&str],
        dr_forward: &str,
        progress: &Progress,
    ) -> anyhow::Result<Pair> {
        let started = clock::now();
        // The link needs the sites' addresses and the sites the link's: the
        // sites' ports are picked first, and held while the link binds its
        // own, so that it cannot take them.
        let held = [reserve_udp_port()?, reserve_udp_port()?];
        let [a_sip, b_sip] = [0, 1].map(|i| held[i].1);
        let link = Link::start(LinkConfig::new("a-b", a_sip, b_sip))
            .await
            .context("cannot start the inter-site link")?;
        drop(held);
        let a = DemoSite::start(
            "a",
            &site_section("a", a_sip, link.a_addr(), dns, dr_forward)?,
        )
        .await?;
        let b = DemoSite::start(
            "b",
            &site_section("b", b_sip, link.b_addr(), dns, dr_forward)?,
        )
        .await?;
        progress.line(&format!(
            "site a: SIP {} API {}; site b: SIP {} API {}; inter-site link a-b: a's peer trunk {}, b's {} (oos_check {} ms, oos_force {} ms)",
            a.sip,
            a.api,
            b.sip,
            b.api,
            link.a_addr(),
            link.b_addr(),
            OOS_CHECK.as_millis(),
            OOS_FORCE.as_millis()
        ));
        let pair = Pair { a, b, link };
        let peered = pair.wait_both("peered", started).await;
        if peered.iter().any(Option::is_none) {
            bail!("sites a and b did not peer within {} s", WAIT.as_secs());
        }
        Ok(pair)
    }

    /// Waits (up to [`WAIT`]) until both sites went to `mode` at or after
    /// `since`: when each did.
    pub(super) async fn wait_both(&self, mode: &str, since: Instant) -> [Option<Instant>; 2] {
        let until = clock::now() + WAIT;
        loop {
            let times = [
                self.a.mode_since(mode, since),
                self.b.mode_since(mode, since),
            ];
            if times.iter().all(Option::is_some) || clock::now() >= until {
                return times;
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Stops both sites and the link.
    pub(super) async fn shutdown(mut self) {
        self.a.stop().await;
        self.b.stop().await;
        self.link.shutdown().await;
    }
}

/// A loopback address with a free UDP port, and the socket holding it until
/// dropped.
fn reserve_udp_port() -> anyhow::Result<(std::net::UdpSocket, SocketAddr)> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .context("cannot find a free UDP port for a site")?;
    let addr = socket.local_addr()?;
    Ok((socket, addr))
}

/// The `[site]` section of site `name`, as an operator would write it in
/// `hotsite.toml`.
fn site_section(
    name: &str,
    listen: SocketAddr,
    peer: SocketAddr,
    dns: &[&str],
    dr_forward: &str,
) -> anyhow::Result<SiteConfig> {
    let mut text = format!(
        r#"[site]
name = "{name}"
listen = "{listen}"
domain = "{DOMAIN}"
dr_peer_trunk = "{peer}"
dr_forward = "{dr_forward}"
oos_check = "{}ms"
oos_force = "{}ms"
peer_rise = {PEER_RISE}
shutdown_sip_reject_code = 603
drain_timeout = "30s"
"#,
        OOS_CHECK.as_millis(),
        OOS_FORCE.as_millis()
    );
    for dn in dns {
        text.push_str(&format!(
            "\n[[site.dns]]\ndn = \"{dn}\"\npassword = \"{}\"\n",
            password(dn)
        ));
    }
    for (agent, _) in AGENTS {
        text.push_str(&format!("\n[[site.agents]]\nid = \"{agent}\"\n"));
    }
    #[derive(serde::Deserialize)]
    struct Document {
        site: SiteConfig,
    }
    let document: Document = toml::from_str(&text)
        .map_err(|error| anyhow!("the demo's [site] section of {name}: {error}"))?;
    document
        .site
        .validate()
        .map_err(|error| anyhow!("the demo's [site] section of {name}: {error}"))?;
    Ok(document.site)
}

/// The agents' phones, one per DN.
pub(super) struct Phones(Vec<SipPhone>);

impl Phones {
    /// Starts a phone for each of `dns`, registering at `registrars` (one
    /// site, or both: dual registration, SPEC S8).
    pub(super) async fn start(dns: &[&str], registrars: &[SocketAddr]) -> anyhow::Result<Phones> {
        let mut phones = Vec::new();
        for dn in dns {
            let mut config = SipPhoneConfig::new(dn, &password(dn), DOMAIN, registrars.to_vec());
            config.seed = unique_seed(config.seed);
            phones.push(
                SipPhone::start(config)
                    .await
                    .with_context(|| format!("cannot start the phone of DN {dn}"))?,
            );
        }
        Ok(Phones(phones))
    }

    /// The phones of `dns` register at `registrar` alone from now on (SPEC
    /// S2, single registration); their old registrations lapse.
    pub(super) fn move_to(&self, dns: &[&str], registrar: SocketAddr) -> anyhow::Result<()> {
        for phone in self.0.iter().filter(|phone| dns.contains(&phone.dn())) {
            phone.set_registrars(vec![registrar])?;
        }
        Ok(())
    }

    /// Which address delivered each call to a phone, by Call-ID (the first
    /// INVITE of each).
    pub(super) fn delivered_by(&self) -> HashMap<String, SocketAddr> {
        let mut by = HashMap::new();
        for phone in &self.0 {
            for invite in phone.invite_log() {
                by.entry(invite.call_id).or_insert(invite.from);
            }
        }
        by
    }

    pub(super) async fn shutdown(self) {
        for phone in self.0 {
            phone.shutdown().await;
        }
    }
}

/// The media gateway: one lab caller per (site, DN), the calls split evenly.
pub(super) struct Gateway {
    callers: Vec<Caller>,
    calls: u64,
}

struct Caller {
    site: &'static str,
    caller: SipCaller,
}

/// One call as the gateway saw it, with the site it was sent to.
pub(super) struct Placed {
    pub(super) site: &'static str,
    pub(super) record: CallRecord,
}

impl Gateway {
    /// Starts placing `calls` calls at `rate` calls/s (0: all at once), each
    /// lasting `hold`, spread over `targets` (a site and a DN each).
    pub(super) async fn start(
        targets: &[(&DemoSite, &str)],
        calls: u64,
        rate: u64,
        hold: Duration,
    ) -> anyhow::Result<Gateway> {
        let mut callers = Vec::new();
        let n = targets.len().max(1) as u64;
        for (index, (site, dn)) in targets.iter().enumerate() {
            let share = calls / n + u64::from((index as u64) < calls % n);
            if share == 0 {
                continue;
            }
            let mut config = SipCallerConfig::new(site.sip, share, rate as f64 / n as f64);
            config.seed = unique_seed(config.seed);
            config.hold = hold;
            config.to_user = Some((*dn).to_owned());
            config.to_host = Some(DOMAIN.to_owned());
            let caller = SipCaller::start(config)
                .await
                .with_context(|| format!("cannot start the gateway's caller for {dn}"))?;
            callers.push(Caller {
                site: site.name,
                caller,
            });
        }
        Ok(Gateway { callers, calls })
    }

    /// Calls placed so far, and calls over.
    pub(super) fn progress(&self) -> (u64, u64) {
        self.callers.iter().fold((0, 0), |(placed, over), c| {
            let progress = c.caller.progress();
            (placed + progress.placed, over + progress.finished)
        })
    }

    /// Calls answered so far.
    pub(super) fn answered(&self) -> u64 {
        self.callers
            .iter()
            .map(|c| c.caller.progress().answered)
            .sum()
    }

    /// Waits until every call is placed.
    pub(super) async fn wait_placed(&self, limit: Duration) {
        let until = clock::now() + limit;
        while self.progress().0 < self.calls && clock::now() < until {
            tokio::time::sleep(TICK).await;
        }
    }

    /// Waits until every call is over (or `limit` passed), then stops.
    pub(super) async fn finish(self, limit: Duration) -> Vec<Placed> {
        let until = clock::now() + limit;
        while self.progress().1 < self.calls && clock::now() < until {
            tokio::time::sleep(TICK).await;
        }
        self.stop().await
    }

    /// Stops at once: calls in progress stay as they are.
    pub(super) async fn stop(self) -> Vec<Placed> {
        let mut placed = Vec::new();
        for Caller { site, caller } in self.callers {
            for record in caller.stop().await {
                placed.push(Placed { site, record });
            }
        }
        placed.sort_by_key(|p| p.record.started);
        placed
    }
}

/// How long a phase of `calls` calls at `rate` may take: its pacing, the
/// calls' length and a margin.
pub(super) fn phase_limit(calls: u64, rate: u64, hold: Duration) -> Duration {
    let pacing = if rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(calls as f64 / rate as f64)
    };
    pacing + hold + WAIT
}

/// The records of `placed`.
pub(super) fn records(placed: &[Placed]) -> Vec<CallRecord> {
    placed.iter().map(|p| p.record.clone()).collect()
}

/// When the first of `placed` was answered (its INVITE plus its setup).
pub(super) fn first_answer(placed: &[Placed]) -> Option<Instant> {
    placed
        .iter()
        .filter(|p| p.record.answered())
        .filter_map(|p| p.record.setup_time.map(|setup| p.record.started + setup))
        .min()
}

#[cfg(test)]
mod tests;
