//! Config parsing and validation: every error names its key (SPEC preamble:
//! "config validation rejects values outside the stated bounds with an error
//! that names the key").

use super::*;

const MINIMAL: &str = r#"
[lab]
[[lab.accounts]]
system_id = "hotsite"
password = "secret"
[[lab.sites]]
name = "a"
[[lab.sites.smsc]]
name = "a1"
listen = "127.0.0.1:0"
"#;

/// Parses `text` and expects an error whose message is exactly `expected`.
#[track_caller]
fn check_error(text: &str, expected: &str) {
    match LabConfig::from_toml_str(text) {
        Ok(config) => panic!("expected error {expected:?}, got {config:?}"),
        Err(error) => assert_eq!(error.to_string(), expected),
    }
}

/// `MINIMAL` with `extra` appended (TOML tables may come in any order).
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

#[test]
fn minimal_config_gets_defaults() {
    let config = LabConfig::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(config.seed, 1);
    assert_eq!(config.control, "127.0.0.1:0".parse().expect("addr"));
    assert_eq!(config.receipts, ReceiptConfig::default());
    assert_eq!(config.receipts.delay_ms, 20);
    assert_eq!(config.receipts.final_state, FinalState::Delivered);
}

#[test]
fn example_file_is_valid() {
    let text = include_str!("../../../../examples/lab.toml");
    let config = LabConfig::from_toml_str(text).expect("examples/lab.toml is valid");
    let names: Vec<_> = config
        .sites
        .iter()
        .flat_map(|site| site.smsc.iter().map(|smsc| smsc.name.as_str()))
        .collect();
    assert_eq!(names, ["a1", "a2", "b1", "b2"]);
}

