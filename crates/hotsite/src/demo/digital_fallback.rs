//! `digital-fallback`: the route `chat` = primary-chat, secondary-chat,
//! e-mail (SPEC M10, M11, M15).
//!
//! Two lab webhook receivers stand for the chat providers (signed webhooks),
//! the lab's SMTP sink for the mail server. At 20% of the traffic primary-chat
//! starts answering 503: each message is retried there with backoff within its
//! hop's budget, then falls back to secondary-chat. At 40% secondary-chat
//! answers 503 too, and messages fall back once more, to e-mail. At 60% both
//! recover and new messages go to primary-chat again. Every message arrives
//! once, through one channel.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotsite_lab::{HttpFault, LabConfig, LabHandle, SmtpConfig, WebhookConfig};
use hotsite_messaging::channel::digital::DigitalConfig;
use hotsite_messaging::channel::email::{EmailConfig, Security};
use hotsite_messaging::gateway::{ChannelConfig, RouteConfig};
use hotsite_messaging::GatewayView;
use serde_json::{json, Value};

use super::{
    first_after, hop, settle, sms_message, Driver, FailoverTiming, Progress, Report, Rig, Settings,
    Tally, Traffic,
};
use crate::clock;

const PRIMARY: &str = "primary-chat";
const SECONDARY: &str = "secondary-chat";
const EMAIL: &str = "email";
/// Sends per chat hop before the message falls back.
const CHAT_BUDGET: u32 = 3;

/// Message `i` on the chat route, with an address for its e-mail hop.
fn chat_message(i: u64) -> Value {
    let mut message = sms_message(i);
    message["route"] = json!("chat");
    message["email"] = json!(format!("customer-{i}@example.com"));
    message
}

/// Where each message arrived: hotsite message id and when (µs since the
/// lab's epoch), per channel.
struct Arrivals {
    by_channel: Vec<(&'static str, Vec<(i64, u64)>)>,
}

impl Arrivals {
    fn read(lab: &LabHandle) -> anyhow::Result<Arrivals> {
        let mut by_channel = Vec::new();
        for receiver in [PRIMARY, SECONDARY] {
            let log = lab
                .webhook_log(receiver)
                .with_context(|| format!("no receiver {receiver}"))?;
            let ids = log
                .iter()
                .filter_map(|m| m.id.parse().ok().map(|id| (id, m.received_us)))
                .collect();
            by_channel.push((receiver, ids));
        }
        let mails = lab
            .smtp_mails()
            .iter()
            .filter_map(|m| {
                let id = m.message_id.as_deref()?.trim().parse().ok()?;
                Some((id, m.received_us))
            })
            .collect();
        by_channel.push((EMAIL, mails));
        Ok(Arrivals { by_channel })
    }

    fn at(&self, channel: &str) -> &[(i64, u64)] {
        self.by_channel
            .iter()
            .find(|(name, _)| *name == channel)
            .map_or(&[], |(_, ids)| ids.as_slice())
    }

    /// Seconds from `from` to the first arrival through `channel`.
    fn first_at(&self, lab: &LabHandle, channel: &str, from: Instant) -> Option<f64> {
        first_after(lab, from, self.at(channel).iter().map(|(_, us)| *us))
    }

    fn unique(&self) -> u64 {
        let ids: HashSet<i64> = self
            .by_channel
            .iter()
            .flat_map(|(_, ids)| ids.iter().map(|(id, _)| *id))
            .collect();
        ids.len() as u64
    }
}

/// Messages handed from one hop to the next (SPEC M11).
fn fallbacks(gateway: &GatewayView, from: &str, to: &str) -> u64 {
    gateway.metrics().labeled(
        "route_fallbacks_total",
        &[("route", "chat"), ("from", from), ("to", to)],
    )
}

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let mut lab = LabConfig::loopback(&[]);
    lab.seed = 7;
    for name in [PRIMARY, SECONDARY] {
        lab.webhooks.push(WebhookConfig::loopback(
            name,
            Some(&format!("{name}-signing-secret")),
        ));
    }
    lab.smtp = Some(SmtpConfig::loopback());
    let chat_hop = hop(Some(CHAT_BUDGET), 50, 200);
    let rig = Rig::start(
        dir,
        lab,
        |lab| {
            let mut channels: Vec<(String, ChannelConfig)> = lab
                .webhook_addrs()
                .into_iter()
                .map(|(name, addr)| {
                    let config = DigitalConfig {
                        name: name.clone(),
                        url: format!("http://{addr}/messages"),
                        secret: Some(format!("{name}-signing-secret").into()),
                        timeout: Duration::from_secs(2),
                    };
                    (name, ChannelConfig::Digital(config))
                })
                .collect();
            let smtp = lab.smtp_addr().expect("the lab runs an SMTP sink");
            let mut email =
                EmailConfig::new(smtp.ip().to_string(), "Hotsite <hotsite@example.com>");
            email.port = Some(smtp.port());
            email.security = Security::None;
            email.timeout = Duration::from_secs(5);
            channels.push((EMAIL.to_owned(), ChannelConfig::Email(email)));
            channels
        },
        vec![RouteConfig {
            name: "chat".to_owned(),
            hops: vec![
                (PRIMARY.to_owned(), chat_hop),
                (SECONDARY.to_owned(), chat_hop),
                (EMAIL.to_owned(), hop(None, 200, 2_000)),
            ],
        }],
    )
    .await?;
    let receivers = rig.lab.webhook_addrs();
    progress.line(&format!(
        "gateway on {}; route chat: {PRIMARY} on {}, {SECONDARY} on {}, e-mail via SMTP on {}",
        rig.api,
        receivers[0].1,
        receivers[1].1,
        rig.lab
            .smtp_addr()
            .map_or("?".to_owned(), |addr| addr.to_string()),
    ));

