//! Child processes (the gateway, Kannel's boxes), the work directory, and
//! process memory. Children are stopped by PID: SIGTERM, then SIGKILL after a
//! grace period; a child still running when its handle drops is killed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use hotsite_core::Target;

use super::clock;

/// The bench's bearer token for its gateways.
pub(crate) const TOKEN: &str = "bench-token-0123456789";

/// Shown when Kannel is missing.
pub(crate) const KANNEL_INSTALL: &str = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kannel";

/// A directory for one bench invocation; removed on drop.
pub(crate) struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub(crate) fn create(base: Option<&Path>) -> anyhow::Result<WorkDir> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = base.join(format!("hotsite-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WorkDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh subdirectory.
    pub(crate) fn sub(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.path.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The filesystem type `path` lives on (from /proc/mounts), e.g. "ext4", "tmpfs".
pub(crate) fn fs_type(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let point = fields.next()?;
            let kind = fields.next()?;
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
pub(crate) fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A child process, stopped by PID.
pub(crate) struct Proc {
    name: String,
    child: Option<Child>,
    pid: u32,
}

impl Proc {
    pub(crate) fn spawn(name: &str, command: &mut Command) -> anyhow::Result<Proc> {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Proc {
            name: name.to_owned(),
            pid: child.id(),
            child: Some(child),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(description)` once the process has exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }

    /// SIGTERM by PID, up to `grace` to exit, then SIGKILL.
    pub(crate) async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = clock() + grace;
        while clock() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{} (pid {}) did not exit within {grace:?} of SIGTERM: SIGKILL",
            self.name, self.pid
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free loopback port (bound and released; a small race, fine on a bench rig).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts TCP connections.
async fn wait_port(addr: SocketAddr, limit: Duration, proc: &mut Proc) -> anyhow::Result<()> {
    let deadline = clock() + limit;
    while clock() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            bail!("{} exited ({status}) before listening on {addr}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} did not listen on {addr} within {limit:?}", proc.name)
}

/// A hotsite gateway (`hotsite run`) as a child process.
pub(crate) struct Gateway {
    pub(crate) proc: Proc,
    /// `http://127.0.0.1:port`.
    pub(crate) api: String,
    dir: PathBuf,
}

/// Where a gateway keeps its queue.
#[derive(Debug, Clone)]
pub(crate) enum StoreSetup {
    /// `[store] path`: a SQLite file in the gateway's directory (one gateway
    /// per file, SPEC M17).
    Sqlite,
    /// `[store] url` and `schema`: PostgreSQL, shared by every gateway of the
    /// run.
    Postgres { url: String, schema: String },
}

/// Gateway settings the bench varies.
pub(crate) struct GatewaySettings {
    pub(crate) store: StoreSetup,
    pub(crate) window: usize,
    /// Ask for delivery receipts (hotsite's default).
    pub(crate) receipts: bool,
    /// `[webhook] url`: where receipts go (the bench's application).
    pub(crate) webhook: Option<String>,
}

impl Gateway {
    /// Writes a config into `dir` (SQLite: store `dir/hotsite.db`), starts
    /// `<program> run --config` (`program`: the `hotsite` binary), and waits
    /// for its API address.
    pub(crate) async fn start(
        program: &Path,
        dir: &Path,
        smsc: &[(Target, SocketAddr)],
        settings: &GatewaySettings,
    ) -> anyhow::Result<Gateway> {
        let store = match &settings.store {
            StoreSetup::Sqlite => {
                format!("path = {:?}", dir.join("hotsite.db").display().to_string())
            }
            StoreSetup::Postgres { url, schema } => format!("url = {url:?}\nschema = {schema:?}"),
        };
        let mut config = format!(
            "[site]\nname = \"bench\"\n\n[api]\nlisten = \"127.0.0.1:0\"\ntokens = [\"{TOKEN}\"]\ndefault_from = \"hotsite\"\n\n\
             [store]\n{store}\n\n[smpp]\nsystem_id = \"hotsite\"\npassword = \"secret\"\nwindow = {}\n\
             rebind_interval = \"30s\"\nrebind_jitter = \"1s\"\nreceipts = {}\n",
            settings.window,
            settings.receipts
        );
        if let Some(url) = &settings.webhook {
            let _ = write!(
                config,
                "\n[webhook]\nurl = {url:?}\nsecret = \"bench-webhook-secret-0123456789\"\n"
            );
        }
        for (target, addr) in smsc {
            let _ = write!(
                config,
                "\n[[smpp.smsc]]\nsite = \"{}\"\nname = \"{}\"\naddress = \"{addr}\"\n",
                target.site, target.name
            );
        }
        let config_path = dir.join("hotsite.toml");
        std::fs::write(&config_path, config)?;
        let out_path = dir.join("gateway.out");
        let err_path = dir.join("gateway.err");
        let mut command = Command::new(program);
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?);
        if std::env::var_os("HOTSITE_LOG").is_none() {
            command.env("HOTSITE_LOG", "warn");
        }
        let mut proc = Proc::spawn("hotsite gateway", &mut command)?;
        let deadline = clock() + Duration::from_secs(20);
        let api = loop {
            let out = std::fs::read_to_string(&out_path).unwrap_or_default();
            if let Some(rest) = out.split("API on ").nth(1) {
                if let Some(url) = rest.split_whitespace().next() {
                    break url.to_owned();
                }
            }
            if let Some(status) = proc.exited() {
                bail!(
                    "the gateway exited ({status}) at start:\n{}",
                    tail(&err_path, 20)
                );
            }
            if clock() > deadline {
                bail!(
                    "the gateway did not print its API address within 20 s:\n{}",
                    tail(&err_path, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Gateway {
            proc,
            api,
            dir: dir.to_owned(),
        })
    }

    /// Waits until `want` binds are up (GET /v1/status).
    pub(crate) async fn wait_binds(&mut self, want: usize, limit: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let deadline = clock() + limit;
        let mut last = String::new();
        while clock() < deadline {
            if let Some(status) = self.proc.exited() {
                bail!(
                    "the gateway exited ({status}):\n{}",
                    tail(&self.dir.join("gateway.err"), 20)
                );
            }
            let response = client
                .get(format!("{}/v1/status", self.api))
                .bearer_auth(TOKEN)
                .send()
                .await;
            if let Ok(response) = response {
                if let Ok(status) = response.json::<serde_json::Value>().await {
                    let up = status["binds"]
                        .as_array()
                        .map(|binds| binds.iter().filter(|b| b["health"] == "Up").count())
                        .unwrap_or(0);
                    if up >= want {
                        return Ok(());
                    }
                    last = status["binds"].to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the gateway's binds were not all up within {limit:?}: {last}")
    }

    /// The gateway's own counters (`GET /metrics`), read after a run: how
    /// the work split between gateways sharing a store. `None` if unreadable.
    pub(crate) async fn counters(&self) -> Option<GatewayCounters> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let text = client
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(GatewayCounters::parse(&text))
    }

    /// Bytes of the SQLite store's files (database and WAL) while it runs.
    pub(crate) fn sqlite_bytes(&self) -> u64 {
        ["hotsite.db", "hotsite.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    pub(crate) async fn stop(mut self) {
        self.proc.stop(Duration::from_secs(15)).await;
    }
}

/// A gateway's counters after a run (Prometheus `hotsite_*_total`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct GatewayCounters {
    /// Messages accepted through its API.
    pub(crate) accepted: u64,
    /// Messages it had accepted by an SMSC.
    pub(crate) submitted: u64,
    /// Receipts and MOs that reached its binds (repeats included).
    pub(crate) inbound: u64,
    /// Receipts and MOs it delivered to the application.
    pub(crate) webhooks: u64,
    /// Work whose lease passed to the other gateway before it was done here.
    pub(crate) leases_lost: u64,
}

impl GatewayCounters {
    fn parse(text: &str) -> GatewayCounters {
        let value = |name: &str| {
            text.lines()
                .find_map(|line| {
                    line.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        GatewayCounters {
            accepted: value("hotsite_messages_accepted_total"),
            submitted: value("hotsite_messages_submitted_total"),
            inbound: value("hotsite_inbound_received_total"),
            webhooks: value("hotsite_webhooks_delivered_total"),
            leases_lost: value("hotsite_leases_lost_total"),
        }
    }
}

/// `bearerbox` and `smsbox`, from PATH or /usr/sbin.
pub(crate) fn kannel_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
            .map(|dir: PathBuf| dir.join(name))
            .find(|candidate| candidate.is_file())
    };
    Some((find("bearerbox")?, find("smsbox")?))
}

/// The peers' Kannel baseline config, used when `--kannel-config` cannot be
/// read (a copy of peers/kannel/kannel.conf).
const KANNEL_CONF: &str = r#"group = core
admin-port = 27000
admin-password = adminpw
status-password = adminpw
admin-deny-ip = "*.*.*.*"
admin-allow-ip = "127.0.0.1"
smsbox-port = 27001
smsbox-interface = "127.0.0.1"
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "run/bearerbox.log"
log-level = 1
access-log = "run/access.log"
store-type = file
store-location = "run/kannel.store"
store-dump-freq = 5
sms-resend-freq = 5
sms-resend-retry = -1

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = 27775
transceiver-mode = true
smsc-username = "kannel"
smsc-password = "pass"
system-type = ""
max-pending-submits = 10
reconnect-delay = 2
enquire-link-interval = 30
wait-ack = 60

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = 27001
sendsms-port = 27013
sendsms-interface = "127.0.0.1"
log-file = "run/smsbox.log"
log-level = 1
access-log = "run/smsbox-access.log"

group = sendsms-user
username = tester
password = foobar

group = sms-service
keyword = default
text = "no service"
catch-all = true
"#;

/// Kannel's template: the peers' file if readable, else the built-in copy.
pub(crate) fn kannel_template(path: &Path) -> (String, String) {
    match std::fs::read_to_string(path) {
        Ok(text) => (text, path.display().to_string()),
        Err(_) => (
            KANNEL_CONF.to_owned(),
            "built-in copy of peers/kannel/kannel.conf".to_owned(),
        ),
    }
}

/// Rewrites `key = value` lines (every occurrence of each key).
fn rewrite_conf(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match values.iter().find(|(k, _)| *k == key && line.contains('=')) {
            Some((k, v)) => {
                let _ = writeln!(out, "{k} = {v}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Kannel's bearerbox and smsbox as child processes, bound to `smsc`.
pub(crate) struct Kannel {
    bearerbox: Proc,
    smsbox: Proc,
    /// `http://127.0.0.1:port` of sendsms.
    pub(crate) sendsms: String,
    pub(crate) dir: PathBuf,
}

impl Kannel {
    pub(crate) async fn start(
        dir: &Path,
        template: &str,
        smsc: SocketAddr,
        (bearerbox, smsbox): &(PathBuf, PathBuf),
    ) -> anyhow::Result<Kannel> {
        let admin = free_port()?;
        let boxes = free_port()?;
        let sendsms = free_port()?;
        let conf = rewrite_conf(
            template,
            &[
                ("admin-port", admin.to_string()),
                ("smsbox-port", boxes.to_string()),
                ("bearerbox-port", boxes.to_string()),
                ("sendsms-port", sendsms.to_string()),
                ("host", smsc.ip().to_string()),
                ("port", smsc.port().to_string()),
                ("smsc-username", "\"kannel\"".to_owned()),
                ("smsc-password", "\"pass\"".to_owned()),
            ],
        );
        std::fs::create_dir_all(dir.join("run"))?;
        let conf_path = dir.join("kannel.conf");
        std::fs::write(&conf_path, conf)?;
        let mut bearerbox = Proc::spawn(
            "bearerbox",
            Command::new(bearerbox)
                .arg(&conf_path)
                .current_dir(dir)
                .stdout(std::fs::File::create(dir.join("bearerbox.out"))?)
                .stderr(std::fs::File::create(dir.join("bearerbox.err"))?),
        )?;
        let box_addr = SocketAddr::from(([127, 0, 0, 1], boxes));
        if let Err(error) = wait_port(box_addr, Duration::from_secs(20), &mut bearerbox).await {
            bail!("{error:#}\n{}", tail(&dir.join("bearerbox.err"), 20));
        }
        let mut smsbox = Proc::spawn(
            "smsbox",
            Command::new(smsbox)
                .arg(&conf_path)
                .current_dir(dir)
                .stdout(std::fs::File::create(dir.join("smsbox.out"))?)
                .stderr(std::fs::File::create(dir.join("smsbox.err"))?),
        )?;
        let sendsms_addr = SocketAddr::from(([127, 0, 0, 1], sendsms));
        if let Err(error) = wait_port(sendsms_addr, Duration::from_secs(20), &mut smsbox).await {
            bail!("{error:#}\n{}", tail(&dir.join("smsbox.err"), 20));
        }
        Ok(Kannel {
            bearerbox,
            smsbox,
            sendsms: format!("http://{sendsms_addr}"),
            dir: dir.to_owned(),
        })
    }

    pub(crate) fn bearerbox_pid(&self) -> u32 {
        self.bearerbox.pid()
    }

    pub(crate) fn smsbox_pid(&self) -> u32 {
        self.smsbox.pid()
    }

    /// smsbox first, then bearerbox; each SIGTERM, SIGKILL after 10 s.
    pub(crate) async fn stop(mut self) {
        self.smsbox.stop(Duration::from_secs(10)).await;
        self.bearerbox.stop(Duration::from_secs(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_counters_are_read_from_metrics() {
        let text = "# HELP hotsite_messages_submitted Messages accepted by an SMSC.\n\
                    # TYPE hotsite_messages_submitted counter\n\
                    hotsite_messages_submitted_total 1200\n\
                    hotsite_messages_accepted_total 2000\n\
                    hotsite_inbound_received_total 990\n\
                    hotsite_webhooks_delivered_total 1001\n\
                    hotsite_leases_lost_total 3\n";
        let counters = GatewayCounters::parse(text);
        assert_eq!(counters.submitted, 1200);
        assert_eq!(counters.accepted, 2000);
        assert_eq!(counters.inbound, 990);
        assert_eq!(counters.webhooks, 1001);
        assert_eq!(counters.leases_lost, 3);
    }

    #[test]
    fn kannel_conf_is_rewritten_by_key() {
        let conf = rewrite_conf(
            KANNEL_CONF,
            &[
                ("port", "4000".to_owned()),
                ("sendsms-port", "4001".to_owned()),
            ],
        );
        assert!(conf.contains("\nport = 4000\n"), "{conf}");
        assert!(conf.contains("\nsendsms-port = 4001\n"), "{conf}");
        assert!(conf.contains("\nadmin-port = 27000\n"), "untouched: {conf}");
        assert!(!conf.contains("27775"), "{conf}");
    }
}

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Busy CPU ticks of the whole machine (/proc/stat, all but idle and iowait).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(
        fields.iter().take(8).sum::<u64>()
            - fields.get(3).copied().unwrap_or(0)
            - fields.get(4).copied().unwrap_or(0),
    )
}

/// utime + stime of a process, in ticks ("self" for this one).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of `pids`, by PID (those that have exited are left out).
fn ticks_by_pid(pids: &[u32]) -> HashMap<u32, u64> {
    pids.iter()
        .filter_map(|&pid| Some((pid, process_ticks(&pid.to_string())?)))
        .collect()
}

/// Where the CPU went during a phase: the product's processes, the database
/// server (PostgreSQL runs), this one (lab and load driver), and everything
/// else on the machine.
pub(crate) struct CpuMeter {
    pids: Vec<u32>,
    at: std::time::Instant,
    machine: u64,
    this: u64,
    product: u64,
    /// PostgreSQL's processes for the run at the start, when it uses it.
    database: HashMap<u32, u64>,
}

/// CPU use in cores (1.0 = one core busy) over a phase.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct CpuUse {
    pub(crate) product: f64,
    /// The PostgreSQL server, with `--store postgres`: the gateways' backends
    /// and the server's background processes.
    pub(crate) database: f64,
    pub(crate) bench: f64,
    pub(crate) other: f64,
}

impl CpuMeter {
    /// Starts metering `pids` (the product) and `database` (PostgreSQL's
    /// processes for the run; `None` without PostgreSQL).
    pub(crate) fn start(pids: &[u32], database: Option<&[u32]>) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            at: clock(),
            machine: machine_busy_ticks().unwrap_or(0),
            this: process_ticks("self").unwrap_or(0),
            product: Self::product_ticks(pids),
            database: ticks_by_pid(database.unwrap_or_default()),
        }
    }

    fn product_ticks(pids: &[u32]) -> u64 {
        pids.iter()
            .filter_map(|pid| process_ticks(&pid.to_string()))
            .sum()
    }

    /// CPU use since the start; `database`: PostgreSQL's processes for the
    /// run now (backends may have been opened since the start).
    pub(crate) fn finish(&self, database: Option<&[u32]>) -> CpuUse {
        let seconds = clock().duration_since(self.at).as_secs_f64().max(1e-3);
        let machine = machine_busy_ticks()
            .unwrap_or(0)
            .saturating_sub(self.machine);
        let this = process_ticks("self").unwrap_or(0).saturating_sub(self.this);
        let product = Self::product_ticks(&self.pids).saturating_sub(self.product);
        // Backends that started during the phase count from zero; those that
        // ended are missed (the gateways' pools keep theirs open).
        let mut pids: Vec<u32> = database.unwrap_or_default().to_vec();
        pids.extend(self.database.keys());
        pids.sort_unstable();
        pids.dedup();
        let database: u64 = ticks_by_pid(&pids)
            .into_iter()
            .map(|(pid, now)| now.saturating_sub(self.database.get(&pid).copied().unwrap_or(0)))
            .sum();
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        CpuUse {
            product: cores(product),
            database: cores(database),
            bench: cores(this),
            other: cores(machine.saturating_sub(this + product + database)),
        }
    }
}
