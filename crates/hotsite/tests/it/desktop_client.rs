//! The Rust desktop client (`hotsite_desktop::client`) against two `hotsite
//! run` sites peered through the lab's link, with a phone registered at both
//! (dual registration): the switchover machine driven by real connections
//! (SPEC D1, D2, D4, D6, D8 with S2, S7). Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use hotsite_desktop::client::{Desktop, DesktopConfig, Report, Timed};
use hotsite_desktop::{Output, Reason};
use hotsite_lab::{Link, LinkConfig, SipPhone, SipPhoneConfig};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::daemon::Daemon;
use crate::desktop::{free_udp, hash, Endpoints, Site, PASSWORD, TOKEN};
use crate::gateway::{now, temp_dir};

const PHONE_PASSWORD: &str = "phone-secret-1";
/// The same at both sites: a token from a is good at b.
const SESSION_KEY: &str = "both sites sign session tokens with this key";
/// The desktop's `site_timeout` here; the bound is this + 2 s.
const SITE_TIMEOUT_MS: u64 = 3_000;

fn free_tcp() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Pair {
    a: Daemon,
    b: Daemon,
    urls: [(String, String); 2],
    _link: Link,
    _phone: SipPhone,
}

/// Two peered sites whose `[desktop]` lists both (fixed API ports, so the
/// sites' own list is right), alice preferring a, her phone at both.
async fn pair(name: &str) -> Pair {
    let dir = temp_dir(name);
    let phc = hash(PASSWORD);
    let (a_sip, b_sip) = (free_udp(), free_udp());
    let (a_api, b_api) = (free_tcp(), free_tcp());
    let urls = [
        ("a".to_owned(), format!("ws://{a_api}/v1/desktop")),
        ("b".to_owned(), format!("ws://{b_api}/v1/desktop")),
    ];
    let link = Link::start(LinkConfig::new("ab", a_sip, b_sip))
        .await
        .unwrap();
    let key = format!("session_key = \"{SESSION_KEY}\"\n");
    let at = |api| Endpoints { api, urls: &urls };
    let a = Site::start_at(&dir, "a", a_sip, Some(link.a_addr()), &phc, &key, at(a_api))
        .await
        .daemon;
    let b = Site::start_at(&dir, "b", b_sip, Some(link.b_addr()), &phc, &key, at(b_api))
        .await
        .daemon;
    let mut phone = SipPhoneConfig::new("1001", PHONE_PASSWORD, "hotsite", vec![a_sip, b_sip]);
    phone.expires = Duration::from_secs(60);
    let phone = SipPhone::start(phone).await.unwrap();
    for site in [&a, &b] {
        wait(site, "peered, DN 1001 in service", |s| {
            s["mode"] == "peered"
                && s["dns"].as_array().is_some_and(|dns| {
                    dns.iter()
                        .any(|d| d["dn"] == "1001" && d["in_service"] == true)
                })
        })
        .await;
    }
    Pair {
        a,
        b,
        urls,
        _link: link,
        _phone: phone,
    }
}

async fn get(site: &Daemon, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", site.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait(site: &Daemon, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = now() + Duration::from_secs(10);
    loop {
        let status = get(site, "/v1/site").await;
        if done(&status) {
            return;
        }
        assert!(now() < deadline, "{what}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn desktop(urls: &[(String, String); 2], start_site: &str, password: &str) -> DesktopConfig {
    let mut config = DesktopConfig::new(urls.clone(), "alice", password);
    config.start_site = start_site.to_owned();
    config.options.site_timeout_ms = Some(SITE_TIMEOUT_MS);
    config.options.retry_delay_ms = 500;
    config.options.retry_jitter_ms = 300;
    config.ping_interval = Duration::from_secs(1);
    config.seed = 42;
    config
}

/// Reports until `done` says stop, bounded by `limit`; all of them.
async fn reports_until(
    reports: &mut mpsc::UnboundedReceiver<Timed>,
    limit: Duration,
    what: &str,
    done: impl Fn(&Report) -> bool,
) -> Vec<Report> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::from_std(now() + limit);
    loop {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(timed)) => {
                let stop = done(&timed.report);
                seen.push(timed.report);
                if stop {
                    return seen;
                }
            }
            Ok(None) => panic!("{what}: the desktop stopped: {seen:#?}"),
            Err(_) => panic!("{what}: not within {limit:?}: {seen:#?}"),
        }
    }
}

fn switched_for(reports: &[Report], reason: Reason) -> bool {
    reports.iter().any(
        |r| matches!(r, Report::Decision(Output::SwitchOver { reason: why, .. }) if *why == reason),
    )
}

fn logged_in_at(site: &str) -> impl Fn(&Report) -> bool + '_ {
    move |report| matches!(report, Report::LoggedIn { site: at } if at == site)
}

