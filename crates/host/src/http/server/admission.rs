//! Which HTTP API connections may stay open (DESIGN.md invariant 6): a cap on
//! their number, a deadline for every connection that is not handling a
//! request, and which connection to close when a new one arrives at the cap.
//!
//! Sans-IO: time is passed in; the driver ([`super`]) moves sockets.
//!
//! A connection is in one of three phases:
//!
//! - *awaiting a head*: accepted, or keep-alive after a response, and no byte
//!   of the next request yet. A fresh connection must send its whole head
//!   within `header_timeout`; a keep-alive one may stay `idle_timeout`.
//! - *reading a head*: bytes of a request head arrived, the head is not whole
//!   yet. The head must be whole within `header_timeout` of its first byte.
//! - *busy*: a request is being handled (the driver's request timeout bounds it).
//!
//! At the cap a new connection is still served when possible, as nginx drains
//! keep-alive connections: the connection awaiting a head the longest is closed
//! for it; failing that, the oldest half-sent head (a slowloris client must not
//! hold every slot until its header timeout); only when every connection is
//! busy is the new one refused (`503` with `Retry-After`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The bounds, as configured (`[api]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time for a whole request head: from accept, or from the first byte of a
    /// keep-alive connection's next request.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

/// One connection of the table. Ids grow with accept order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Why a connection is closed (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A keep-alive connection waited longer than `idle_timeout`.
    Idle,
    /// A request head was not whole within `header_timeout`.
    HeaderTimeout,
    /// Closed at the cap to make room for a new connection.
    Evicted,
    /// A new connection at the cap, every open one busy: answered 503.
    Refused,
}

impl CloseReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
        }
    }
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it.
    Admit(ConnId),
    /// Serve it, and close `evict` (already out of the table) for it.
    AdmitEvicting {
        /// The new connection.
        id: ConnId,
        /// The connection to close now.
        evict: ConnId,
    },
    /// Every open connection is busy: answer 503 and close.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHead { since: Instant, fresh: bool },
    ReadingHead { since: Instant },
    Busy,
}

/// The open connections and their phases.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    next: u64,
    open: BTreeMap<ConnId, Phase>,
}

impl Connections {
    /// An empty table.
    pub fn new(limits: Limits) -> Connections {
        Connections {
            limits,
            next: 0,
            open: BTreeMap::new(),
        }
    }

    /// Connections open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// A connection was accepted at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        let evict = if self.open.len() < self.limits.max_connections {
            None
        } else {
            match self.victim() {
                Some(victim) => {
                    self.open.remove(&victim);
                    Some(victim)
                }
                None => return Admission::Refuse,
            }
        };
        let id = ConnId(self.next);
        self.next += 1;
        self.open.insert(
            id,
            Phase::AwaitingHead {
                since: now,
                fresh: true,
            },
        );
        match evict {
            None => Admission::Admit(id),
            Some(evict) => Admission::AdmitEvicting { id, evict },
        }
    }

    /// The connection awaiting a head the longest, else the oldest half-sent head.
    fn victim(&self) -> Option<ConnId> {
        let oldest = |awaiting: bool| {
            self.open
                .iter()
                .filter_map(|(id, phase)| match (*phase, awaiting) {
                    (Phase::AwaitingHead { since, .. }, true)
                    | (Phase::ReadingHead { since }, false) => Some((since, *id)),
                    _ => None,
                })
                .min()
                .map(|(_, id)| id)
        };
        oldest(true).or_else(|| oldest(false))
    }

    /// The first byte of a request head arrived on `id`.
    pub fn head_started(&mut self, id: ConnId, now: Instant) {
        if let Some(phase) = self.open.get_mut(&id) {
            if let Phase::AwaitingHead { since, fresh } = *phase {
                // A fresh connection's head was due `header_timeout` after accept.
                let since = if fresh { since } else { now };
                *phase = Phase::ReadingHead { since };
            }
        }
    }

    /// `id`'s request head is whole: the request is being handled.
    pub fn request_started(&mut self, id: ConnId) {
        if let Some(phase) = self.open.get_mut(&id) {
            *phase = Phase::Busy;
        }
    }

    /// `id` answered its request at `now`; it waits for the next one.
    pub fn request_finished(&mut self, id: ConnId, now: Instant) {
        if let Some(phase) = self.open.get_mut(&id) {
            *phase = Phase::AwaitingHead {
                since: now,
                fresh: false,
            };
        }
    }

    /// `id` is closed (by either side); its slot is free.
    pub fn closed(&mut self, id: ConnId) {
        self.open.remove(&id);
    }

    /// When `id` must be closed if nothing happens on it; `None` while busy
    /// or once it is out of the table.
    pub fn deadline(&self, id: ConnId) -> Option<Instant> {
        match *self.open.get(&id)? {
            Phase::AwaitingHead { since, fresh: true } | Phase::ReadingHead { since } => {
                Some(since + self.limits.header_timeout)
            }
            Phase::AwaitingHead {
                since,
                fresh: false,
            } => Some(since + self.limits.idle_timeout),
            Phase::Busy => None,
        }
    }

    /// Whether `id` is past its deadline at `now`, and why. The driver then
    /// closes it and calls [`Connections::closed`].
    pub fn expired(&self, id: ConnId, now: Instant) -> Option<CloseReason> {
        let deadline = self.deadline(id)?;
        if now < deadline {
            return None;
        }
        match self.open.get(&id)? {
            Phase::AwaitingHead { fresh: false, .. } => Some(CloseReason::Idle),
            _ => Some(CloseReason::HeaderTimeout),
        }
    }
}

