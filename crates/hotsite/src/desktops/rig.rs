//! The rig of `hotsite desktops`: two sites `a` and `b` as child processes
//! (`hotsite run --config FILE`, this same program), peered directly (each
//! one's `dr_peer_trunk` is the other's SIP address), with N DNs, N agents
//! and N `[[desktop.people]]`, and N lab phones registered at both sites
//! (dual registration, SPEC S8).
//!
//! Every process is killed by its PID when the rig ends (and when it is
//! dropped on an error path); phones stop with it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hotsite_lab::{SipPhone, SipPhoneConfig};
use serde_json::Value;

use super::{Progress, Settings};
use crate::clock;

/// Both sites' `desktop.session_key`.
const SESSION_KEY: &str = "hotsite desktops: one session key for the pair";

/// The sites' bearer token (drain, `/v1/agents`, `/metrics`).
pub(crate) const TOKEN: &str = "desktops-tool-token";
/// Every person's desktop password (one PHC string for all, see
/// [`light_hash`]).
pub(crate) const PASSWORD: &str = "desktops-tool-password";
/// Every phone's digest password.
const PHONE_PASSWORD: &str = "desktops-tool-phone";
/// Lines of a site's output kept for an error message.
const LOG_LINES: usize = 40;

/// The Argon2id parameters of the tool's password hash: 1 MiB, one pass,
/// one lane. Deliberately light: the tool measures the protocol and the
/// switchover, not password hashing (production hashes, from `hotsite
/// desktop hash-password`, take 19 MiB and two passes per check).
pub(crate) const HASH_PARAMS: (u32, u32, u32) = (1024, 1, 1);

