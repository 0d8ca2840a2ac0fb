//! Configuration validation: every bad value is reported with its key.

use super::*;
use hotsite_host::ServerConfig;
use hotsite_messaging::gateway::ChannelConfig;

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
    let smpp = config.gateway.smpp.as_ref().unwrap();
    assert_eq!(smpp.instances.len(), 2);
    assert_eq!(smpp.pool.rebind_interval, Duration::from_secs(35));
    assert_eq!(smpp.session.window, 10);
    assert_eq!(smpp.session.bind_kind, BindKind::Transceiver);
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

/// Invariant 3: an unknown key is named by its full path, with its line.
#[test]
fn unknown_keys_are_rejected_with_their_path_and_line() {
    let text = GOOD.replace("rebind_jitter = \"5s\"", "rebind_jiter = \"5s\"");
    let found = issues(&text);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("smpp.rebind_jiter: unknown field `rebind_jiter`"),
        "{found:?}"
    );
    assert!(found[0].ends_with("(line 13)"), "{found:?}");
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
    assert_ne!(a.gateway.smpp.unwrap().seed, b.gateway.smpp.unwrap().seed);
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

const CHANNELS: &str = r#"
[[channels]]
name = "aggregator"
kind = "http"
login = "hotsite"
password = "secret"
resubmit_delay = "10s"
callback_secret = "another-long-secret"
urls = [
  { site = "a", url = "http://127.0.0.1:28090/sms/send" },
  { site = "b", url = "http://127.0.0.1:28091/sms/send" },
]

[[channels]]
name = "primary-chat"
kind = "webhook"
url = "https://chat.example/hook"
secret = "a-long-random-secret"
retry_budget = 3
retry_initial = "200ms"
retry_max = "2s"

[[channels]]
name = "mail"
kind = "email"
host = "smtp.example.com"
from = "noreply@example.com"

[[routes]]
name = "chat"
hops = ["primary-chat", "mail"]

[[routes]]
name = "sms-then-mail"
hops = ["smpp", "mail"]

[[routes]]
name = "http"
hops = ["aggregator"]

[routing]
default_route = "chat"
"#;

/// SPEC M11: routes are fallback chains over named channels, each hop with the
/// retry policy of its channel.
#[test]
fn channels_and_routes_validate() {
    let config = Config::from_toml_str(&format!("{GOOD}{CHANNELS}")).unwrap();
    let gateway = &config.gateway;
    assert_eq!(gateway.channels.len(), 3);
    let http = &gateway.routes[2];
    assert_eq!(
        http.hops[0].1.budget, None,
        "SPEC M3: an aggregator keeps trying"
    );
    assert_eq!(gateway.default_route.as_deref(), Some("chat"));
    let chat = &gateway.routes[0];
    assert!(matches!(
        &gateway.channels[0].1,
        ChannelConfig::Http { config, callback_secret: Some(_) }
            if config.resubmit_delay == Duration::from_secs(10) && config.urls.len() == 2
    ));
    assert_eq!(chat.name, "chat");
    let hops: Vec<&str> = chat.hops.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(hops, ["primary-chat", "mail"]);
    let webhook = chat.hops[0].1;
    assert_eq!(webhook.budget, Some(3));
    assert_eq!(webhook.backoff.initial, Duration::from_millis(200));
    assert_eq!(webhook.backoff.max, Duration::from_secs(2));
    assert_eq!(chat.hops[1].1.budget, Some(10), "e-mail's default budget");
    assert_eq!(gateway.routes[1].hops[0].0, "smpp");
}

/// Bad channels and routes are reported with their keys, all at once.
#[test]
fn bad_channels_and_routes_name_their_keys() {
    let text = format!("{GOOD}{CHANNELS}")
        .replace(
            "url = \"https://chat.example/hook\"",
            "url = \"ftp://x\"\ncolour = \"red\"",
        )
        .replace("retry_budget = 3", "retry_budget = -1")
        .replace("resubmit_delay = \"10s\"", "resubmit_delay = \"1ms\"")
        .replace("from = \"noreply@example.com\"", "from = \"nobody\"")
        .replace(
            "hops = [\"primary-chat\", \"mail\"]",
            "hops = [\"primary-chat\", \"pigeon\"]",
        )
        .replace("default_route = \"chat\"", "default_route = \"fax\"");
    let found = issues(&text);
    let keys: Vec<&str> = found
        .iter()
        .map(|issue| issue.split(':').next().unwrap())
        .collect();
    for key in [
        "channels[0].resubmit_delay",
        "channels[1].retry_budget",
        "channels[1].colour",
        "channels[2].from",
        "routes[0].hops[1]",
        "routing.default_route",
    ] {
        assert!(keys.contains(&key), "{key} missing from {found:#?}");
    }
    assert!(
        found.iter().any(|issue| issue.contains("colour")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|issue| issue.contains("\"pigeon\"")),
        "{found:#?}"
    );
}

