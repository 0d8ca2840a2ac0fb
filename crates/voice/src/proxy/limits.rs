//! What a stranger can make the proxy hold is bounded (DESIGN.md invariant
//! 6): the cap on calls and its refusal, and the state that shrinks back
//! after a burst.
//!
//! # The cap
//!
//! At most `max_calls` calls hold state at once (a call holds it from its
//! INVITE until its server transaction ends). A new INVITE beyond that is
//! answered `503 Service Unavailable` with `Retry-After` at once, statelessly:
//! nothing is kept, so its retransmissions are refused again the same cheap
//! way, the caller's ACK for the 503 matches no call and is dropped, and a
//! CANCEL for it gets 481. No trunk sees a refused INVITE. Refusals are
//! counted ([`ProxyStats::refused_over_capacity`](super::ProxyStats)) and
//! logged as a warning at most every [`WARN_EVERY`].
//!
//! # Shrinking
//!
//! The maps and queues are sized for `initial_capacity` entries at start
//! (see [`INITIAL_CAPACITY`](super::INITIAL_CAPACITY)) and grow past it in a
//! burst. They are looked at every [`COMPACT_EVERY`]:
//!
//! - When a burst has ended (at least 1,024 entries held at its peak, at
//!   most a quarter of that now), every table is cut down to its entries
//!   and [`Proxy::take_released`] tells the driver to hand the freed memory
//!   back to the operating system (`driver/memory.rs`); at the next look the
//!   tables regrow to the initial size, in memory that is no longer
//!   resident. (A table keeps every page a burst touched resident whatever
//!   its size, and a new one made at once would reuse the burst's resident
//!   memory.)
//! - Otherwise a table whose entries fill at most a quarter of its room is
//!   shrunk to twice its entries, never below the initial size.
//! - Stale deadlines are dropped from the timer queue when they are most of
//!   it.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use hotsite_sip::message::{response_to, Header, HeaderName, Request, StatusCode, Via};
use hotsite_sip::proxy::{self as wire, Peer};

use super::timers::TimerRef;
use super::{Proxy, ProxyConfig};

/// How often the state is looked at for shrinking.
pub const COMPACT_EVERY: Duration = Duration::from_secs(10);

/// At most one warning about refused calls per this.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Calls held at the peak of a burst from which memory is worth handing back
/// once most of them have ended.
const BURST: usize = 1_024;

/// Room kept in the per-input queues (transmits, events), which are drained
/// after every input and grow only while a burst is handled.
const QUEUE_ROOM: usize = 1_024;

pub(super) struct Limits {
    max_calls: usize,
    /// `Retry-After` of the refusal.
    retry_after: Header,
    /// Its `Warning`.
    warning: Header,
    initial: usize,
    pub(super) next_compact: Instant,
    warned_at: Option<Instant>,
    refused_unwarned: u64,
    /// Most calls held since memory was last released.
    high_water: usize,
    released: bool,
    /// The tables were cut down after a burst: back to the initial size at
    /// the next look.
    regrow: bool,
}

impl Limits {
    pub(super) fn new(config: &ProxyConfig, now: Instant) -> Limits {
        let seconds = config.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Limits {
            max_calls: config.max_calls,
            retry_after: Header::new(HeaderName::RetryAfter, seconds.to_string()),
            warning: wire::warning(
                &config.address.to_string(),
                &format!(
                    "too many calls in progress (voice.max_calls {})",
                    config.max_calls
                ),
            ),
            initial: config.initial_capacity,
            next_compact: now + COMPACT_EVERY,
            warned_at: None,
            refused_unwarned: 0,
            high_water: 0,
            released: false,
            regrow: false,
        }
    }
}

impl Proxy {
    /// Whether `max_calls` calls are held: a new INVITE must be refused.
    pub(super) fn at_capacity(&self) -> bool {
        self.calls.len() >= self.limits.max_calls
    }

    /// A call was admitted: the burst's height, for [`Proxy::take_released`].
    pub(super) fn note_admitted(&mut self) {
        self.limits.high_water = self.limits.high_water.max(self.entries());
    }

    /// Entries held in the state maps and queues.
    fn entries(&self) -> usize {
        self.calls.len() + self.branches.len() + self.tombstones.len() + self.timers.len()
    }