/// The commented optional sections of `examples/lab.toml` are valid too.
#[test]
fn example_file_optional_sections_are_valid() {
    let text = include_str!("../../../../examples/lab.toml");
    let uncommented: String = text
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("# ").unwrap_or(line);
            let is_toml = rest.starts_with('[')
                || rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if is_toml {
                rest
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = LabConfig::from_toml_str(&uncommented).expect("uncommented example is valid");
    let http = config.http.expect("http");
    assert_eq!(http.sites.len(), 2);
    assert!(http.shared_port);
    assert_eq!(config.webhooks.len(), 2);
    assert_eq!(config.dns.map(|dns| dns.records.len()), Some(1));
    assert!(config.smtp.is_some());
}

#[test]
fn probabilities_outside_zero_one_are_rejected() {
    check_error(
        &minimal_with("[lab.receipts]\nduplicate_probability = 1.5"),
        "lab.receipts.duplicate_probability: must be between 0 and 1, got 1.5",
    );
    check_error(
        &minimal_with("[lab.receipts]\nother_site_probability = -0.1"),
        "lab.receipts.other_site_probability: must be between 0 and 1, got -0.1",
    );
    check_error(
        &minimal_with("[lab.receipts]\nother_site_probability = nan"),
        "lab.receipts.other_site_probability: must be between 0 and 1, got NaN",
    );
}

#[test]
fn receipt_delay_is_bounded() {
    check_error(
        &minimal_with("[lab.receipts]\ndelay_ms = 700000"),
        "lab.receipts.delay_ms: must be at most 600000, got 700000",
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let error = LabConfig::from_toml_str(&minimal_with("[lab.receipts]\ndelay = 5"))
        .expect_err("unknown key");
    assert!(
        error.to_string().contains("unknown field `delay`"),
        "{error}"
    );
    let error =
        LabConfig::from_toml_str(&format!("{MINIMAL}\n[other]\nx = 1")).expect_err("top level");
    assert!(
        error.to_string().contains("unknown field `other`"),
        "{error}"
    );
}

#[test]
fn no_accounts_or_sites_is_rejected() {
    check_error(
        "[lab]\naccounts = []\n[[lab.sites]]\nname = \"a\"\nsmsc = []",
        "lab.accounts: at least one account is needed, or no bind can succeed",
    );
    check_error(
        "[lab]\nsites = []\n[[lab.accounts]]\nsystem_id = \"x\"\npassword = \"y\"",
        "lab.sites: at least one site is needed (or an HTTP site, webhook receiver, DNS \
         server, SMTP sink, phone, link or media server)",
    );
    check_error(
        "[lab]\n[[lab.accounts]]\nsystem_id = \"x\"\npassword = \"y\"\n\
         [[lab.sites]]\nname = \"a\"\nsmsc = []",
        "lab.sites[0].smsc: site \"a\" needs at least one SMSC instance",
    );
}

#[test]
fn account_fields_respect_smpp_limits() {
    let with_account = |system_id: &str, password: &str| {
        MINIMAL.replace(
            "system_id = \"hotsite\"\npassword = \"secret\"",
            &format!("system_id = \"{system_id}\"\npassword = \"{password}\""),
        )
    };
    check_error(
        &with_account("", "secret"),
        "lab.accounts[0].system_id: must not be empty",
    );
    check_error(
        &with_account("a-very-long-system-id", "secret"),
        "lab.accounts[0].system_id: must be at most 15 characters (SMPP 3.4), got 21",
    );
    check_error(
        &with_account("hotsite", "toolongpw"),
        "lab.accounts[0].password: must be at most 8 characters (SMPP 3.4), got 9",
    );
    check_error(
        &minimal_with("[[lab.accounts]]\nsystem_id = \"hotsite\"\npassword = \"other\""),
        "lab.accounts[1].system_id: duplicate account \"hotsite\"",
    );
}

#[test]
fn duplicate_names_are_rejected() {
    check_error(
        &minimal_with(
            "[[lab.sites]]\nname = \"a\"\n[[lab.sites.smsc]]\nname = \"x\"\nlisten = \"127.0.0.1:0\"",
        ),
        "lab.sites[1].name: duplicate site name \"a\"",
    );
    check_error(
        &minimal_with("[[lab.sites.smsc]]\nname = \"a1\"\nlisten = \"127.0.0.1:0\""),
        "lab.sites[0].smsc[1].name: duplicate SMSC name \"a1\" in site \"a\"",
    );
    // The same instance name in two sites is fine: targets are `site/name`.
    LabConfig::from_toml_str(&minimal_with(
        "[[lab.sites]]\nname = \"b\"\n[[lab.sites.smsc]]\nname = \"a1\"\nlisten = \"127.0.0.1:0\"",
    ))
    .expect("same smsc name in another site");
}

#[test]
fn names_must_be_path_safe_and_short() {
    check_error(
        &MINIMAL.replace("name = \"a\"", "name = \"a/b\""),
        "lab.sites[0].name: \"a/b\" may only contain ASCII letters, digits, '-', '_' and '.' \
         (it appears in control API paths)",
    );
    check_error(
        &MINIMAL.replace("name = \"a1\"", "name = \"\""),
        "lab.sites[0].smsc[0].name: must not be empty",
    );
    check_error(
        &MINIMAL.replace("name = \"a1\"", "name = \"smsc-with-a-long-name\""),
        "lab.sites[0].smsc[0].name: must be at most 15 characters (it is the system_id of the \
         instance's bind responses), got 21",
    );
}

#[test]
fn fixed_ports_must_be_distinct() {
    check_error(
        &MINIMAL
            .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:28775\"")
            .replace("[lab]", "[lab]\ncontrol = \"127.0.0.1:28775\""),
        "lab.sites[0].smsc[0].listen: address 127.0.0.1:28775 is already used by lab.control",
    );
}

#[test]
fn final_state_maps_to_state_and_stat() {
    let config = LabConfig::from_toml_str(&minimal_with(
        "[lab.receipts]\nfinal_state = \"undeliverable\"",
    ))
    .expect("valid");
    assert_eq!(config.receipts.final_state, FinalState::Undeliverable);
    assert_eq!(
        config.receipts.final_state.message_state(),
        MessageState::Undeliverable
    );
    assert_eq!(config.receipts.final_state.stat(), "UNDELIV");
}

#[test]
fn loopback_layout_is_valid() {
    let config = LabConfig::two_sites_two_smscs();
    assert_eq!(config.validate(), Ok(()));
    let names: Vec<_> = config
        .sites
        .iter()
        .flat_map(|s| s.smsc.iter().map(|m| format!("{}/{}", s.name, m.name)))
        .collect();
    assert_eq!(names, ["a/a1", "a/a2", "b/b1", "b/b2"]);
    assert_eq!(config.accounts[0].system_id, "hotsite");
}

/// Every optional server at once, as `examples/lab.toml` documents them.
const ALL_SERVERS: &str = r#"
[lab]
[[lab.accounts]]
system_id = "hotsite"
password = "secret"

[lab.http]
dr_url = "http://127.0.0.1:8080/callbacks/dr"
mo_url = "http://127.0.0.1:8080/callbacks/mo"
callback_secret = "s3cret"
shared_port = true
[[lab.http.sites]]
name = "a"
listen = "127.0.0.1:0"
[[lab.http.sites]]
name = "b"
listen = "127.0.0.2:0"

[[lab.webhooks]]
name = "primary-chat"
secret = "hook"
[[lab.webhooks]]
name = "secondary-chat"
listen = "127.0.0.1:0"

[lab.dns]
ttl_s = 2
[[lab.dns.records]]
name = "sms.lab.test."
addrs = ["127.0.0.1", "::1"]

[lab.smtp]
listen = "127.0.0.1:0"
"#;

#[test]
fn optional_servers_parse_with_defaults() {
    let config = LabConfig::from_toml_str(ALL_SERVERS).expect("valid");
    assert!(config.sites.is_empty(), "an HTTP-only lab needs no SMSC");
    let http = config.http.as_ref().expect("http");
    assert_eq!(http.sites.len(), 2);
    assert_eq!(
        (
            http.callback_retry_ms,
            http.callback_max_attempts,
            http.callback_timeout_ms
        ),
        (200, 50, 2_000)
    );
    assert_eq!(
        config.webhooks[0].listen,
        "127.0.0.1:0".parse().expect("addr")
    );
    assert_eq!(config.webhooks[0].secret.as_deref(), Some("hook"));
    let dns = config.dns.as_ref().expect("dns");
    assert_eq!((dns.ttl_s, dns.records[0].addrs.len()), (2, 2));
    assert_eq!(
        config.smtp.as_ref().map(|smtp| smtp.max_message_bytes),
        Some(1 << 20)
    );
    let only_dns = LabConfig::from_toml_str("[lab]\n[lab.dns]\n").expect("valid");
    assert_eq!(only_dns.dns.map(|dns| dns.ttl_s), Some(1));
}

#[test]
fn optional_servers_are_validated_with_their_keys() {
    for (from, to, expected) in [
        (
            "name = \"b\"",
            "name = \"a\"",
            "lab.http.sites[1].name: duplicate HTTP site name \"a\"",
        ),
        (
            "listen = \"127.0.0.2:0\"",
            "listen = \"127.0.0.1:0\"",
            "lab.http.sites[1].listen: with shared_port every site needs its own address, \
             and 127.0.0.1 is taken by another site",
        ),
        (
            "listen = \"127.0.0.2:0\"",
            "listen = \"127.0.0.2:8080\"",
            "lab.http.sites[1].listen: with shared_port every site listens on the same port: \
             127.0.0.2:8080 has port 8080, lab.http.sites[0].listen has 0",
        ),
        (
            "dr_url = \"http://127.0.0.1:8080/callbacks/dr\"",
            "dr_url = \"ftp://127.0.0.1/dr\"",
            "lab.http.dr_url: \"ftp://127.0.0.1/dr\": must be an http:// or https:// URL",
        ),
        (
            "callback_secret = \"s3cret\"",
            "callback_retry_ms = 0",
            "lab.http.callback_retry_ms: must be between 1 and 60000, got 0",
        ),
        (
            "name = \"secondary-chat\"",
            "name = \"primary-chat\"",
            "lab.webhooks[1].name: duplicate webhook receiver name \"primary-chat\"",
        ),
        (
            "secret = \"hook\"",
            "secret = \"\"",
            "lab.webhooks[0].secret: must not be empty (leave it out to accept unsigned requests)",
        ),
        (
            "name = \"sms.lab.test.\"",
            "name = \"sms..test\"",
            "lab.dns.records[0].name: \"sms..test\" is not a DNS name: labels are 1 to 63 ASCII \
             letters, digits, '-' or '_'",
        ),
        (
            "ttl_s = 2",
            "ttl_s = 86401",
            "lab.dns.ttl_s: must be between 0 and 86400, got 86401",
        ),
        (
            "[lab.smtp]",
            "[lab.smtp]\nmax_message_bytes = 10",
            "lab.smtp.max_message_bytes: must be between 1024 and 67108864, got 10",
        ),
    ] {
        assert!(ALL_SERVERS.contains(from), "{from}");
        check_error(&ALL_SERVERS.replacen(from, to, 1), expected);
    }
    check_error(
        &ALL_SERVERS.replace(
            "[lab.smtp]\nlisten = \"127.0.0.1:0\"",
            "[lab.smtp]\nlisten = \"127.0.0.1:28800\"\n[[lab.sites]]\nname = \"s\"\n\
             [[lab.sites.smsc]]\nname = \"s1\"\nlisten = \"127.0.0.1:28800\"",
        ),
        "lab.smtp.listen: address 127.0.0.1:28800 is already used by lab.sites[0].smsc[0].listen",
    );
    check_error(
        "[lab]\n[lab.http]\n[[lab.http.sites]]\nname = \"a\"",
        "lab.accounts: at least one account is needed, or no bind can succeed",
    );
}

#[test]
fn helper_layouts_are_valid() {
    let mut config = LabConfig::two_sites_two_smscs();
    config.http = Some(HttpConfig::shared_port(&[
        ("a", "127.0.0.1".parse().expect("ip")),
        ("b", "127.0.0.2".parse().expect("ip")),
    ]));
    config.webhooks = vec![WebhookConfig::loopback("chat", Some("s"))];
    config.dns = Some(DnsConfig::loopback(&[(
        "sms.lab.test",
        &["127.0.0.1".parse().expect("ip")],
    )]));
    config.smtp = Some(SmtpConfig::loopback());
    assert_eq!(config.validate(), Ok(()));
}

// SPEC M13: every id format, and the keys that pick them.
#[test]
fn id_formats_render_one_serial_and_parse_from_receipts() {
    let serial = 0x2a;
    assert_eq!(IdFormat::Hex.render(serial), "0000002a");
    assert_eq!(IdFormat::HexUpper.render(serial), "0000002A");
    assert_eq!(IdFormat::HexUnpadded.render(serial), "2a");
    assert_eq!(IdFormat::Decimal.render(serial), "42");
    assert_eq!(
        IdFormat::DecimalPadded.render(serial),
        "00000000000000000042"
    );
    assert_eq!(IdFormat::Hex.render(0x1_2345_6789), "123456789");

    let config = LabConfig::from_toml_str(&minimal_with(
        "[lab.receipts]\nsubmit_id_format = \"hex_upper\"\nreceipt_id_format = \"decimal_padded\"",
    ))
    .expect("valid");
    assert_eq!(config.receipts.submit_id_format, IdFormat::HexUpper);
    assert_eq!(config.receipts.receipt_id_format, IdFormat::DecimalPadded);
    let defaults = LabConfig::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(defaults.receipts.submit_id_format, IdFormat::Hex);
    assert_eq!(defaults.receipts.receipt_id_format, IdFormat::Hex);
    assert!(matches!(
        LabConfig::from_toml_str(&minimal_with(
            "[lab.receipts]\nreceipt_id_format = \"octal\""
        )),
        Err(ConfigError::Parse(_))
    ));
}

// SPEC M16: the reference memory is forever unless set.
#[test]
fn dedupe_memory_defaults_to_forever() {
    let defaults = LabConfig::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(defaults.dedupe.reference_memory_ms, 0);
    let config =
        LabConfig::from_toml_str(&minimal_with("[lab.dedupe]\nreference_memory_ms = 60000"))
            .expect("valid");
    assert_eq!(config.dedupe.reference_memory_ms, 60_000);
    assert!(matches!(
        LabConfig::from_toml_str(&minimal_with("[lab.dedupe]\nmemory_ms = 1")),
        Err(ConfigError::Parse(_))
    ));
}

// SPEC M6, M8: retried deliveries have bounded, named keys.
#[test]
fn delivery_retries_have_defaults_and_bounds() {
    let defaults = LabConfig::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(defaults.deliveries, DeliveryConfig::default());
    assert_eq!(
        (
            defaults.deliveries.retry_interval_ms,
            defaults.deliveries.retry_attempts,
            defaults.deliveries.response_timeout_ms,
        ),
        (1000, 20, 10_000)
    );
    let config = LabConfig::from_toml_str(&minimal_with(
        "[lab.deliveries]\nretry_interval_ms = 5\nretry_attempts = 0\nresponse_timeout_ms = 50",
    ))
    .expect("valid");
    assert_eq!(
        config.deliveries,
        DeliveryConfig {
            retry_interval_ms: 5,
            retry_attempts: 0,
            response_timeout_ms: 50,
        }
    );
    check_error(
        &minimal_with("[lab.deliveries]\nretry_interval_ms = 0"),
        "lab.deliveries.retry_interval_ms: must be between 1 and 600000, got 0",
    );
    check_error(
        &minimal_with("[lab.deliveries]\nresponse_timeout_ms = 600001"),
        "lab.deliveries.response_timeout_ms: must be between 1 and 600000, got 600001",
    );
    check_error(
        &minimal_with("[lab.deliveries]\nretry_attempts = 10001"),
        "lab.deliveries.retry_attempts: must be between 0 and 10000, got 10001",
    );
}

/// Phones and links alone make a lab (a site-continuity test needs no SMSC).
const PEERS: &str = r#"
[lab]
[[lab.phones]]
dn = "1001"
password = "pw"
domain = "site.lab"
registrars = ["127.0.0.1:5060", "127.0.0.1:5062"]

[[lab.phones]]
dn = "1002"
password = "pw"
domain = "site.lab"
listen = "127.0.0.1:5070"
expires_s = 2
answer = "busy"

[[lab.links]]
name = "ab"
a_target = "127.0.0.1:5060"
b_target = "127.0.0.1:5062"
"#;

/// SPEC S4, S8: `[[lab.phones]]` and `[[lab.links]]` parse with their
/// defaults and become the phones' and links' own configurations.
#[test]
fn phones_and_links_parse_with_defaults() {
    let config = LabConfig::from_toml_str(PEERS).expect("valid");
    assert!(config.sites.is_empty());
    let phone = &config.phones[0];
    assert_eq!(
        (
            phone.expires_s,
            phone.answer,
            phone.ring_delay_ms,
            phone.answer_delay_ms
        ),
        (60, crate::sip::PhoneAnswer::Answer, 0, 20)
    );
    assert_eq!(
        (phone.retry_ms, phone.retry_max_ms, phone.t1_ms),
        (1_000, 30_000, 500)
    );
    assert_eq!(phone.listen, loopback_any_port());
    let own = config.phones[1].phone_config();
    assert_eq!(own.expires, std::time::Duration::from_secs(2));
    assert_eq!(own.answer, crate::sip::PhoneAnswer::Busy);
    assert_eq!(own.listen, "127.0.0.1:5070".parse().expect("addr"));
    assert_eq!((own.dn.as_str(), own.domain.as_str()), ("1002", "site.lab"));
    let link = config.links[0].link_config();
    assert_eq!(
        (link.a_listen, link.b_listen),
        (loopback_any_port(), loopback_any_port())
    );
    assert_eq!(link.b_target, "127.0.0.1:5062".parse().expect("addr"));
    assert_eq!(link.name, "ab");
}

#[test]
fn phones_and_links_are_validated_with_their_keys() {
    for (from, to, expected) in [
        (
            "dn = \"1002\"",
            "dn = \"1001\"",
            "lab.phones[1].dn: duplicate phone DN \"1001\"",
        ),
        (
            "dn = \"1002\"",
            "dn = \"10/02\"",
            "lab.phones[1].dn: \"10/02\" may only contain ASCII letters, digits, '-', '_' and \
             '.' (it appears in control API paths)",
        ),
        (
            "expires_s = 2",
            "expires_s = 0",
            "lab.phones[1].expires_s: must be between 1 and 86400, got 0",
        ),
        (
            "expires_s = 2",
            "retry_max_ms = 10",
            "lab.phones[1].retry_max_ms: must be between 1000 and 3600000, got 10",
        ),
        (
            "expires_s = 2",
            "t1_ms = 0",
            "lab.phones[1].t1_ms: must be between 1 and 10000, got 0",
        ),
        (
            "\"127.0.0.1:5062\"]",
            "\"127.0.0.1:5060\"]",
            "lab.phones[0].registrars[1]: 127.0.0.1:5060 is listed twice",
        ),
        (
            "domain = \"site.lab\"\nlisten",
            "domain = \"site lab\"\nlisten",
            "lab.phones[1].domain: \"site lab\" is not a SIP host (name or address)",
        ),
        (
            "b_target = \"127.0.0.1:5062\"",
            "b_target = \"127.0.0.1:5060\"",
            "lab.links[0].b_target: 127.0.0.1:5060 is a_target too: a link joins two sites",
        ),
        (
            "name = \"ab\"",
            "name = \"ab\"\na_listen = \"127.0.0.1:5070\"",
            "lab.links[0].a_listen: address 127.0.0.1:5070 is already used by \
             lab.phones[1].listen",
        ),
        (
            "answer = \"busy\"",
            "answer = \"maybe\"",
            "unknown variant `maybe`, expected one of `answer`, `busy`, `no_answer`",
        ),
    ] {
        let text = PEERS.replace(from, to);
        assert_ne!(text, PEERS, "{from:?} is in the config");
        match LabConfig::from_toml_str(&text) {
            Ok(_) => panic!("expected {expected:?}"),
            Err(error) => assert!(
                error.to_string().contains(expected),
                "expected {expected:?}, got {error}"
            ),
        }
    }
    // A link's port is a TCP port too: it may not be an SMSC's.
    check_error(
        &(MINIMAL.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:28775\"")
            + "[[lab.links]]\nname = \"ab\"\na_listen = \"127.0.0.1:28775\"\n\
               a_target = \"127.0.0.1:5060\"\nb_target = \"127.0.0.1:5062\"\n"),
        "lab.links[0].a_listen: address 127.0.0.1:28775 is already used by \
         lab.sites[0].smsc[0].listen",
    );
}

