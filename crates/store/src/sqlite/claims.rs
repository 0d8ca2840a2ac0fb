//! Claims on the SQLite store (SPEC M17), kept in memory.
//!
//! Only one process opens a SQLite store (the file is locked), and a restart
//! ends every claim that process held, exactly as their leases running out
//! would. So claims need no disk: a map of who holds what until when, checked
//! and set under one lock, gives the contract of [`Store::claim_queued`] and
//! friends with no write per message. A claim is forgotten when its item leaves
//! the claimable set (submitted, failed, delivered, or given up by a retry), and
//! claims that ran out are swept when the map has grown.
//!
//! [`Store::claim_queued`]: crate::Store::claim_queued

use std::collections::HashMap;
use std::hash::Hash;

/// Who holds one item, and until when.
#[derive(Debug, Clone)]
struct Claim {
    owner: String,
    until_ms: i64,
}

/// The claims on one kind of item (messages or inbound items), by id.
#[derive(Debug)]
pub(crate) struct ClaimTable<Id> {
    claims: HashMap<Id, Claim>,
    /// Sweep expired claims once the table is this big.
    sweep_at: usize,
}

const SWEEP_MIN: usize = 4096;

impl<Id: Copy + Eq + Hash> Default for ClaimTable<Id> {
    fn default() -> Self {
        ClaimTable {
            claims: HashMap::new(),
            sweep_at: SWEEP_MIN,
        }
    }
}

impl<Id: Copy + Eq + Hash> ClaimTable<Id> {
    /// Whether a lease holds `id` at `now_ms` (the owner's own included).
    pub(crate) fn is_held(&self, id: Id, now_ms: i64) -> bool {
        self.claims
            .get(&id)
            .is_some_and(|claim| claim.until_ms >= now_ms)
    }

    /// Claims `id` for `owner` until `until_ms` unless a lease holds it; answers
    /// whether it did.
    pub(crate) fn try_claim(&mut self, id: Id, owner: &str, now_ms: i64, until_ms: i64) -> bool {
        if self.is_held(id, now_ms) {
            return false;
        }
        self.claims.insert(
            id,
            Claim {
                owner: owner.to_owned(),
                until_ms,
            },
        );
        true
    }

    /// Extends `owner`'s claims on `ids` to `until_ms`; answers the ids renewed.
    pub(crate) fn renew(&mut self, owner: &str, ids: &[Id], until_ms: i64) -> Vec<Id> {
        ids.iter()
            .copied()
            .filter(|id| match self.claims.get_mut(id) {
                Some(claim) if claim.owner == owner => {
                    claim.until_ms = claim.until_ms.max(until_ms);
                    true
                }
                _ => false,
            })
            .collect()
    }

    /// Drops the claim on `id`, whoever held it.
    pub(crate) fn forget(&mut self, id: Id) {
        self.claims.remove(&id);
    }

    /// Drops every claim of `owner`.
    pub(crate) fn release(&mut self, owner: &str) {
        self.claims.retain(|_, claim| claim.owner != owner);
    }

    /// How many claims are live or not yet swept.
    pub(crate) fn len(&self) -> usize {
        self.claims.len()
    }

    /// Sweeps claims that ran out before `now_ms` once the table has doubled
    /// since the last sweep, so its size follows the work in hand.
    pub(crate) fn sweep(&mut self, now_ms: i64) {
        if self.claims.len() < self.sweep_at {
            return;
        }
        self.claims.retain(|_, claim| claim.until_ms >= now_ms);
        self.sweep_at = (self.claims.len() * 2).max(SWEEP_MIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M17: one holder at a time until the lease runs out; renewals only
    /// by the holder, expired or not, as long as no one else took it.
    #[test]
    fn one_holder_until_the_lease_runs_out() {
        let mut table = ClaimTable::<i64>::default();
        assert!(table.try_claim(1, "a", 1_000, 2_000));
        assert!(!table.try_claim(1, "b", 1_500, 2_500), "held by a");
        assert!(
            !table.try_claim(1, "a", 2_000, 3_000),
            "held until 2000 inclusive"
        );
        assert_eq!(table.renew("b", &[1], 9_000), Vec::<i64>::new());
        // Ran out, nobody took it: a's renewal still holds.
        assert_eq!(table.renew("a", &[1, 2], 4_000), vec![1]);
        assert!(!table.try_claim(1, "b", 3_000, 5_000));
        assert!(table.try_claim(1, "b", 4_001, 6_000), "ran out at 4000");
        assert_eq!(
            table.renew("a", &[1], 9_000),
            Vec::<i64>::new(),
            "lost to b"
        );
        table.release("b");
        assert!(table.try_claim(1, "a", 4_002, 5_000), "released");
        table.forget(1);
        assert!(!table.is_held(1, 4_002));
    }

    #[test]
    fn sweeping_keeps_live_claims_only_once_grown() {
        let mut table = ClaimTable::<i64>::default();
        for id in 0..SWEEP_MIN as i64 {
            table.try_claim(id, "a", 0, if id % 2 == 0 { 10 } else { 1_000 });
        }
        table.sweep(5);
        assert_eq!(table.len(), SWEEP_MIN, "nothing ran out yet");
        // Not swept again before it has doubled.
        table.sweep(100);
        assert_eq!(table.len(), SWEEP_MIN);
        for id in SWEEP_MIN as i64..2 * SWEEP_MIN as i64 {
            table.try_claim(id, "a", 0, 1_000);
        }
        table.sweep(100);
        assert_eq!(table.len(), SWEEP_MIN + SWEEP_MIN / 2);
        assert!(table.is_held(1, 100));
        assert!(!table.is_held(0, 100));
    }
}
