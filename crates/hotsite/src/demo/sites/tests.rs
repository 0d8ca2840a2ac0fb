//! The split-brain check of the site scenarios (SPEC S4): an agent logged in
//! at both sites at the same moment, from the two sites' agent events.

use std::time::{Duration, Instant};

use hotsite_core::{Event, EventKind, Target};

use super::{overlapping, stretches, Stretch};

/// `agent`'s event at `ms` after `epoch`: `state` `logged_out` ends a login,
/// anything else starts one (or changes nothing while logged in).
fn event(epoch: Instant, ms: u64, agent: &str, state: &'static str) -> Event {
    Event {
        at: epoch + Duration::from_millis(ms),
        target: Target::new("x", &format!("agent/{agent}")),
        kind: EventKind::Agent {
            agent: agent.to_owned(),
            dn: "1001".to_owned(),
            state,
            reason: "test".to_owned(),
        },
    }
}

/// The stretches of a site's script `(ms, agent, state)`, stopped at
/// `stopped_ms` if given.
fn site(
    epoch: Instant,
    script: &[(u64, &str, &'static str)],
    stopped_ms: Option<u64>,
) -> Vec<Stretch> {
    let events: Vec<Event> = script
        .iter()
        .map(|(ms, agent, state)| event(epoch, *ms, agent, state))
        .collect();
    stretches(
        &events,
        stopped_ms.map(|ms| epoch + Duration::from_millis(ms)),
    )
}

#[track_caller]
fn check(
    a: &[(u64, &str, &'static str)],
    a_stopped: Option<u64>,
    b: &[(u64, &str, &'static str)],
    expected: &[&str],
) {
    let epoch = crate::clock::now();
    let found = overlapping(&site(epoch, a, a_stopped), &site(epoch, b, None));
    assert_eq!(found, expected);
}

/// Logged out at a, then logged in at b: one site at a time.
#[test]
fn a_move_after_the_logout_is_no_split_brain() {
    check(
        &[
            (0, "alice", "ready"),
            (10, "alice", "busy"),
            (50, "alice", "logged_out"),
        ],
        None,
        &[(60, "alice", "ready")],
        &[],
    );
}

/// Logged in at b while still logged in at a: a split brain, named once.
#[test]
fn a_login_at_b_before_the_logout_at_a_is_a_split_brain() {
    check(
        &[
            (0, "alice", "ready"),
            (50, "alice", "logged_out"),
            (0, "bob", "ready"),
        ],
        None,
        &[
            (40, "alice", "ready"),
            (45, "alice", "busy"),
            (90, "carol", "ready"),
        ],
        &["alice"],
    );
}

/// A site that stopped holds no login: logging in at b after a died is a
/// move, before it died two logins at once.
#[test]
fn a_stopped_site_ends_its_logins_when_it_stops() {
    check(
        &[(0, "alice", "ready")],
        Some(100),
        &[(150, "alice", "ready")],
        &[],
    );
    check(
        &[(0, "alice", "ready")],
        Some(100),
        &[(99, "alice", "ready")],
        &["alice"],
    );
    check(
        &[(0, "alice", "ready")],
        None,
        &[(150, "alice", "ready")],
        &["alice"],
    );
}
