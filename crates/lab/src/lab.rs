//! Starting, steering and stopping a lab.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hotsite_core::{SiteName, Target};
use hotsite_smpp::pdu::{Address, ShortMessage, Tlvs};
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{ConfigError, LabConfig};
use crate::control;
use crate::fault::{Fault, InvalidFault};
use crate::http::aggregator::MAX_MESSAGE_CHARS;
use crate::http::callbacks::{self, Callback};
use crate::http::{form, HttpFault, ServerRef};
use crate::link::{LinkError, LinkStats};
use crate::media::{HandoverStarted, MediaCallInfo, MediaError, MediaServerStats, RecordingPaths};
use crate::peers::Peers;
use crate::port::lock;
use crate::shared::Shared;
use crate::sip::{PhoneCommand, PhoneStats, SipError};
use crate::smpp::provider::{Delivery, DeliveryKind, Route};
use crate::smpp::receipt::encode_text;
use crate::smtp::SmtpFault;
use crate::stats::LabStats;
use crate::traffic::{
    HandsetMessage, HttpMoDispatch, HttpMoRequest, MoDispatch, MoRequest, SmtpMail, WebhookMessage,
};

/// SMPP 3.4 limit on `source_addr` and `destination_addr` of `deliver_sm`.
const MAX_ADDR_LEN: usize = 20;
/// Longest body that fits `short_message`; longer ones go in `message_payload`.
const MAX_SHORT_MESSAGE: usize = 254;
/// Longest MO body accepted, well inside `message_payload`'s limit.
const MAX_MO_BODY: usize = 60_000;

/// Starts labs. See the crate docs.
pub struct Lab;

