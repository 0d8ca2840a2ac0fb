//! Loopback tests of hotsite-lab: a real SMPP client (the `client` module), the
//! HTTP API, webhook receivers, DNS (through a real resolver), the SMTP sink
//! (through a real mail client) and the HTTP control API, against labs on
//! ephemeral ports. One binary, per matklad's advice (STYLE.md); each test
//! names the SPEC behaviour it serves.

mod awkward;
mod binds;
mod callback_sink;
mod client;
mod control;
mod dns;
mod faults;
mod http_api;
mod http_faults;
mod http_lab;
mod link;
mod media;
mod messages;
mod mo;
mod phone;
mod sip;
mod smtp;
mod webhooks;

use std::net::SocketAddr;
use std::time::Duration;

use hotsite_core::Target;
use hotsite_lab::{Lab, LabConfig, LabHandle, LabStats};

/// A lab with two sites, `a` (instance `a1`) and `b` (instance `b1`), accounts
/// `hotsite`/`secret` and `other`/`pw`, and `receipts` as the body of
/// `[lab.receipts]`.
pub(crate) struct TestLab {
    pub(crate) lab: LabHandle,
    pub(crate) http: reqwest::Client,
}

impl TestLab {
    pub(crate) async fn start(receipts: &str) -> TestLab {
        let text = format!(
            r#"
[lab]
control = "127.0.0.1:0"
seed = 7

[[lab.accounts]]
system_id = "hotsite"
password = "secret"
[[lab.accounts]]
system_id = "other"
password = "pw"

[lab.receipts]
{receipts}

[[lab.sites]]
name = "a"
[[lab.sites.smsc]]
name = "a1"
listen = "127.0.0.1:0"

[[lab.sites]]
name = "b"
[[lab.sites.smsc]]
name = "b1"
listen = "127.0.0.1:0"
"#
        );
        let config = LabConfig::from_toml_str(&text).expect("test config is valid");
        let lab = Lab::start(config).await.expect("lab starts");
        TestLab {
            lab,
            http: reqwest::Client::new(),
        }
    }

    /// A lab with quick, single, same-site receipts.
    pub(crate) async fn plain() -> TestLab {
        TestLab::start("delay_ms = 10").await
    }

    pub(crate) fn target(&self, site: &str, name: &str) -> Target {
        Target::new(site, name)
    }

    pub(crate) fn addr(&self, site: &str, name: &str) -> SocketAddr {
        let target = self.target(site, name);
        self.lab
            .smsc_addrs()
            .into_iter()
            .find(|(candidate, _)| *candidate == target)
            .map(|(_, addr)| addr)
            .unwrap_or_else(|| panic!("no smsc {target}"))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lab.control_addr())
    }

    /// Polls the stats until `done` holds; panics after about 800 ms.
    pub(crate) async fn stats_until(
        &self,
        what: &str,
        done: impl Fn(&LabStats) -> bool,
    ) -> LabStats {
        for _ in 0..80 {
            let stats = self.lab.stats();
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}: {:#?}", self.lab.stats());
    }

    pub(crate) async fn shutdown(self) {
        self.lab.shutdown().await;
    }
}
