//! The gateway's leases on shared work (SPEC M17).
//!
//! Gateways that share a store (PostgreSQL) split its queue and its inbox by
//! claims with a lease: the store hands a message or an inbound item to one
//! gateway until the lease runs out, and that gateway renews it while it works.
//! [`Leases`] is this process's side: what it holds and until when by its own
//! clock. A job asks [`Leases::check`] before every send, so a gateway that
//! stalled (a long GC-like pause, a frozen VM, a lost database) never starts a
//! send after its lease may have passed to another gateway: it waits for a
//! renewal, or gives the work up when the store says another holder has it.
//! A send already on the wire when the lease passes is the ambiguous case of
//! SPEC M8: the other gateway sends with the same reference and the provider
//! drops the repeat.
//!
//! The decisions are plain functions of `now_ms`; [`run_renewals`] is the
//! thin loop that asks the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hotsite_store::{Lease, StoreError};
use tokio_util::sync::CancellationToken;

use crate::clock;

/// Whether a job may act on what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Held, with time to spare: go on.
    Held,
    /// Held, but the lease runs out within the safety margin (renewals are
    /// failing): wait for the next renewal before sending.
    Expiring,
    /// Not held: another gateway has it, or it left the queue. Let it go.
    Lost,
}

/// What this process holds of one kind of work (messages, or inbound items), by
/// id, each with the time its lease runs out.
#[derive(Debug)]
pub(crate) struct Leases {
    owner: String,
    duration_ms: i64,
    held: Mutex<HashMap<i64, i64>>,
}

impl Leases {
    pub(crate) fn new(owner: String, duration: Duration) -> Leases {
        Leases {
            owner,
            duration_ms: i64::try_from(duration.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            held: Mutex::default(),
        }
    }

    /// The lease to claim or renew under at `now_ms`.
    pub(crate) fn lease(&self, now_ms: i64) -> Lease {
        Lease {
            owner: self.owner.clone(),
            now_ms,
            duration_ms: self.duration_ms,
        }
    }

    /// How often to renew: three times per lease, so one failed renewal costs
    /// nothing and two still leave a third of the lease.
    pub(crate) fn renew_every(&self) -> Duration {
        Duration::from_millis((self.duration_ms / 3).max(1) as u64)
    }

    /// Records ids just claimed under `lease`.
    pub(crate) fn hold(&self, ids: impl IntoIterator<Item = i64>, lease: &Lease) {
        let until_ms = lease.until_ms();
        let mut held = self.held();
        for id in ids {
            held.insert(id, until_ms);
        }
    }

    /// Forgets `id`: its job is over (done, or gave it up).
    pub(crate) fn forget(&self, id: i64) {
        self.held().remove(&id);
    }

    /// Whether the job holding `id` may send at `now_ms`: not within a third of
    /// the lease of its end (a send takes time, and clocks differ).
    pub(crate) fn check(&self, id: i64, now_ms: i64) -> Hold {
        match self.held().get(&id) {
            None => Hold::Lost,
            Some(&until_ms) if until_ms.saturating_sub(now_ms) <= self.duration_ms / 3 => {
                Hold::Expiring
            }
            Some(_) => Hold::Held,
        }
    }

    /// Every id held, to renew.
    pub(crate) fn ids(&self) -> Vec<i64> {
        self.held().keys().copied().collect()
    }

    /// Applies a renewal the store answered: `renewed` hold until the lease's end;
    /// the others of `asked` are lost, unless forgotten or claimed again since.
    /// Answers how many were lost.
    pub(crate) fn renewed(&self, lease: &Lease, asked: &[i64], renewed: &[i64]) -> usize {
        let until_ms = lease.until_ms();
        let mut held = self.held();
        let mut lost = 0;
        let mut renewed = renewed.to_vec();
        renewed.sort_unstable();
        for id in asked {
            let Some(current) = held.get_mut(id) else {
                continue; // its job ended meanwhile
            };
            if renewed.binary_search(id).is_ok() {
                *current = (*current).max(until_ms);
            } else if *current <= until_ms {
                // Claimed again after this renewal was asked: not lost.
                held.remove(id);
                lost += 1;
            }
        }
        lost
    }

    /// How many ids are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held().len()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Renews what `leases` holds every [`Leases::renew_every`] until `shutdown`,
/// through `renew` (the store's `renew_queued` or `renew_inbound`). `what`
/// names the work in logs. An id not renewed is dropped: another gateway took
/// it, or its work was done (recorded) and its job had not yet let it go; a job
/// that still wanted it finds it lost before its next send and counts that.
pub(crate) async fn run_renewals<F, Fut>(
    leases: Arc<Leases>,
    what: &'static str,
    renew: F,
    shutdown: CancellationToken,
) where
    F: Fn(Lease, Vec<i64>) -> Fut + Send,
    Fut: Future<Output = Result<Vec<i64>, StoreError>> + Send,
{
    let mut failures = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(leases.renew_every()) => {}
        }
        let ids = leases.ids();
        if ids.is_empty() {
            continue;
        }
        let lease = leases.lease(clock::now_ms());
        match renew(lease.clone(), ids.clone()).await {
            Ok(renewed) => {
                failures = 0;
                let dropped = leases.renewed(&lease, &ids, &renewed);
                if dropped > 0 {
                    tracing::debug!(what, dropped, owner = %lease.owner, "claims not renewed: taken by another gateway, or done");
                }
            }
            Err(error) => {
                if failures % 10 == 0 {
                    tracing::error!(%error, what, held = ids.len(), "cannot renew leases; sends pause before the leases run out");
                }
                failures += 1;
            }
        }
    }
}