/// SPEC D2, D4, D8 with S2: started at b, the desktop switches to alice's
/// preferred site a and logs her in there. Site a is killed: telephony goes
/// OFF, and after site_timeout the desktop switches over to b and logs her
/// in there, within site_timeout + 2 s of the kill, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_follows_its_agent_to_the_surviving_site() {
    let mut pair = pair("desktop-client-kill").await;
    let (tx, mut reports) = mpsc::unbounded_channel();
    let desktop = Desktop::start(desktop(&pair.urls, "b", PASSWORD), tx).unwrap();
    let seen = reports_until(
        &mut reports,
        Duration::from_secs(10),
        "logged in at a",
        logged_in_at("a"),
    )
    .await;
    assert!(switched_for(&seen, Reason::NotOnPreferredSite), "{seen:#?}");
    assert_eq!(desktop.state().logged_in.as_deref(), Some("a"));

    let killed = now();
    pair.a.child.start_kill().unwrap();
    let seen = reports_until(
        &mut reports,
        Duration::from_millis(SITE_TIMEOUT_MS + 2_000),
        "logged in at b after the kill",
        logged_in_at("b"),
    )
    .await;
    let took = killed.elapsed();
    assert!(
        seen.iter()
            .any(|r| matches!(r, Report::Lost { site } if site == "a")),
        "{seen:#?}"
    );
    assert!(
        switched_for(&seen, Reason::TelephonyOffTimeout),
        "{seen:#?}"
    );
    assert!(
        took >= Duration::from_millis(SITE_TIMEOUT_MS),
        "switched before site_timeout: {took:?}"
    );
    // b took the token a issued: no password check in the switchover (D8).
    let status = get(&pair.b, "/v1/status").await;
    assert!(
        status["desktop"]["hellos"]["session"].as_u64() >= Some(1),
        "{status}"
    );
    assert_eq!(status["desktop"]["hellos"]["bad_session"], 0, "{status}");
    let agents = get(&pair.b, "/v1/agents").await;
    assert!(
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "alice" && a["state"] != "logged_out"),
        "{agents}"
    );
    // D7: the decisions taken while a was gone reached b's event stream
    // once the desktop was connected there.
    let deadline = now() + Duration::from_secs(5);
    loop {
        let events = get(&pair.b, "/v1/events?system=desktop&kind=desktop_decisions").await;
        let texts: Vec<String> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["text"].as_str().map(str::to_owned))
            .collect();
        let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
        if has("desktop of alice:")
            && has("switch_over b (telephony_off_timeout)")
            && has("warn telephony (telephony_off)")
        {
            break;
        }
        assert!(now() < deadline, "{texts:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("alice logged in at b {took:?} after site a was killed");
    desktop.stop().await;
}

/// SPEC D6 with S7: draining site a logs alice out with
/// graceful_shutdown_logout; the desktop switches over to b at once and
/// logs her in there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_the_desktop_to_the_other_site() {
    let pair = pair("desktop-client-drain").await;
    let (tx, mut reports) = mpsc::unbounded_channel();
    let desktop = Desktop::start(desktop(&pair.urls, "a", PASSWORD), tx).unwrap();
    reports_until(
        &mut reports,
        Duration::from_secs(10),
        "logged in at a",
        logged_in_at("a"),
    )
    .await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/site/drain", pair.a.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let seen = reports_until(
        &mut reports,
        Duration::from_millis(SITE_TIMEOUT_MS),
        "logged in at b after the drain",
        logged_in_at("b"),
    )
    .await;
    assert!(
        seen.iter().any(|r| matches!(r, Report::LoggedOut { site, reason } if site == "a" && reason == "graceful_shutdown_logout")),
        "{seen:#?}"
    );
    assert!(
        switched_for(&seen, Reason::GracefulShutdownLogout),
        "{seen:#?}"
    );
    desktop.stop().await;
}

/// SPEC D1: a wrong password is refused at whichever site is asked; the
/// desktop stops instead of trying both sites for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stops_the_desktop() {
    let pair = pair("desktop-client-password").await;
    let (tx, mut reports) = mpsc::unbounded_channel();
    let desktop = Desktop::start(desktop(&pair.urls, "a", "not the password"), tx).unwrap();
    let seen = reports_until(&mut reports, Duration::from_secs(10), "stopped", |r| {
        matches!(r, Report::Stopped { .. })
    })
    .await;
    assert!(
        matches!(seen.last(), Some(Report::Stopped { site, code }) if site == "a" && code == "bad_credentials"),
        "{seen:#?}"
    );
    // The task ended: its report channel closes, nothing more is tried.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        let mut rest = Vec::new();
        while let Some(timed) = reports.recv().await {
            rest.push(timed.report);
        }
        rest
    })
    .await
    .expect("the desktop's task ends");
    assert!(rest.is_empty(), "{rest:#?}");
    desktop.stop().await;
}