    let mut traffic = Traffic::start(&rig.api, settings, 0.2, chat_message);
    let mut driver = Driver::new(settings, progress);
    let mut phase = 0;
    let mut text = "chat via primary";
    let mut primary_at: Option<Instant> = None;
    let mut secondary_at: Option<Instant> = None;
    let mut recovered_at: Option<Instant> = None;
    loop {
        let now = driver.tick(&mut traffic).await;
        let arrivals = Arrivals::read(&rig.lab)?;
        let since = |from: Option<Instant>, channel| {
            from.is_some_and(|at| arrivals.first_at(&rig.lab, channel, at).is_some())
        };
        if phase == 0 && traffic.reached(0.2) {
            primary_at = Some(inject(&rig, PRIMARY)?);
            progress.line(&format!(
                "{PRIMARY} answers 503: {CHAT_BUDGET} tries with backoff, then {SECONDARY} (SPEC M10, M11)"
            ));
            text = "primary 503: via secondary";
            traffic.hold_at(0.4);
            phase = 1;
        } else if phase == 1 && traffic.reached(0.4) && since(primary_at, SECONDARY) {
            secondary_at = Some(inject(&rig, SECONDARY)?);
            progress.line(&format!(
                "{SECONDARY} answers 503 too: after both hops' budgets, e-mail"
            ));
            text = "both chats 503: via e-mail";
            traffic.hold_at(0.6);
            phase = 2;
        } else if phase == 2 && traffic.reached(0.6) && since(secondary_at, EMAIL) {
            for receiver in [PRIMARY, SECONDARY] {
                rig.lab
                    .set_webhook_fault(receiver, HttpFault::Recover)
                    .with_context(|| format!("cannot recover {receiver}"))?;
            }
            recovered_at = Some(clock::now());
            progress.line("both chat providers recover: new messages go to primary-chat again");
            text = "recovered: via primary";
            traffic.hold_at(0.8);
            phase = 3;
        } else if phase == 3 && traffic.reached(0.8) && since(recovered_at, PRIMARY) {
            traffic.release();
            phase = 4;
        }
        let settled = arrivals.unique() + rig.failed().await?;
        if driver.end(now, &traffic, settled, phase == 4, text) {
            break;
        }
    }
    let accepted = traffic.accepted();
    traffic.join().await?;
    settle(&rig.store).await?;

    // Map hotsite's ids back to the demo's messages.
    let mut index_of: HashMap<i64, u64> = HashMap::new();
    for i in 0..settings.messages {
        if let Some(view) = rig.store.message_by_key(&format!("demo-{i}")).await? {
            index_of.insert(view.id.0, i);
        }
    }
    let arrivals = Arrivals::read(&rig.lab)?;
    let all = arrivals
        .by_channel
        .iter()
        .flat_map(|(_, ids)| ids.iter().filter_map(|(id, _)| index_of.get(id).copied()));
    let mut report = Report::new(
        settings,
        "a chat route falling back to a secondary provider, then to e-mail",
        accepted,
        Tally::count(settings.messages, all),
        rig.failed().await?,
        driver.duration(),
    );
    let lab = &rig.lab;
    if let Some(at) = primary_at {
        report.failover(
            FailoverTiming::new("answers 503", PRIMARY)
                .time("time_to_failover_s", arrivals.first_at(lab, SECONDARY, at))
                .time(
                    "recovered_after_s",
                    recovered_at.and_then(|at| arrivals.first_at(lab, PRIMARY, at)),
                ),
        );
    }
    if let Some(at) = secondary_at {
        report.failover(
            FailoverTiming::new("answers 503", SECONDARY)
                .time("time_to_failover_s", arrivals.first_at(lab, EMAIL, at)),
        );
    }
    let by_channel: BTreeMap<&str, u64> = arrivals
        .by_channel
        .iter()
        .map(|(name, ids)| (*name, ids.len() as u64))
        .collect();
    report.extra("by_channel", serde_json::to_value(by_channel)?);
    report.extra(
        "fallbacks",
        rig.gateway
            .metrics()
            .messages_fallback_total
            .load(Ordering::Relaxed),
    );
    report.extra(
        "fallbacks_by_hop",
        json!({
            "primary_to_secondary": fallbacks(&rig.gateway, PRIMARY, SECONDARY),
            "secondary_to_email": fallbacks(&rig.gateway, SECONDARY, EMAIL),
        }),
    );
    let stats = lab.stats();
    report.extra(
        "chat_503_answers",
        stats
            .webhooks
            .iter()
            .map(|w| w.transport.injected.get(&503).copied().unwrap_or(0))
            .sum::<u64>(),
    );
    report.extra(
        "receiver_dropped_repeats",
        stats.webhooks.iter().map(|w| w.duplicates).sum::<u64>(),
    );
    report.note(format!(
        "each chat hop: {CHAT_BUDGET} sends, 50 ms backoff doubling to 200 ms; then the next hop (SPEC M11)"
    ));
    report.note(
        "time to failover: from the fault to the first message delivered through the next hop; recovered: from the recovery to the first message at primary-chat again (a message between retries may get there at once)",
    );
    report.note(
        "duplicated counts an id delivered through two channels or twice through one; receiver_dropped_repeats are resends a receiver recognised by id",
    );
    rig.shutdown().await;
    Ok(report)
}

/// Makes `receiver` answer 503; returns when.
fn inject(rig: &Rig, receiver: &str) -> anyhow::Result<Instant> {
    rig.lab
        .set_webhook_fault(
            receiver,
            HttpFault::Status {
                code: 503,
                retry_after_s: None,
            },
        )
        .with_context(|| format!("cannot make {receiver} answer 503"))?;
    Ok(clock::now())
}
