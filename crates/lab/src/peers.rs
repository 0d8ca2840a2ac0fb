//! The agent phones (`[[lab.phones]]`, SPEC S8), inter-site links
//! (`[[lab.links]]`, SPEC S4) and cloud media servers
//! (`[[lab.media_servers]]`, SPEC R1–R5) a lab runs beside its servers, and
//! the lab's calls on them. They start with the lab and stop with it; the
//! control API and [`crate::LabHandle`] find them by DN and by name.

use std::net::SocketAddr;

use crate::config::LabConfig;
use crate::lab::LabError;
use crate::link::{Link, LinkStats};
use crate::media::MediaServer;
use crate::sip::{PhoneCommand, PhoneStats, SipPhone};

/// The running phones, links and media servers, in configuration order.
#[derive(Default)]
pub(crate) struct Peers {
    phones: Vec<SipPhone>,
    links: Vec<Link>,
    media_servers: Vec<MediaServer>,
}

impl Peers {
    /// Starts every link, then every phone (a phone may register through a
    /// link), then every media server. On an error the ones started are
    /// stopped (dropped).
    pub(crate) async fn start(config: &LabConfig) -> Result<Peers, LabError> {
        let mut peers = Peers::default();
        for link in &config.links {
            peers.links.push(Link::start(link.link_config()).await?);
        }
        for phone in &config.phones {
            peers
                .phones
                .push(SipPhone::start(phone.phone_config()).await?);
        }
        for server in &config.media_servers {
            peers
                .media_servers
                .push(MediaServer::start(server.media_server_config()).await?);
        }
        Ok(peers)
    }

    /// Every media server's name and SIP address.
    pub(crate) fn media_server_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.media_servers
            .iter()
            .map(|server| (server.name().to_owned(), server.local_addr()))
            .collect()
    }

    pub(crate) fn media_server(&self, name: &str) -> Result<&MediaServer, LabError> {
        self.media_servers
            .iter()
            .find(|server| server.name() == name)
            .ok_or_else(|| LabError::UnknownMediaServer(name.to_owned()))
    }

    /// Every phone's DN and address.
    pub(crate) fn phone_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.phones
            .iter()
            .map(|phone| (phone.dn().to_owned(), phone.local_addr()))
            .collect()
    }

    pub(crate) fn phone_stats(&self) -> Vec<PhoneStats> {
        self.phones.iter().map(SipPhone::stats).collect()
    }

    pub(crate) fn phone_command(&self, dn: &str, command: PhoneCommand) -> Result<(), LabError> {
        let phone = self
            .phones
            .iter()
            .find(|phone| phone.dn() == dn)
            .ok_or_else(|| LabError::UnknownPhone(dn.to_owned()))?;
        Ok(phone.command(command)?)
    }

    pub(crate) fn link_stats(&self) -> Vec<LinkStats> {
        self.links.iter().map(Link::stats).collect()
    }

    pub(crate) fn link(&self, name: &str) -> Result<&Link, LabError> {
        self.links
            .iter()
            .find(|link| link.name() == name)
            .ok_or_else(|| LabError::UnknownLink(name.to_owned()))
    }

    /// Stops every phone, link and media server (which writes the
    /// recordings of calls still up) and waits for their tasks.
    pub(crate) async fn shutdown(self) {
        for phone in self.phones {
            phone.shutdown().await;
        }
        for link in self.links {
            link.shutdown().await;
        }
        for server in self.media_servers {
            server.shutdown().await;
        }
    }
}
