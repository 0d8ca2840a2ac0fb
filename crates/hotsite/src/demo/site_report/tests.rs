//! What makes a site scenario's report fail (SPEC S2, S7): a call answered
//! otherwise than its phase promised, not placed, or left in progress where
//! nothing allows it; and the scenario's own checks.

use std::time::Duration;

use hotsite_lab::CallRecord;

use super::{Phase, SiteReport};
use crate::demo::{Scenario, Settings};

/// A call that got `status` (`None`: no final answer), over or not.
fn call(index: u64, status: Option<u16>, finished: bool) -> CallRecord {
    CallRecord {
        index,
        call_id: format!("call-{index}"),
        started: crate::clock::now(),
        first_response: None,
        setup_time: status.map(|_| Duration::from_millis(20)),
        status,
        timed_out: false,
        cancelled: false,
        invite_retransmissions: 0,
        contact: None,
        bye_status: None,
        extra_answers: 0,
        finished,
    }
}

fn report_of(phases: Vec<Phase>) -> SiteReport {
    let settings = Settings {
        scenario: Scenario::SiteFailure,
        messages: 4,
        rate: 20,
        batch: 10,
    };
    SiteReport::new(&settings, "test", phases, Duration::from_secs(1))
}

#[test]
fn calls_answered_as_promised_make_an_ok_report() {
    let calls = [call(0, Some(200), true), call(1, Some(200), true)];
    let report = report_of(vec![Phase::new("after", "b", 200, 2, &calls, false)]);
    assert!(report.ok);
    assert_eq!(
        (report.completed, report.failed, report.unexpected),
        (2, 0, 0)
    );
}

#[test]
fn another_answer_or_a_call_not_placed_is_a_broken_promise() {
    let calls = [call(0, Some(200), true), call(1, Some(480), true)];
    let report = report_of(vec![Phase::new("after", "b", 200, 3, &calls, false)]);
    assert!(!report.ok);
    assert_eq!(report.unexpected, 2);
    assert_eq!(report.statuses["not placed"], 1);
    // 603 is what a draining site's calls are promised (SPEC S7).
    let calls = [call(0, Some(603), true), call(1, Some(200), true)];
    let report = report_of(vec![Phase::new("drain", "a", 603, 2, &calls, false)]);
    assert!(!report.ok);
    assert_eq!(report.unexpected, 1);
}

/// SPEC S2: calls in progress at a killed site may be lost; anywhere else a
/// call left in progress fails the report.
#[test]
fn calls_in_progress_fail_only_where_they_may_not_be_lost() {
    let calls = [call(0, Some(200), false), call(1, None, false)];
    let killed = report_of(vec![Phase::new(
        "before the kill",
        "a",
        200,
        2,
        &calls,
        true,
    )]);
    assert!(killed.ok);
    assert_eq!(killed.phases[0].in_progress_at_end, 2);
    let elsewhere = report_of(vec![Phase::new("after", "b", 200, 2, &calls, false)]);
    assert!(!elsewhere.ok);
}

#[test]
fn a_failed_check_fails_the_report() {
    let calls = [call(0, Some(200), true)];
    let mut zero = report_of(vec![Phase::new("after", "b", 200, 1, &calls, false)]);
    zero.must_be_zero("agents_logged_in_at_two_sites", 0);
    zero.must_hold("drain_completed", true);
    assert!(zero.ok);
    zero.must_be_zero("agents_logged_in_at_two_sites", 1);
    assert!(!zero.ok);
    let mut held = report_of(vec![Phase::new("after", "b", 200, 1, &calls, false)]);
    held.must_hold("drain_completed", false);
    assert!(!held.ok);
}
