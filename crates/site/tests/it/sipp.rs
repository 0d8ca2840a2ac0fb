//! SIPp as the agent phones (REGISTER with digest auth, then a UAS
//! answering calls) and as the media gateway (INVITE for a DN, ACK and BYE
//! through the site): SPEC S1, S8 against a SIP implementation not written
//! here.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hotsite_host::Deps;
use hotsite_site::config::{AgentConfig, DnConfig};
use hotsite_site::SiteConfig;
use tokio::process::{Child, Command};

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/sipp/{name}"))
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotsite-site-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const PASSWORD: &str = "phone-secret-1";

fn site_config(port: u16, dns: &[&str]) -> SiteConfig {
    let mut config = SiteConfig::new("a", &format!("127.0.0.1:{port}"));
    for dn in dns {
        config.dns.push(DnConfig {
            dn: (*dn).to_owned(),
            password: PASSWORD.into(),
            dr_forward: None,
        });
    }
    config.agents.push(AgentConfig { id: "alice".into() });
    config
}

/// One bounded SIPp client run: `scenario` with injection file `csv`
/// against `target`, `calls` calls; the (successful, failed) counts.
async fn sipp_client(
    dir: &std::path::Path,
    scenario_file: &str,
    csv: &str,
    target: u16,
    calls: u64,
) -> (u64, u64) {
    let inf = dir.join(format!("{scenario_file}.csv"));
    std::fs::write(&inf, csv).unwrap();
    let stats = dir.join(format!("{scenario_file}.stats.csv"));
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("sipp")
            .arg("-sf")
            .arg(scenario(scenario_file))
            .arg("-inf")
            .arg(&inf)
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
            .args(["-m", &calls.to_string(), "-r", "50", "-d", "100"])
            .args(["-nostdin", "-timeout", "30s", "-trace_stat", "-stf"])
            .arg(&stats)
            .arg(format!("127.0.0.1:{target}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .expect("SIPp finished within 60 s")
    .expect("sipp (Debian package sip-tester; scripts/test installs it)");
    let text = std::fs::read_to_string(&stats).expect("SIPp statistics file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    let column = |name: &str| -> u64 {
        let index = header.iter().position(|h| *h == name).unwrap();
        last[index].trim().parse().unwrap()
    };
    let counts = (column("SuccessfulCall(C)"), column("FailedCall(C)"));
    assert_eq!(
        status.success(),
        counts.1 == 0,
        "sipp exit {status} vs {counts:?}"
    );
    counts
}

/// SIPp's authentication keyword for an injection field.
fn auth(dn: &str, password: &str) -> String {
    format!("[authentication username={dn} password={password}]")
}

/// A SIPp UAS answering every call on `port`.
fn phone_uas(port: u16) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(scenario("uas.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-aa",
            "-nostdin",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (Debian package sip-tester; scripts/test installs it)")
}

/// SPEC S8 then S1: three SIPp phones register with digest auth (a fourth
/// with a wrong password is refused and stays out of service); a SIPp
/// gateway's calls to the registered DNs reach the phones' UAS through the
/// site and complete, ACK and BYE routed through it (no call left behind);
/// an unknown DN gets a final answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_phones_register_and_take_calls_through_the_site() {
    let dir = temp_dir("sipp");
    let site_port = free_port();
    let uas_port = free_port();
    let config = site_config(site_port, &["1001", "1002", "1003", "1004"]);
    let deps = Deps::detached();
    let mut events = deps.bus().subscribe();
    let (site, _routes) = hotsite_site::start(&config, &deps).await.unwrap();
    let _uas = phone_uas(uas_port);
    let phones: String = ["1001", "1002", "1003"]
        .iter()
        .map(|dn| format!("{dn};127.0.0.1:{uas_port};{};300\n", auth(dn, PASSWORD)))
        .collect();
    let registered = sipp_client(
        &dir,
        "register_auth.xml",
        &format!("SEQUENTIAL\n{phones}"),
        site_port,
        3,
    )
    .await;
    assert_eq!(registered, (3, 0));
    let wrong = format!(
        "SEQUENTIAL\n1004;127.0.0.1:{uas_port};{};300\n",
        auth("1004", "not-the-password")
    );
    let refused = sipp_client(&dir, "register_auth.xml", &wrong, site_port, 1).await;
    assert_eq!(refused, (0, 1), "a wrong password is refused");
    let status = site.status().await.unwrap();
    let in_service: Vec<&str> = status
        .dns
        .iter()
        .filter(|(_, _, bindings)| !bindings.is_empty())
        .map(|(dn, _, _)| dn.as_str())
        .collect();
    assert_eq!(in_service, ["1001", "1002", "1003"]);
    assert_eq!(status.registrar.registered, 3);

    let calls: String = ["1001", "1002", "1003", "1001", "1002", "1003"]
        .iter()
        .map(|dn| format!("{dn}\n"))
        .collect();
    let completed = sipp_client(
        &dir,
        "uac_dn.xml",
        &format!("SEQUENTIAL\n{calls}"),
        site_port,
        6,
    )
    .await;
    assert_eq!(completed, (6, 0), "every call to a registered DN completes");
    let status = site.status().await.unwrap();
    assert_eq!(status.calls.answered_local, 6);
    assert_eq!(status.calls.forwarded, 0);
    assert_eq!(status.active_calls, 0, "every BYE went through the site");
    // Unknown DN: the gateway gets a final answer, not silence.
    let unknown = sipp_client(&dir, "uac_dn.xml", "SEQUENTIAL\n4444\n", site_port, 1).await;
    assert_eq!(unknown, (0, 1));
    let mut kinds = Vec::new();
    while let Ok(record) = events.try_recv() {
        kinds.push(format!("{} {}", record.kind, record.target));
    }
    assert!(
        kinds.contains(&"dn_back_in_service a/dn/1001".to_owned()),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k.contains("dn/1004")), "{kinds:?}");
    site.shutdown().await;
}
