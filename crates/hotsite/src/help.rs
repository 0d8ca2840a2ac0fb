//! The manual. `hotsite --help` and each command's `--help` read like a man
//! page (DESCRIPTION, COMMANDS, EXAMPLES, ENVIRONMENT, FILES, EXIT STATUS,
//! SEE ALSO); `-h` stays a summary. `hotsite man` renders the same sections
//! as roff pages, `hotsite completions SHELL` a completion script, both from
//! the one command definition (`clap_mangen`, `clap_complete`).
//!
//! The texts live here rather than in main.rs's derive attributes, so the
//! command definitions stay short; [`command`] attaches them by command name.

use std::io::Write;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches};

use crate::Cli;

/// Width the texts are wrapped to (clap wraps nothing without a feature).
const WIDTH: usize = 80;

/// One part of a section.
pub(crate) enum Entry {
    /// A paragraph.
    Text(&'static str),
    /// A term and what it means (an environment variable, a file, a code).
    Item(&'static str, &'static str),
    /// What an example does, and the command line.
    Example(&'static str, &'static str),
}

/// A man-page section: `EXAMPLES`, `FILES`, …
pub(crate) struct Section {
    pub(crate) title: &'static str,
    pub(crate) entries: Vec<Entry>,
}

fn section(title: &'static str, entries: Vec<Entry>) -> Section {
    Section { title, entries }
}

use Entry::{Example, Item, Text};

/// The command line's definition with the manual attached.
pub(crate) fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .subcommand_help_heading("COMMANDS")
        .help_template(ROOT_TEMPLATE)
        .before_long_help(render_text(&[description()]))
        .after_help("See 'hotsite --help' for the manual (examples, environment, files, exit status), 'hotsite COMMAND --help' for each command's.")
        .after_long_help(render_text(&root_sections()));
    cmd = decorate_commands(cmd, "");
    cmd
}

/// Attaches the manual to every command under `cmd` (whose path is
/// `parent`, "" for hotsite itself): its order, a one-line summary for
/// COMMANDS, its doc comment wrapped as its --help, its sections.
fn decorate_commands(mut cmd: clap::Command, parent: &str) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        let path = if parent.is_empty() {
            name.clone()
        } else {
            format!("{parent} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |mut sub| {
            if let Some(order) = ORDER.iter().position(|n| *n == path) {
                sub = sub.display_order(order);
            }
            if let Some(long) = sub.get_long_about().or(sub.get_about()) {
                let long = wrap_paragraphs(&long.to_string());
                sub = sub.long_about(long);
            }
            if let Some((_, summary)) = SUMMARIES.iter().find(|(n, _)| *n == path) {
                sub = sub.about(*summary);
            }
            let sections = command_sections(&path);
            if !sections.is_empty() {
                sub = sub.after_long_help(render_text(&sections));
            }
            decorate_commands(sub, &path)
        });
    }
    cmd
}

/// The order of COMMANDS: running a site, talking to it, files, the
/// packaging helpers, then the simulator.
const ORDER: &[&str] = &[
    "run",
    "send",
    "status",
    "site",
    "check-config",
    "recording",
    "desktop",
    "completions",
    "man",
    "demo",
    "lab",
    "bench",
    "desktops",
];

/// One line for COMMANDS where a command's first paragraph is longer; the
/// paragraph is its `--help`.
const SUMMARIES: &[(&str, &str)] = &[
    (
        "run",
        "Runs this site's systems behind one HTTP API, until SIGTERM or a drain",
    ),
    (
        "status",
        "Shows a running site's picture, once or live with --follow",
    ),
    (
        "site",
        "Drains a running site or shows its mode, peer, DNs and agents",
    ),
    (
        "check-config",
        "Validates a configuration file, naming the key of every problem",
    ),
    (
        "recording",
        "Verifies a recording's signed manifest offline; makes signing keys",
    ),
    (
        "desktop",
        "Hashes an agent desktop password for the configuration",
    ),
    ("completions", "Prints a shell completion script"),
    (
        "recording verify",
        "Checks a recording's manifest, signature and files offline",
    ),
    (
        "recording keygen",
        "Writes a new Ed25519 signing key for manifests",
    ),
    ("man", "Prints or installs the manual pages"),
    (
        "demo",
        "Shows a failover on loopback: simulated far ends, traffic, a report",
    ),
    (
        "bench",
        "Measures throughput, latency and memory against the simulated aggregator",
    ),
    (
        "desktops",
        "Switches simulated agent desktops between two local sites; a report",
    ),
];

