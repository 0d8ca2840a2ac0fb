//! A lab with the HTTP API (sites `a` and `b`), two webhook receivers and a
//! callback sink standing in for hotsite, for the HTTP tests.

use std::net::SocketAddr;
use std::time::Duration;

use hotsite_lab::{Lab, LabConfig, LabHandle, LabStats};
use serde_json::Value;

use crate::callback_sink::CallbackSink;

/// `lab.http.callback_secret`.
pub(crate) const CALLBACK_SECRET: &str = "callback-secret";
/// The secret of webhook receiver `primary-chat`.
pub(crate) const HOOK_SECRET: &str = "hook-secret";

pub(crate) struct HttpLab {
    pub(crate) lab: LabHandle,
    pub(crate) http: reqwest::Client,
    pub(crate) sink: CallbackSink,
}

impl HttpLab {
    /// `receipts` is the body of `[lab.receipts]`.
    pub(crate) async fn start(receipts: &str) -> HttpLab {
        let sink = CallbackSink::start().await;
        let text = format!(
            r#"
[lab]
seed = 5
[[lab.accounts]]
system_id = "hotsite"
password = "secret"

[lab.receipts]
{receipts}

[lab.http]
dr_url = "{dr}"
mo_url = "{mo}"
callback_secret = "{CALLBACK_SECRET}"
callback_retry_ms = 20
callback_max_attempts = 5
callback_timeout_ms = 500
[[lab.http.sites]]
name = "a"
[[lab.http.sites]]
name = "b"

[[lab.webhooks]]
name = "primary-chat"
secret = "{HOOK_SECRET}"
[[lab.webhooks]]
name = "secondary-chat"
"#,
            dr = sink.url("/dr"),
            mo = sink.url("/mo"),
        );
        let config = LabConfig::from_toml_str(&text).expect("test config is valid");
        let lab = Lab::start(config).await.expect("lab starts");
        HttpLab {
            lab,
            http: client(),
            sink,
        }
    }

    /// A lab with quick, single, same-site receipts.
    pub(crate) async fn plain() -> HttpLab {
        HttpLab::start("delay_ms = 5").await
    }

    pub(crate) fn site_addr(&self, site: &str) -> SocketAddr {
        find(&self.lab.http_site_addrs(), site)
    }

    pub(crate) fn webhook_addr(&self, receiver: &str) -> SocketAddr {
        find(&self.lab.webhook_addrs(), receiver)
    }

    pub(crate) fn send_url(&self, site: &str) -> String {
        format!("http://{}/sms/send", self.site_addr(site))
    }

    pub(crate) fn control_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lab.control_addr())
    }

    /// Posts `fields` as a form to site `site`; the HTTP status and JSON answer.
    pub(crate) async fn submit(&self, site: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        submit(&self.http, &self.send_url(site), fields).await
    }

    /// Polls the stats until `done` holds; panics after about 2 s.
    pub(crate) async fn stats_until(
        &self,
        what: &str,
        done: impl Fn(&LabStats) -> bool,
    ) -> LabStats {
        for _ in 0..200 {
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

/// A client that never pools: each request gets a fresh connection, so a fault
/// meets the request that follows it.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

pub(crate) async fn submit(
    http: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(url)
        .form(fields)
        .send()
        .await
        .expect("POST /sms/send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

/// A valid submit with client id `message_id`, and `extra` fields.
pub(crate) fn sms<'a>(
    message_id: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("login", "hotsite"),
        ("password", "secret"),
        ("phone_number", "+33612345678"),
        ("sender", "ACME"),
        ("message", "hello from the HTTP API"),
        ("message_id", message_id),
    ];
    for (name, value) in extra {
        fields.retain(|(field, _)| field != name);
        fields.push((name, value));
    }
    fields
}

fn find(addrs: &[(String, SocketAddr)], name: &str) -> SocketAddr {
    addrs
        .iter()
        .find(|(candidate, _)| candidate == name)
        .map(|(_, addr)| *addr)
        .unwrap_or_else(|| panic!("no server {name}"))
}