/// A media server alone makes a lab (a recording test needs nothing else).
const MEDIA: &str = r#"
[lab]
[[lab.media_servers]]
name = "cloud"
recordings = "/tmp/cloud"

[[lab.media_servers]]
name = "cloud-b"
listen = "127.0.0.1:5090"
recordings = "/tmp/cloud-b"
gap_ms = 1500
corrupt = true
seed = 9
"#;

/// SPEC R1–R5: `[[lab.media_servers]]` parse with their defaults (a gap of
/// 15–20 s, silence, seed 1) and become the servers' own configurations.
#[test]
fn media_servers_parse_with_defaults() {
    let config = LabConfig::from_toml_str(MEDIA).expect("valid");
    let first = &config.media_servers[0];
    assert_eq!(first.listen, loopback_any_port());
    assert_eq!(
        (
            first.gap_ms,
            first.gap_min_ms,
            first.gap_max_ms,
            first.corrupt,
            first.seed
        ),
        (None, 15_000, 20_000, false, 1)
    );
    let own = config.media_servers[1].media_server_config();
    assert_eq!(own.name, "cloud-b");
    assert_eq!(own.listen, "127.0.0.1:5090".parse().expect("addr"));
    assert_eq!(own.recordings, std::path::PathBuf::from("/tmp/cloud-b"));
    assert_eq!(own.gap, Some(std::time::Duration::from_millis(1_500)));
    assert!(own.corrupt);
    assert_eq!(own.seed, 9);
}

