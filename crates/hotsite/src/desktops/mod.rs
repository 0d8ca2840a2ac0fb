//! `hotsite desktops`: the load and demo tool of the agent desktops (SPEC
//! D1–D8 with S2, S7, S8). N simulated desktops (the Rust client,
//! `hotsite_desktop::client`) against two `hotsite run` sites, spread over
//! preferred sites, with their phones in the lab; one scripted failure;
//! a report of who switched, when and why, and of any agent logged in at
//! two sites or left logged out. Exits non-zero on a broken promise.
//!
//! - `rig.rs`: the two site processes (configs in a temp dir, killed by
//!   PID) and the phones (dual registration);
//! - `fleet.rs`: the desktops and what each saw, on one clock;
//! - `measure.rs`: RSS and CPU from `/proc`, attempts per second, the cap;
//! - `report.rs`: the analysis, the promises, the report.
//!
//! The people share one Argon2id hash with light parameters
//! ([`rig::HASH_PARAMS`]): the tool measures the protocol and the
//! switchover, not password hashing.

mod fleet;
mod measure;
mod report;
mod rig;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use hotsite_desktop::Options;

use self::fleet::Fleet;
use self::measure::{cpu_ticks, round_ms, rss_kib, Times, USER_HZ};
use self::report::{analyse, attempts_shown, promises, Report, ShownSettings, SiteMemory};
use self::rig::{pace, person, Rig};
use crate::clock;

/// The most desktops one run takes (two sockets each in this process).
const MAX_DESKTOPS: usize = 20_000;

/// Options of `hotsite desktops`.
#[derive(Debug, clap::Args)]
pub(crate) struct DesktopsArgs {
    /// Simulated desktops (and agents, DNs, phones), preferred sites
    /// alternating a and b.
    #[arg(long, default_value_t = 300)]
    desktops: usize,
    /// Desktops (and phones) started per second.
    #[arg(long, default_value_t = 500)]
    ramp: u64,
    /// What fails: site-kill (SIGKILL site a), drain (POST /v1/site/drain at
    /// a), phone-loss (the phones of a's agents stop registering at a),
    /// none.
    #[arg(long, value_enum, default_value_t = Failure::SiteKill)]
    failure: Failure,
    /// The desktops' site_timeout (D4).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    site_timeout: Duration,
    /// The desktops' retry delay.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    retry_delay: Duration,
    /// The desktops' retry jitter (also spreads each switchover's connect).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    retry_jitter: Duration,
    /// The desktops' site_sip_register_timeout (D6); 0: never switch for a
    /// lost phone.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    register_timeout: Duration,
    /// The platform's documented desktop defaults instead: site timeout
    /// 60 s, retry delay 10 s, no jitter (overrides the three options).
    #[arg(long)]
    platform_defaults: bool,
    /// The phones' registration lifetime [default: 10s for phone-loss, 60s
    /// otherwise].
    #[arg(long, value_parser = humantime::parse_duration)]
    phone_expires: Option<Duration>,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Failure {
    /// SIGKILL site a's process (SPEC D4, S2).
    SiteKill,
    /// Drain site a (SPEC D6, S7): graceful_shutdown_logout.
    Drain,
    /// The phones of a's agents stop registering at a (SPEC D6, S8):
    /// dr-force_logout, then site_sip_register_timeout.
    PhoneLoss,
    /// Nothing fails: setup and memory only.
    None,
}

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::SiteKill => "site-kill",
            Failure::Drain => "drain",
            Failure::PhoneLoss => "phone-loss",
            Failure::None => "none",
        }
    }
}

/// The run's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) desktops: usize,
    pub(crate) ramp: u64,
    pub(crate) failure: Failure,
    pub(crate) site_timeout: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) retry_jitter: Duration,
    pub(crate) register_timeout: Duration,
    pub(crate) platform_defaults: bool,
    pub(crate) phone_expires: Duration,
    pub(crate) scenario: Option<&'static str>,
}

