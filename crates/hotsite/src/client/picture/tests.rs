//! The fixtures are a real gateway's answers: `hotsite run` with a site
//! (its peer away: single-site), four SMSCs of `hotsite lab` (a/a1 killed,
//! b/b2 blackholed), an HTTP aggregator of two lab sites (a hung), a
//! webhook channel and two trunks (edge-2 silent); `GET /v1/status` and
//! `GET /v1/events?limit=12` read at [`FIXTURE_NOW_MS`].

use serde_json::json;

use super::*;

const FIXTURE_NOW_MS: i64 = 1_796_508_558_674;

fn fixture_status() -> Value {
    serde_json::from_str(include_str!("../fixtures/status.json")).unwrap()
}

fn fixture_timeline(systems: &[&str]) -> Timeline {
    let events: Value = serde_json::from_str(include_str!("../fixtures/events.json")).unwrap();
    let entries: Vec<Entry> = serde_json::from_value(events["events"].clone()).unwrap();
    let mut timeline = Timeline::new(12, systems.iter().map(|s| s.to_string()).collect());
    timeline.extend(entries);
    timeline
}

/// Renders the fixture as `hotsite status` would have at its time.
fn check(status: &Value, timeline: &Timeline, expected_file: &str, expected: &str) {
    let picture = render(&Frame {
        status,
        timeline,
        timeline_lines: Some(12),
        rate: Some(12.5),
        now_ms: Some(FIXTURE_NOW_MS),
        colour: false,
    })
    .join("\n")
        + "\n";
    // Like expect-test: HOTSITE_UPDATE_FIXTURES=1 writes what it got.
    if std::env::var_os("HOTSITE_UPDATE_FIXTURES").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/client/fixtures")
            .join(expected_file);
        std::fs::write(path, &picture).unwrap();
        return;
    }
    assert_eq!(picture, expected, "got:\n{picture}");
}

/// SPEC M3, M4, V2, S3: the whole picture of a real status, every
/// section: the site alone with its peer link out of service, binds by
/// provider site with cause and since, the aggregator's hung site,
/// trunks with cause and since, queue and rate, agents, the timeline.
#[test]
fn the_picture_of_a_real_gateway() {
    check(
        &fixture_status(),
        &fixture_timeline(&[]),
        "picture.txt",
        include_str!("../fixtures/picture.txt"),
    );
}

/// A gateway with messaging only: no site, trunk or agent section; the
/// timeline shows only the systems asked for.
#[test]
fn sections_of_systems_not_running_are_left_out() {
    let mut status = fixture_status();
    let body = status.as_object_mut().unwrap();
    body.remove("site");
    body.remove("trunks");
    body.insert("systems".into(), json!(["messaging"]));
    check(
        &status,
        &fixture_timeline(&["voice", "site"]),
        "picture-messaging-only.txt",
        include_str!("../fixtures/picture-messaging-only.txt"),
    );
}

/// Colours mark states only, and only when asked; columns stay put.
#[test]
fn colours_mark_up_down_and_probing() {
    let status = fixture_status();
    let timeline = fixture_timeline(&[]);
    let frame = |colour| Frame {
        status: &status,
        timeline: &timeline,
        timeline_lines: Some(12),
        rate: None,
        now_ms: Some(FIXTURE_NOW_MS),
        colour,
    };
    let plain = render(&frame(false));
    let coloured = render(&frame(true));
    assert!(plain.iter().all(|line| !line.contains('\u{1b}')));
    let line_of =
        |lines: &[String], what: &str| lines.iter().find(|l| l.contains(what)).unwrap().clone();
    assert!(line_of(&coloured, "a/a1  ").contains("\u{1b}[31mDOWN\u{1b}[0m"));
    assert!(line_of(&coloured, "a/a2  ").contains("\u{1b}[32mup\u{1b}[0m"));
    assert!(line_of(&coloured, "edge-2").contains("\u{1b}[31mOUT\u{1b}[0m"));
    assert!(line_of(&coloured, "peer link").contains("\u{1b}[31mOUT OF SERVICE\u{1b}[0m"));
    let strip = |line: &str| {
        line.replace("\u{1b}[31m", "")
            .replace("\u{1b}[32m", "")
            .replace("\u{1b}[33m", "")
            .replace("\u{1b}[0m", "")
    };
    assert_eq!(coloured.iter().map(|l| strip(l)).collect::<Vec<_>>(), plain);
    assert_eq!(
        style("probing", Style::of_state("probing"), true),
        "\u{1b}[33mprobing\u{1b}[0m"
    );
}

