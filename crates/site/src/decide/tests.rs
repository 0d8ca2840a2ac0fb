//! Every `dr-forward` mode × agent here or not × DN in or out of service ×
//! peered or single-site (SPEC S1, S3, S6), and the drain and loop rules
//! (SPEC S7, S1).

use super::*;

fn facts(mode: DrForward, agent_here: bool, dn_in_service: bool, peered: bool) -> CallFacts {
    CallFacts {
        known_dn: true,
        dr_forward: mode,
        agent_here,
        dn_in_service,
        peered,
        from_peer: false,
        draining: false,
    }
}

fn short(decision: Decision) -> String {
    match decision {
        Decision::Local => "local".into(),
        Decision::Forward(_) => "forward".into(),
        Decision::Reject(code, _) => code.to_string(),
        Decision::Redirect => "redirect".into(),
    }
}

/// The whole matrix as a table: mode, agent here, DN in service → peered,
/// single-site. An agent "at the peer" is, seen from here, an agent not
/// here: this site never knows (nor needs to know) the peer's agents.
#[test]
fn the_forwarding_matrix() {
    use DrForward::*;
    let table = [
        // mode, agent here, in service, peered, single
        (Off, true, true, "local", "local"),
        (Off, true, false, "480", "480"),
        (Off, false, true, "local", "local"),
        (Off, false, false, "480", "480"),
        (NoAgent, true, true, "local", "local"),
        (NoAgent, true, false, "480", "480"),
        (NoAgent, false, true, "forward", "local"),
        (NoAgent, false, false, "forward", "480"),
        (Oos, true, true, "local", "local"),
        (Oos, true, false, "forward", "480"),
        (Oos, false, true, "local", "local"),
        (Oos, false, false, "forward", "480"),
    ];
    for (mode, agent, in_service, peered, single) in table {
        assert_eq!(
            short(decide(facts(mode, agent, in_service, true), 603)),
            peered,
            "peered: {mode:?} agent here {agent} in service {in_service}"
        );
        assert_eq!(
            short(decide(facts(mode, agent, in_service, false), 603)),
            single,
            "single-site (S3): {mode:?} agent here {agent} in service {in_service}"
        );
    }
}

/// SPEC S1: a call the peer forwarded is never forwarded back, whatever the
/// mode: it is delivered here or refused with 480.
#[test]
fn a_forwarded_call_never_goes_back() {
    for mode in [DrForward::Off, DrForward::NoAgent, DrForward::Oos] {
        let mut f = facts(mode, false, false, true);
        f.from_peer = true;
        assert_eq!(short(decide(f, 603)), "480", "{mode:?}");
        f.dn_in_service = true;
        assert_eq!(short(decide(f, 603)), "local", "{mode:?}");
    }
}

/// SPEC S7: while draining every new call gets the reject code, or a
/// redirect to the peer for 300–302.
#[test]
fn draining_rejects_or_redirects() {
    let mut f = facts(DrForward::Off, true, true, true);
    f.draining = true;
    assert_eq!(
        decide(f, 603),
        Decision::Reject(603, "this site is draining (graceful shutdown)")
    );
    assert_eq!(short(decide(f, 480)), "480");
    for code in [300, 301, 302] {
        assert_eq!(decide(f, code), Decision::Redirect);
    }
}

#[test]
fn an_unknown_dn_is_404() {
    let mut f = facts(DrForward::NoAgent, false, false, true);
    f.known_dn = false;
    assert_eq!(short(decide(f, 603)), "404");
}
