//! Where a new call for a DN goes (SPEC S1, S3, S6, S7): this site's phone,
//! the peer site over the inter-site trunk, or a final answer. One pure
//! function over the facts the site machine gathers, so every combination is
//! a one-line test (`decide/tests.rs`).

use crate::config::DrForward;

/// What the site knows when a new INVITE for a DN arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts {
    /// The DN is configured here.
    pub known_dn: bool,
    /// The DN's effective `dr-forward` (its own, else the site's).
    pub dr_forward: DrForward,
    /// An agent is logged in on the DN at this site.
    pub agent_here: bool,
    /// The DN's phone has a registration here.
    pub dn_in_service: bool,
    /// The peer answers its probes (peered mode); false in single-site mode
    /// and without a peer trunk.
    pub peered: bool,
    /// The INVITE came from the peer (its forwarding header): never sent
    /// back, whatever the mode.
    pub from_peer: bool,
    /// The site is draining (SPEC S7).
    pub draining: bool,
}

/// What to do with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// To the DN's registered phone(s) here.
    Local,
    /// To the peer site (business-continuity forwarding), with why.
    Forward(&'static str),
    /// A final answer and why (for the Warning and the event).
    Reject(u16, &'static str),
    /// Draining with a 3xx reject code: redirect the caller to the peer.
    Redirect,
}

/// The decision for one new call. `reject_code` is the drain's
/// `shutdown_sip_reject_code`.
pub fn decide(facts: CallFacts, reject_code: u16) -> Decision {
    if facts.draining {
        return if (300..=302).contains(&reject_code) {
            Decision::Redirect
        } else {
            Decision::Reject(reject_code, "this site is draining (graceful shutdown)")
        };
    }
    if !facts.known_dn {
        return Decision::Reject(404, "the DN is not configured at this site");
    }
    let forward = !facts.from_peer
        && facts.peered
        && match facts.dr_forward {
            DrForward::Off => false,
            DrForward::NoAgent => !facts.agent_here,
            DrForward::Oos => !facts.dn_in_service,
        };
    if forward {
        return Decision::Forward(match facts.dr_forward {
            DrForward::NoAgent => "no agent logged in on the DN here (dr-forward no-agent)",
            _ => "the DN's phone is not registered here (dr-forward oos)",
        });
    }
    if facts.dn_in_service {
        Decision::Local
    } else if facts.from_peer {
        Decision::Reject(
            480,
            "forwarded by the peer site and the DN has no phone registered here either",
        )
    } else {
        Decision::Reject(480, "the DN has no phone registered at this site")
    }
}

#[cfg(test)]
mod tests;