/// Why a lab could not start, or a request to it was refused.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be listened on.
    #[error("{what}: cannot listen on {addr}: {source}")]
    Listen {
        /// What wanted the port (`smsc a/a1`, `http site a`, `webhook chat`,
        /// `dns`, `smtp`, `control API`).
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// No SMSC instance has this site and name.
    #[error("unknown smsc {0}")]
    UnknownSmsc(Target),
    /// No site (SMPP, or HTTP for the HTTP API's calls) has this name.
    #[error("unknown site {0:?}")]
    UnknownSite(String),
    /// No webhook receiver has this name.
    #[error("unknown webhook receiver {0:?}")]
    UnknownWebhook(String),
    /// The request needs a part of the configuration the lab was started without.
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// A DNS name the server cannot hold.
    #[error("invalid dns name: {0}")]
    InvalidDns(String),
    /// The HTTP client for callbacks could not be built.
    #[error("cannot build the callback HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// No account has this `system_id`.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// The fault's parameters are out of bounds.
    #[error("invalid fault: {0}")]
    InvalidFault(#[from] InvalidFault),
    /// The MO cannot be sent as it is.
    #[error("invalid mo: {0}")]
    InvalidMo(String),
    /// No phone has this DN.
    #[error("unknown phone {0:?}")]
    UnknownPhone(String),
    /// No link has this name.
    #[error("unknown link {0:?}")]
    UnknownLink(String),
    /// A phone could not start, or refused a command.
    #[error(transparent)]
    Sip(#[from] SipError),
    /// A link could not start, or listen again after a cut.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// No media server has this name.
    #[error("unknown media server {0:?}")]
    UnknownMediaServer(String),
    /// A media server could not start, or refused a command.
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// A running lab. Dropping it closes every port and stops every task without
/// waiting for them; [`LabHandle::shutdown`] also waits.
pub struct LabHandle {
    shared: Arc<Shared>,
    control_addr: SocketAddr,
}

impl Lab {
    /// Validates `config`, starts the links and phones (which register at
    /// once), binds every port (SMSC instances, HTTP sites, webhook receivers,
    /// DNS, SMTP, the control API), and starts serving. Must be called within
    /// a tokio runtime.
    pub async fn start(config: LabConfig) -> Result<LabHandle, LabError> {
        config.validate()?;
        let control_config_addr = config.control;
        let peers = Peers::start(&config).await?;
        let (shared, listeners) = Shared::bind_all(config, Clock::start(), peers)?;
        let control_listener = TcpListener::bind(control_config_addr)
            .await
            .map_err(|source| LabError::Listen {
                what: "control API".to_owned(),
                addr: control_config_addr,
                source,
            })?;
        let control_addr = control_listener
            .local_addr()
            .map_err(|source| LabError::Listen {
                what: "control API".to_owned(),
                addr: control_config_addr,
                source,
            })?;
        shared.start_all(listeners)?;
        control::spawn(Arc::clone(&shared), control_listener);
        tracing::info!(
            %control_addr,
            smsc = shared.instances.len(),
            http_sites = shared.http_sites.len(),
            webhooks = shared.webhooks.len(),
            "lab started"
        );
        Ok(LabHandle {
            shared,
            control_addr,
        })
    }
}

impl LabHandle {
    /// Every SMSC instance and where it listens, in configuration order.
    pub fn smsc_addrs(&self) -> Vec<(Target, SocketAddr)> {
        self.shared
            .instances
            .iter()
            .map(|instance| (instance.target.clone(), instance.port.addr))
            .collect()
    }

    /// Every HTTP API site (name) and where it listens, in configuration order.
    pub fn http_site_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.shared
            .http_sites
            .iter()
            .map(|site| (site.server.name.clone(), site.server.port.addr))
            .collect()
    }

    /// Every webhook receiver (name) and where it listens, in configuration order.
    pub fn webhook_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.shared
            .webhooks
            .iter()
            .map(|receiver| (receiver.server.name.clone(), receiver.server.port.addr))
            .collect()
    }

    /// Where the DNS server listens (UDP), if `[lab.dns]` is configured.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.shared.dns.as_ref().map(|dns| dns.addr)
    }

    /// Where the SMTP sink listens, if `[lab.smtp]` is configured.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.shared.smtp.as_ref().map(|smtp| smtp.port.addr)
    }

    /// The instant the lab started, on the process's monotonic clock (tokio's):
    /// [`HandsetMessage::received_us`] counts from it.
    pub fn epoch(&self) -> std::time::Instant {
        self.shared.clock.epoch().into_std()
    }

    /// Where the control API listens.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LabStats {
        stats(&self.shared)
    }

    /// Puts an instance into `fault`, replacing the previous one. When it
    /// returns the fault is in force: after [`Fault::Die`] the port refuses
    /// connections, and the sessions are reset by their tasks a moment later.
    /// Callable from any thread, inside the runtime or not.
    pub fn set_fault(&self, target: &Target, fault: Fault) -> Result<(), LabError> {
        set_fault(&self.shared, target, fault)
    }

    /// Sends an MO to a bound receiver or transceiver of the account, or keeps
    /// it until one binds.
    pub fn send_mo(&self, request: MoRequest) -> Result<MoDispatch, LabError> {
        send_mo(&self.shared, request)
    }

    /// Every distinct message that reached a handset, oldest first, over SMPP
    /// and the HTTP API alike.
    pub fn handset_log(&self) -> Vec<HandsetMessage> {
        self.shared.provider().handsets().to_vec()
    }

    /// Puts an HTTP API site into `fault`, replacing the previous one; it
    /// applies to the next request. After [`HttpFault::Die`] returns the port
    /// refuses connections (open ones are reset a moment later). Callable from
    /// any thread.
    pub fn set_http_site_fault(&self, site: &str, fault: HttpFault) -> Result<(), LabError> {
        let index = self
            .shared
            .http_site_index(site)
            .ok_or_else(|| LabError::UnknownSite(site.to_owned()))?;
        self.shared.set_http_fault(ServerRef::Site(index), fault)
    }

    /// Puts a webhook receiver into `fault`, as [`LabHandle::set_http_site_fault`].
    /// `throttle` and `internal_error` are the HTTP API's and are refused here.
    pub fn set_webhook_fault(&self, receiver: &str, fault: HttpFault) -> Result<(), LabError> {
        let index = self
            .shared
            .webhook_index(receiver)
            .ok_or_else(|| LabError::UnknownWebhook(receiver.to_owned()))?;
        self.shared.set_http_fault(ServerRef::Webhook(index), fault)
    }

    /// Puts the SMTP sink into `fault`.
    pub fn set_smtp_fault(&self, fault: SmtpFault) -> Result<(), LabError> {
        self.shared.set_smtp_fault(fault)
    }

    /// Posts an MO to `lab.http.mo_url` (once, or twice with `duplicate`),
    /// retried like every callback. Returns as soon as the POSTs are started.
    pub fn send_http_mo(&self, request: HttpMoRequest) -> Result<HttpMoDispatch, LabError> {
        send_http_mo(&self.shared, request)
    }

    /// Every distinct message receiver `receiver` accepted, oldest first.
    pub fn webhook_log(&self, receiver: &str) -> Result<Vec<WebhookMessage>, LabError> {
        let index = self
            .shared
            .webhook_index(receiver)
            .ok_or_else(|| LabError::UnknownWebhook(receiver.to_owned()))?;
        Ok(lock(&self.shared.webhooks[index].state).log.clone())
    }

    /// Every mail the SMTP sink accepted, oldest first (none without `[lab.smtp]`).
    pub fn smtp_mails(&self) -> Vec<SmtpMail> {
        self.shared
            .smtp
            .as_ref()
            .map(|smtp| smtp.mails())
            .unwrap_or_default()
    }

    /// Points DNS name `name` at `addrs` (IPv4 for A, IPv6 for AAAA), adding
    /// it if new. Resolvers see the move once their cached answer's TTL ends.
    pub fn set_dns(&self, name: &str, addrs: Vec<IpAddr>) -> Result<(), LabError> {
        let dns = self
            .shared
            .dns
            .as_ref()
            .ok_or(LabError::NotConfigured("lab.dns"))?;
        dns.set(name, addrs).map(|_| ())
    }

    /// How many queries for `name` the DNS server answered so far (0 without
    /// `[lab.dns]`).
    pub fn dns_queries(&self, name: &str) -> u64 {
        self.shared.dns.as_ref().map_or(0, |dns| dns.queries(name))
    }

    /// Every phone (`[[lab.phones]]`): its DN and address, in configuration
    /// order.
    pub fn phone_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.shared.peers().phone_addrs()
    }

    /// Every phone's registrations, calls and received INVITEs (SPEC S8).
    pub fn phone_stats(&self) -> Vec<PhoneStats> {
        self.shared.peers().phone_stats()
    }

    /// Runs `command` on phone `dn`: stop registering, unregister, resume,
    /// switch registrars, or change how it answers.
    pub fn phone_command(&self, dn: &str, command: PhoneCommand) -> Result<(), LabError> {
        self.shared.peers().phone_command(dn, command)
    }

    /// Every link (`[[lab.links]]`): its addresses, state and counters.
    pub fn link_stats(&self) -> Vec<LinkStats> {
        self.shared.peers().link_stats()
    }

    /// Cuts link `name` both ways (SPEC S4); see [`crate::Link::cut`].
    pub fn cut_link(&self, name: &str) -> Result<(), LabError> {
        self.shared.peers().link(name)?.cut();
        Ok(())
    }

    /// Restores link `name`; see [`crate::Link::restore`].
    pub fn restore_link(&self, name: &str) -> Result<(), LabError> {
        Ok(self.shared.peers().link(name)?.restore()?)
    }

    /// Every media server (`[[lab.media_servers]]`): its name and SIP
    /// address, in configuration order.
    pub fn media_server_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.shared.peers().media_server_addrs()
    }

    /// Media server `name`'s calls (SPEC R1, R2): handovers, DTMF, hold,
    /// recordings.
    pub fn media_server_calls(&self, name: &str) -> Result<Vec<MediaCallInfo>, LabError> {
        Ok(self.shared.peers().media_server(name)?.calls())
    }

    /// Media server `name`'s counters.
    pub fn media_server_stats(&self, name: &str) -> Result<MediaServerStats, LabError> {
        Ok(self.shared.peers().media_server(name)?.stats())
    }

    /// Hands call `call_id` of media server `name` over (every call up with
    /// `None`), for `gap` (default: the server's); see
    /// [`crate::MediaServer::handover`].
    pub fn media_server_handover(
        &self,
        name: &str,
        call_id: Option<&str>,
        gap: Option<Duration>,
    ) -> Result<Vec<HandoverStarted>, LabError> {
        Ok(self
            .shared
            .peers()
            .media_server(name)?
            .handover(call_id, gap)?)
    }

    /// Where call `call_id`'s cloud recording is, once written.
    pub fn media_server_recording(
        &self,
        name: &str,
        call_id: &str,
    ) -> Result<Option<RecordingPaths>, LabError> {
        Ok(self.shared.peers().media_server(name)?.recording(call_id))
    }

    /// Stops every listener, session, timer, phone, link, media server and
    /// the control API, and waits for them.
    pub async fn shutdown(self) {
        self.shared.shut_down().await;
        tracing::info!("lab stopped");
    }
}