/// Parses the process's arguments against [`command`] (clap's usual exit on
/// `--help` or a usage error, code 2).
pub(crate) fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Root help: the usage right after the one-line summary, then the
/// description (long help only), the commands and options, then the
/// manual's other sections (long help only).
const ROOT_TEMPLATE: &str =
    "{name} {version}\n{about-with-newline}\n{usage-heading} {usage}\n\n{before-help}{all-args}{after-help}";

/// DESCRIPTION of `hotsite`.
fn description() -> Section {
    section(
        "DESCRIPTION",
        vec![
            Text("hotsite is one program per site of a contact-center platform that keeps messages, calls, recordings and agents working when a data-center site, a carrier trunk, an SMS aggregator's SMSC, a cloud recorder or the link between sites fails, with nothing lost and nothing delivered twice."),
            Text("'hotsite run' starts the systems its configuration file names, behind one HTTP API (bearer tokens; /v1/status, /v1/health, /metrics, /v1/events and its live stream, /v1/openapi.json):"),
            Item("messaging", "SMS over SMPP to every SMSC of every aggregator site at once, the aggregator's HTTP API, digital channels and e-mail as fallback routes; a durable store (SQLite, or PostgreSQL shared by both sites' gateways) whose 202 means on disk; receipts and MO messages to a signed webhook ([smpp], [[routes]], [store], [webhook])."),
            Item("voice", "a SIP trunk failover proxy: calls go to trunks by priority and move to the next within the same call; RTP anchoring for the edge recording ([voice])."),
            Item("recording", "every anchored call journaled at the edge, merged with the provider's cloud recording, signed (Ed25519) and uploaded to a folder or S3 ([recording])."),
            Item("site", "business continuity of a pair of sites: registrar for agent phones, agents, calls to their DNs, the peer link, forced logout, graceful drain ([site] listen)."),
            Item("desktop", "agent desktops, one WebSocket each, switching to the other site when theirs fails ([desktop])."),
            Text("The other commands talk to a running hotsite (send, status, site), check files (check-config, recording verify), write keys and password hashes, print completion scripts and this manual, or run the simulator (demo, lab, bench, desktops: default builds only)."),
        ],
    )
}