/// Lets a repeated log line out at most once per `every`, counting the rest,
/// so a storm of accept errors is visible without flooding the log.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// One line per `every`.
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, mentioning the `n` occurrences suppressed since the
    /// last line; `None`: stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// File descriptors kept for everything but API connections: the store's
/// files, SMPP binds, outgoing HTTP (webhooks, aggregators), the voice proxy.
pub const FILE_RESERVE: u64 = 128;

/// The connection cap that fits the process's soft file limit `soft_limit`
/// (`None`: unknown or unlimited): `configured`, or less, leaving
/// [`FILE_RESERVE`] (at most half the limit) for the rest of the process.
/// Past the file limit `accept` fails (EMFILE) before a connection can be
/// evicted, so the cap must be reached first.
pub fn clamp_to_file_limit(configured: usize, soft_limit: Option<u64>) -> usize {
    let Some(limit) = soft_limit else {
        return configured;
    };
    let available = limit - FILE_RESERVE.min(limit / 2);
    configured.min(usize::try_from(available).unwrap_or(usize::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
    fn epoch() -> Instant {
        Instant::now()
    }

    fn table(max: usize) -> (Connections, Instant) {
        let limits = Limits {
            max_connections: max,
            header_timeout: 10 * S,
            idle_timeout: 60 * S,
        };
        (Connections::new(limits), epoch())
    }

    fn admit(table: &mut Connections, now: Instant) -> ConnId {
        match table.admit(now) {
            Admission::Admit(id) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Invariant 6, M9: under the cap every connection is admitted.
    #[test]
    fn admits_under_the_cap() {
        let (mut table, t0) = table(2);
        let a = admit(&mut table, t0);
        let b = admit(&mut table, t0);
        assert_ne!(a, b);
        assert_eq!(table.len(), 2);
        table.closed(a);
        admit(&mut table, t0);
        assert_eq!(table.len(), 2);
    }

    /// Invariant 6: at the cap the longest-idle connection makes room, even
    /// when a half-sent head is older.
    #[test]
    fn at_the_cap_the_longest_idle_connection_is_evicted_first() {
        let (mut table, t0) = table(3);
        let slow = admit(&mut table, t0);
        table.head_started(slow, t0);
        let keep_alive = admit(&mut table, t0);
        table.request_started(keep_alive);
        table.request_finished(keep_alive, t0 + S);
        let fresh = admit(&mut table, t0 + 2 * S);
        assert_eq!(
            table.admit(t0 + 3 * S),
            Admission::AdmitEvicting {
                id: ConnId(3),
                evict: keep_alive
            }
        );
        assert_eq!(table.deadline(keep_alive), None, "out of the table");
        assert_eq!(
            table.admit(t0 + 3 * S),
            Admission::AdmitEvicting {
                id: ConnId(4),
                evict: fresh
            }
        );
        assert_eq!(table.len(), 3);
    }

    /// Invariant 6: with no idle connection, the oldest half-sent head goes;
    /// with every connection busy the new one is refused.
    #[test]
    fn half_sent_heads_go_before_refusing_and_busy_ones_never() {
        let (mut table, t0) = table(2);
        let busy = admit(&mut table, t0);
        table.request_started(busy);
        let slow = admit(&mut table, t0 + S);
        table.head_started(slow, t0 + S);
        assert_eq!(
            table.admit(t0 + 2 * S),
            Admission::AdmitEvicting {
                id: ConnId(2),
                evict: slow
            }
        );
        table.request_started(ConnId(2));
        assert_eq!(table.admit(t0 + 3 * S), Admission::Refuse);
        assert_eq!(table.len(), 2);
        table.request_finished(busy, t0 + 4 * S);
        assert_eq!(
            table.admit(t0 + 4 * S),
            Admission::AdmitEvicting {
                id: ConnId(3),
                evict: busy
            }
        );
    }

    /// Invariant 6: a fresh connection must send its whole head within the
    /// header timeout of accept, trickling bytes does not extend it.
    #[test]
    fn a_fresh_connection_has_the_header_timeout_for_its_head() {
        let (mut table, t0) = table(8);
        let silent = admit(&mut table, t0);
        let trickling = admit(&mut table, t0);
        table.head_started(trickling, t0 + 9 * S);
        for id in [silent, trickling] {
            assert_eq!(table.deadline(id), Some(t0 + 10 * S));
            assert_eq!(table.expired(id, t0 + 9 * S), None);
            assert_eq!(
                table.expired(id, t0 + 10 * S),
                Some(CloseReason::HeaderTimeout)
            );
        }
    }

    /// Invariant 6: keep-alive connections are closed after the idle timeout;
    /// once the next head starts, the header timeout counts from its first byte.
    #[test]
    fn keep_alive_idles_then_the_next_head_has_the_header_timeout() {
        let (mut table, t0) = table(8);
        let id = admit(&mut table, t0);
        table.head_started(id, t0);
        table.request_started(id);
        assert_eq!(
            table.deadline(id),
            None,
            "busy: the request timeout bounds it"
        );
        assert_eq!(table.expired(id, t0 + 3600 * S), None);
        table.request_finished(id, t0 + S);
        assert_eq!(table.deadline(id), Some(t0 + 61 * S));
        assert_eq!(table.expired(id, t0 + 61 * S), Some(CloseReason::Idle));
        table.head_started(id, t0 + 30 * S);
        assert_eq!(table.deadline(id), Some(t0 + 40 * S));
        assert_eq!(
            table.expired(id, t0 + 40 * S),
            Some(CloseReason::HeaderTimeout)
        );
        table.closed(id);
        assert!(table.is_empty());
        assert_eq!(table.expired(id, t0 + 3600 * S), None);
    }

    /// Invariant 6: the cap stays under the process's file limit, with room
    /// for the store, binds and outgoing HTTP.
    #[test]
    fn the_cap_is_clamped_under_the_file_limit() {
        assert_eq!(clamp_to_file_limit(1024, Some(512)), 384);
        assert_eq!(clamp_to_file_limit(100, Some(512)), 100);
        assert_eq!(clamp_to_file_limit(1024, Some(100)), 50);
        assert_eq!(clamp_to_file_limit(1024, Some(1)), 1);
        assert_eq!(clamp_to_file_limit(1024, None), 1024);
    }

    #[test]
    fn log_limiter_lets_one_line_out_per_period_and_counts_the_rest() {
        let mut limiter = LogLimiter::new(5 * S);
        let t0 = epoch();
        assert_eq!(limiter.allow(t0), Some(0));
        assert_eq!(limiter.allow(t0 + S), None);
        assert_eq!(limiter.allow(t0 + 4 * S), None);
        assert_eq!(limiter.allow(t0 + 5 * S), Some(2));
        assert_eq!(limiter.allow(t0 + 6 * S), None);
    }
}
