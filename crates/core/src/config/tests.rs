//! The shared config helpers: each accepted form and each error names what is
//! wrong (SPEC invariant 3: every config error names its key and reason).

use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default, deserialize_with = "duration")]
    strict: Duration,
    #[serde(default)]
    written: Option<WrittenDuration>,
}

fn section(text: &str) -> Result<Section, String> {
    toml::from_str(text).map_err(|error| error.message().to_owned())
}

/// Every form the copies accepted (all were humantime): units, compounds,
/// long names, zero.
#[test]
fn durations_accept_every_humantime_form() {
    for (text, expected) in [
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("2m", Duration::from_secs(120)),
        ("24h", Duration::from_secs(86_400)),
        ("1h 30m", Duration::from_secs(5_400)),
        ("2min", Duration::from_secs(120)),
        ("1day", Duration::from_secs(86_400)),
        ("250us", Duration::from_micros(250)),
        ("0s", Duration::ZERO),
    ] {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
        let parsed = section(&format!("strict = {text:?}\nwritten = {text:?}")).unwrap();
        assert_eq!(parsed.strict, expected, "{text}");
        assert_eq!(parsed.written.unwrap().parsed(), Ok(expected), "{text}");
    }
}

/// A unit-less number or a word is refused with the text and an example.
#[test]
fn a_bad_duration_names_its_text_and_the_form() {
    for text in ["5", "soon", "", "5 parsecs"] {
        let error = parse_duration(text).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{text:?} is not a duration (")),
            "{error}"
        );
        assert!(
            error.ends_with("write e.g. \"30s\", \"500ms\", \"2m\""),
            "{error}"
        );
    }
    let error = section("strict = \"soon\"").unwrap_err();
    assert!(error.starts_with("\"soon\" is not a duration"), "{error}");
}

/// A bad written duration does not stop the parse; the accumulator reports it
/// with the key, and the positive form refuses zero.
#[test]
fn written_durations_are_judged_later_with_their_key() {
    let parsed = section("written = \"soon\"").unwrap();
    let written = parsed.written.unwrap();
    let mut issues = Issues::new();
    assert_eq!(issues.duration("smpp.response_timeout", &written), None);
    assert_eq!(
        issues.positive_duration("webhook.timeout", &WrittenDuration::new("0s"), "5s"),
        None
    );
    assert_eq!(
        issues.positive_duration("webhook.timeout", &WrittenDuration::new("2s"), "5s"),
        Some(Duration::from_secs(2))
    );
    let found: Vec<String> = issues.as_slice().iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2);
    assert!(
        found[0].starts_with("smpp.response_timeout: \"soon\" is not a duration"),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        "webhook.timeout: \"0s\" is not a positive duration such as \"5s\""
    );
    // A value of the wrong type is still serde's error.
    assert!(section("written = 5").is_err());
}

#[test]
fn socket_addresses_are_ip_and_port() {
    assert_eq!(
        parse_socket_addr("127.0.0.1:5060"),
        Ok("127.0.0.1:5060".parse().unwrap())
    );
    assert_eq!(
        parse_socket_addr("[::1]:5060"),
        Ok("[::1]:5060".parse().unwrap())
    );
    assert_eq!(
        parse_socket_addr("gw.example:5060"),
        Err("\"gw.example:5060\" is not ip:port (names are not resolved)".to_owned())
    );
}

#[test]
fn host_ports_need_a_host_and_a_port_above_zero() {
    assert_eq!(check_host_port("smsc.example:2775"), Ok(()));
    assert_eq!(check_host_port("127.0.0.1:2775"), Ok(()));
    assert_eq!(
        check_host_port("127.0.0.1"),
        Err("\"127.0.0.1\" must be host:port".to_owned())
    );
    assert_eq!(
        check_host_port(":2775"),
        Err("\":2775\" has no host".to_owned())
    );
    for bad in ["a:0", "a:70000", "a:x"] {
        assert_eq!(
            check_host_port(bad),
            Err(format!("{bad:?} has no valid port (1-65535)"))
        );
    }
}

#[test]
fn urls_must_be_http_or_https_with_a_host() {
    for good in [
        "http://a.example/sms/send",
        "https://chat.example/hook",
        "http://127.0.0.1:8080/",
    ] {
        assert_eq!(check_http_url(good), Ok(()), "{good}");
    }
    for bad in [
        "ftp://b.example/",
        "nope",
        "http://",
        "mailto:a@b.example",
        "",
    ] {
        assert_eq!(
            check_http_url(bad),
            Err(format!("not an http(s) URL: {bad:?}")),
            "{bad}"
        );
    }
}

/// SPEC M15: a short signing secret is refused naming the key, never the secret.
#[test]
fn short_secrets_are_refused_without_showing_them() {
    let mut issues = Issues::new();
    issues.secret(
        "webhook.secret",
        &Secret::from("0123456789abcdef"),
        16,
        "SPEC M15",
    );
    assert!(issues.is_empty());
    issues.secret(
        "webhook.secret",
        &Secret::from("hunter2"),
        16,
        "it signs, SPEC M15",
    );
    let found = issues.finish().unwrap_err();
    assert_eq!(
        found[0].to_string(),
        "webhook.secret: must be at least 16 characters (it signs, SPEC M15)"
    );
    assert!(!format!("{found:?}").contains("hunter2"));
}

#[test]
fn issues_collect_under_prefixes_and_bounds() {
    let mut issues = Issues::new();
    issues.extend_under(
        "channels[1]",
        [
            ConfigIssue::new("urls[0].url", "bad"),
            ConfigIssue::new("rise", "low"),
        ],
    );
    issues.extend_under("", [ConfigIssue::new("voice.t1", "high")]);
    issues.timer(
        "t",
        Duration::from_millis(5),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    issues.timer(
        "u",
        Duration::from_secs(2),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    issues.timer(
        "v",
        Duration::from_secs(1),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    assert_eq!(issues.check("w", Ok::<_, String>(3)), Some(3));
    assert_eq!(issues.check::<u8>("x", Err("no".into())), None);
    assert_eq!(
        ConfigIssue::join(issues.as_slice(), "; "),
        "channels[1].urls[0].url: bad; channels[1].rise: low; voice.t1: high; \
         t: must be at least 100ms, got 5ms; u: must be at most 1s, got 2s; x: no"
    );
}