/// The sections after COMMANDS and OPTIONS in `hotsite --help`.
fn root_sections() -> Vec<Section> {
    let mut examples = vec![
        Example("Check a configuration (every problem, each naming its key), then run the site in the foreground:", "hotsite check-config /etc/hotsite/hotsite.toml\nhotsite run --config /etc/hotsite/hotsite.toml"),
        Example("Send a message through the running gateway, once whatever the retries:", "hotsite send --config /etc/hotsite/hotsite.toml --to +4917012345678 --text 'Your code is 1234' --key order-1234"),
        Example("See binds, trunks, queue depth and recent failovers:", "hotsite status --config /etc/hotsite/hotsite.toml"),
        Example("Take the site down gracefully (new calls refused or sent to the peer, the process stops when no call is left):", "hotsite site drain --config /etc/hotsite/hotsite.toml"),
        Example("Install bash completions:", "hotsite completions bash > /usr/share/bash-completion/completions/hotsite"),
    ];
    if cfg!(feature = "lab") {
        examples.push(Example(
            "Watch a failover on loopback, with simulated SMSCs, trunks or sites:",
            "hotsite demo --scenario trunk-failover",
        ));
    }
    vec![
        section("EXAMPLES", examples),
        section(
            "ENVIRONMENT",
            vec![
                Item("HOTSITE_LOG", "What is logged to stderr, as a tracing filter: 'warn' when unset, which logs every failure event (a bind, trunk or peer down, a drain); 'info' adds recoveries, reroutes and agent changes; e.g. 'info,hotsite_messaging=debug'."),
                Item("NOTIFY_SOCKET", "Set by systemd for Type=notify units: 'hotsite run' sends READY=1 once the API serves and every system has started, STOPPING=1 at SIGTERM or when a site drain starts (with EXTEND_TIMEOUT_USEC for the drain's time). Unset: nothing is sent."),
                Item("WATCHDOG_USEC, WATCHDOG_PID", "Set by systemd's WatchdogSec=: 'hotsite run' sends WATCHDOG=1 every quarter of the interval while the host answers its own /v1/health."),
                Item("HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY", "Honoured by outgoing HTTP: webhooks, aggregator and digital-channel requests, RFC 3161 timestamps, and send, status and site."),
            ],
        ),
        section(
            "FILES",
            vec![
                Item("/etc/hotsite/hotsite.toml", "The configuration under systemd (deploy/systemd/hotsite.service); the client commands read it for the API address and a token (--config, default ./hotsite.toml). Annotated example: examples/hotsite.toml."),
                Item("/var/lib/hotsite", "The unit's working directory: relative paths in the configuration resolve from the working directory, so under systemd the defaults put the SQLite store (hotsite.db, with its -wal and -shm files), the recordings (recordings/) and the recording signing key here."),
            ],
        ),
        section(
            "EXIT STATUS",
            vec![
                Item("0", "Success; 'run' stopped by SIGINT or SIGTERM, or at the end of a site drain."),
                Item("1", "Failure: 'run' could not start (a port taken, the store unreachable, a system that failed to start); a request refused by the API or an API not answering; 'recording verify' found a bad item; a demo or desktops run broke a promise."),
                Item("2", "Usage: an invalid configuration ('check-config', and 'run' before opening anything), an unreadable file, a wrong argument, or a command this build does not have."),
            ],
        ),
        section(
            "SEE ALSO",
            vec![
                Text("README.md (operation, configuration, monitoring), ARCHITECTURE.md, examples/hotsite.toml and deploy/systemd/ (the unit, drop-in examples, how to install them) in hotsite's source; the API's own description at /v1/openapi.json on the running host; the console at /console/ of the API address; systemd.service(5), sd_notify(3)."),
            ],
        ),
    ]
}