#[test]
fn media_servers_are_validated_with_their_keys() {
    for (from, to, expected) in [
        (
            "name = \"cloud-b\"",
            "name = \"cloud\"",
            "lab.media_servers[1].name: duplicate media server name \"cloud\"",
        ),
        (
            "recordings = \"/tmp/cloud-b\"",
            "recordings = \"\"",
            "lab.media_servers[1].recordings: must name a directory",
        ),
        (
            "gap_ms = 1500",
            "gap_ms = 600001",
            "lab.media_servers[1].gap_ms: must be between 0 and 600000, got 600001",
        ),
        (
            "gap_ms = 1500",
            "gap_min_ms = 3000\ngap_max_ms = 2000",
            "lab.media_servers[1].gap_max_ms: must be between 3000 and 600000, got 2000",
        ),
        (
            "seed = 9",
            "seed = 9\nt1_ms = 0",
            "lab.media_servers[1].t1_ms: must be between 1 and 10000, got 0",
        ),
        ("seed = 9", "seed = 9\ngap = 3", "unknown field `gap`"),
    ] {
        let text = MEDIA.replace(from, to);
        assert_ne!(text, MEDIA, "{from:?} is in the config");
        match LabConfig::from_toml_str(&text) {
            Ok(_) => panic!("expected {expected:?}"),
            Err(error) => assert!(
                error.to_string().contains(expected),
                "expected {expected:?}, got {error}"
            ),
        }
    }
    // Its SIP port is a UDP port: it may not be a phone's.
    check_error(
        &(MEDIA.to_owned()
            + "[[lab.phones]]\ndn = \"1001\"\npassword = \"pw\"\ndomain = \"site.lab\"\n\
               listen = \"127.0.0.1:5090\"\n"),
        "lab.media_servers[1].listen: address 127.0.0.1:5090 is already used by \
         lab.phones[0].listen",
    );
}
