//! The `[site]` section: the example parses, defaults are as documented, and
//! every bad value is refused naming its key (SPEC S5, S6, S7).

use super::*;

fn parse(text: &str) -> SiteConfig {
    toml::from_str(text).expect("the section parses")
}

const EXAMPLE: &str = r#"
name = "a"
listen = "127.0.0.1:5070"
domain = "cc.example"
dr_peer_trunk = "127.0.0.1:6070"
dr_forward = "no-agent"
oos_check = "1s"
oos_force = "3s"
shutdown_sip_reject_code = 302

[[dns]]
dn = "1001"
password = "a long phone password"
dr_forward = "oos"

[[agents]]
id = "alice"
"#;

#[test]
fn the_example_is_valid_and_defaults_are_documented() {
    let config = parse(EXAMPLE);
    config.validate().unwrap();
    assert_eq!(config.dr_forward, DrForward::NoAgent);
    assert_eq!(config.dns[0].dr_forward, Some(DrForward::Oos));
    assert_eq!(config.oos_force, Duration::from_secs(3));
    let defaults = parse("name = \"a\"\nlisten = \"127.0.0.1:5070\"");
    defaults.validate().unwrap();
    assert_eq!(
        defaults.dr_forward,
        DrForward::Off,
        "SPEC S6: off by default"
    );
    assert_eq!(defaults.oos_check, Duration::from_secs(2));
    assert_eq!(defaults.oos_force, Duration::from_secs(6));
    assert_eq!(
        defaults.shutdown_sip_reject_code, 603,
        "SPEC S7: 603 by default"
    );
    assert!(
        defaults.dr_peer_trunk.is_none(),
        "SPEC S6: single-site without a peer trunk"
    );
}

#[test]
fn without_listen_the_section_is_only_the_name() {
    let config = parse("name = \"site one\"");
    assert!(!config.enabled());
    config.validate().unwrap();
    let config = parse("name = \"a\"\ndr_peer_trunk = \"127.0.0.1:6070\"");
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("site.listen"), "{error}");
}

#[test]
fn bad_values_name_their_keys() {
    let config = parse(
        r#"
name = "a b"
listen = "127.0.0.1:5070"
dr_peer_trunk = "127.0.0.1:5070"
oos_check = "10ms"
oos_force = "20m"
peer_rise = 0
shutdown_sip_reject_code = 200
[[dns]]
dn = "10x1"
password = "short"
[[dns]]
dn = "10x1"
password = "long enough password"
[[agents]]
id = ""
"#,
    );
    let error = config.validate().unwrap_err();
    let keys: Vec<&str> = error.0.iter().map(|issue| issue.key.as_str()).collect();
    for key in [
        "site.name",
        "site.dr_peer_trunk",
        "site.oos_check",
        "site.oos_force",
        "site.peer_rise",
        "site.shutdown_sip_reject_code",
        "site.dns[0].dn",
        "site.dns[0].password",
        "site.dns[1].dn",
        "site.agents[0].id",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(
        !error.to_string().contains("short"),
        "a password is never echoed"
    );
}

#[test]
fn unknown_keys_and_modes_are_refused() {
    assert!(toml::from_str::<SiteConfig>("name = \"a\"\ndr-forward = \"off\"").is_err());
    let error = toml::from_str::<SiteConfig>("name = \"a\"\ndr_forward = \"always\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("no-agent"), "{error}");
}

#[test]
fn a_redirect_needs_a_peer() {
    let mut config = SiteConfig::new("a", "127.0.0.1:5070");
    config.shutdown_sip_reject_code = 301;
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("site.dr_peer_trunk"), "{error}");
}