impl Settings {
    fn new(args: &DesktopsArgs) -> anyhow::Result<Settings> {
        let mut settings = Settings {
            desktops: args.desktops,
            ramp: args.ramp,
            failure: args.failure,
            site_timeout: args.site_timeout,
            retry_delay: args.retry_delay,
            retry_jitter: args.retry_jitter,
            register_timeout: args.register_timeout,
            platform_defaults: args.platform_defaults,
            phone_expires: args.phone_expires.unwrap_or(match args.failure {
                Failure::PhoneLoss => Duration::from_secs(10),
                _ => Duration::from_secs(60),
            }),
            scenario: None,
        };
        if settings.platform_defaults {
            settings.site_timeout = Duration::from_secs(60);
            settings.retry_delay = Duration::from_secs(10);
            settings.retry_jitter = Duration::ZERO;
        }
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !(2..=MAX_DESKTOPS).contains(&self.desktops) {
            bail!("--desktops must be between 2 and {MAX_DESKTOPS}");
        }
        if self.ramp == 0 {
            bail!("--ramp must be at least 1 per second");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.phone_expires) {
            bail!("--phone-expires must be between 1s and 1h");
        }
        hotsite_desktop::Switchover::new(self.machine_options(), 0)
            .map_err(|e| anyhow::anyhow!("desktop options: {e}"))?;
        Ok(())
    }

    /// The switchover machine's options of every desktop.
    pub(crate) fn machine_options(&self) -> Options {
        let ms = |d: Duration| d.as_millis() as u64;
        let mut options = Options::with_defaults("a", "b");
        options.site_timeout_ms = Some(ms(self.site_timeout)).filter(|ms| *ms > 0);
        options.site_sip_register_timeout_ms = Some(ms(self.register_timeout)).filter(|ms| *ms > 0);
        options.retry_delay_ms = ms(self.retry_delay);
        options.retry_jitter_ms = ms(self.retry_jitter);
        options
    }

    /// The time within which every desktop of a must be logged in at b,
    /// and why.
    fn bound(&self) -> (Duration, String) {
        let two = Duration::from_secs(2);
        match self.failure {
            Failure::SiteKill if self.platform_defaults => (
                self.site_timeout + self.retry_delay + two,
                "site_timeout + retry_delay + 2 s (platform defaults)".to_owned(),
            ),
            Failure::SiteKill => (self.site_timeout + two, "site_timeout + 2 s".to_owned()),
            Failure::Drain => (
                self.retry_jitter + two,
                "retry_jitter + 2 s (graceful_shutdown_logout switches at once)".to_owned(),
            ),
            Failure::PhoneLoss => (
                self.phone_expires + self.register_timeout + self.retry_jitter + two,
                "phone_expires (the binding at a lapses at most one lifetime after the phone stops refreshing) + register_timeout + retry_jitter + 2 s".to_owned(),
            ),
            Failure::None => (Duration::ZERO, "no failure".to_owned()),
        }
    }

    fn shown(&self) -> ShownSettings {
        let (m, t, p) = rig::HASH_PARAMS;
        ShownSettings {
            site_timeout_ms: self.site_timeout.as_millis() as u64,
            retry_delay_ms: self.retry_delay.as_millis() as u64,
            retry_jitter_ms: self.retry_jitter.as_millis() as u64,
            register_timeout_ms: self.register_timeout.as_millis() as u64,
            platform_defaults: self.platform_defaults,
            ramp_per_s: self.ramp,
            phone_expires_s: self.phone_expires.as_secs(),
            password_hash: format!(
                "argon2id m={m} KiB, t={t}, p={p}: light, shared by all people; the tool measures the protocol and the switchover, not hashing"
            ),
        }
    }
}

/// Progress on stderr: a line per 10 % of a count, a status line at most
/// once a second.
pub(crate) struct Progress {
    enabled: bool,
    last_decile: AtomicU64,
    last_tick: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            last_decile: AtomicU64::new(0),
            last_tick: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn line(&self, text: &str) {
        if self.enabled {
            eprintln!("{text}");
        }
        self.last_decile.store(0, Ordering::Relaxed);
    }

