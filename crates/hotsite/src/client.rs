//! `hotsite send` and `hotsite status`: clients of a running gateway's API.

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

/// Prints binds, queue depth and recent bind events.
/// Sends `request`; a refusal is an error naming the status, and with
/// `as_json` the answer is printed here (then `None`: nothing left to show).
async fn fetch(
    endpoint: &Endpoint,
    request: reqwest::RequestBuilder,
    as_json: bool,
) -> anyhow::Result<Option<Value>> {
    let (status, answer) = call(endpoint, request).await?;
    if !status.is_success() {
        bail!("refused ({status}): {answer}");
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
    let Some(answer) = fetch(&endpoint, request, as_json).await? else {
        return Ok(ExitCode::SUCCESS);
    };
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

pub(crate) async fn status(endpoint: Endpoint, as_json: bool) -> anyhow::Result<ExitCode> {
    let request = reqwest::Client::new().get(format!("{}/v1/status", endpoint.base));
    let Some(answer) = fetch(&endpoint, request, as_json).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    println!("binds:");
    for bind in answer["binds"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<22} {:<8} in flight {:<4} attempts {:<4} {}",
            bind["smsc"].as_str().unwrap_or("?"),
            bind["address"].as_str().unwrap_or("?"),
            bind["health"].as_str().unwrap_or("?"),
            bind["in_flight"],
            bind["bind_attempts"],
            bind["last_failure"]
                .as_str()
                .map(|f| format!("last failure: {f}"))
                .unwrap_or_default()
        );
    }
    if let Some(channels) = answer["channels"].as_object() {
        for (name, channel) in channels {
            let alert = if channel["all_down_alert"] == true {
                "  ALERT: every site failed"
            } else {
                ""
            };
            println!("http channel {name}:{alert}");
            for url in channel["urls"].as_array().into_iter().flatten() {
                println!(
                    "  {:<8} {:<40} {:<8} {}",
                    url["site"].as_str().unwrap_or("?"),
                    url["url"].as_str().unwrap_or("?"),
                    url["state"].as_str().unwrap_or("?"),
                    url["cause"].as_str().unwrap_or_default()
                );
            }
        }
    }
    if answer["site"].is_object() {
        print_site(&answer["site"]);
    }
    if let Some(trunks) = answer["trunks"].as_array() {
        println!("trunks:");
        for trunk in trunks {
            let state = if trunk["in_service"] == true {
                "in service".to_owned()
            } else {
                format!("OUT ({})", trunk["detail"].as_str().unwrap_or("?"))
            };
            println!(
                "  {:<12} {:<26} {:<40} since {} UTC  media {} / failover {}  attempts {} failed over {}",
                trunk["name"].as_str().unwrap_or("?"),
                format!(
                    "{}:{}",
                    trunk["transport"].as_str().unwrap_or("udp"),
                    trunk["address"].as_str().unwrap_or("?")
                ),
                state,
                time_of_day(trunk["since_ms"].as_i64().unwrap_or(0)),
                trunk["media_region"].as_str().unwrap_or("?"),
                trunk["failover_region"].as_str().unwrap_or("?"),
                trunk["attempts"],
                trunk["failed_over"],
            );
        }
    }
    if let Some(routes) = answer["routes"].as_array() {
        let names: Vec<&str> = routes.iter().filter_map(Value::as_str).collect();
        println!(
            "routes: {} (default {})",
            names.join(", "),
            answer["default_route"].as_str().unwrap_or("?")
        );
    }
    let queue = &answer["queue"];
    println!(
        "queue: {} queued, {} submitted, {} final, {} failed",
        queue["queued"], queue["submitted"], queue["final"], queue["failed"]
    );
    println!(
        "inbound: {} pending delivery, {} total, {} receipts matching no message",
        answer["inbound"]["pending"],
        answer["inbound"]["total"],
        answer["inbound"]["receipts_uncorrelated"]
    );
    println!("store: {}", answer["store"].as_str().unwrap_or("?"));
    println!("recent bind events:");
    for event in answer["recent_events"].as_array().into_iter().flatten() {
        println!(
            "  {} UTC {}",
            time_of_day(event["at_ms"].as_i64().unwrap_or(0)),
            event["event"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
fn time_of_day(at_ms: i64) -> String {
    let ms = at_ms.rem_euclid(86_400_000);
    let (hours, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    format!(
        "{hours:02}:{minutes:02}:{:02}.{:03}",
        rest / 1_000,
        rest % 1_000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_of_day_is_utc_clock_time() {
        // 2026-11-25T12:19:45.123Z
        assert_eq!(super::time_of_day(1_795_609_185_123), "12:19:45.123");
        assert_eq!(super::time_of_day(0), "00:00:00.000");
    }
}