/// Without [smpp] a gateway needs routes; a route cannot name "smpp" then.
#[test]
fn smpp_is_optional_with_routes() {
    let without_smpp = GOOD[..GOOD.find("[smpp]").unwrap()].to_owned();
    let only_chat = CHANNELS.replace(
        "[[routes]]\nname = \"sms-then-mail\"\nhops = [\"smpp\", \"mail\"]\n",
        "",
    );
    let config = Config::from_toml_str(&format!("{without_smpp}{only_chat}")).unwrap();
    assert!(config.gateway.smpp.is_none());
    let found = issues(&format!("{without_smpp}{CHANNELS}"));
    assert_eq!(
        found,
        ["routes[1].hops[0]: \"smpp\" needs an [smpp] section"]
    );
    let found = issues(&without_smpp);
    assert!(found[0].starts_with("smpp: nothing to run"), "{found:?}");
}

/// Channel names are unique and "smpp" is taken; unknown kinds are named.
#[test]
fn channel_names_and_kinds_are_checked() {
    let text = format!(
        "{GOOD}{CHANNELS}\n[[channels]]\nname = \"smpp\"\nkind = \"webhook\"\nurl = \"http://x/\"\n\n[[channels]]\nname = \"fax\"\nkind = \"fax\"\n"
    );
    let found = issues(&text);
    assert!(
        found.iter().any(|i| i.starts_with("channels[3].name")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("channels[4].kind: unknown kind \"fax\"")),
        "{found:#?}"
    );
}

/// The example file validates as shipped, and with its commented channels and
/// routes switched on.
#[test]
fn example_file_validates_with_and_without_its_routes() {
    let example = include_str!("../../../../examples/hotsite.toml");
    assert!(Config::from_toml_str(example)
        .unwrap()
        .gateway
        .routes
        .is_empty());
    let start = example.find("# [[channels]]").expect("commented channels");
    let uncommented: Vec<&str> = example[start..]
        .lines()
        .filter(|line| !line.starts_with("# # ") && !line.starts_with("##"))
        .map(|line| {
            line.strip_prefix("# ")
                .unwrap_or(line.trim_start_matches('#'))
        })
        .collect();
    let text = format!("{}{}", &example[..start], uncommented.join("\n"));
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config
        .gateway
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["chat", "sms"]);
    assert_eq!(config.gateway.channels.len(), 3);
    let voice = config.voice.expect("the [voice] example");
    assert_eq!(voice.trunks.len(), 2);
    assert_eq!(voice.groups[0].trunks, ["carrier-a-1", "carrier-b-1"]);
    // SPEC R1: the example's group anchors its media through [voice.media].
    assert!(voice.anchors_media());
    assert_eq!(voice.media.ports, "30000-39999");
}

/// SPEC S1-S8: the example's commented business-continuity keys, switched
/// on, validate and start the site system.
#[test]
fn example_site_keys_validate_when_switched_on() {
    let example = include_str!("../../../../examples/hotsite.toml");
    let start = example.find("[site]").unwrap();
    let end = example.find("[api]").unwrap();
    let site: Vec<&str> = example[start..end]
        .lines()
        .filter(|line| !line.starts_with("# # "))
        .map(|line| {
            line.strip_prefix("# ")
                .unwrap_or(line.trim_start_matches('#'))
        })
        .collect();
    let text = format!(
        "{}{}\n{}",
        &example[..start],
        site.join("\n"),
        &example[end..]
    );
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let continuity = config.continuity.expect("site.listen switches it on");
    assert_eq!(continuity.dns[0].dn, "1001");
    assert_eq!(continuity.agents[0].id, "alice");
    // SPEC D1, D2: the commented [desktop] section is valid with the site.
    let desktop = config.desktop.expect("[desktop] switched on too");
    assert_eq!(desktop.people[0].preferred_site, "dc-east");
    let example_config = Config::from_toml_str(example).unwrap();
    assert!(example_config.continuity.is_none());
    assert!(example_config.desktop.is_none());
}

/// SPEC V1-V3: a bad [voice] section is reported with the full key.
#[test]
fn voice_errors_name_their_keys() {
    let text = format!(
        "{GOOD}\n[voice]\nlisten = \"127.0.0.1:28060\"\n\n[[voice.trunks]]\nname = \"t1\"\naddress = \"nowhere\"\nmedia_region = \"a\"\nfailover_region = \"b\"\n"
    );
    let found = issues(&text);
    assert!(
        found
            .iter()
            .any(|issue| issue.starts_with("voice.trunks[0].address")),
        "{found:#?}"
    );
}

