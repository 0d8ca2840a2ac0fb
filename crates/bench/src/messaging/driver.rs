//! The HTTP load driver: `connections` keep-alive connections, each sending one
//! request at a time, bounded by a message count and a deadline. Optionally
//! paced (open loop: request `r` is due at `t0 + first_message(r) / rate`).
//! With several gateways (`bases`), connection `c` talks to gateway
//! `c mod bases`: the connections split evenly and each takes the next
//! request as soon as its last one is answered, so a faster gateway gets more.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;

use super::clock;

/// Which API the driver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// hotsite `POST /v1/messages` with `{"messages": [...]}` of this many.
    Batch(usize),
    /// hotsite `POST /v1/messages` with one message.
    Single,
    /// Kannel `GET /cgi-bin/sendsms`, one message per request.
    Kannel,
}

impl Api {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Api::Batch(_) => "batch",
            Api::Single => "single",
            Api::Kannel => "sendsms",
        }
    }

    fn per_request(self) -> u64 {
        match self {
            Api::Batch(size) => size.max(1) as u64,
            Api::Single | Api::Kannel => 1,
        }
    }
}

/// One run of the driver.
pub(crate) struct Load {
    pub(crate) api: Api,
    /// `http://host:port` of each gateway (or Kannel's sendsms); at least one.
    pub(crate) bases: Vec<String>,
    /// Bearer token (hotsite).
    pub(crate) token: String,
    /// Messages to send, numbered `0..total`.
    pub(crate) total: u64,
    pub(crate) connections: usize,
    /// Messages per second, when paced.
    pub(crate) rate: Option<f64>,
    /// Nothing is sent after this long.
    pub(crate) limit: Duration,
    /// Messages accepted so far (for progress and memory samples).
    pub(crate) accepted: Arc<AtomicU64>,
    /// Kannel: ask for final delivery reports (`dlr-mask`) to this URL
    /// (`dlr-url`, with `?i=<message number>&t=%d` appended).
    pub(crate) dlr_url: Option<String>,
}

/// One accepted request: messages `first..first + count`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accept {
    pub(crate) first: u64,
    pub(crate) count: u64,
    /// When the request was written.
    pub(crate) sent: Instant,
    /// When its 2xx answer had arrived in full.
    pub(crate) at: Instant,
}

/// What a run of the driver did.
#[derive(Debug)]
pub(crate) struct Driven {
    /// When the first request was due: the start of every throughput figure.
    pub(crate) t0: Instant,
    pub(crate) accepts: Vec<Accept>,
    pub(crate) accepted: u64,
    /// Messages in requests answered with anything but 202.
    pub(crate) rejected: u64,
    /// Messages in requests that failed (connect, timeout, reset).
    pub(crate) errors: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) last_accept: Option<Instant>,
    /// The deadline stopped the run before every message was sent.
    pub(crate) timed_out: bool,
}

/// The destination of message `i`: unique per message, so the lab's dedupe key
/// (account, destination, reference) never collides and arrivals can be matched.
pub(crate) fn destination(i: u64) -> String {
    format!("447{i:09}")
}

/// The message number in a destination written by [`destination`].
pub(crate) fn index_of(destination: &str) -> Option<u64> {
    let digits = destination.strip_prefix('+').unwrap_or(destination);
    digits.strip_prefix("447")?.parse().ok()
}

/// An 11-character GSM text, unique per message (like the peers' baseline).
fn text(i: u64) -> String {
    format!("m{i:010}")
}

/// Consecutive failed requests after which a connection gives up.
const MAX_CONSECUTIVE_FAILURES: u32 = 50;
/// Per request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn drive(load: Load) -> anyhow::Result<Driven> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.connections)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let per_request = load.api.per_request();
    let requests = load.total.div_ceil(per_request);
    let next = Arc::new(AtomicU64::new(0));
    let t0 = clock();
    let deadline = t0 + load.limit;
    let load = Arc::new(load);
    let mut workers = Vec::new();
    anyhow::ensure!(!load.bases.is_empty(), "no address to send to");
    for connection in 0..load.connections.max(1) {
        workers.push(tokio::spawn(worker(
            client.clone(),
            Arc::clone(&load),
            connection % load.bases.len(),
            Arc::clone(&next),
            requests,
            t0,
            deadline,
        )));
    }
    let mut driven = Driven {
        t0,
        accepts: Vec::new(),
        accepted: 0,
        rejected: 0,
        errors: 0,
        first_failure: None,
        last_accept: None,
        timed_out: false,
    };
    for worker in workers {
        let out = worker.await?;
        driven.accepted += out.accepted;
        driven.rejected += out.rejected;
        driven.errors += out.errors;
        driven.timed_out |= out.timed_out;
        if driven.first_failure.is_none() {
            driven.first_failure = out.first_failure;
        }
        driven.accepts.extend(out.accepts);
    }
    driven.accepts.sort_by_key(|accept| accept.first);
    driven.last_accept = driven.accepts.iter().map(|accept| accept.at).max();
    Ok(driven)
}

