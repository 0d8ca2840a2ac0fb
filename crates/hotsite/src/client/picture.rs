//! The status picture: `GET /v1/status` and the timeline as lines of text,
//! the same for `hotsite status` and every redraw of `hotsite status
//! --follow`. Pure: the clock (`now_ms`) and the queue's rate come in as
//! values, so a fixture renders the same way every time.
//!
//! Sections, each left out when its system is not configured: site and peer
//! link; SMSC binds by provider site; HTTP aggregator sites; digital
//! channels; trunks; queue, inbound, store and routes; agents (with desktops
//! and recording); the failover timeline.

use std::collections::BTreeMap;

use serde_json::Value;

use super::timeline::{Entry, Timeline};
pub(crate) use table::Cell;
use table::Table;

mod table;

/// Agents listed one per line; beyond, only counted.
const AGENTS_LISTED: usize = 8;

/// What one picture is drawn from.
pub(crate) struct Frame<'a> {
    /// The body of `GET /v1/status`.
    pub(crate) status: &'a Value,
    /// The failover timeline (and where the binds' "since" comes from).
    pub(crate) timeline: &'a Timeline,
    /// The timeline section's newest entries to show (all kept: the
    /// timeline's capacity); `None` leaves the section out.
    pub(crate) timeline_lines: Option<usize>,
    /// Messages leaving the queue per second, between the last two samples.
    pub(crate) rate: Option<f64>,
    /// Wall-clock now (ms since the epoch), for the header and ages; `None`
    /// leaves both out (the form compared to tell whether the status changed).
    pub(crate) now_ms: Option<i64>,
    /// ANSI colours for states.
    pub(crate) colour: bool,
}

/// The picture, line by line (no line ends).
pub(crate) fn render(frame: &Frame<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let status = frame.status;
    let systems: Vec<&str> = status["systems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut header = "hotsite status".to_owned();
    if let Some(name) = status["site"]["name"].as_str() {
        header.push_str(&format!(" · site {name}"));
    }
    if !systems.is_empty() {
        header.push_str(&format!(" · systems {}", systems.join(", ")));
    }
    if let Some(now_ms) = frame.now_ms {
        header.push_str(&format!(" · {} UTC", time_of_day(now_ms)));
    }
    out.push(header);
    site(frame, &mut out);
    binds(frame, &mut out);
    aggregators(frame, &mut out);
    digital_channels(frame, &mut out);
    trunks(frame, &mut out);
    queue(frame, &mut out);
    agents(frame, &mut out);
    if let Some(lines) = frame.timeline_lines {
        timeline_section(frame.timeline, lines, frame.colour, &mut out);
    }
    out
}

/// How a word is shown: states in colour on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    /// Up, in service.
    Good,
    /// Down, out of service, alerts.
    Bad,
    /// Probing, draining, single-site: on the way somewhere.
    Warn,
}

impl Style {
    /// The style of a health state word (`up`, `down`, `probing`).
    pub(crate) fn of_state(state: &str) -> Style {
        match state {
            "up" => Style::Good,
            "down" | "DOWN" => Style::Bad,
            "probing" => Style::Warn,
            _ => Style::Plain,
        }
    }
}

/// `text` in `style`'s colour when `colour`; as is otherwise.
pub(crate) fn style(text: &str, style: Style, colour: bool) -> String {
    let code = match style {
        Style::Plain => return text.to_owned(),
        Style::Good => "32",
        Style::Bad => "31",
        Style::Warn => "33",
    };
    if colour {
        format!("\u{1b}[{code}m{text}\u{1b}[0m")
    } else {
        text.to_owned()
    }
}

/// A health state as shown: down in capitals, so it stands out without colour.
fn state_word(state: &str) -> (String, Style) {
    let state = state.to_ascii_lowercase();
    let style = Style::of_state(&state);
    let word = if state == "down" {
        "DOWN".to_owned()
    } else {
        state
    };
    (word, style)
}

fn plain(text: impl Into<String>) -> Cell {
    (text.into(), Style::Plain)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

/// `since 3m12s` from a time in ms, when the picture has a clock and the
/// time is known; empty otherwise.
fn since(frame: &Frame<'_>, since_ms: Option<i64>) -> String {
    match (frame.now_ms, since_ms) {
        (Some(now_ms), Some(since_ms)) if since_ms > 0 => {
            format!("since {}", age(now_ms - since_ms))
        }
        _ => String::new(),
    }
}

/// The newest health change of `target` seen, for a "since".
fn last_health_change<'a>(frame: &Frame<'a>, target: &str) -> Option<&'a Entry> {
    frame.timeline.last_change(target)
}

