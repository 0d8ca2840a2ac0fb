//! Client policy tests in simulated time: fake instants, no sleeps, no sockets.

use std::cell::Cell;
use std::rc::Rc;

use super::*;

/// A submit in the tests: a name, and whether its caller still waits.
#[derive(Debug)]
struct Work {
    name: &'static str,
    abandoned: Rc<Cell<bool>>,
}

impl QueuedSubmit for Work {
    fn is_abandoned(&self) -> bool {
        self.abandoned.get()
    }
}

fn work(name: &'static str) -> Work {
    Work {
        name,
        abandoned: Rc::new(Cell::new(false)),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[allow(clippy::disallowed_methods)] // test epoch: only differences matter
fn epoch() -> Instant {
    Instant::now()
}

const THROTTLED: CommandStatus = CommandStatus::ESME_RTHROTTLED;

/// A policy over `instances` SMSCs of one site, each connected and bound at
/// `start`, with a window of `window`.
struct Bench {
    start: Instant,
    policy: ClientPolicy<Work>,
    /// Every assignment so far: (instance, submit, name).
    sent: Vec<(InstanceId, SubmitId, &'static str)>,
}

impl Bench {
    fn new(instances: usize, window: usize) -> Bench {
        let start = epoch();
        let targets = (0..instances)
            .map(|i| Target::new("site0", &format!("smsc{i}")))
            .collect();
        let mut policy = ClientPolicy::new(PoolConfig::default(), targets, window, 7, start);
        let mut connects = Vec::new();
        while let Some(output) = policy.poll_output() {
            if let ClientOutput::Connect(id) = output {
                connects.push(id);
            }
        }
        assert_eq!(connects, (0..instances).collect::<Vec<_>>());
        for id in 0..instances {
            policy.handle_bound(start, id);
        }
        while policy.poll_output().is_some() {}
        Bench {
            start,
            policy,
            sent: Vec::new(),
        }
    }

    fn at(&self, second: u64) -> Instant {
        self.start + secs(second)
    }

    fn submit(&mut self, names: &[&'static str]) {
        for name in names {
            self.policy.handle_submit(work(name));
        }
    }

    /// Drains every assignment possible at `second`; returns (instance, name).
    fn dispatch(&mut self, second: u64) -> Vec<(InstanceId, &'static str)> {
        let now = self.at(second);
        let mut out = Vec::new();
        while let Some(assignment) = self.policy.poll_submit(now) {
            let name = assignment.work.name;
            out.push((assignment.instance, name));
            self.sent
                .push((assignment.instance, assignment.submit, name));
        }
        out
    }

    fn submit_id(&self, name: &str) -> SubmitId {
        self.sent
            .iter()
            .rev()
            .find(|(_, _, sent)| *sent == name)
            .map(|(_, submit, _)| *submit)
            .expect("sent")
    }

    fn answer(&mut self, name: &str) {
        let (instance, submit, _) = *self
            .sent
            .iter()
            .rev()
            .find(|(_, _, sent)| *sent == name)
            .expect("sent");
        let pending = self
            .policy
            .handle_answered(instance, submit)
            .expect("waiting");
        assert_eq!(pending.work.name, name);
    }

    fn events(&mut self) -> Vec<EventKind> {
        let mut kinds = Vec::new();
        while let Some(output) = self.policy.poll_output() {
            if let ClientOutput::Event(event) = output {
                kinds.push(event.kind);
            }
        }
        kinds
    }
}

/// SPEC M4, M7: submits are spread over every bound instance, the least loaded
/// first, and equal binds take turns.
#[test]
fn least_loaded_bound_instance_gets_the_next_submit_and_ties_rotate() {
    let mut bench = Bench::new(3, 10);
    bench.submit(&["a", "b", "c", "d", "e", "f"]);
    let first = bench.dispatch(0);
    let mut per_instance = [0; 3];
    for (instance, _) in &first {
        per_instance[*instance] += 1;
    }
    assert_eq!(per_instance, [2, 2, 2], "{first:?}");
    assert_eq!(
        first.iter().map(|(_, name)| *name).collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e", "f"],
        "queue order is kept"
    );
    // Two answers on the instance that took "a": it is now the least loaded and
    // takes the next two.
    let busy = first[0].0;
    let on_busy: Vec<&str> = first
        .iter()
        .filter(|(instance, _)| *instance == busy)
        .map(|(_, name)| *name)
        .collect();
    for name in on_busy {
        bench.answer(name);
    }
    bench.submit(&["g", "h"]);
    assert_eq!(bench.dispatch(1), [(busy, "g"), (busy, "h")]);
    for id in 0..3 {
        assert_eq!(bench.policy.in_flight(id), 2);
    }
}

/// SPEC M7: a message never waits behind an instance that is not bound, nor
/// goes to one whose window is full; with no bound instance it stays queued.
#[test]
fn only_bound_instances_with_room_are_chosen() {
    let mut bench = Bench::new(2, 2);
    let now = bench.at(1);
    bench
        .policy
        .handle_closed(now, 1, "connection reset", &[], &[]);
    bench.submit(&["a", "b", "c"]);
    assert_eq!(bench.dispatch(1), [(0, "a"), (0, "b")]);
    assert_eq!(bench.policy.queued(), 1, "window full: c waits");
    bench.answer("a");
    assert_eq!(bench.dispatch(2), [(0, "c")]);
    let now = bench.at(3);
    let ambiguous = [bench.submit_id("b"), bench.submit_id("c")];
    let handed_back = bench
        .policy
        .handle_closed(now, 0, "connection reset", &ambiguous, &[]);
    assert_eq!(handed_back.len(), 2);
    bench.submit(&["d"]);
    assert_eq!(bench.dispatch(3), []);
    assert_eq!(bench.policy.queued(), 1);
}

/// SPEC M14: a throttled bind gets no submit until its pause ends while the
/// other binds take the traffic; the throttled message goes first, with its
/// refusal noted.
#[test]
fn throttled_instance_sits_out_its_pause_while_others_take_the_traffic() {
    let mut bench = Bench::new(2, 10);
    bench.submit(&["a", "b"]);
    let first = bench.dispatch(0);
    let (throttled, _) = *first.iter().find(|(_, name)| *name == "a").unwrap();
    let other = 1 - throttled;
    let now = bench.at(1);
    let submit = bench.submit_id("a");
    bench
        .policy
        .handle_throttled(now, throttled, submit, THROTTLED, secs(5));
    assert_eq!(bench.events(), [EventKind::Throttled { pause: secs(5) }]);
    assert_eq!(bench.policy.poll_timeout(), Some(bench.at(6)));

    bench.submit(&["c", "d"]);
    assert_eq!(
        bench.dispatch(2),
        [(other, "a"), (other, "c"), (other, "d")],
        "the throttled message first, everything on the other bind"
    );
    bench.submit(&["e"]);
    assert_eq!(bench.dispatch(5), [(other, "e")], "still paused at 5 s");

    // The pause ends at 6 s; the rested bind is the least loaded.
    let now = bench.at(6);
    bench.policy.handle_timeout(now);
    bench.submit(&["f"]);
    assert_eq!(bench.dispatch(6), [(throttled, "f")]);

    bench.answer("a");
    let (_, submit, _) = *bench.sent.iter().find(|(_, _, n)| *n == "a").unwrap();
    assert!(bench.policy.handle_answered(other, submit).is_none());
}

/// SPEC M14: a throttle's refusals travel with the message to its outcome.
#[test]
fn refusals_are_kept_on_the_message() {
    let mut bench = Bench::new(1, 10);
    bench.submit(&["a"]);
    bench.dispatch(0);
    let now = bench.at(0);
    let submit = bench.submit_id("a");
    bench
        .policy
        .handle_throttled(now, 0, submit, THROTTLED, secs(2));
    assert_eq!(bench.dispatch(2), [(0, "a")]);
    let submit = bench.submit_id("a");
    let pending = bench.policy.handle_answered(0, submit).unwrap();
    assert_eq!(
        pending.refusals,
        [Refusal {
            target: Target::new("site0", "smsc0"),
            status: THROTTLED,
            pause: secs(2),
        }]
    );
}

/// SPEC M14: with every bind paused, submits wait; the policy asks to be woken
/// at the first pause's end, and a later, shorter pause never shortens one
/// already running.
#[test]
fn all_instances_throttled_means_wait_until_the_first_pause_ends() {
    let mut bench = Bench::new(2, 10);
    bench.submit(&["a", "b"]);
    let first = bench.dispatch(0);
    let now = bench.at(0);
    for (instance, name) in first {
        let submit = bench.submit_id(name);
        let pause = secs(10 + 5 * instance as u64);
        bench
            .policy
            .handle_throttled(now, instance, submit, THROTTLED, pause);
    }
    // A second, shorter pause on instance 0 does not cut its 10 s short.
    let now = bench.at(1);
    bench
        .policy
        .handle_throttled(now, 0, 999, THROTTLED, secs(1));
    bench.submit(&["c"]);
    for second in [1, 5, 9] {
        let now = bench.at(second);
        bench.policy.handle_timeout(now);
        assert_eq!(
            bench.dispatch(second),
            [],
            "everything paused at {second} s"
        );
    }
    assert_eq!(bench.policy.queued(), 3);
    assert_eq!(bench.policy.poll_timeout(), Some(bench.at(10)));

    let now = bench.at(10);
    bench.policy.handle_timeout(now);
    assert_eq!(bench.policy.poll_timeout(), Some(bench.at(15)));
    // Handed back to the front in the order the refusals came: "b" last, so first.
    assert_eq!(bench.dispatch(10), [(0, "b"), (0, "a"), (0, "c")]);
}

/// SPEC M14: a session that refuses a submit because it is still paused makes
/// the policy adopt the session's longer pause.
#[test]
fn a_session_pause_longer_than_ours_is_adopted() {
    let mut bench = Bench::new(2, 10);
    bench.submit(&["a"]);
    let [(instance, _)] = bench.dispatch(0)[..] else {
        panic!("one assignment");
    };
    let submit = bench.submit_id("a");
    bench
        .policy
        .handle_unsent(bench.at(0), submit, Unsent::Throttled(secs(4)));
    assert_eq!(bench.policy.poll_timeout(), Some(bench.at(4)));
    assert_eq!(bench.dispatch(1), [(1 - instance, "a")]);
}

/// SPEC M7, M8: when a bind dies, its unsent submits and those handed to it
/// after it closed go back to the front of the queue, ahead of newer work,
/// for another bind; its ambiguous ones go to the owner, never re-queued.
#[test]
fn a_dead_binds_unsent_submits_go_first_and_ambiguous_ones_go_to_the_owner() {
    let mut bench = Bench::new(2, 10);
    bench.submit(&["a", "b", "c", "d", "e", "f"]);
    bench.dispatch(0);
    let dead: Vec<&str> = bench
        .sent
        .iter()
        .filter(|(instance, _, _)| *instance == 0)
        .map(|(_, _, name)| *name)
        .collect();
    assert_eq!(dead, ["a", "c", "e"]);
    bench.submit(&["later"]);
    // "a" was sent and never answered; "c" never left; "e" was handed to the
    // session task after it had closed (neither list names it).
    let ambiguous = [bench.submit_id("a")];
    let unsent = [bench.submit_id("c")];
    let now = bench.at(1);
    let handed_back = bench
        .policy
        .handle_closed(now, 0, "connection reset", &ambiguous, &unsent);
    let names: Vec<&str> = handed_back.iter().map(|p| p.work.name).collect();
    assert_eq!(names, ["a"], "ambiguous: back to the owner");
    let events = bench.events();
    assert_eq!(
        events[0],
        EventKind::WorkHandedBack {
            ambiguous: 1,
            unsent: 1
        }
    );
    assert!(
        events
            .iter()
            .any(|kind| matches!(kind, EventKind::RetryScheduled { .. })),
        "{events:?}"
    );
    assert_eq!(bench.policy.in_flight(0), 0);
    assert_eq!(
        bench.dispatch(1),
        [(1, "e"), (1, "c"), (1, "later")],
        "orphans first, then the unsent, then newer work; nothing to the dead bind"
    );
}

/// SPEC M7: a submit the driver could not hand over goes back to the front.
#[test]
fn a_submit_that_could_not_be_handed_over_goes_back_to_the_front() {
    let mut bench = Bench::new(1, 10);
    bench.submit(&["a", "b"]);
    let now = bench.at(0);
    let assignment = bench.policy.poll_submit(now).unwrap();
    assert_eq!(assignment.work.name, "a");
    let submit = assignment.submit;
    bench.policy.handle_send_failed(submit);
    assert_eq!(bench.policy.in_flight(0), 0);
    assert_eq!(bench.dispatch(0), [(0, "a"), (0, "b")]);
}

/// A submit whose caller gave up is dropped, not sent.
#[test]
fn abandoned_submits_are_dropped_unsent() {
    let mut bench = Bench::new(1, 10);
    let gone = work("gone");
    gone.abandoned.set(true);
    bench.policy.handle_submit(gone);
    bench.submit(&["kept"]);
    assert_eq!(bench.dispatch(0), [(0, "kept")]);
    assert_eq!(bench.policy.queued(), 0);
}

/// Stopping drops queued work, dispatches nothing more and asks for no timer;
/// a close while stopping still returns the ambiguous submits.
#[test]
fn shutdown_drops_queued_work_and_stops_dispatching() {
    let mut bench = Bench::new(1, 10);
    bench.submit(&["a", "b"]);
    let now = bench.at(0);
    let assignment = bench.policy.poll_submit(now).unwrap();
    let submit = assignment.submit;
    bench.policy.handle_shutdown();
    assert_eq!(bench.policy.queued(), 0);
    assert_eq!(bench.policy.poll_timeout(), None);
    bench.submit(&["c"]);
    assert_eq!(bench.dispatch(1), []);
    let handed_back = bench
        .policy
        .handle_closed(bench.at(1), 0, "unbound", &[submit], &[]);
    assert_eq!(handed_back.len(), 1);
    assert_eq!(bench.policy.queued(), 0);
}