#[derive(Default)]
struct WorkerOut {
    accepts: Vec<Accept>,
    accepted: u64,
    rejected: u64,
    errors: u64,
    first_failure: Option<String>,
    timed_out: bool,
}

async fn worker(
    client: reqwest::Client,
    load: Arc<Load>,
    gateway: usize,
    next: Arc<AtomicU64>,
    requests: u64,
    t0: Instant,
    deadline: Instant,
) -> WorkerOut {
    let base = load.bases[gateway].as_str();
    let per_request = load.api.per_request();
    let mut out = WorkerOut::default();
    let mut consecutive_failures = 0;
    // Bounded: each turn takes a distinct request number below `requests`.
    loop {
        let r = next.fetch_add(1, Ordering::Relaxed);
        if r >= requests {
            break;
        }
        let first = r * per_request;
        let count = per_request.min(load.total - first);
        if let Some(rate) = load.rate {
            let due = t0 + Duration::from_secs_f64(first as f64 / rate);
            if due > deadline {
                out.timed_out = true;
                break;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
        if clock() >= deadline {
            out.timed_out = true;
            break;
        }
        let request = build(&client, &load, base, first, count);
        let sent = clock();
        let failure = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await;
                let at = clock();
                match body {
                    Ok(_) if status == StatusCode::ACCEPTED => {
                        out.accepts.push(Accept {
                            first,
                            count,
                            sent,
                            at,
                        });
                        out.accepted += count;
                        load.accepted.fetch_add(count, Ordering::Relaxed);
                        None
                    }
                    Ok(body) => {
                        out.rejected += count;
                        let body = String::from_utf8_lossy(&body);
                        Some(format!(
                            "HTTP {status}: {}",
                            body.chars().take(200).collect::<String>()
                        ))
                    }
                    Err(error) => {
                        out.errors += count;
                        Some(format!("reading the answer: {error}"))
                    }
                }
            }
            Err(error) => {
                out.errors += count;
                Some(format!("{error:#}"))
            }
        };
        match failure {
            None => consecutive_failures = 0,
            Some(failure) => {
                consecutive_failures += 1;
                out.first_failure.get_or_insert(failure);
                if consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
                    break;
                }
            }
        }
    }
    out
}

fn build(
    client: &reqwest::Client,
    load: &Load,
    base: &str,
    first: u64,
    count: u64,
) -> reqwest::RequestBuilder {
    match load.api {
        Api::Batch(_) => {
            let mut body = String::with_capacity(count as usize * 48 + 16);
            body.push_str("{\"messages\":[");
            for i in first..first + count {
                if i > first {
                    body.push(',');
                }
                let _ = write!(
                    body,
                    "{{\"to\":\"{}\",\"text\":\"{}\"}}",
                    destination(i),
                    text(i)
                );
            }
            body.push_str("]}");
            client
                .post(format!("{base}/v1/messages"))
                .bearer_auth(&load.token)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
        }
        Api::Single => client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&load.token)
            .header(CONTENT_TYPE, "application/json")
            .body(format!(
                "{{\"to\":\"{}\",\"text\":\"{}\"}}",
                destination(first),
                text(first)
            )),
        Api::Kannel => {
            let mut url = format!(
                "{base}/cgi-bin/sendsms?username=tester&password=foobar&from=1000&to={}&text={}",
                destination(first),
                text(first)
            );
            if let Some(dlr_url) = &load.dlr_url {
                let _ = write!(
                    url,
                    "&dlr-mask={KANNEL_DLR_MASK}&dlr-url={}",
                    percent_encode(&format!("{dlr_url}?i={first}&t=%d"))
                );
            }
            client.get(url)
        }
    }
}

/// Kannel's `dlr-mask`: the final states only (1 delivered, 2 failed, 16
/// SMSC reject), like hotsite's one receipt per message.
const KANNEL_DLR_MASK: u32 = 1 | 2 | 16;

/// A query-string value: everything but unreserved characters escaped.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_round_trip() {
        for i in [0, 1, 999_999, 123_456_789] {
            assert_eq!(index_of(&destination(i)), Some(i));
        }
        assert_eq!(destination(7).len(), 12);
        assert_eq!(text(7).len(), 11);
        assert_eq!(index_of("33612345678"), None);
    }

    // Kannel's receipts-on run (compared with hotsite's SPEC M13/M15 receipts):
    // the dlr-url, with its own query and Kannel's %d, travels as one value.
    #[test]
    fn dlr_url_is_one_query_value() {
        assert_eq!(
            percent_encode("http://127.0.0.1:9/kannel?i=5&t=%d"),
            "http%3A%2F%2F127.0.0.1%3A9%2Fkannel%3Fi%3D5%26t%3D%25d"
        );
    }
}