/// The sections after a subcommand's options in its `--help`.
fn command_sections(name: &str) -> Vec<Section> {
    match name {
        "run" => vec![
            section("EXAMPLES", vec![
                Example("Check the file and this host (ports free, store writable), then run:", "hotsite check-config --runtime hotsite.toml && hotsite run --config hotsite.toml"),
                Example("Run with every event (recoveries and reroutes too) and the messaging system's details logged:", "HOTSITE_LOG=info,hotsite_messaging=debug hotsite run --config hotsite.toml"),
                Example("Run under systemd (Type=notify, watchdog, hardening: deploy/systemd/):", "systemctl enable --now hotsite"),
            ]),
            section("SIGNALS", vec![
                Text("SIGINT and SIGTERM stop the process: the API stops taking connections (requests in progress get 5 s), then each system stops in reverse start order; SMPP binds unbind, queued messages stay in the store. A site drain ('hotsite site drain') ends the process by itself once no call is left, or after site.drain_timeout."),
            ]),
            section("EXIT STATUS", vec![
                Item("0", "Stopped by a signal or at the end of a drain."),
                Item("1", "Could not start: a port taken, the store unreachable, a system that failed to start."),
                Item("2", "The configuration is unreadable or invalid (every problem printed, each naming its key); nothing was opened."),
            ]),
        ],
        "send" => vec![section("EXAMPLES", vec![
            Example("Send one message; the answer is its id and status:", "hotsite send --config hotsite.toml --to +4917012345678 --text 'Your code is 1234'"),
            Example("Retry safely: the same key sends once ('duplicate message N' the second time):", "hotsite send --to +4917012345678 --text 'Your code is 1234' --key order-1234"),
            Example("Through another site's gateway, with its token:", "hotsite send --api http://10.0.0.2:28080 --token \"$HOTSITE_TOKEN\" --to +4917012345678 --text hello"),
        ]), section("EXIT STATUS", vec![
            Item("0", "Accepted (or a duplicate of a message already accepted)."),
            Item("1", "Refused (the API's status and answer are printed) or the API did not answer."),
        ])],
        "status" => vec![section("EXAMPLES", vec![
            Example("The picture once: site and peer link, binds per SMSC, aggregator sites, channels, trunks, queue, agents, recent failovers:", "hotsite status --config /etc/hotsite/hotsite.toml"),
            Example("Live during an incident, redrawn in place until Ctrl-C:", "hotsite status --config /etc/hotsite/hotsite.toml --follow"),
            Example("Only the messaging and voice decisions in the timeline, piped to a log (one line per event):", "hotsite status --follow --system messaging --system voice | tee incident.log"),
            Example("Everything the host reports, as JSON:", "hotsite status --json | jq ."),
        ])],
        "site" => vec![section("EXAMPLES", vec![
            Example("Mode (peered, single_site, draining), the peer, DNs and agents:", "hotsite site status --config /etc/hotsite/hotsite.toml"),
            Example("Drain the site for maintenance: new calls get site.shutdown_sip_reject_code (603, or 302 to the peer), agents are logged out as their calls end, and the process stops when no call is left (under systemd the unit then stays stopped):", "hotsite site drain --config /etc/hotsite/hotsite.toml"),
        ])],
        "check-config" => vec![
            section("EXAMPLES", vec![
                Example("Check a file before a restart (a running gateway's own file can be checked):", "hotsite check-config /etc/hotsite/hotsite.toml"),
                Example("On a new host, also bind every listen address and open the store:", "hotsite check-config --runtime /etc/hotsite/hotsite.toml"),
            ]),
            section("EXIT STATUS", vec![
                Item("0", "Valid; one line says what the file configures."),
                Item("2", "Unreadable or invalid: every problem on stderr as 'FILE: key: reason'."),
            ]),
        ],
        "recording" => vec![
            section("EXAMPLES", vec![
                Example("Make the signing key the configuration's recording.signing_key names:", "hotsite recording keygen --out /var/lib/hotsite/recording-key.pem"),
                Example("Check a recording offline, pinned to the site's public key:", "hotsite recording verify --public-key \"$PUBLIC_KEY\" recordings/calls/1767225600000-abc/manifest.json"),
            ]),
            section("EXIT STATUS", vec![
                Item("0", "Every check passed (verify), or the key was written (keygen)."),
                Item("1", "verify: the first bad item is named ('FAIL …'); keygen: the key could not be written."),
                Item("2", "verify: --public-key is not a key."),
            ]),
        ],
        "desktop" => vec![section("EXAMPLES", vec![
            Example("The hash for a person's [[desktop.people]] password_hash:", "printf '%s' \"$PASSWORD\" | hotsite desktop hash-password"),
        ])],
        "completions" => vec![section("EXAMPLES", vec![
            Example("bash, for every user (bash-completion loads it on first use):", "hotsite completions bash > /usr/share/bash-completion/completions/hotsite"),
            Example("bash, in the current shell only:", "source <(hotsite completions bash)"),
            Example("zsh (a directory of $fpath; compinit loads it):", "hotsite completions zsh > /usr/local/share/zsh/site-functions/_hotsite"),
            Example("fish:", "hotsite completions fish > ~/.config/fish/completions/hotsite.fish"),
        ])],
        "man" => vec![section("EXAMPLES", vec![
            Example("Read the manual page:", "hotsite man | man -l -"),
            Example("Install hotsite(1) and a page per command (hotsite-run(1), …):", "hotsite man --dir /usr/local/share/man/man1"),
        ])],
        "demo" if cfg!(feature = "lab") => vec![section("EXAMPLES", vec![
            Example("SMPP binds to two sites of two SMSCs: a site dies, an SMSC is blackholed:", "hotsite demo"),
            Example("Calls through the trunk proxy while the preferred trunk dies silently:", "hotsite demo --scenario trunk-failover"),
            Example("Two peered sites, one drained with a call in progress; the report as JSON:", "hotsite demo --scenario graceful-shutdown --json"),
        ])],
        "lab" if cfg!(feature = "lab") => vec![section("EXAMPLES", vec![
            Example("The simulated aggregator that examples/hotsite.toml binds to:", "hotsite lab --config examples/lab.toml"),
        ])],
        "bench" if cfg!(feature = "lab") => vec![section("EXAMPLES", vec![
            Example("hotsite and Kannel against the same simulated SMSCs (a release build):", "hotsite bench"),
            Example("hotsite only, plus accept-to-submit latency at half the peak rate:", "hotsite bench --target hotsite --latency"),
        ])],
        "desktops" if cfg!(feature = "lab") => vec![section("EXAMPLES", vec![
            Example("300 desktops at two sites, site a killed; who switched, when and why:", "hotsite desktops"),
            Example("The same with a drain of site a instead:", "hotsite desktops --failure drain"),
        ])],
        _ => Vec::new(),
    }
}

