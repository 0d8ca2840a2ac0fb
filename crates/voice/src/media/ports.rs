//! The media port range as pairs (an even RTP port, RTCP on the next one;
//! RFC 3550 §11), and which of them are bound, in use or resting. Sans-IO:
//! the driver binds and reports.
//!
//! A pair's life:
//!
//! ```text
//!  Free ──bind asked──▶ Binding ──bound──▶ Ready ──taken by a call──▶ In use
//!   ▲                      │ failed                                      │ the call's
//!   │                      ▼                                             │ sockets closed
//!   └──after BAD_PORT_REST── Resting                                     │
//!   └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The driver keeps [`READY_PAIRS`] pairs bound ahead of need, so a call is
//! given ports that are already bound and its SDP never names a port that
//! is not ours (the core cannot wait for a bind in the middle of an INVITE).
//! It binds after every input, so the ready pairs cover any one INVITE.
//! Free pairs are taken from the front and given back at the back: a port
//! comes back only after the whole range has been used, so stray packets of
//! an ended call do not reach the next one on the same port.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Pairs kept bound ahead of need: one INVITE's worth (two legs of
/// [`MAX_STREAMS`](super::MAX_STREAMS) streams).
pub const READY_PAIRS: usize = 2 * super::MAX_STREAMS;

/// How long a port that failed to bind is left alone before it is tried
/// again (another program holds it; it may let go).
pub const BAD_PORT_REST: Duration = Duration::from_secs(60);

/// Counts of pairs by state, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounts {
    /// Pairs in the range.
    pub total: usize,
    /// Unbound, waiting their turn.
    pub free: usize,
    /// Bound, not in use yet.
    pub ready: usize,
    /// Held by calls (or closing).
    pub in_use: usize,
    /// Failed to bind, left alone for [`BAD_PORT_REST`].
    pub resting: usize,
}

/// The pairs of the range. See the module docs.
#[derive(Debug)]
pub struct PortPool {
    total: usize,
    free: VecDeque<u16>,
    ready: VecDeque<u16>,
    binding: usize,
    resting: VecDeque<(Instant, u16)>,
    bind: VecDeque<u16>,
    bind_failures: u64,
}

impl PortPool {
    /// The pairs of `first..=last` (RTP ports even: `first` rounded up,
    /// the last pair's RTCP port at most `last`); bind requests for the
    /// first [`READY_PAIRS`] are waiting in [`PortPool::poll_bind`].
    pub fn new(first: u16, last: u16) -> PortPool {
        let start = u32::from(first) + u32::from(first % 2);
        let free: VecDeque<u16> = (start..u32::from(last))
            .step_by(2)
            .filter_map(|port| u16::try_from(port).ok())
            .collect();
        let mut pool = PortPool {
            total: free.len(),
            free,
            ready: VecDeque::new(),
            binding: 0,
            resting: VecDeque::new(),
            bind: VecDeque::new(),
            bind_failures: 0,
        };
        pool.refill();
        pool
    }

    /// A bound pair for a call (its RTP port), if any is ready.
    pub fn take(&mut self) -> Option<u16> {
        let port = self.ready.pop_front()?;
        self.refill();
        Some(port)
    }

    /// A pair taken but not used after all (its sockets are still bound):
    /// first in line again.
    pub fn give_back(&mut self, port: u16) {
        self.ready.push_front(port);
    }

    /// A pair's sockets were closed: it goes to the back of the line.
    pub fn release(&mut self, port: u16) {
        self.free.push_back(port);
        self.refill();
    }

    /// The driver bound the pair at `port` (RTP) and `port + 1` (RTCP).
    pub fn handle_bound(&mut self, port: u16) {
        self.binding = self.binding.saturating_sub(1);
        self.ready.push_back(port);
    }

    /// The driver could not bind the pair: it rests, and another is asked.
    pub fn handle_bind_failed(&mut self, now: Instant, port: u16) {
        self.binding = self.binding.saturating_sub(1);
        self.bind_failures += 1;
        self.resting.push_back((now + BAD_PORT_REST, port));
        self.refill();
    }

    /// Rested pairs go back to the free ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut woke = false;
        while self.resting.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, port)) = self.resting.pop_front() {
                self.free.push_back(port);
                woke = true;
            }
        }
        if woke {
            self.refill();
        }
    }

    /// When a resting pair may be tried again.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.resting.front().map(|(at, _)| *at)
    }

    /// The next pair to bind (its RTP port).
    pub fn poll_bind(&mut self) -> Option<u16> {
        self.bind.pop_front()
    }

    /// Whether a bind is waiting to be asked.
    pub fn wants_bind(&self) -> bool {
        !self.bind.is_empty()
    }

    /// Pairs by state.
    pub fn counts(&self) -> PortCounts {
        let free = self.free.len();
        let ready = self.ready.len();
        let resting = self.resting.len();
        // `binding` counts the pairs asked and those still to be asked.
        let waiting = self.binding;
        PortCounts {
            total: self.total,
            free: free + waiting,
            ready,
            in_use: self.total.saturating_sub(free + ready + resting + waiting),
            resting,
        }
    }

    /// Binds that failed since the start.
    pub fn bind_failures(&self) -> u64 {
        self.bind_failures
    }

    fn refill(&mut self) {
        while self.ready.len() + self.binding < READY_PAIRS {
            let Some(port) = self.free.pop_front() else {
                return;
            };
            self.binding += 1;
            self.bind.push_back(port);
        }
    }
}