    /// `done` of `total` `what`, printed at every tenth.
    pub(crate) fn every(&self, done: usize, total: usize, what: &str) {
        let decile = (done * 10 / total.max(1)) as u64;
        if self.enabled && decile > self.last_decile.swap(decile, Ordering::Relaxed) {
            eprintln!("  {done}/{total} {what}");
        }
        if done == total {
            self.last_decile.store(0, Ordering::Relaxed);
        }
    }

    /// A status line, at most once a second.
    pub(crate) fn tick(&self, text: &str) {
        let mut last = self.last_tick.lock().unwrap_or_else(|e| e.into_inner());
        let now = clock::now();
        if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
            *last = Some(now);
            if self.enabled {
                eprintln!("  {text}");
            }
        }
    }
}

/// `hotsite desktops`.
pub(crate) async fn run(args: DesktopsArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::new(&args)?;
    finish(&run_settings(&settings, args.json).await?, args.json)
}

/// `hotsite demo --scenario desktop-switchover`: the tool with `desktops`
/// desktops started at `ramp` per second, site a killed.
pub(crate) async fn demo(desktops: usize, ramp: u64, json: bool) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        desktops,
        ramp,
        failure: Failure::SiteKill,
        site_timeout: Duration::from_secs(10),
        retry_delay: Duration::from_secs(2),
        retry_jitter: Duration::from_secs(1),
        register_timeout: Duration::from_secs(10),
        platform_defaults: false,
        phone_expires: Duration::from_secs(60),
        scenario: Some("desktop-switchover"),
    };
    settings.check()?;
    finish(&run_settings(&settings, json).await?, json)
}