/// The form a pipe compares to tell whether the status changed: no
/// clock, no ages, no rate, so only a real change prints a picture.
#[test]
fn without_a_clock_the_picture_has_no_ages_and_no_rate() {
    let status = fixture_status();
    let timeline = fixture_timeline(&[]);
    let stable = render(&Frame {
        status: &status,
        timeline: &timeline,
        timeline_lines: None,
        rate: None,
        now_ms: None,
        colour: false,
    });
    let text = stable.join("\n");
    assert!(
        !text.contains("since") && !text.contains("msg/s") && !text.contains("UTC"),
        "{text}"
    );
    assert!(!text.contains("timeline"), "{text}");
    assert!(text.contains("a/a1  127.0.0.1:34111  DOWN"), "{text}");
}

/// SPEC M10: digital and e-mail channels with their endpoint's health, in
/// the shape the gateway's status gives (`channel::passive`): the last
/// failure is the cause only while the endpoint is out of service.
#[test]
fn digital_channels_show_their_health() {
    let status = json!({
        "systems": ["messaging"],
        "channels": {
            "primary-chat": {"kind": "digital", "url": "https://chat.example", "health": "down",
                "since_ms": FIXTURE_NOW_MS - 42_000, "sends": 9, "failures_in_a_row": 3,
                "last_ok_ms": null, "last_failure": {"at_ms": FIXTURE_NOW_MS - 42_000, "cause": "503 Service Unavailable"}},
            "mail": {"kind": "email", "url": "smtp.example:587", "health": "up",
                "since_ms": FIXTURE_NOW_MS - 60_000, "sends": 4, "failures_in_a_row": 0,
                "last_ok_ms": FIXTURE_NOW_MS - 1_000, "last_failure": {"at_ms": FIXTURE_NOW_MS - 61_000, "cause": "timeout"}},
        }
    });
    let lines = render(&Frame {
        status: &status,
        timeline: &Timeline::new(5, Vec::new()),
        timeline_lines: None,
        rate: None,
        now_ms: Some(FIXTURE_NOW_MS),
        colour: false,
    });
    assert_eq!(
        lines[1..],
        [
            "digital channels:",
            "    mail          email    smtp.example:587      up    since 1m00s",
            "    primary-chat  digital  https://chat.example  DOWN  since 42s    3 sends in a row failed: 503 Service Unavailable",
        ]
    );
}

#[test]
fn many_agents_are_counted_not_listed() {
    let agents: Vec<Value> = (0..20)
        .map(|n| json!({"id": format!("agent-{n:02}"), "state": if n < 5 { "ready" } else { "logged_out" }, "dn": null}))
        .collect();
    let status = json!({"systems": ["site"], "site": {"name": "x", "mode": "peered", "peer": null, "agents": agents, "calls": {"active": 0}}});
    let lines = render(&Frame {
        status: &status,
        timeline: &Timeline::new(5, Vec::new()),
        timeline_lines: None,
        rate: None,
        now_ms: None,
        colour: false,
    });
    assert!(
        lines.contains(&"agents at x: 5 of 20 logged in (logged_out 15, ready 5)".to_owned()),
        "{lines:#?}"
    );
    assert!(lines.contains(&"  … and 12 more".to_owned()), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("no peer")), "{lines:#?}");
}

#[test]
fn time_of_day_is_utc_clock_time() {
    // 2026-11-25T12:19:45.123Z
    assert_eq!(time_of_day(1_795_609_185_123), "12:19:45.123");
    assert_eq!(time_of_day(0), "00:00:00.000");
}

#[test]
fn ages_read_like_an_operator_says_them() {
    let cases = [
        (-5, "0s"),
        (0, "0s"),
        (850, "850ms"),
        (42_000, "42s"),
        (192_000, "3m12s"),
        (5 * 3_600_000 + 4 * 60_000, "5h04m"),
        (3 * 86_400_000 + 2 * 3_600_000, "3d02h"),
    ];
    for (ms, expected) in cases {
        assert_eq!(age(ms), expected, "{ms}");
    }
}