/// The owner name of this process's leases: unique per process, so a restarted
/// gateway never takes its predecessor's claims for its own (they run out).
pub(crate) fn owner_name(name: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|host| host.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{name}/{host}/{pid}/{start}",
        pid = std::process::id(),
        start = clock::now_ms()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases() -> Leases {
        Leases::new("a".to_owned(), Duration::from_secs(30))
    }

    /// SPEC M17: a job sends only while its lease has more than a third left.
    #[test]
    fn a_job_sends_only_with_time_to_spare() {
        let leases = leases();
        let lease = leases.lease(1_000);
        leases.hold([7], &lease);
        assert_eq!(leases.check(7, 1_000), Hold::Held);
        assert_eq!(leases.check(7, 20_999), Hold::Held);
        assert_eq!(leases.check(7, 21_000), Hold::Expiring);
        assert_eq!(leases.check(7, 40_000), Hold::Expiring);
        assert_eq!(leases.check(8, 1_000), Hold::Lost);
        leases.forget(7);
        assert_eq!(leases.check(7, 1_000), Hold::Lost);
    }

    /// SPEC M17: a renewal extends what the store renewed and drops what it
    /// did not (another gateway took it); a job that ended or claimed again
    /// meanwhile is left alone.
    #[test]
    fn renewals_extend_or_lose() {
        let leases = leases();
        leases.hold([1, 2, 3], &leases.lease(0));
        let renewal = leases.lease(10_000);
        leases.forget(3);
        assert_eq!(leases.renewed(&renewal, &[1, 2, 3], &[1]), 1);
        assert_eq!(leases.check(1, 29_000), Hold::Held, "until 40,000 now");
        assert_eq!(leases.check(2, 0), Hold::Lost);
        assert_eq!(leases.len(), 1);
        // Claimed again after the renewal was asked: kept.
        let asked = leases.lease(50_000);
        leases.hold([4], &leases.lease(60_000));
        assert_eq!(leases.renewed(&asked, &[4], &[]), 0);
        assert_eq!(leases.check(4, 60_000), Hold::Held);
        assert_eq!(leases.renew_every(), Duration::from_secs(10));
    }

    #[test]
    fn owner_names_differ_per_process_start() {
        let name = owner_name("site-a");
        assert!(name.starts_with("site-a/"));
        assert!(name.contains(&format!("/{}/", std::process::id())));
    }
}