/// The sections as plain text: headings flush left, text indented and
/// wrapped, command lines indented further and never wrapped.
pub(crate) fn render_text(sections: &[Section]) -> String {
    let mut out = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(section.title);
        out.push('\n');
        for (j, entry) in section.entries.iter().enumerate() {
            if j > 0 {
                out.push('\n');
            }
            match entry {
                Text(text) => wrap(&mut out, text, 4),
                Item(term, text) => {
                    out.push_str("    ");
                    out.push_str(term);
                    out.push('\n');
                    wrap(&mut out, text, 8);
                }
                Example(what, lines) => {
                    wrap(&mut out, what, 4);
                    for line in lines.lines() {
                        out.push_str("        ");
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
        }
    }
    out.trim_end().to_owned()
}

/// `text`'s paragraphs (blank-line separated) wrapped at [`WIDTH`].
fn wrap_paragraphs(text: &str) -> String {
    let mut out = String::new();
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push('\n');
        }
        wrap(&mut out, paragraph, 0);
    }
    out.trim_end().to_owned()
}

/// Appends `text` wrapped at [`WIDTH`], every line indented by `indent`.
fn wrap(out: &mut String, text: &str, indent: usize) {
    let mut column = 0;
    for word in text.split_whitespace() {
        if column > indent && column + 1 + word.chars().count() > WIDTH {
            out.push('\n');
            column = 0;
        }
        if column == 0 {
            out.extend(std::iter::repeat_n(' ', indent));
            column = indent;
        } else {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.chars().count();
    }
    out.push('\n');
}

/// `hotsite completions SHELL`: the script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(
        shell,
        &mut visible_commands(&command()),
        "hotsite",
        &mut std::io::stdout(),
    );
}

/// `cmd` without its hidden commands (a build without the lab keeps `demo`
/// and the others hidden, to say why they are missing): clap_complete
/// would offer them. hotsite itself has no arguments of its own to copy.
fn visible_commands(cmd: &clap::Command) -> clap::Command {
    let mut visible = clap::Command::new("hotsite")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true);
    if let Some(about) = cmd.get_about() {
        visible = visible.about(about.clone());
    }
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        visible = visible.subcommand(sub.clone());
    }
    visible
}

/// `hotsite man`: hotsite(1) on stdout, or with `dir` hotsite(1) and a page
/// per visible command written there.
pub(crate) fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = dir else {
        let mut stdout = std::io::stdout().lock();
        return Ok(render_man(&cmd, &root_sections(), &mut stdout)?);
    };
    std::fs::create_dir_all(dir)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    write_pages(&cmd, &root_sections(), dir)
}

/// Writes `cmd`'s page (named by its display name: hotsite, hotsite-run,
/// hotsite-site-drain, …) and those of its visible commands, recursively.
fn write_pages(cmd: &clap::Command, sections: &[Section], dir: &Path) -> anyhow::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    let mut file = std::fs::File::create(&path)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    render_man(cmd, sections, &mut file)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    println!("{}", path.display());
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        // Sections belong to the top-level commands (hotsite-site(1) has
        // the examples of its drain and status).
        let sections = if cmd.get_name() == "hotsite" {
            command_sections(sub.get_name())
        } else {
            Vec::new()
        };
        write_pages(sub, &sections, dir)?;
    }
    Ok(())
}