/// Site and peer link (SPEC S1-S4, S7).
fn site(frame: &Frame<'_>, out: &mut Vec<String>) {
    let site = &frame.status["site"];
    if !site.is_object() {
        return;
    }
    let mode = site["mode"].as_str().unwrap_or("?");
    let mode_style = match mode {
        "peered" => Style::Good,
        "single_site" | "draining" => Style::Warn,
        _ => Style::Plain,
    };
    let peer = match site["peer"].as_object() {
        Some(peer) => {
            let (word, link_style) = if peer["in_service"] == true {
                ("in service", Style::Good)
            } else {
                ("OUT OF SERVICE", Style::Bad)
            };
            format!(
                "peer link to {} {}",
                peer["address"].as_str().unwrap_or("?"),
                style(word, link_style, frame.colour)
            )
        }
        None => "no peer (single-site by configuration)".to_owned(),
    };
    out.push(format!(
        "site {}: {} · {peer} · calls active {}",
        site["name"].as_str().unwrap_or("?"),
        style(mode, mode_style, frame.colour),
        text_of(&site["calls"]["active"]),
    ));
    if let Some(dns) = site["dns"].as_array().filter(|dns| !dns.is_empty()) {
        let in_service = dns.iter().filter(|dn| dn["in_service"] == true).count();
        let out_of_service: Vec<&str> = dns
            .iter()
            .filter(|dn| dn["in_service"] != true)
            .filter_map(|dn| dn["dn"].as_str())
            .collect();
        let mut line = format!("  DNs: {in_service} of {} in service", dns.len());
        if !out_of_service.is_empty() {
            line.push_str(&format!(
                " · {} {}",
                style("out of service:", Style::Bad, frame.colour),
                out_of_service.join(", ")
            ));
        }
        out.push(line);
    }
}

/// SMPP binds, grouped by the provider's site (SPEC M4, M5).
fn binds(frame: &Frame<'_>, out: &mut Vec<String>) {
    let Some(binds) = frame.status["binds"].as_array().filter(|b| !b.is_empty()) else {
        return;
    };
    let up = binds.iter().filter(|b| is_up(&b["health"])).count();
    out.push(format!("smsc binds: {up} of {} up", binds.len()));
    // Provider sites in the order the binds list them.
    let mut sites: Vec<(&str, Vec<&Value>)> = Vec::new();
    for bind in binds {
        let provider = bind["smsc"]
            .as_str()
            .and_then(|smsc| smsc.split_once('/'))
            .map_or("?", |(site, _)| site);
        match sites.iter_mut().find(|(name, _)| *name == provider) {
            Some((_, list)) => list.push(bind),
            None => sites.push((provider, vec![bind])),
        }
    }
    let mut table = Table::new();
    for (provider, list) in sites {
        let up = list.iter().filter(|b| is_up(&b["health"])).count();
        table.heading(format!(
            "  provider site {provider}: {up} of {} up",
            list.len()
        ));
        for bind in list {
            let smsc = text_of(&bind["smsc"]);
            let (word, state_style) = state_word(bind["health"].as_str().unwrap_or("?"));
            let change = last_health_change(frame, &smsc);
            let cause = if is_up(&bind["health"]) {
                None
            } else {
                bind["last_failure"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| change.and_then(|e| e.cause.clone()))
            };
            table.row(vec![
                plain(smsc.clone()),
                plain(text_of(&bind["address"])),
                (word, state_style),
                plain(since(frame, change.map(|e| e.at_ms))),
                plain(format!("in flight {}", text_of(&bind["in_flight"]))),
                plain(format!("attempts {}", text_of(&bind["bind_attempts"]))),
                plain(cause.unwrap_or_default()),
            ]);
        }
    }
    table.render("    ", frame.colour, out);
}

fn is_up(health: &Value) -> bool {
    health
        .as_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("up"))
}