impl Drop for LabHandle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

pub(crate) fn stats(shared: &Shared) -> LabStats {
    let (totals, smsc) = shared.provider().stats();
    LabStats {
        at_ms: shared.clock.elapsed_ms(),
        totals,
        smsc,
        http_sites: shared.http_site_stats(),
        webhooks: shared.webhook_stats(),
        dns: shared.dns.as_ref().map(|dns| dns.stats()),
        smtp: shared.smtp.as_ref().map(|smtp| smtp.stats()),
    }
}

pub(crate) fn send_http_mo(
    shared: &Arc<Shared>,
    request: HttpMoRequest,
) -> Result<HttpMoDispatch, LabError> {
    for (field, value) in [("from", &request.from), ("to", &request.to)] {
        let len = value.chars().count();
        if len == 0 || len > MAX_ADDR_LEN {
            return Err(LabError::InvalidMo(format!(
                "{field}: must be 1 to {MAX_ADDR_LEN} characters, got {len}"
            )));
        }
    }
    let length = request.text.chars().count();
    if length > MAX_MESSAGE_CHARS {
        return Err(LabError::InvalidMo(format!(
            "text: must be at most {MAX_MESSAGE_CHARS} characters, got {length}"
        )));
    }
    if !shared.callbacks.has_mo_url() {
        return Err(LabError::NotConfigured("lab.http.mo_url"));
    }
    let site = match &request.site {
        Some(name) => shared
            .http_site_index(name)
            .ok_or_else(|| LabError::UnknownSite(name.clone()))?,
        None if shared.http_sites.is_empty() => {
            return Err(LabError::NotConfigured("lab.http.sites"))
        }
        None => 0,
    };
    let site_name = shared.http_sites[site].server.name.clone();
    let message_id = shared.provider().new_message_id();
    let body = form::encode(&[
        ("message_id", &message_id),
        ("from", &request.from),
        ("to", &request.to),
        ("message", &request.text),
        ("site", &site_name),
    ]);
    let copies: u8 = if request.duplicate { 2 } else { 1 };
    let callback = Callback::mo(ServerRef::Site(site), body);
    for _ in 0..copies {
        callbacks::post_after(shared, callback.clone(), Duration::ZERO);
    }
    Ok(HttpMoDispatch {
        message_id,
        site: site_name,
        copies,
    })
}