/// A roff page: clap_mangen's title, name, synopsis, description, options
/// and commands, then `sections` as real roff sections (.SH, .TP, .EX).
fn render_man(
    cmd: &clap::Command,
    sections: &[Section],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let page = if cmd.get_name() == "hotsite" {
        cmd.clone().long_about(plain(&description()))
    } else {
        cmd.clone()
    };
    let man = clap_mangen::Man::new(page.clone())
        .title(
            page.get_display_name()
                .unwrap_or(page.get_name())
                .to_uppercase(),
        )
        .manual("hotsite manual")
        .source(format!("hotsite {}", env!("CARGO_PKG_VERSION")));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if page.get_arguments().any(|arg| !arg.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if page.get_subcommands().any(|sub| !sub.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    out.write_all(roff_sections(sections).as_bytes())
}

/// A section's paragraphs as plain text with blank lines between them (the
/// DESCRIPTION clap_mangen renders; items become "term: text").
fn plain(section: &Section) -> String {
    section
        .entries
        .iter()
        .map(|entry| match entry {
            Text(text) => (*text).to_owned(),
            Item(term, text) => format!("{term}: {text}"),
            Example(what, lines) => format!("{what} {lines}"),
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `sections` in roff.
fn roff_sections(sections: &[Section]) -> String {
    let mut out = String::new();
    for section in sections {
        out.push_str(&format!(".SH \"{}\"\n", section.title));
        for entry in &section.entries {
            match entry {
                Text(text) => {
                    out.push_str(".PP\n");
                    out.push_str(&roff_text(text));
                }
                Item(term, text) => {
                    out.push_str(".TP\n");
                    out.push_str(&format!("\\fB{}\\fR\n", roff_escape(term)));
                    out.push_str(&roff_text(text));
                }
                Example(what, lines) => {
                    out.push_str(".PP\n");
                    out.push_str(&roff_text(what));
                    out.push_str(".PP\n.RS 4\n.nf\n");
                    for line in lines.lines() {
                        out.push_str(&roff_text(line));
                    }
                    out.push_str(".fi\n.RE\n");
                }
            }
        }
    }
    out
}

/// One line of text, safe as roff input.
fn roff_text(text: &str) -> String {
    let escaped = roff_escape(text);
    // A line starting with . or ' would be a request.
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}\n")
    } else {
        format!("{escaped}\n")
    }
}

fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_wrapped_and_indented_examples_are_not() {
        let text = render_text(&[section(
            "EXAMPLES",
            vec![
                Text("word word word word word word word word word word word word word word word word word word word word word word word word word"),
                Example("What:", "hotsite a-very-long-command --with --many --options --that --go --past --the --width --of --eighty"),
            ],
        )]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "EXAMPLES");
        assert!(
            lines[1].starts_with("    word") && lines[1].len() <= WIDTH,
            "{text}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("        hotsite a-very-long-command") && l.len() > WIDTH));
    }

    #[test]
    fn roff_escapes_requests_and_backslashes() {
        assert_eq!(roff_text(".hidden"), "\\&.hidden\n");
        assert_eq!(roff_text("a\\b --x"), "a\\eb \\-\\-x\n");
        let roff = roff_sections(&[section("FILES", vec![Item("/etc/x", "y")])]);
        assert_eq!(roff, ".SH \"FILES\"\n.TP\n\\fB/etc/x\\fR\ny\n");
    }

    /// Every visible command has examples in its --help.
    #[test]
    fn every_command_has_examples() {
        let cmd = command();
        for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let sections = command_sections(sub.get_name());
            assert!(
                sections.iter().any(|s| s.title == "EXAMPLES"),
                "{} has no EXAMPLES",
                sub.get_name()
            );
        }
        cmd.debug_assert();
    }
}
