//! `hotsite send`, `hotsite status` and `hotsite site`: clients of a running
//! gateway's API. `hotsite status` draws the picture of `picture`, once or,
//! with `--follow`, kept current from the event stream (`follow`).

mod follow;
mod pacing;
mod picture;
mod read;
mod screen;
mod sse;
mod timeline;
mod untrusted;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::config::Config;

/// Where the gateway is and how to authenticate, from its config file.
pub(crate) struct Endpoint {
    base: String,
    token: String,
}

impl Endpoint {
    /// From the config, with optional overrides.
    pub(crate) fn new(
        config: &Path,
        api: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Endpoint> {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let parsed = Config::from_toml_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
        let base = api.unwrap_or_else(|| format!("http://{}", parsed.host.listen));
        let token =
            match token.or_else(|| parsed.host.tokens.first().map(|t| t.expose().to_owned())) {
                Some(token) => token,
                None => bail!("no token: pass --token or list one in api.tokens"),
            };
        Ok(Endpoint { base, token })
    }
}

/// Sends `request` and reads the gateway's JSON answer with its status.
async fn call(
    endpoint: &Endpoint,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let response = request
        .bearer_auth(&endpoint.token)
        .send()
        .await
        .with_context(|| format!("cannot reach the gateway at {}", endpoint.base))?;
    let status = response.status();
    let answer = response
        .json()
        .await
        .context("the gateway's answer is not JSON")?;
    Ok((status, answer))
}

/// Sends one message; prints the gateway's answer.
pub(crate) async fn send(
    endpoint: Endpoint,
    to: String,
    text: String,
    from: Option<String>,
    key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({ "to": to, "text": text });
    if let Some(from) = from {
        body["from"] = json!(from);
    }
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/messages", endpoint.base))
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let (status, answer) = call(&endpoint, request).await?;
    if status.is_success() {
        for message in answer["messages"].as_array().into_iter().flatten() {
            println!(
                "{} message {} (key {})",
                message["status"].as_str().unwrap_or("?"),
                message["id"],
                message["key"].as_str().unwrap_or("")
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "refused ({status}): {}",
            serde_json::to_string_pretty(&answer)?
        );
        Ok(ExitCode::FAILURE)
    }
}

/// What a refusal says: a refused token names the way to fix it.
fn refusal(status: reqwest::StatusCode, answer: &Value) -> String {
    let said = answer["error"]
        .as_str()
        .map_or_else(|| answer.to_string(), str::to_owned);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        format!("the gateway refused the token ({status}: {said}); pass the right one with --token or list it in api.tokens")
    } else {
        format!("refused ({status}): {answer}")
    }
}

/// Sends `request`; a refusal is an error naming the status, and with
/// `as_json` the answer is printed here (then `None`: nothing left to show).
async fn fetch(
    endpoint: &Endpoint,
    request: reqwest::RequestBuilder,
    as_json: bool,
) -> anyhow::Result<Option<Value>> {
    let (status, answer) = call(endpoint, request).await?;
    if !status.is_success() {
        bail!("{}", refusal(status, &answer));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(None);
    }
    Ok(Some(answer))
}

/// `hotsite site drain` / `hotsite site status` (SPEC S1–S8).
pub(crate) async fn site(
    endpoint: Endpoint,
    drain: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::new();
    let request = if drain {
        client.post(format!("{}/v1/site/drain", endpoint.base))
    } else {
        client.get(format!("{}/v1/site", endpoint.base))
    };
    let Some(mut answer) = fetch(&endpoint, request, as_json).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    untrusted::clean(&mut answer);
    print_site(&answer);
    if drain {
        println!("draining: the process stops when no call is left");
    }
    Ok(ExitCode::SUCCESS)
}

/// The site section as lines: mode, peer, DNs, agents.
fn print_site(site: &Value) {
    let peer = match site["peer"].as_object() {
        Some(peer) => format!(
            "peer {} {}",
            peer["address"].as_str().unwrap_or("?"),
            if peer["in_service"] == true {
                "in service"
            } else {
                "OUT OF SERVICE"
            }
        ),
        None => "no peer (single-site)".to_owned(),
    };
    println!(
        "site {}: {}, {peer}; calls active {}",
        site["name"].as_str().unwrap_or("?"),
        site["mode"].as_str().unwrap_or("?"),
        site["calls"]["active"]
    );
    for dn in site["dns"].as_array().into_iter().flatten() {
        println!(
            "  DN {:<8} {:<15} dr-forward {:<9} contacts {}",
            dn["dn"].as_str().unwrap_or("?"),
            if dn["in_service"] == true {
                "in service"
            } else {
                "out of service"
            },
            dn["dr_forward"].as_str().unwrap_or("?"),
            dn["contacts"].as_array().map_or(0, Vec::len)
        );
    }
    for agent in site["agents"].as_array().into_iter().flatten() {
        println!(
            "  agent {:<12} {:<16} {}",
            agent["id"].as_str().unwrap_or("?"),
            agent["state"].as_str().unwrap_or("?"),
            agent["dn"]
                .as_str()
                .map(|dn| format!("on DN {dn}"))
                .unwrap_or_default()
        );
    }
}

/// Timeline lines in a printed picture.
const TIMELINE_LINES: usize = 12;

/// `hotsite status`: the picture of `GET /v1/status` and the newest events
/// of `systems` (all when empty), once; with `follow`, kept current until
/// Ctrl-C; with `as_json`, the raw status.
pub(crate) async fn status(
    endpoint: Endpoint,
    as_json: bool,
    follow: bool,
    systems: Vec<String>,
) -> anyhow::Result<ExitCode> {
    if follow {
        return follow::run(endpoint, systems).await;
    }
    // Bounded: a gateway that hangs mid-incident must not hang this too.
    let client = read::http_client()?;
    let request = client
        .get(format!("{}/v1/status", endpoint.base))
        .timeout(read::REQUEST_TIMEOUT);
    let Some(mut answer) = fetch(&endpoint, request, as_json).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    untrusted::clean(&mut answer);
    warn_unknown_systems(&answer, &systems);
    let mut timeline = timeline::Timeline::new(TIMELINE_LINES, systems.clone());
    timeline.extend(
        read::backlog(&client, &endpoint, &systems)
            .await
            .map_err(|failure| failure.into_error(&endpoint))?,
    );
    let terminal = screen::Terminal::detect();
    let picture = picture::render(&picture::Frame {
        status: &answer,
        timeline: &timeline,
        timeline_lines: Some(TIMELINE_LINES),
        rate: None,
        now_ms: Some(crate::clock::wall_ms()),
        colour: terminal.colour,
    });
    let mut text = picture.join("\n");
    text.push('\n');
    let mut stdout = std::io::stdout().lock();
    match std::io::Write::write_all(&mut stdout, text.as_bytes()) {
        // The reader went away (`| head`): it has what it wanted.
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Says on stderr when `--system` names a system the gateway does not run
/// (a typo would otherwise show an empty timeline and nothing else).
fn warn_unknown_systems(status: &Value, systems: &[String]) {
    let running: Vec<&str> = status["systems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for system in systems {
        if !running.contains(&system.as_str()) {
            eprintln!(
                "note: this gateway runs no system {system:?} (it runs {}); its timeline stays empty",
                running.join(", ")
            );
        }
    }
}