pub(crate) fn set_fault(
    shared: &Arc<Shared>,
    target: &Target,
    fault: Fault,
) -> Result<(), LabError> {
    fault.validate()?;
    let index = shared
        .instance_index(target)
        .ok_or_else(|| LabError::UnknownSmsc(target.clone()))?;
    shared.set_fault(index, fault)
}

pub(crate) fn send_mo(shared: &Shared, request: MoRequest) -> Result<MoDispatch, LabError> {
    if request.from.is_empty() || request.from.len() > MAX_ADDR_LEN {
        return Err(LabError::InvalidMo(format!(
            "from: must be 1 to {MAX_ADDR_LEN} characters, got {}",
            request.from.len()
        )));
    }
    if request.to.is_empty() || request.to.len() > MAX_ADDR_LEN {
        return Err(LabError::InvalidMo(format!(
            "to: must be 1 to {MAX_ADDR_LEN} characters, got {}",
            request.to.len()
        )));
    }
    let route = match &request.site {
        None => Route::Any,
        Some(site) => {
            let known = shared
                .instances
                .iter()
                .any(|instance| instance.target.site.as_str() == site);
            if !known {
                return Err(LabError::UnknownSite(site.clone()));
            }
            Route::Only(SiteName::new(site))
        }
    };
    let (data_coding, body) = encode_text(&request.text);
    if body.len() > MAX_MO_BODY {
        return Err(LabError::InvalidMo(format!(
            "text: must be at most {MAX_MO_BODY} octets encoded, got {}",
            body.len()
        )));
    }
    let mut message = ShortMessage {
        source: address(&request.from),
        destination: address(&request.to),
        data_coding,
        ..ShortMessage::default()
    };
    if body.len() <= MAX_SHORT_MESSAGE {
        message.short_message = body;
    } else {
        let mut tlvs = Tlvs::default();
        tlvs.set(hotsite_smpp::pdu::tag::MESSAGE_PAYLOAD, body);
        message.tlvs = tlvs;
    }
    let mut provider = shared.provider();
    let system_id = match request.system_id {
        Some(system_id) if !provider.has_account(&system_id) => {
            return Err(LabError::UnknownAccount(system_id));
        }
        Some(system_id) => system_id,
        None => provider.default_account().to_owned(),
    };
    let delivery = Delivery {
        kind: DeliveryKind::Mo,
        system_id,
        route,
        message,
        retries: 0,
    };
    Ok(match provider.route(delivery) {
        Some(target) => MoDispatch::Routed {
            site: target.site.to_string(),
            smsc: target.name.to_string(),
        },
        None => MoDispatch::Pending,
    })
}

/// An international number (TON 1, NPI 1) when it looks like one, else an
/// alphanumeric sender (TON 5).
fn address(addr: &str) -> Address {
    let digits = addr.strip_prefix('+').unwrap_or(addr);
    let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    Address {
        ton: if numeric { 1 } else { 5 },
        npi: if numeric { 1 } else { 0 },
        addr: addr.to_owned(),
    }
}
