//! Which trunk a call goes to, and when a trunk is in service (SPEC V1–V4).
//!
//! Pure: no sockets, no clock. The proxy asks [`Trunks::plan`] for the order in
//! which one call attempt may try the trunks of its group, tells the table what
//! it learned (probe answers, registrations, INVITEs that got no reply at all),
//! and reads the table's [`Event`]s for logs, metrics and `hotsite status`.
//!
//! A trunk is in service when none of its out-of-service causes holds:
//!
//! - **probe** — the OPTIONS prober's health is down (SPEC V2);
//! - **registration** — a registration-based trunk is not registered (SPEC V2);
//! - **passive** — an INVITE sent to it got no reply at all within the
//!   transaction timeout, so the next calls skip it at once instead of waiting
//!   for the prober. It clears when the prober sees the trunk alive again, or,
//!   for a trunk without a prober, after `passive_hold`.
//!
//! Passive marking is deliberately narrow. An INVITE that got a provisional
//! reply proves the trunk alive, so a late or missing final answer on such a
//! call never marks it. And an INVITE sent *before* the trunk's last return to
//! service cannot take it out again: a recovered trunk is not knocked down by
//! stale calls (a known weakness of common dispatcher setups, where every
//! failure route marks the destination).

use std::time::{Duration, Instant};

use hotsite_core::{Event, EventKind, HealthState, Rng, Target};

/// How a trunk group spreads calls (SPEC V4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// Highest priority first (lowest `priority` number), the default.
    #[default]
    Sequential,
    /// A random order over the in-service trunks, weighted; still failing over
    /// within the attempt.
    Random,
}

/// One trunk as the routing policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    /// Its name.
    pub name: String,
    /// The carrier (shown as the site in events).
    pub carrier: String,
    /// Lower is preferred (SPEC V1).
    pub priority: u32,
    /// Relative share under `random` distribution (at least 1).
    pub weight: u32,
    /// Where its media is anchored (SPEC V3).
    pub media_region: String,
    /// Where its media goes when that region fails (SPEC V3).
    pub failover_region: String,
    /// Whether an OPTIONS prober watches it.
    pub probed: bool,
    /// Whether it must be registered to be in service.
    pub registered: bool,
}

/// Why a trunk is out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The prober's health is down.
    Probe,
    /// Not registered.
    Registration,
    /// An INVITE got no reply at all within the transaction timeout.
    Passive,
}

impl Cause {
    fn bit(self) -> u8 {
        match self {
            Cause::Probe => 1,
            Cause::Registration => 2,
            Cause::Passive => 4,
        }
    }
}

/// What a trunk had answered to an INVITE when the INVITE timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchReply {
    /// No reply at all: the trunk may be dead, so it is marked (SPEC V1, V2).
    Nothing,
    /// A provisional (it rang): the trunk is alive, and is not marked.
    Provisional,
}

/// A trunk's state, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkState {
    /// In service: calls may go to it.
    pub in_service: bool,
    /// Since when.
    pub since: Instant,
    /// Why it is out of service (empty when in service).
    pub causes: Vec<Cause>,
    /// The last cause, in words.
    pub detail: String,
}

struct Trunk {
    spec: TrunkSpec,
    target: Target,
    causes: u8,
    since: Instant,
    detail: String,
    passive_until: Option<Instant>,
}

/// Every trunk and its state.
pub struct Trunks {
    trunks: Vec<Trunk>,
    passive_hold: Duration,
    events: Vec<Event>,
}

/// Answers that move a call to the next trunk (SPEC V1): 408 and every 5xx.
/// Other finals (486 busy, 603 decline, 404, …) are the called party's answer
/// and go back to the caller.
pub fn fails_over(status: u16) -> bool {
    status == 408 || (500..600).contains(&status)
}

