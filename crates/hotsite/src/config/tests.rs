//! Configuration validation: every bad value is reported with its key.

use super::*;

const GOOD: &str = r#"
[site]
name = "a"

[api]
listen = "127.0.0.1:28080"
tokens = ["token-123456"]

[smpp]
system_id = "hotsite"
password = "secret"
rebind_interval = "35s"
rebind_jitter = "5s"

[[smpp.smsc]]
site = "a"
name = "a1"
address = "127.0.0.1:28775"

[[smpp.smsc]]
site = "b"
name = "b1"
address = "127.0.0.1:28777"
"#;

fn issues(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError(issues)) => issues.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn good_config_validates_with_defaults() {
    let config = Config::from_toml_str(GOOD).unwrap();
    assert_eq!(config.site, "a");
    assert_eq!(config.gateway.smpp.instances.len(), 2);
    assert_eq!(
        config.gateway.smpp.pool.rebind_interval,
        Duration::from_secs(35)
    );
    assert_eq!(config.gateway.smpp.session.window, 10);
    assert_eq!(config.gateway.smpp.session.bind_kind, BindKind::Transceiver);
}

/// SPEC M5: a rebind interval under 30 s is rejected at load, naming the key.
#[test]
fn rebind_interval_under_30_seconds_is_rejected_naming_the_key() {
    let text = GOOD.replace("rebind_interval = \"35s\"", "rebind_interval = \"10s\"");
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("smpp.rebind_interval: must be at least 30 s"),
        "{found:?}"
    );
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = r#"
[site]
name = ""

[api]
listen = "127.0.0.1:28080"
tokens = ["token-123456"]

[smpp]
system_id = "hotsite"
password = "secret"
window = 0
dead_peer_timeout = "soon"

[[smpp.smsc]]
site = "a"
name = "a1"
address = "127.0.0.1"

[[smpp.smsc]]
site = "a"
name = "a1"
address = "127.0.0.1:0"
"#;
    let found = issues(text);
    let keys: Vec<&str> = found.iter().map(|i| i.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "site.name",
            "smpp.dead_peer_timeout",
            "smpp.smsc[0].address",
            "smpp.smsc[1].name",
            "smpp.smsc[1].address"
        ],
        "{found:#?}"
    );
}

#[test]
fn state_machine_bounds_are_reported_with_the_file_key() {
    let text = GOOD.replace("password = \"secret\"", "password = \"secret\"\nwindow = 0");
    assert_eq!(
        issues(&text),
        ["smpp.window: window must be between 1 and 10000, got 0"]
    );
    let text = GOOD.replace(
        "password = \"secret\"",
        "password = \"secret\"\nenquire_link_interval = \"30s\"\ndead_peer_timeout = \"20s\"",
    );
    let found = issues(&text);
    assert!(
        found[0].starts_with("smpp.dead_peer_timeout: "),
        "{found:?}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let text = GOOD.replace("rebind_jitter = \"5s\"", "rebind_jiter = \"5s\"");
    let found = issues(&text);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("line 13: unknown field `rebind_jiter`"),
        "{found:?}"
    );
}

#[test]
fn missing_smsc_list_is_rejected() {
    let text = "[site]\nname = \"a\"\n[api]\nlisten = \"127.0.0.1:1\"\ntokens = [\"token-123456\"]\n[smpp]\nsystem_id = \"x\"\npassword = \"y\"\n";
    assert_eq!(issues(text).len(), 1);
    assert!(issues(text)[0].starts_with("smpp.smsc: "));
}

#[test]
fn default_seed_differs_per_site() {
    let a = Config::from_toml_str(GOOD).unwrap();
    let b = Config::from_toml_str(&GOOD.replace("[site]\nname = \"a\"", "[site]\nname = \"b\""))
        .unwrap();
    assert_ne!(a.gateway.smpp.seed, b.gateway.smpp.seed);
}

/// SPEC M13: receipts are asked for by default; `receipts = false` turns it off.
#[test]
fn receipts_setting_sets_registered_delivery() {
    let config = Config::from_toml_str(GOOD).unwrap();
    assert_eq!(config.gateway.dispatcher.registered_delivery, 1);
    let text = GOOD.replace(
        "rebind_jitter = \"5s\"",
        "rebind_jitter = \"5s\"\nreceipts = false",
    );
    let config = Config::from_toml_str(&text).unwrap();
    assert_eq!(config.gateway.dispatcher.registered_delivery, 0);
}

/// SPEC M8: the ambiguous policy is `resubmit` by default, `fail` on request, and
/// `hold` is refused over SMPP with the reason (no message id to wait for).
#[test]
fn ambiguous_policy_is_validated() {
    let config = Config::from_toml_str(GOOD).unwrap();
    assert_eq!(
        config.gateway.dispatcher.ambiguous,
        AmbiguousPolicy::Resubmit
    );
    let with = |policy: &str| {
        GOOD.replace(
            "rebind_jitter = \"5s\"",
            &format!("rebind_jitter = \"5s\"\nambiguous = \"{policy}\""),
        )
    };
    let config = Config::from_toml_str(&with("fail")).unwrap();
    assert_eq!(config.gateway.dispatcher.ambiguous, AmbiguousPolicy::Fail);
    let found = issues(&with("hold"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("smpp.ambiguous: \"hold\" is not possible over SMPP"),
        "{found:?}"
    );
}