/// Prints the report and picks the exit code; a line per broken promise
/// on stderr.
fn finish(report: &Report, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        report.print();
    }
    for line in &report.broken {
        eprintln!("broken promise: {line}");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_settings(settings: &Settings, json: bool) -> anyhow::Result<Report> {
    let progress = Progress::new(!json || std::io::stderr().is_terminal());
    progress.line(&format!(
        "starting sites a and b with {} agents and DNs",
        settings.desktops
    ));
    let mut rig = Rig::start(settings).await?;
    let result = phases(settings, &mut rig, &progress).await;
    if result.is_err() {
        for site in &rig.sites {
            tracing::warn!(site = site.name, "site output:\n{}", site.log_tail());
        }
    }
    rig.shutdown().await;
    result
}

/// Phones, desktops, the failure, the storm, the checks.
async fn phases(settings: &Settings, rig: &mut Rig, progress: &Progress) -> anyhow::Result<Report> {
    let n = settings.desktops;
    let per_second = |rate: u64| Duration::from_secs_f64(n as f64 / rate as f64);

    progress.line(&format!("registering {n} phones at both sites"));
    let phones_started = clock::now();
    rig.start_phones(settings, progress).await?;
    let limit = Duration::from_secs(30) + per_second(settings.ramp);
    rig.wait_dns_in_service(n, limit, progress).await?;
    // From the first phone's start, not from the end of the ramp.
    let phones_in_service = phones_started.elapsed();

    let mut memory: Vec<SiteMemory> = rig
        .sites
        .iter()
        .map(|site| SiteMemory {
            site: site.name,
            pid: site.pid,
            rss_before_kib: rss_kib(site.pid),
            ..SiteMemory::default()
        })
        .collect();

    progress.line(&format!("connecting {n} desktops at {}/s", settings.ramp));
    let mut fleet = Fleet::new(settings);
    let started = clock::now();
    let mut sampled_1000 = n < 1_000;
    let mut sample_1000 = |fleet: &Fleet, memory: &mut [SiteMemory]| {
        let counts = fleet.counts();
        if !sampled_1000 && counts.logged_in >= 1_000 {
            sampled_1000 = true;
            for (i, m) in memory.iter_mut().enumerate() {
                m.rss_at_1000_kib = rss_kib(m.pid);
                m.connections_at_1000 = Some(counts.connected[i]);
            }
        }
        counts
    };
    for i in 0..n {
        pace(started, i, settings.ramp).await;
        fleet.start_one(i, settings, &rig.urls)?;
        if i % 50 == 0 {
            sample_1000(&fleet, &mut memory);
        }
        progress.every(i + 1, n, "desktops started");
    }
    let limit = Duration::from_secs(30) + per_second(settings.ramp);
    loop {
        let counts = sample_1000(&fleet, &mut memory);
        if counts.ready == n {
            break;
        }
        if counts.stopped > 0 || started.elapsed() > limit {
            bail!(
                "desktops after {:.1} s: {} logged in, {} Ready, {} stopped (refused) of {n}",
                started.elapsed().as_secs_f64(),
                counts.logged_in,
                counts.ready,
                counts.stopped
            );
        }
        progress.tick(&format!(
            "connecting desktops: {} logged in, {} Ready of {n}",
            counts.logged_in, counts.ready
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let desktops_ready = started.elapsed();
    // Let the last logins' allocations settle before the sample at N.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = fleet.counts();
    for (i, m) in memory.iter_mut().enumerate() {
        m.rss_at_n_kib = rss_kib(m.pid);
        m.connections_at_n = counts.connected[i];
        m.finish();
    }
    let per_desktop_at_n = {
        let delta: Option<u64> = memory
            .iter()
            .map(|m| Some(m.rss_at_n_kib?.saturating_sub(m.rss_before_kib?)))
            .sum();
        delta.map(|d| round_ms(d as f64 / n as f64))
    };

    let switching: Vec<usize> = fleet.with_tracks(|tracks| {
        (0..tracks.len())
            .filter(|i| tracks[*i].logged_in.as_deref() == Some("a"))
            .collect()
    });
    let (bound, bound_why) = settings.bound();
    let b_pid = rig.sites[1].pid;
    let cpu_before = cpu_ticks(b_pid);
    let failure_at = clock::now();
    match settings.failure {
        Failure::SiteKill => {
            progress.line(&format!("killing site a (pid {})", rig.sites[0].pid));
            rig.sites[0].kill();
        }
        Failure::Drain => {
            progress.line("draining site a");
            rig.drain_a().await?;
        }
        Failure::PhoneLoss => {
            progress.line(&format!(
                "the phones of site a's {} agents stop registering at a",
                switching.len()
            ));
            let people: Vec<usize> = switching.clone();
            rig.stop_registering_at_a(&people)?;
        }
        Failure::None => progress.line("no failure"),
    }

    // The storm: until every desktop of a is Ready at b, or well past the
    // bound. CPU of b sampled every 100 ms, to stop at the last switch.
    let mut cpu_samples: Vec<(Instant, Option<u64>)> = vec![(failure_at, cpu_before)];
    if settings.failure != Failure::None {
        let deadline = failure_at + bound + Duration::from_secs(5);
        loop {
            let (logged_in, ready) = fleet.with_tracks(|tracks| {
                let at_b = |i: &&usize| tracks[**i].logged_in.as_deref() == Some("b");
                let logged_in = switching.iter().filter(at_b).count();
                let ready = switching
                    .iter()
                    .filter(at_b)
                    .filter(|i| tracks[**i].ready)
                    .count();
                (logged_in, ready)
            });
            cpu_samples.push((clock::now(), cpu_ticks(b_pid)));
            if ready == switching.len() || clock::now() > deadline {
                break;
            }
            progress.tick(&format!(
                "waiting for switchovers: {logged_in} logged in at b, {ready} Ready, of {} ({:.1} s since the failure)",
                switching.len(),
                failure_at.elapsed().as_secs_f64()
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut notes = Vec::new();
    if settings.failure == Failure::Drain
        && !rig.sites[0].ended_within(Duration::from_secs(10)).await
    {
        notes.push("site a did not stop within 10 s of the last switch (drain)".to_owned());
    }
    // Logins settle at both sites (a's claim of an agent logged in at b).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let tracks = fleet.tracks();
    let analysis = analyse(&tracks, &switching, failure_at);
    let cpu_b_s = analysis.last_switch.and_then(|last| {
        let before = cpu_before?;
        // The first sample at or after the last switch (the last sample
        // when the wait ended first).
        let (_, after) = cpu_samples
            .iter()
            .find(|(at, _)| *at >= last)
            .or(cpu_samples.last())?;
        Some(round_ms(
            after.as_ref()?.saturating_sub(before) as f64 / USER_HZ,
        ))
    });

    // Who is logged in where, as the sites say.
    let a_alive = rig.sites[0].alive();
    let at_a = if a_alive { rig.agents(0).await } else { None };
    let at_b = rig.agents(1).await;
    let hellos_at_b = rig.hellos(1).await.unwrap_or_default();
    let logged_in = |agents: &Option<Vec<(String, String)>>, user: &str| {
        agents.as_ref().is_some_and(|list| {
            list.iter()
                .any(|(id, state)| id == user && state != "logged_out")
        })
    };
    let mut two_sites = 0;
    let mut left_logged_out = 0;
    let mut left_users = Vec::new();
    for i in 0..n {
        let (user, _, _) = person(i);
        let (a, b) = (logged_in(&at_a, &user), logged_in(&at_b, &user));
        two_sites += u64::from(a && b);
        if !a && !b {
            left_logged_out += 1;
            if left_users.len() < 20 {
                left_users.push(user);
            }
        }
    }
    if !left_users.is_empty() {
        notes.push(format!("logged in nowhere: {}", left_users.join(", ")));
    }
    if at_b.is_none() {
        notes.push("site b did not answer /v1/agents".to_owned());
    }
    let two_sites = (a_alive && at_a.is_some()).then_some(two_sites);
    fleet.stop(Duration::from_secs(10)).await;

    let attempts = attempts_shown(
        &analysis.attempts_at_b,
        &analysis.failures_at_b,
        switching.len(),
        settings.retry_jitter.as_millis() as u64,
    );
    let bound_s = bound.as_secs_f64();
    let mut promises = match settings.failure {
        Failure::None => Vec::new(),
        _ => promises(
            switching.len(),
            &analysis.login_s,
            bound_s,
            two_sites,
            left_logged_out,
            &attempts,
        ),
    };
    if settings.failure == Failure::None {
        promises.push(report::Promise {
            name: "none_left_logged_out",
            holds: left_logged_out == 0,
            detail: format!("{left_logged_out} agents logged in at no site"),
        });
    }
    let broken: Vec<String> = promises
        .iter()
        .filter(|p| !p.holds)
        .map(|p| format!("{}: {}", p.name, p.detail))
        .collect();
    if settings.retry_jitter >= Duration::from_secs(2) && settings.failure == Failure::SiteKill {
        notes.push("retry_jitter is at least the bound's 2 s margin: a switchover's connect may wait the whole margin".to_owned());
    }
    let mut not_switched = analysis.not_switched.clone();
    not_switched.truncate(20);
    Ok(Report {
        tool: "hotsite desktops",
        scenario: settings.scenario,
        ok: broken.is_empty(),
        failure: settings.failure.name(),
        desktops: n,
        settings: settings.shown(),
        phones_in_service_s: round_ms(phones_in_service.as_secs_f64()),
        desktops_ready_s: round_ms(desktops_ready.as_secs_f64()),
        memory,
        per_desktop_kib_at_n: per_desktop_at_n,
        at_a: switching.len(),
        switched: analysis.login_s.len(),
        not_switched,
        login_at_b: Times::of(analysis.login_s.clone()),
        ready_at_b: Times::of(analysis.ready_s.clone()),
        reasons: analysis.reasons.clone(),
        switch_reasons: analysis.switch_reasons.clone(),
        attempts_at_b: attempts,
        storm_s: analysis
            .last_switch
            .map(|at| round_ms(at.saturating_duration_since(failure_at).as_secs_f64())),
        cpu_b_s,
        hellos_at_b,
        bound_s,
        bound: bound_why,
        logged_in_at_two_sites: two_sites,
        left_logged_out,
        promises,
        broken,
        notes,
    })
}
