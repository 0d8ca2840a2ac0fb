//! `hotsite`: one program per site that keeps messages, calls, recordings and
//! agents working through failures.
//!
//! Only this crate parses arguments, installs the tracing subscriber and picks
//! the exit code (ARCHITECTURE.md).
//!
//! `demo`, `desktops`, `lab` and `bench` come with the default `lab` feature; a production
//! build (`--no-default-features`) has `run`, `send`, `status` and
//! `check-config` only and links no simulator (DESIGN.md "Workspace layout").

mod check_config;
mod client;
mod clock;
mod config;
#[cfg(feature = "lab")]
mod demo;
#[cfg(feature = "lab")]
mod desktops;
mod help;
#[cfg(feature = "lab")]
mod lab;
#[cfg(not(feature = "lab"))]
mod no_lab;
mod notify;
mod recording;
mod recording_tap;
mod run;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hotsite",
    version,
    about = "Keeps messages, calls, recordings and agents working through site failures."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a demo on loopback: simulated far ends, hotsite, traffic, failures
    /// injected mid-run, then a report. The default scenario binds over SMPP
    /// to two sites of two SMSCs, kills a site and blackholes an SMSC;
    /// --scenario picks another (HTTP site failover, DNS move, digital
    /// fallback to e-mail, trunk-failover: calls through the SIP trunk proxy
    /// while the preferred trunk dies silently and comes back, or two peered
    /// contact-center sites through a site failure, a link failure or a
    /// graceful shutdown).
    #[cfg(feature = "lab")]
    Demo(demo::DemoArgs),
    /// Load and demo tool of the agent desktops (SPEC D1-D8): two `hotsite
    /// run` sites as child processes, N lab phones registered at both, N
    /// simulated desktops spread over preferred sites; a failure (site-kill,
    /// drain, phone-loss); a report of who switched, when and why, memory
    /// per desktop, connection attempts per second, and the promises (exits
    /// non-zero on a broken one).
    #[cfg(feature = "lab")]
    Desktops(desktops::DesktopsArgs),
    /// Measures throughput, latency and memory: hotsite's gateway (and, with
    /// --target kannel, Kannel) against the simulated aggregator on loopback.
    #[cfg(feature = "lab")]
    Bench(hotsite_bench::messaging::BenchArgs),
    /// Runs the simulated aggregator and prints the addresses it listens on.
    #[cfg(feature = "lab")]
    Lab {
        /// Lab configuration (see examples/lab.toml).
        #[arg(long)]
        config: PathBuf,
    },
    // Without the lab: hidden, so that typing one says why it is missing.
    #[cfg(not(feature = "lab"))]
    #[command(hide = true, disable_help_flag = true)]
    Demo(no_lab::NotInThisBuild),
    #[cfg(not(feature = "lab"))]
    #[command(hide = true, disable_help_flag = true)]
    Bench(no_lab::NotInThisBuild),
    #[cfg(not(feature = "lab"))]
    #[command(hide = true, disable_help_flag = true)]
    Lab(no_lab::NotInThisBuild),
    #[cfg(not(feature = "lab"))]
    #[command(hide = true, disable_help_flag = true)]
    Desktops(no_lab::NotInThisBuild),
    /// Runs the systems of one site that the configuration names (messaging:
    /// durable store, SMPP binds to every SMSC of every site, other
    /// channels, MO/DR webhooks; voice; recording; site; desktop) behind one
    /// HTTP API. Stops on SIGINT/SIGTERM, or by itself at the end of a site
    /// drain. Under systemd (Type=notify) it says when it is ready and when it
    /// stops, and answers the watchdog.
    Run {
        /// Gateway configuration (see examples/hotsite.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Submits one message through a running gateway.
    Send {
        /// The gateway's configuration (for its address and a token).
        #[arg(long, default_value = "hotsite.toml")]
        config: PathBuf,
        /// Recipient, e.g. +4917012345678.
        #[arg(long)]
        to: String,
        /// The text.
        #[arg(long)]
        text: String,
        /// Sender (defaults to the gateway's api.default_from).
        #[arg(long)]
        from: Option<String>,
        /// Idempotency key: sending twice with the same key sends once.
        #[arg(long)]
        key: Option<String>,
        /// API base URL, overriding the config (e.g. http://127.0.0.1:28080).
        #[arg(long)]
        api: Option<String>,
        /// Bearer token, overriding the config's first token.
        #[arg(long)]
        token: Option<String>,
    },
    /// Shows a running site's picture: site and peer link, SMSC binds per
    /// provider site, HTTP aggregator sites, channels, trunks, queue, agents,
    /// failovers.
    ///
    /// The picture: site mode and peer link; SMSC binds grouped by provider
    /// site, each with its state, since when and why; HTTP aggregator sites;
    /// digital and e-mail channels with their endpoint's health; trunks with cause and since; queue depth (and, with --follow, messages
    /// per second); agents; and a timeline of failover decisions (time,
    /// system, target, state, cause; connection attempts and retries left
    /// out), newest last, filtered with --system. Sections of systems the
    /// gateway does not run are left out.
    ///
    /// With --follow it stays on and updates live from the event stream
    /// (GET /v1/events/stream). On a terminal the screen is redrawn in place
    /// (colours unless NO_COLOR is set). Piped, it prints the picture, then
    /// one `event …` line per event as it arrives and a new picture when the
    /// status changed. When the stream or the gateway drops it says
    /// `reconnecting…` and resumes after the last event seen; it stops on
    /// Ctrl-C or SIGTERM (exit 0). A refused token is an error (exit 1).
    Status {
        /// The gateway's configuration (for its address and a token).
        #[arg(long, default_value = "hotsite.toml")]
        config: PathBuf,
        /// Print the raw JSON of /v1/status.
        #[arg(long, conflicts_with = "follow")]
        json: bool,
        /// Stay on: update the picture from the event stream until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// Only this system's events in the timeline (messaging, voice,
        /// site, desktop, recording); repeat for several.
        #[arg(long = "system", value_name = "NAME")]
        systems: Vec<String>,
        /// API base URL, overriding the config.
        #[arg(long)]
        api: Option<String>,
        /// Bearer token, overriding the config's first token.
        #[arg(long)]
        token: Option<String>,
    },
    /// Business continuity of a running site (SPEC S1-S8): `hotsite site
    /// drain` starts a graceful shutdown (SPEC S7: new calls rejected or
    /// redirected to the peer, agents logged out as their calls end, the
    /// process stops when no call is left); `hotsite site status` shows the
    /// mode, the peer, DNs and agents.
    Site {
        /// What to do.
        #[command(subcommand)]
        action: SiteAction,
        /// The site's configuration (for its API address and a token).
        #[arg(long, default_value = "hotsite.toml", global = true)]
        config: PathBuf,
        /// API base URL, overriding the config.
        #[arg(long, global = true)]
        api: Option<String>,
        /// Bearer token, overriding the config's first token.
        #[arg(long, global = true)]
        token: Option<String>,
    },
    /// Agent desktops (SPEC D1-D8): `hotsite desktop hash-password` reads a
    /// password from stdin and prints its Argon2id PHC string for
    /// `[[desktop.people]] password_hash`.
    Desktop {
        /// What to do.
        #[command(subcommand)]
        action: DesktopAction,
    },
    /// Recordings (SPEC R3): `hotsite recording verify MANIFEST [FILES]`
    /// checks a recording's signed manifest and its files offline and names
    /// the first bad one; `hotsite recording keygen --out FILE` writes a
    /// signing key for manifests.
    Recording {
        /// What to do.
        #[command(subcommand)]
        action: recording::RecordingAction,
    },
    /// Validates a configuration file (gateway or lab); exits non-zero with
    /// every error, each naming its key.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        /// Also check this host: bind every listen address of a gateway file
        /// (api.listen, voice.listen) and open or create its store, without
        /// keeping anything. Off by default so a running gateway's own file
        /// (whose ports are taken) can be checked.
        #[arg(long)]
        runtime: bool,
    },
    /// Prints a completion script for SHELL on stdout (bash, zsh, fish,
    /// elvish or powershell): commands, options and their values.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the manual page hotsite(1) in roff on stdout, or with --dir
    /// writes it and a page per command (hotsite-run(1), …) there.
    Man {
        /// Where to write the pages, e.g. /usr/local/share/man/man1.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `hotsite site …`.
#[derive(Debug, clap::Subcommand)]
enum SiteAction {
    /// Starts draining the site (SPEC S7) and prints its state.
    Drain,
    /// Prints the site's mode, peer, DNs and agents.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hotsite desktop …`.
#[derive(Debug, clap::Subcommand)]
enum DesktopAction {
    /// Reads a password from stdin (one line, or all of it without the final
    /// newline) and prints its Argon2id PHC string.
    HashPassword,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOTSITE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = help::parse();
    let result = match cli.command {
        Command::CheckConfig { file, runtime } => return check_config::run(&file, runtime),
        Command::Completions { shell } => {
            help::completions(shell);
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => help::man(dir.as_deref()).map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "lab")]
        Command::Lab { config } => runtime().and_then(|rt| rt.block_on(lab::run(&config))),
        Command::Run { config } => runtime().and_then(|rt| rt.block_on(run::run(&config))),
        Command::Send {
            config,
            to,
            text,
            from,
            key,
            api,
            token,
        } => client::Endpoint::new(&config, api, token)
            .and_then(|endpoint| runtime()?.block_on(client::send(endpoint, to, text, from, key))),
        Command::Status {
            config,
            json,
            follow,
            systems,
            api,
            token,
        } => client::Endpoint::new(&config, api, token).and_then(|endpoint| {
            runtime()?.block_on(client::status(endpoint, json, follow, systems))
        }),
        Command::Site {
            action,
            config,
            api,
            token,
        } => client::Endpoint::new(&config, api, token).and_then(|endpoint| {
            let (drain, json) = match action {
                SiteAction::Drain => (true, false),
                SiteAction::Status { json } => (false, json),
            };
            runtime()?.block_on(client::site(endpoint, drain, json))
        }),
        Command::Desktop {
            action: DesktopAction::HashPassword,
        } => hash_password(),
        Command::Recording { action } => recording::run(action),
        #[cfg(feature = "lab")]
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(args))),
        #[cfg(feature = "lab")]
        Command::Desktops(args) => runtime().and_then(|rt| rt.block_on(desktops::run(args))),
        #[cfg(feature = "lab")]
        Command::Bench(args) => std::env::current_exe()
            .map_err(|error| anyhow::anyhow!("cannot find this program's path: {error}"))
            .and_then(|hotsite| runtime()?.block_on(hotsite_bench::messaging::run(args, hotsite))),
        #[cfg(not(feature = "lab"))]
        Command::Demo(_) => return no_lab::refuse("demo"),
        #[cfg(not(feature = "lab"))]
        Command::Bench(_) => return no_lab::refuse("bench"),
        #[cfg(not(feature = "lab"))]
        Command::Lab(_) => return no_lab::refuse("lab"),
        #[cfg(not(feature = "lab"))]
        Command::Desktops(_) => return no_lab::refuse("desktops"),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `hotsite desktop hash-password`: stdin to a PHC string on stdout.
fn hash_password() -> anyhow::Result<ExitCode> {
    use std::io::Read;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|error| anyhow::anyhow!("cannot read the password from stdin: {error}"))?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        anyhow::bail!("no password on stdin (e.g. `printf '%s' \"$PASSWORD\" | hotsite desktop hash-password`)");
    }
    let phc = hotsite_desktop::service::password::hash_password(password)
        .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))?;
    println!("{phc}");
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