    /// Answers a new INVITE `503` with `Retry-After`, keeping nothing.
    pub(super) fn refuse_over_capacity(
        &mut self,
        now: Instant,
        from: Peer,
        request: &Request,
        via: &Via,
    ) {
        self.stats.refused_over_capacity += 1;
        self.limits.refused_unwarned += 1;
        if self
            .limits
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY)
        {
            tracing::warn!(
                max_calls = self.limits.max_calls,
                refused = self.limits.refused_unwarned,
                refused_total = self.stats.refused_over_capacity,
                "voice.max_calls calls in progress: new INVITEs are answered 503"
            );
            self.limits.warned_at = Some(now);
            self.limits.refused_unwarned = 0;
        }
        let mut response =
            response_to(request, StatusCode::SERVICE_UNAVAILABLE, Some(&self.to_tag));
        response.headers.push(self.limits.retry_after.clone());
        response.headers.push(self.limits.warning.clone());
        self.stats.local_replies += 1;
        self.send(wire::reply_addr(via, from), response.to_bytes());
    }

    /// Shrinks the state after a burst, every [`COMPACT_EVERY`].
    pub(super) fn compact_if_due(&mut self, now: Instant) {
        if now < self.limits.next_compact {
            return;
        }
        self.limits.next_compact = now + COMPACT_EVERY;
        self.compact();
    }

    fn compact(&mut self) {
        // Stale deadlines are skipped when popped; after a burst they can be
        // most of the queue for a while, holding its room.
        let live = self.calls.len() + self.branches.len();
        if self.timers.len() > 2 * live + QUEUE_ROOM {
            let (calls, branches) = (&self.calls, &self.branches);
            self.timers.retain(|at, owner| match owner {
                TimerRef::Call(id) => calls.get(id).is_some_and(|c| c.scheduled == Some(at)),
                TimerRef::Branch(id) => branches.get(id).is_some_and(|b| b.scheduled == Some(at)),
            });
        }
        let floor = self.limits.initial;
        let entries = self.entries();
        self.limits.high_water = self.limits.high_water.max(entries);
        if std::mem::take(&mut self.limits.regrow) {
            // The tables freed at the last look are back at their initial
            // size, in memory the driver has handed back meanwhile: only
            // their control bytes are touched until calls come.
            regrow(&mut self.calls, floor);
            regrow(&mut self.call_keys, floor);
            regrow(&mut self.branches, floor);
            regrow(&mut self.tombstones, floor);
            regrow(&mut self.tombstone_queue, floor);
            regrow(self.timers.heap_mut(), floor);
        }
        if self.limits.high_water >= BURST && entries * 4 <= self.limits.high_water {
            // A burst has ended. Its entries were spread over every page of
            // the tables, which stay resident whatever their size, and a new
            // table would take the burst's freed (resident) memory. So the
            // tables are cut down to their entries now, the driver hands the
            // freed memory back, and the tables regrow at the next look.
            renew(&mut self.calls);
            renew(&mut self.call_keys);
            renew(&mut self.branches);
            renew(&mut self.tombstones);
            renew(&mut self.tombstone_queue);
            renew(self.timers.heap_mut());
            renew(&mut self.transmits);
            renew(&mut self.events);
            tracing::debug!(
                entries,
                peak = self.limits.high_water,
                "voice state cut down after a burst"
            );
            self.limits.high_water = entries;
            self.limits.released = true;
            self.limits.regrow = true;
            return;
        }
        let freed: usize = [
            shrink(&mut self.calls, floor),
            shrink(&mut self.call_keys, floor),
            shrink(&mut self.branches, floor),
            shrink(&mut self.tombstones, floor),
            shrink(&mut self.tombstone_queue, floor),
            shrink(self.timers.heap_mut(), floor),
            shrink(&mut self.transmits, QUEUE_ROOM),
            shrink(&mut self.events, QUEUE_ROOM),
        ]
        .into_iter()
        .sum();
        if freed > 0 {
            tracing::debug!(entries, freed, "voice state shrank");
        }
        // Room for a burst's worth of entries is worth handing back.
        if freed >= BURST {
            self.limits.released = true;
        }
    }

    /// Whether much memory was freed since the last call (the state shrank
    /// back after a burst): the driver may hand free memory back to the
    /// operating system. Changes after [`Proxy::handle_timeout`].
    pub fn take_released(&mut self) -> bool {
        std::mem::take(&mut self.limits.released)
    }

    /// The room of each state map and queue, in entries.
    pub(super) fn capacities(&self) -> [usize; 6] {
        [
            self.calls.capacity(),
            self.call_keys.capacity(),
            self.branches.capacity(),
            self.tombstones.capacity(),
            self.tombstone_queue.capacity(),
            self.timers.capacity(),
        ]
    }
}

/// A collection that can give back room.
trait Room: Sized + IntoIterator + Extend<<Self as IntoIterator>::Item> {
    fn entries(&self) -> usize;
    fn room(&self) -> usize;
    fn shrink_room(&mut self, to: usize);
    fn with_room(room: usize) -> Self;
    fn reserve_room(&mut self, additional: usize);
}

/// Every table of the proxy speaks `Room` through its own inherent methods of
/// the same names.
macro_rules! room {
    ($($generics:tt)*) => {
        fn with_room(room: usize) -> Self {
            <$($generics)*>::with_capacity(room)
        }
        fn reserve_room(&mut self, additional: usize) {
            self.reserve(additional);
        }
        fn entries(&self) -> usize {
            self.len()
        }
        fn room(&self) -> usize {
            self.capacity()
        }
        fn shrink_room(&mut self, to: usize) {
            self.shrink_to(to);
        }
    };
}

impl<K: Eq + Hash, V> Room for HashMap<K, V> {
    room!(HashMap<K, V>);
}

impl<K: Eq + Hash> Room for HashSet<K> {
    room!(HashSet<K>);
}

impl<T> Room for VecDeque<T> {
    room!(VecDeque<T>);
}

impl<T: Ord> Room for BinaryHeap<T> {
    room!(BinaryHeap<T>);
}

/// Shrinks `c` to twice its entries, not below `floor`, when they fill at
/// most a quarter of its room (so a steady load does not shrink and regrow
/// it over and over). Returns the room given back, in entries.
fn shrink(c: &mut impl Room, floor: usize) -> usize {
    let before = c.room();
    if before <= floor || c.entries() * 4 > before {
        return 0;
    }
    c.shrink_room((c.entries() * 2).max(floor));
    before.saturating_sub(c.room())
}

/// Moves `c`'s entries into a fresh allocation just for them (none if
/// there are none); the old one is freed whole.
fn renew<C: Room>(c: &mut C) {
    let old = std::mem::replace(c, C::with_room(c.entries()));
    c.extend(old);
}

/// Room for `floor` entries again.
fn regrow<C: Room>(c: &mut C, floor: usize) {
    if c.room() < floor {
        c.reserve_room(floor.saturating_sub(c.entries()));
    }
}
