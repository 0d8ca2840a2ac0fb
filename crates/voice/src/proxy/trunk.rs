//! Everything the proxy keeps per trunk, in one place: how events name it,
//! where it is, when it was last heard from, its counters, and its prober and
//! registration (SPEC V2). Indexed like the configuration's trunks.
//!
//! The routing state (in or out of service, causes, plans) is not here: it is
//! the [`Trunks`](crate::routing::Trunks) policy, a state machine of its own
//! with its own tests, which the proxy feeds.

use std::time::Instant;

use hotsite_sip::prober::Prober;
use hotsite_sip::proxy::Peer;
use hotsite_sip::register::RegisterClient;

use super::{TrunkRef, TrunkStats};

/// One trunk's state in the proxy.
pub(crate) struct ProxyTrunk {
    /// Name, carrier and regions, as events and status name it (SPEC V3).
    pub(crate) trunk_ref: TrunkRef,
    /// Where its INVITEs and probes go, and over what.
    pub(crate) peer: Peer,
    /// When anything was last heard from it (any message from its address or
    /// its registrar's).
    pub(crate) heard_at: Instant,
    /// Its counters.
    pub(crate) stats: TrunkStats,
    /// Its OPTIONS prober (one target), if probed.
    pub(crate) prober: Option<Prober>,
    /// Its REGISTER client, if registration-based.
    pub(crate) registration: Option<Registration>,
}

/// A registration-based trunk's REGISTER client and where its REGISTERs go
/// (the registrar may live at another address than the trunk).
pub(crate) struct Registration {
    pub(crate) client: RegisterClient,
    pub(crate) address: Peer,
}
