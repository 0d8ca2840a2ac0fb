//! The agent phones (`[[lab.phones]]`, SPEC S8) and inter-site links
//! (`[[lab.links]]`, SPEC S4) a lab runs beside its servers, and the lab's
//! calls on them. They start with the lab and stop with it; the control API
//! and [`crate::LabHandle`] find them by DN and by name.

use std::net::SocketAddr;

use crate::config::LabConfig;
use crate::lab::LabError;
use crate::link::{Link, LinkStats};
use crate::sip::{PhoneCommand, PhoneStats, SipPhone};

/// The running phones and links, in configuration order.
#[derive(Default)]
pub(crate) struct Peers {
    phones: Vec<SipPhone>,
    links: Vec<Link>,
}

impl Peers {
    /// Starts every link, then every phone (a phone may register through a
    /// link). On an error the ones started are stopped (dropped).
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
        Ok(peers)
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

    /// Stops every phone and link and waits for their tasks.
    pub(crate) async fn shutdown(self) {
        for phone in self.phones {
            phone.shutdown().await;
        }
        for link in self.links {
            link.shutdown().await;
        }
    }
}
