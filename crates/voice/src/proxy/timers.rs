//! One deadline queue for every call and branch.
//!
//! Each call and branch keeps `scheduled`: the earliest deadline it has in the
//! queue. A new deadline is pushed only when it is earlier than that one, so a
//! deadline that moves later costs nothing: the old entry fires early, the
//! owner finds nothing due and pushes its real next deadline. Entries of
//! owners that are gone, or that no longer match `scheduled`, are skipped when
//! popped (lazy deletion), so nothing is ever searched for in the heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use bytes::Bytes;

/// Whose deadline it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerRef {
    /// A call (its server transaction).
    Call(u64),
    /// A branch, by its Via branch.
    Branch(Bytes),
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerRef)>>,
}

impl Timers {
    /// A queue with room for `capacity` deadlines.
    pub(crate) fn with_capacity(capacity: usize) -> Timers {
        Timers {
            heap: BinaryHeap::with_capacity(capacity),
        }
    }

    /// Makes sure `next` is in the queue for an owner whose earliest queued
    /// deadline is `scheduled`.
    pub(crate) fn schedule(
        &mut self,
        scheduled: &mut Option<Instant>,
        next: Option<Instant>,
        owner: impl FnOnce() -> TimerRef,
    ) {
        if let Some(next) = next {
            if scheduled.is_none_or(|at| next < at) {
                self.heap.push(Reverse((next, owner())));
                *scheduled = Some(next);
            }
        }
    }

    /// The earliest entry (possibly stale: then the caller wakes up early).
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerRef)> {
        if self.peek()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    /// Entries queued, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Room for entries.
    pub(crate) fn capacity(&self) -> usize {
        self.heap.capacity()
    }

    /// Keeps only the entries `keep` says are live (stale ones would be
    /// skipped when popped anyway).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Instant, &TimerRef) -> bool) {
        self.heap.retain(|Reverse((at, owner))| keep(*at, owner));
    }

    /// The queue itself, for shrinking.
    pub(crate) fn heap_mut(&mut self) -> &mut BinaryHeap<Reverse<(Instant, TimerRef)>> {
        &mut self.heap
    }
}