/// Invariant 6: the API's bounds have defaults, are read from `[api]`, and bad
/// values are reported naming their key.
#[test]
fn api_server_bounds_default_parse_and_name_their_keys() {
    let config = Config::from_toml_str(GOOD).unwrap();
    assert_eq!(config.host.server, ServerConfig::default());
    let text = GOOD.replace(
        "tokens = [\"token-123456\"]",
        "tokens = [\"token-123456\"]\nmax_connections = 200\nheader_timeout = \"2s\"\nidle_timeout = \"5s\"\nrequest_timeout = \"500ms\"",
    );
    let server = Config::from_toml_str(&text).unwrap().host.server;
    assert_eq!(server.max_connections, 200);
    assert_eq!(server.header_timeout, Duration::from_secs(2));
    assert_eq!(server.idle_timeout, Duration::from_secs(5));
    assert_eq!(server.request_timeout, Duration::from_millis(500));
    let text = GOOD.replace(
        "tokens = [\"token-123456\"]",
        "tokens = [\"token-123456\"]\nmax_connections = 0\nheader_timeout = \"0s\"\nidle_timeout = \"soon\"\nrequest_timeout = \"\"",
    );
    let found = issues(&text);
    for key in [
        "api.max_connections: ",
        "api.header_timeout: ",
        "api.idle_timeout: ",
        "api.request_timeout: ",
    ] {
        assert!(
            found.iter().any(|issue| issue.starts_with(key)),
            "{key} {found:?}"
        );
    }
}

/// Invariant 3: a value of the wrong type names its full key path, not only
/// the line.
#[test]
fn type_errors_name_the_full_key_path() {
    let text = GOOD.replace(
        "tokens = [\"token-123456\"]",
        "tokens = [\"token-123456\"]\nmax_connections = \"many\"",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("api.max_connections: invalid type"),
        "{found:?}"
    );
    assert!(found[0].ends_with("(line 8)"), "{found:?}");
    let text = GOOD.replace("address = \"127.0.0.1:28777\"", "address = 28777");
    let found = issues(&text);
    assert!(
        found[0].starts_with("smpp.smsc[1].address: invalid type"),
        "{found:?}"
    );
    let text = GOOD.replace("[site]\nname = \"a\"", "[site]\nname = [1]");
    assert!(
        issues(&text)[0].starts_with("site.name: "),
        "{:?}",
        issues(&text)
    );
}

/// Invariant 3: a type error inside a channel entry names the key in the entry.
#[test]
fn channel_type_errors_name_the_key_inside_the_entry() {
    let text = format!("{GOOD}{CHANNELS}").replace(
        "{ site = \"b\", url = \"http://127.0.0.1:28091/sms/send\" },",
        "{ site = \"b\", url = 28091 },",
    );
    let found = issues(&text);
    assert!(
        found
            .iter()
            .any(|issue| issue.starts_with("channels[0].urls[1].url: invalid type")),
        "{found:#?}"
    );
}

/// SPEC M15, issue 11: no secret of the file (API token, SMPP password,
/// webhook, channel and callback secrets, the aggregator's password) shows in `{:?}` of the
/// parsed file or the validated config.
#[test]
fn debug_of_the_config_shows_no_secret() {
    let text = format!(
        "{GOOD}{CHANNELS}\n[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"webhook-secret-0123456789\"\n"
    )
    .replace("password = \"secret\"", "password = \"pw-4242\"");
    let file: ConfigFile = toml::from_str(&text).unwrap();
    let config = Config::from_toml_str(&text).unwrap();
    for shown in [format!("{file:?}"), format!("{config:?}")] {
        for secret in [
            "token-123456",
            "pw-4242",
            "another-long-secret",
            "a-long-random-secret",
            "webhook-secret-0123456789",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

/// SPEC M15: signing secrets shorter than 16 characters are refused, naming
/// the key and never the secret.
#[test]
fn short_signing_secrets_are_refused_naming_the_key() {
    let text = format!(
        "{GOOD}{CHANNELS}\n[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"short-1\"\n"
    )
    .replace(
        "callback_secret = \"another-long-secret\"",
        "callback_secret = \"short-2\"",
    )
    .replace("secret = \"a-long-random-secret\"", "secret = \"short-3\"");
    let found = issues(&text);
    for key in [
        "channels[0].callback_secret: must be at least 16 characters",
        "channels[1].secret: must be at least 16 characters",
        "webhook.secret: must be at least 16 characters",
    ] {
        assert!(
            found.iter().any(|issue| issue.starts_with(key)),
            "{key}: {found:#?}"
        );
    }
    assert!(!format!("{found:?}").contains("short-"), "{found:?}");
}

/// `[desktop]` needs business continuity at this site: a clear error naming
/// the key, and its own keys named under `desktop.`.
#[test]
fn desktop_needs_the_site_and_names_its_keys() {
    let found = issues(&format!("{GOOD}\n[desktop]\nmax_connections = 0\n"));
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("desktop: requires business continuity")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("desktop.max_connections:")),
        "{found:?}"
    );
    let found = issues(&format!("{GOOD}\n[desktop]\nmax_conections = 5\n"));
    assert!(
        found.iter().any(|i| i.contains("max_conections")),
        "{found:?}"
    );
}