/// HTTP aggregators: each URL is one of the provider's sites (SPEC M2, M3).
fn aggregators(frame: &Frame<'_>, out: &mut Vec<String>) {
    let Some(channels) = frame.status["channels"].as_object() else {
        return;
    };
    for (name, channel) in channels.iter().filter(|(_, c)| c["urls"].is_array()) {
        let urls = channel["urls"].as_array().map_or(&[][..], Vec::as_slice);
        let up = urls.iter().filter(|u| u["up"] == true).count();
        let mut line = format!("http aggregator {name}: {up} of {} sites up", urls.len());
        if channel["all_down_alert"] == true {
            line.push_str(&format!(
                " · {}",
                style("ALERT: every site failed", Style::Bad, frame.colour)
            ));
        }
        out.push(line);
        let mut table = Table::new();
        for url in urls {
            let (word, state_style) = state_word(url["state"].as_str().unwrap_or("?"));
            table.row(vec![
                plain(text_of(&url["site"])),
                plain(text_of(&url["url"])),
                (word, state_style),
                plain(since(frame, url["since_ms"].as_i64())),
                plain(url["cause"].as_str().unwrap_or_default()),
            ]);
        }
        table.render("    ", frame.colour, out);
    }
}

/// Digital and e-mail channels: `channels` entries with a `kind`, their
/// endpoint's health as their sends tell it (SPEC M10).
fn digital_channels(frame: &Frame<'_>, out: &mut Vec<String>) {
    let Some(channels) = frame.status["channels"].as_object() else {
        return;
    };
    let digital: Vec<(&String, &Value)> = channels
        .iter()
        .filter(|(_, c)| c["kind"].is_string())
        .collect();
    if digital.is_empty() {
        return;
    }
    out.push("digital channels:".into());
    let mut table = Table::new();
    for (name, channel) in digital {
        let state = channel["health"].as_str().unwrap_or("?").to_owned();
        let (word, state_style) = state_word(&state);
        // While out of service: the failures in a row and the last one, the
        // words of its health event.
        let cause = (state != "up")
            .then(|| channel["last_failure"]["cause"].as_str())
            .flatten()
            .map(|last| match channel["failures_in_a_row"].as_u64() {
                Some(n) if n > 0 => format!("{n} sends in a row failed: {last}"),
                _ => last.to_owned(),
            });
        table.row(vec![
            plain(name.clone()),
            plain(channel["kind"].as_str().unwrap_or_default()),
            plain(channel["url"].as_str().unwrap_or_default()),
            (word, state_style),
            plain(since(frame, channel["since_ms"].as_i64())),
            plain(cause.unwrap_or_default()),
        ]);
    }
    table.render("    ", frame.colour, out);
}

/// SIP trunks with their cause and since (SPEC V1-V3).
fn trunks(frame: &Frame<'_>, out: &mut Vec<String>) {
    let Some(trunks) = frame.status["trunks"].as_array() else {
        return;
    };
    let in_service = trunks.iter().filter(|t| t["in_service"] == true).count();
    out.push(format!(
        "trunks: {in_service} of {} in service",
        trunks.len()
    ));
    let mut table = Table::new();
    for trunk in trunks {
        let (state, cause) = if trunk["in_service"] == true {
            (("in service".to_owned(), Style::Good), String::new())
        } else {
            let cause = trunk["detail"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    let causes: Vec<&str> = trunk["causes"]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    (!causes.is_empty()).then(|| causes.join(", "))
                })
                .unwrap_or_else(|| "?".into());
            (("OUT".to_owned(), Style::Bad), cause)
        };
        table.row(vec![
            plain(text_of(&trunk["name"])),
            plain(format!(
                "{}:{}",
                trunk["transport"].as_str().unwrap_or("udp"),
                trunk["address"].as_str().unwrap_or("?")
            )),
            state,
            plain(since(frame, trunk["since_ms"].as_i64())),
            // The cause before the regions and counters: on a narrow
            // terminal, the end of the line is what is cut.
            plain(cause),
            plain(format!(
                "media {} / failover {}",
                trunk["media_region"].as_str().unwrap_or("?"),
                trunk["failover_region"].as_str().unwrap_or("?")
            )),
            plain(format!(
                "attempts {} · failed over {}",
                text_of(&trunk["attempts"]),
                text_of(&trunk["failed_over"])
            )),
        ]);
    }
    table.render("  ", frame.colour, out);
}

