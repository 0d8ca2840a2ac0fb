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
        "lab.sites: at least one site is needed",
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