/// One PHC string of [`PASSWORD`] with [`HASH_PARAMS`], checked the way the
/// sites check `password_hash`.
pub(crate) fn light_hash() -> anyhow::Result<String> {
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::{PasswordHasher, SaltString};
    let (m, t, p) = HASH_PARAMS;
    let params = argon2::Params::new(m, t, p, None).map_err(|e| anyhow!("argon2: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    let phc = argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow!("argon2: {e}"))?
        .to_string();
    hotsite_desktop::service::password::check_phc(&phc).map_err(|e| anyhow!("{e}"))?;
    Ok(phc)
}

/// Person `i` (0-based): user and agent `agent-0001`…, DN `200001`…, the
/// preferred site alternating a, b.
pub(crate) fn person(i: usize) -> (String, String, &'static str) {
    let preferred = if i % 2 == 0 { "a" } else { "b" };
    (
        format!("agent-{:04}", i + 1),
        format!("2{:05}", i + 1),
        preferred,
    )
}

/// A `hotsite run` child process.
pub(crate) struct SiteProcess {
    pub(crate) name: &'static str,
    pub(crate) pid: u32,
    /// `host:port` of its API.
    pub(crate) api: String,
    /// Its SIP address.
    pub(crate) sip: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl SiteProcess {
    /// Spawns `exe run --config path` and waits up to `limit` for its `API
    /// on http://…` line.
    fn spawn(
        exe: &PathBuf,
        path: &PathBuf,
        name: &'static str,
        sip: SocketAddr,
        limit: Duration,
    ) -> anyhow::Result<SiteProcess> {
        let mut child = std::process::Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(path)
            .env("HOTSITE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start site {name} ({})", exe.display()))?;
        let pid = child.id();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            keep(stdout, log.clone(), Some(addr_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            keep(stderr, log.clone(), None);
        }
        let mut site = SiteProcess {
            name,
            pid,
            api: String::new(),
            sip,
            child,
            log,
        };
        match addr_rx.recv_timeout(limit) {
            Ok(addr) => site.api = addr,
            Err(_) => {
                site.kill();
                bail!(
                    "site {name} printed no API address within {limit:?}:\n{}",
                    site.log_tail()
                );
            }
        }
        Ok(site)
    }

    /// SIGKILL by PID (nothing if it already ended).
    pub(crate) fn kill(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to end by itself.
    pub(crate) async fn ended_within(&mut self, limit: Duration) -> bool {
        let until = clock::now() + limit;
        while self.alive() {
            if clock::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Its last lines of output.
    pub(crate) fn log_tail(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

impl Drop for SiteProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `from` to its end on a thread (so the child never blocks on a full
/// pipe), keeping the last [`LOG_LINES`] lines and sending the API address
/// to `addr` when it goes by.
fn keep(
    from: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    mut addr: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let Some((_, found)) = line.split_once("API on http://") {
                if let Some(addr) = addr.take() {
                    let _ = addr.send(found.trim().to_owned());
                }
            }
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == LOG_LINES {
                log.remove(0);
            }
            log.push(line);
        }
    });
}

/// The two sites and the phones.
pub(crate) struct Rig {
    /// `[a, b]`.
    pub(crate) sites: [SiteProcess; 2],
    /// Both sites' desktop endpoints, as `[[desktop.sites]]` lists them.
    pub(crate) urls: [(String, String); 2],
    pub(crate) phones: Vec<SipPhone>,
    http: reqwest::Client,
    dir: PathBuf,
}

impl Rig {
    /// Writes both configurations and starts both sites.
    pub(crate) async fn start(settings: &Settings) -> anyhow::Result<Rig> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let dir = std::env::temp_dir().join(format!("hotsite-desktops-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let phc = light_hash()?;
        let sips = [free_udp()?, free_udp()?];
        let apis = [free_tcp()?, free_tcp()?];
        let urls = [
            ("a".to_owned(), format!("ws://{}/v1/desktop", apis[0])),
            ("b".to_owned(), format!("ws://{}/v1/desktop", apis[1])),
        ];
        let mut started = Vec::new();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let path = dir.join(format!("{name}.toml"));
            let text = config(settings, name, sips[i], sips[1 - i], apis[i], &urls, &phc);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            // Parsing N people and checking their PHC strings takes a while
            // for large N.
            let limit = Duration::from_secs(30) + Duration::from_millis(settings.desktops as u64);
            started.push(SiteProcess::spawn(&exe, &path, name, sips[i], limit)?);
        }
        let b = started.pop().ok_or_else(|| anyhow!("site b"))?;
        let a = started.pop().ok_or_else(|| anyhow!("site a"))?;
        Ok(Rig {
            sites: [a, b],
            urls,
            phones: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            dir,
        })
    }

    /// Starts one phone per DN, registering at both sites, at most `rate`
    /// per second.
    pub(crate) async fn start_phones(
        &mut self,
        settings: &Settings,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        static SEEDS: AtomicU64 = AtomicU64::new(0);
        let registrars = vec![self.sites[0].sip, self.sites[1].sip];
        let started = clock::now();
        for i in 0..settings.desktops {
            pace(started, i, settings.ramp).await;
            let (_, dn, _) = person(i);
            let mut config =
                SipPhoneConfig::new(&dn, PHONE_PASSWORD, "hotsite", registrars.clone());
            config.expires = settings.phone_expires;
            // The lab's default seed is the wall clock and the PID: phones
            // started in the same millisecond would share Call-IDs.
            let nth = SEEDS.fetch_add(1, Ordering::Relaxed) + 1;
            config.seed ^= nth.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let phone = SipPhone::start(config)
                .await
                .with_context(|| format!("cannot start the phone of DN {dn}"))?;
            self.phones.push(phone);
            progress.every(i + 1, settings.desktops, "phones started");
        }
        Ok(())
    }

    /// Waits (up to `limit`) until every DN is in service at both sites.
    pub(crate) async fn wait_dns_in_service(
        &self,
        n: usize,
        limit: Duration,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        let started = clock::now();
        loop {
            let mut counts = [0, 0];
            for (i, site) in self.sites.iter().enumerate() {
                counts[i] = self.dns_in_service(site).await.unwrap_or(0);
            }
            if counts.iter().all(|c| *c >= n) {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "DNs in service after {limit:?}: a {}, b {} of {n}",
                    counts[0],
                    counts[1]
                );
            }
            progress.tick(&format!(
                "registering phones: DNs in service a {}/{n}, b {}/{n}",
                counts[0], counts[1]
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `hotsite_site_dns_in_service` from the site's `/metrics`.
    async fn dns_in_service(&self, site: &SiteProcess) -> Option<usize> {
        let text = self
            .http
            .get(format!("http://{}/metrics", site.api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metric(&text, "hotsite_site_dns_in_service").map(|v| v as usize)
    }

    /// The agents at `site` as `(id, state)`, or None if it does not answer.
    pub(crate) async fn agents(&self, site: usize) -> Option<Vec<(String, String)>> {
        let value = self.get_json(site, "/v1/agents").await?;
        Some(
            value["agents"]
                .as_array()?
                .iter()
                .map(|a| {
                    (
                        a["id"].as_str().unwrap_or_default().to_owned(),
                        a["state"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// The desktop service's sign-ins at `site` by outcome (`/v1/status`:
    /// `ok` with a password, `session` with a token, refusals), or None if
    /// it does not answer.
    pub(crate) async fn hellos(
        &self,
        site: usize,
    ) -> Option<std::collections::BTreeMap<String, u64>> {
        let value = self.get_json(site, "/v1/status").await?;
        Some(
            value["desktop"]["hellos"]
                .as_object()?
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect(),
        )
    }

    /// `GET path` at `site` as JSON, or None if it does not answer.
    async fn get_json(&self, site: usize, path: &str) -> Option<Value> {
        self.http
            .get(format!("http://{}{path}", self.sites[site].api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// `POST /v1/site/drain` at site `a` (SPEC S7).
    pub(crate) async fn drain_a(&self) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("http://{}/v1/site/drain", self.sites[0].api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .context("cannot ask site a to drain")?;
        if !response.status().is_success() {
            bail!("site a refused the drain: {}", response.status());
        }
        Ok(())
    }

    /// The phones of `dns` (person indices) keep registering at b only:
    /// their bindings at a lapse when they expire (SPEC S8).
    pub(crate) fn stop_registering_at_a(&self, people: &[usize]) -> anyhow::Result<()> {
        for i in people {
            if let Some(phone) = self.phones.get(*i) {
                phone
                    .set_registrars(vec![self.sites[1].sip])
                    .map_err(|e| anyhow!("phone {}: {e}", phone.dn()))?;
            }
        }
        Ok(())
    }

    /// Kills both sites by PID, stops the phones, removes the configs.
    pub(crate) async fn shutdown(mut self) {
        for site in &mut self.sites {
            site.kill();
        }
        for phone in std::mem::take(&mut self.phones) {
            drop(phone);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sleeps until the `i`-th of a series started at `started` is due at
/// `rate` per second.
pub(crate) async fn pace(started: Instant, i: usize, rate: u64) {
    let due = started + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
    if due > clock::now() {
        tokio::time::sleep_until(due.into()).await;
    }
}

/// The value of metric `name` (no labels) in OpenMetrics text.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

fn free_udp() -> anyhow::Result<SocketAddr> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?)
}

fn free_tcp() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Site `name`'s `hotsite.toml`.
fn config(
    settings: &Settings,
    name: &str,
    sip: SocketAddr,
    peer: SocketAddr,
    api: SocketAddr,
    urls: &[(String, String); 2],
    phc: &str,
) -> String {
    use std::fmt::Write;
    let n = settings.desktops;
    // Every desktop may end up at one site, plus room for reconnects and
    // for the tool's own API requests.
    let connections = n + 256;
    let mut text = format!(
        r#"[site]
name = "{name}"
listen = "{sip}"
dr_peer_trunk = "{peer}"
oos_check = "500ms"
oos_force = "2s"
min_expires = "1s"

[api]
listen = "{api}"
tokens = ["{TOKEN}"]
max_connections = {connections}

[desktop]
max_connections = {connections}
# One key at both sites, as README asks: a switchover signs in with the
# session token from site a, not with a password check.
session_key = "{SESSION_KEY}"

[[desktop.sites]]
name = "a"
url = "{a}"

[[desktop.sites]]
name = "b"
url = "{b}"
"#,
        a = urls[0].1,
        b = urls[1].1,
    );
    for i in 0..n {
        let (user, dn, preferred) = person(i);
        let secondary = if preferred == "a" { "b" } else { "a" };
        let _ = write!(
            text,
            r#"
[[site.dns]]
dn = "{dn}"
password = "{PHONE_PASSWORD}"

[[site.agents]]
id = "{user}"

[[desktop.people]]
user = "{user}"
password_hash = "{phc}"
agent = "{user}"
dn = "{dn}"
preferred_site = "{preferred}"
secondary_site = "{secondary}"
"#
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_alternate_preferred_sites() {
        assert_eq!(person(0), ("agent-0001".into(), "200001".into(), "a"));
        assert_eq!(person(1), ("agent-0002".into(), "200002".into(), "b"));
        assert_eq!(person(9_999).0, "agent-10000");
    }

    /// The tool's light hash is one the sites accept and verify.
    #[test]
    fn the_light_hash_is_a_valid_argon2id_phc() {
        let phc = light_hash().unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(hotsite_desktop::service::password::verify(PASSWORD, &phc));
        assert!(!hotsite_desktop::service::password::verify("other", &phc));
    }

    #[test]
    fn metrics_are_read_by_exact_name() {
        let text = "# TYPE hotsite_site_dns_in_service gauge\n\
                    hotsite_site_dns_in_service_total 9\n\
                    hotsite_site_dns_in_service 42\n";
        assert_eq!(metric(text, "hotsite_site_dns_in_service"), Some(42.0));
        assert_eq!(metric(text, "hotsite_site_dns"), None);
    }
}