/// Queue depth and throughput, inbound, the store, the routes.
fn queue(frame: &Frame<'_>, out: &mut Vec<String>) {
    let status = frame.status;
    if let Some(queue) = status["queue"].as_object() {
        let mut line = format!(
            "queue: {} queued · {} submitted · {} final ({} failed)",
            text_of(&queue["queued"]),
            text_of(&queue["submitted"]),
            text_of(&queue["final"]),
            text_of(&queue["failed"]),
        );
        if let Some(rate) = frame.rate {
            line.push_str(&format!(" · {rate:.1} msg/s"));
        }
        out.push(line);
    }
    if let Some(inbound) = status["inbound"].as_object() {
        out.push(format!(
            "inbound: {} pending delivery · {} total · {} receipts matching no message",
            text_of(&inbound["pending"]),
            text_of(&inbound["total"]),
            text_of(&inbound["receipts_uncorrelated"]),
        ));
    }
    if let Some(store) = status["store"].as_str() {
        let store_style = if store == "ok" {
            Style::Plain
        } else {
            Style::Bad
        };
        out.push(format!(
            "store: {}",
            style(store, store_style, frame.colour)
        ));
    }
    if let Some(routes) = status["routes"].as_array() {
        let names: Vec<&str> = routes.iter().filter_map(Value::as_str).collect();
        out.push(format!(
            "routes: {} (default {})",
            names.join(", "),
            status["default_route"].as_str().unwrap_or("?")
        ));
    }
}

/// Agents at this site (SPEC S1, S7, D6), desktops and recording.
fn agents(frame: &Frame<'_>, out: &mut Vec<String>) {
    let status = frame.status;
    if let Some(agents) = status["site"]["agents"].as_array() {
        let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
        for agent in agents {
            *by_state
                .entry(agent["state"].as_str().unwrap_or("?"))
                .or_default() += 1;
        }
        let counts: Vec<String> = by_state
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect();
        let logged_in = agents
            .iter()
            .filter(|a| a["state"].as_str().is_some_and(|s| s != "logged_out"))
            .count();
        let mut line = format!(
            "agents at {}: {logged_in} of {} logged in",
            status["site"]["name"].as_str().unwrap_or("?"),
            agents.len()
        );
        if !counts.is_empty() {
            line.push_str(&format!(" ({})", counts.join(", ")));
        }
        out.push(line);
        let mut table = Table::new();
        for agent in agents.iter().take(AGENTS_LISTED) {
            table.row(vec![
                plain(text_of(&agent["id"])),
                plain(text_of(&agent["state"])),
                plain(
                    agent["dn"]
                        .as_str()
                        .map(|dn| format!("on DN {dn}"))
                        .unwrap_or_default(),
                ),
            ]);
        }
        table.render("  ", frame.colour, out);
        if agents.len() > AGENTS_LISTED {
            out.push(format!("  … and {} more", agents.len() - AGENTS_LISTED));
        }
    }
    if let Some(desktop) = status["desktop"].as_object() {
        out.push(format!(
            "desktops: {} connected (of at most {}) · telephony {}",
            text_of(&desktop["connections"]),
            text_of(&desktop["max_connections"]),
            text_of(&desktop["telephony"]),
        ));
    }
    if let Some(recording) = status["recording"].as_object() {
        out.push(format!(
            "recording: {} processed · {} failed · {} waiting for the cloud recorder",
            text_of(&recording["processed"]),
            text_of(&recording["failed"]),
            text_of(&recording["waiting_for_cloud"]),
        ));
    }
}

/// The failover timeline, newest last.
fn timeline_section(timeline: &Timeline, lines: usize, colour: bool, out: &mut Vec<String>) {
    let filter = if timeline.systems().is_empty() {
        String::new()
    } else {
        format!("; only {}", timeline.systems().join(", "))
    };
    out.push(format!("timeline (newest last{filter}):"));
    let mut table = Table::new();
    let entries: Vec<&Entry> = timeline.entries().collect();
    for entry in &entries[entries.len().saturating_sub(lines)..] {
        table.row(entry.cells().into());
    }
    if entries.is_empty() {
        out.push("  (no events)".into());
    }
    table.render("  ", colour, out);
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
pub(crate) fn time_of_day(at_ms: i64) -> String {
    let ms = at_ms.rem_euclid(86_400_000);
    let (hours, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    format!(
        "{hours:02}:{minutes:02}:{:02}.{:03}",
        rest / 1_000,
        rest % 1_000
    )
}

/// A duration in ms as an operator reads it: `850ms`, `42s`, `3m12s`,
/// `5h04m`, `3d02h`. A time slightly ahead (clocks apart) is `0s`.
pub(crate) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    let seconds = ms / 1000;
    match seconds {
        0 if ms > 0 => format!("{ms}ms"),
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests;