impl Trunks {
    /// Every trunk starts in service, except registration-based ones, which
    /// wait for their first registration. `passive_hold`: how long a passive
    /// mark lasts on a trunk without a prober.
    pub fn new(specs: Vec<TrunkSpec>, passive_hold: Duration, now: Instant) -> Trunks {
        let trunks = specs
            .into_iter()
            .map(|spec| {
                let causes = if spec.registered {
                    Cause::Registration.bit()
                } else {
                    0
                };
                Trunk {
                    target: Target::new(&spec.carrier, &spec.name),
                    spec,
                    causes,
                    since: now,
                    detail: if causes == 0 {
                        "configured".to_owned()
                    } else {
                        "waiting for the first registration".to_owned()
                    },
                    passive_until: None,
                }
            })
            .collect();
        Trunks {
            trunks,
            passive_hold,
            events: Vec::new(),
        }
    }

    /// The trunk called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.trunks.iter().position(|t| t.spec.name == name)
    }

    /// The trunk's configuration.
    pub fn spec(&self, trunk: usize) -> &TrunkSpec {
        &self.trunks[trunk].spec
    }

    /// How many trunks.
    pub fn len(&self) -> usize {
        self.trunks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.trunks.is_empty()
    }

    /// Whether calls may go to `trunk` now.
    pub fn in_service(&self, trunk: usize) -> bool {
        self.trunks[trunk].causes == 0
    }

    /// Whether `trunk` is out of service because it stopped answering (its
    /// prober's health is down, or an INVITE got no reply at all), as
    /// opposed to only having lost its registration.
    pub fn stopped_answering(&self, trunk: usize) -> bool {
        self.trunks[trunk].causes & (Cause::Probe.bit() | Cause::Passive.bit()) != 0
    }

    /// The trunk's state.
    pub fn state(&self, trunk: usize) -> TrunkState {
        let t = &self.trunks[trunk];
        let causes = [Cause::Probe, Cause::Registration, Cause::Passive]
            .into_iter()
            .filter(|cause| t.causes & cause.bit() != 0)
            .collect();
        TrunkState {
            in_service: t.causes == 0,
            since: t.since,
            causes,
            detail: t.detail.clone(),
        }
    }

    /// The order in which one call attempt tries `group` (trunk indexes), at
    /// most `max_attempts` long. In-service trunks only; if none is in service,
    /// all of them in priority order, since a call that may fail is better than
    /// a call refused because every trunk was marked down (one of them may be
    /// back before its prober noticed).
    pub fn plan(
        &self,
        group: &[usize],
        distribution: Distribution,
        max_attempts: usize,
        rng: &mut Rng,
    ) -> Vec<usize> {
        let mut usable: Vec<usize> = group
            .iter()
            .copied()
            .filter(|&t| self.in_service(t))
            .collect();
        if usable.is_empty() {
            usable = group.to_vec();
            usable.sort_by_key(|&t| (self.trunks[t].spec.priority, t));
        } else {
            match distribution {
                Distribution::Sequential => {
                    usable.sort_by_key(|&t| (self.trunks[t].spec.priority, t))
                }
                Distribution::Random => self.weighted_shuffle(&mut usable, rng),
            }
        }
        usable.truncate(max_attempts.max(1));
        usable
    }

    /// Orders `trunks` by repeated weighted draws without replacement.
    fn weighted_shuffle(&self, trunks: &mut Vec<usize>, rng: &mut Rng) {
        let mut left = std::mem::take(trunks);
        while !left.is_empty() {
            let total: u64 = left
                .iter()
                .map(|&t| u64::from(self.trunks[t].spec.weight.max(1)))
                .sum();
            let mut draw = rng.below_or_equal(total - 1);
            let mut pick = 0;
            for (i, &t) in left.iter().enumerate() {
                let weight = u64::from(self.trunks[t].spec.weight.max(1));
                if draw < weight {
                    pick = i;
                    break;
                }
                draw -= weight;
            }
            trunks.push(left.remove(pick));
        }
    }

    /// The prober's view changed (SPEC V2). `Up` also clears a passive mark:
    /// the trunk answers again.
    pub fn handle_probe_health(
        &mut self,
        trunk: usize,
        health: HealthState,
        detail: &str,
        now: Instant,
    ) {
        if health == HealthState::Up {
            self.clear(trunk, Cause::Passive, detail, now);
            self.clear(trunk, Cause::Probe, detail, now);
        } else {
            self.set(trunk, Cause::Probe, detail, now);
        }
    }

    /// A registration-based trunk registered (`Up`) or lost its registration
    /// (anything else) (SPEC V2).
    pub fn handle_registration(
        &mut self,
        trunk: usize,
        registration: HealthState,
        detail: &str,
        now: Instant,
    ) {
        if registration == HealthState::Up {
            self.clear(trunk, Cause::Registration, detail, now);
        } else {
            self.set(trunk, Cause::Registration, detail, now);
        }
    }

    /// An INVITE sent to `trunk` at `sent_at` timed out (timer B). It marks the
    /// trunk out of service only if it got no reply at all ([`BranchReply::Nothing`]) and was sent while
    /// the trunk was in its current period of service. Returns whether it did.
    pub fn handle_invite_timeout(
        &mut self,
        trunk: usize,
        sent_at: Instant,
        reply: BranchReply,
        now: Instant,
    ) -> bool {
        let t = &self.trunks[trunk];
        if reply == BranchReply::Provisional || t.causes != 0 || sent_at < t.since {
            return false;
        }
        let waited = now.saturating_duration_since(sent_at);
        let detail = format!("INVITE unanswered for {:.1} s", waited.as_secs_f64());
        self.mark_passive(trunk, &detail, now);
        true
    }

    /// The transport could not reach `trunk` just now (over TCP: the
    /// connection was refused, timed out or broke): marked like an INVITE
    /// with no reply, at once. Returns whether it was marked (false if it was
    /// out of service already).
    pub fn handle_unreachable(&mut self, trunk: usize, detail: &str, now: Instant) -> bool {
        if self.trunks[trunk].causes != 0 {
            return false;
        }
        self.mark_passive(trunk, detail, now);
        true
    }

    fn mark_passive(&mut self, trunk: usize, detail: &str, now: Instant) {
        self.set(trunk, Cause::Passive, detail, now);
        if !self.trunks[trunk].spec.probed {
            self.trunks[trunk].passive_until = Some(now + self.passive_hold);
        }
    }

    /// Clears passive marks whose hold has passed (trunks without a prober).
    pub fn handle_timeout(&mut self, now: Instant) {
        for trunk in 0..self.trunks.len() {
            if self.trunks[trunk]
                .passive_until
                .is_some_and(|until| now >= until)
            {
                self.trunks[trunk].passive_until = None;
                let hold = self.passive_hold;
                self.clear(
                    trunk,
                    Cause::Passive,
                    &format!(
                        "passive mark held {:.0} s; trying it again",
                        hold.as_secs_f64()
                    ),
                    now,
                );
            }
        }
    }

    /// When [`Trunks::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trunks.iter().filter_map(|t| t.passive_until).min()
    }

    /// The next state change, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    fn set(&mut self, trunk: usize, cause: Cause, detail: &str, now: Instant) {
        let t = &mut self.trunks[trunk];
        let was = t.causes;
        t.causes |= cause.bit();
        if was == 0 {
            t.since = now;
            t.detail = detail.to_owned();
            self.push(trunk, HealthState::Up, HealthState::Down, now);
        }
    }

    fn clear(&mut self, trunk: usize, cause: Cause, detail: &str, now: Instant) {
        let t = &mut self.trunks[trunk];
        let was = t.causes;
        t.causes &= !cause.bit();
        if cause == Cause::Passive {
            t.passive_until = None;
        }
        if was != 0 && t.causes == 0 {
            t.since = now;
            t.detail = detail.to_owned();
            self.push(trunk, HealthState::Down, HealthState::Up, now);
        }
    }

    fn push(&mut self, trunk: usize, from: HealthState, to: HealthState, now: Instant) {
        let t = &self.trunks[trunk];
        self.events.push(Event {
            at: now,
            target: t.target.clone(),
            kind: EventKind::Health {
                from,
                to,
                cause: t.detail.clone(),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, priority: u32, probed: bool, registered: bool) -> TrunkSpec {
        TrunkSpec {
            name: name.into(),
            carrier: "carrier".into(),
            priority,
            weight: 1,
            media_region: "eu-west".into(),
            failover_region: "eu-central".into(),
            probed,
            registered,
        }
    }

    #[allow(clippy::disallowed_methods)] // test epoch: only offsets from it matter
    fn epoch() -> Instant {
        Instant::now()
    }

    fn table(now: Instant) -> Trunks {
        Trunks::new(
            vec![
                spec("t1", 10, true, false),
                spec("t2", 20, true, false),
                spec("t3", 30, false, false),
            ],
            Duration::from_secs(30),
            now,
        )
    }

    /// SPEC V1: sequential plans go by priority over in-service trunks.
    #[test]
    fn sequential_goes_by_priority_and_skips_trunks_out_of_service() {
        let t0 = epoch();
        let mut trunks = table(t0);
        let mut rng = Rng::new(1);
        assert_eq!(
            trunks.plan(&[2, 0, 1], Distribution::Sequential, 5, &mut rng),
            [0, 1, 2]
        );
        trunks.handle_probe_health(0, HealthState::Down, "3 OPTIONS unanswered", t0);
        assert_eq!(
            trunks.plan(&[0, 1, 2], Distribution::Sequential, 5, &mut rng),
            [1, 2]
        );
        assert_eq!(
            trunks.plan(&[0, 1, 2], Distribution::Sequential, 1, &mut rng),
            [1]
        );
    }

    /// Every trunk down: the call still tries them, in priority order.
    #[test]
    fn all_down_still_tries_all_in_priority_order() {
        let t0 = epoch();
        let mut trunks = table(t0);
        for trunk in 0..3 {
            trunks.handle_probe_health(trunk, HealthState::Down, "down", t0);
        }
        let mut rng = Rng::new(1);
        assert_eq!(
            trunks.plan(&[2, 1, 0], Distribution::Sequential, 5, &mut rng),
            [0, 1, 2]
        );
    }

    /// SPEC V4: random spreads calls over in-service trunks by weight, each plan
    /// holding every trunk once so the attempt can still fail over.
    #[test]
    fn random_spreads_by_weight_and_keeps_every_trunk_in_the_plan() {
        let t0 = epoch();
        let mut specs = vec![spec("t1", 10, true, false), spec("t2", 10, true, false)];
        specs[1].weight = 3;
        let trunks = Trunks::new(specs, Duration::from_secs(30), t0);
        let mut rng = Rng::new(7);
        let mut first = [0u32; 2];
        for _ in 0..4_000 {
            let plan = trunks.plan(&[0, 1], Distribution::Random, 5, &mut rng);
            assert_eq!(plan.len(), 2);
            assert_ne!(plan[0], plan[1]);
            first[plan[0]] += 1;
        }
        // Weight 1:3 → about 1,000 : 3,000.
        assert!((850..1_150).contains(&first[0]), "{first:?}");
    }

    /// SPEC V1: 408 and 5xx move the call on; the called party's answers do not.
    #[test]
    fn which_answers_fail_over() {
        for status in [408, 500, 502, 503, 504, 580] {
            assert!(fails_over(status), "{status}");
        }
        for status in [200, 180, 302, 404, 480, 486, 487, 603] {
            assert!(!fails_over(status), "{status}");
        }
    }

    /// SPEC V2: an INVITE with no reply at all marks the trunk out of service at
    /// once (passive detection), with an event; the prober brings it back.
    #[test]
    fn unanswered_invite_marks_the_trunk_down_until_the_prober_sees_it() {
        let t0 = epoch();
        let mut trunks = table(t0);
        let sent = t0 + Duration::from_secs(1);
        let timeout = sent + Duration::from_secs(32);
        assert!(trunks.handle_invite_timeout(0, sent, BranchReply::Nothing, timeout));
        assert!(!trunks.in_service(0));
        let event = trunks.poll_event().unwrap();
        assert_eq!(event.at, timeout);
        assert!(matches!(
            &event.kind,
            EventKind::Health { to: HealthState::Down, cause, .. } if cause.contains("INVITE unanswered for 32.0 s")
        ));
        // A probed trunk waits for its prober, however long.
        trunks.handle_timeout(timeout + Duration::from_secs(3_600));
        assert!(!trunks.in_service(0));
        trunks.handle_probe_health(
            0,
            HealthState::Up,
            "2 OPTIONS answered",
            timeout + Duration::from_secs(5),
        );
        assert!(trunks.in_service(0));
        assert_eq!(trunks.state(0).since, timeout + Duration::from_secs(5));
    }

    /// A late final answer after a provisional never marks a trunk; nor does an
    /// INVITE sent before the trunk came back (no knock-down by stale calls).
    #[test]
    fn stale_and_provisional_calls_never_mark_a_trunk() {
        let t0 = epoch();
        let mut trunks = table(t0);
        let t = |s: u64| t0 + Duration::from_secs(s);
        assert!(!trunks.handle_invite_timeout(0, t(1), BranchReply::Provisional, t(33)));
        assert!(trunks.in_service(0));
        // Down, then back at t=50; an INVITE sent at t=40 times out at t=72.
        trunks.handle_probe_health(0, HealthState::Down, "probe", t(35));
        trunks.handle_probe_health(0, HealthState::Up, "probe", t(50));
        assert!(!trunks.handle_invite_timeout(0, t(40), BranchReply::Nothing, t(72)));
        assert!(trunks.in_service(0));
        // One sent after the return still counts.
        assert!(trunks.handle_invite_timeout(0, t(51), BranchReply::Nothing, t(83)));
    }

    /// A trunk without a prober comes back after the passive hold.
    #[test]
    fn unprobed_trunk_returns_after_the_hold() {
        let t0 = epoch();
        let mut trunks = table(t0);
        assert!(trunks.handle_invite_timeout(
            2,
            t0,
            BranchReply::Nothing,
            t0 + Duration::from_secs(32)
        ));
        assert_eq!(trunks.poll_timeout(), Some(t0 + Duration::from_secs(62)));
        trunks.handle_timeout(t0 + Duration::from_secs(61));
        assert!(!trunks.in_service(2));
        trunks.handle_timeout(t0 + Duration::from_secs(62));
        assert!(trunks.in_service(2));
        assert_eq!(trunks.poll_timeout(), None);
    }

    /// SPEC V2: a registration-based trunk is out of service until registered,
    /// and again when it loses the registration; causes add up.
    #[test]
    fn registration_and_probe_causes_add_up() {
        let t0 = epoch();
        let mut trunks = Trunks::new(
            vec![spec("reg", 10, true, true)],
            Duration::from_secs(30),
            t0,
        );
        assert!(!trunks.in_service(0));
        trunks.handle_registration(0, HealthState::Up, "200 OK, expires 3600", t0);
        assert!(trunks.in_service(0));
        trunks.handle_probe_health(0, HealthState::Down, "probe", t0);
        trunks.handle_registration(0, HealthState::Down, "403 Forbidden", t0);
        assert_eq!(trunks.state(0).causes, [Cause::Probe, Cause::Registration]);
        trunks.handle_probe_health(0, HealthState::Up, "probe", t0);
        assert!(!trunks.in_service(0), "still unregistered");
        trunks.handle_registration(0, HealthState::Up, "200 OK", t0);
        assert!(trunks.in_service(0));
        // Up at the first registration, down with the probe, up at the
        // re-registration: causes that overlap make no event of their own.
        let changes: Vec<HealthState> = std::iter::from_fn(|| trunks.poll_event())
            .map(|event| match event.kind {
                EventKind::Health { to, .. } => to,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            changes,
            [HealthState::Up, HealthState::Down, HealthState::Up]
        );
    }
}
