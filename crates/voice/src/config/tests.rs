use super::*;

/// The `[voice]` table of a hotsite.toml, parsed the way the binary will.
fn parse(text: &str) -> VoiceConfig {
    #[derive(Deserialize)]
    struct File {
        voice: VoiceConfig,
    }
    toml::from_str::<File>(text).unwrap().voice
}

fn issues(config: &VoiceConfig) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(error) => error.issues().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_minimal_section_gets_the_documented_defaults() {
    let config = parse(
        r#"
        [voice]
        listen = "127.0.0.1:5060"
        [[voice.trunks]]
        name = "a"
        address = "192.0.2.10:5060"
        media_region = "eu-west"
        failover_region = "eu-central"
        "#,
    );
    assert_eq!(issues(&config), Vec::<String>::new());
    assert_eq!(config.invite_timeout, Duration::from_secs(2));
    assert_eq!(config.invite_final_timeout, Duration::from_secs(120));
    assert_eq!(config.t1, Duration::from_millis(500));
    let trunk = &config.trunks[0];
    assert_eq!((trunk.priority, trunk.weight), (10, 1));
    assert!(trunk.probe.enabled);
    assert_eq!(trunk.probe.interval, Duration::from_secs(5));
    assert_eq!((trunk.probe.fall, trunk.probe.rise), (3, 2));

    let proxy = config
        .proxy_config("127.0.0.1:5060".parse().unwrap())
        .unwrap();
    assert_eq!(proxy.address, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(proxy.groups.len(), 1, "one default group of every trunk");
    assert_eq!(proxy.groups[0].trunks, [0]);
    assert_eq!(
        proxy.trunks[0].spec.carrier, "a",
        "carrier defaults to the name"
    );
    assert!(proxy.trunks[0].spec.probed);
}

#[test]
fn a_full_section_maps_onto_the_proxy_config() {
    let config = parse(
        r#"
        [voice]
        listen = "0.0.0.0:5060"
        public_address = "203.0.113.5:5080"
        invite_timeout = "1500ms"
        invite_final_timeout = "90s"
        default_group = "world"

        [[voice.trunks]]
        name = "a1"
        carrier = "carrier-a"
        address = "192.0.2.10:5060"
        priority = 5
        media_region = "eu-west"
        failover_region = "eu-central"
        probe = { interval = "10s", timeout = "3s", fall = 2, rise = 4, only_2xx = true }

        [[voice.trunks]]
        name = "b1"
        address = "198.51.100.7:5070"
        transport = "TCP"
        weight = 3
        media_region = "us-east"
        failover_region = "us-west"
        probe = { enabled = false }
        register = { registrar = "sip:sip.carrier-b.example", user = "acme", password = "s3cret" }

        [[voice.groups]]
        name = "uk"
        trunks = ["a1", "b1"]
        prefixes = ["+44"]
        max_attempts = 1

        [[voice.groups]]
        name = "world"
        distribution = "random"
        trunks = ["b1", "a1"]
        "#,
    );
    assert_eq!(issues(&config), Vec::<String>::new());
    assert!(!format!("{config:?}").contains("s3cret"));
    let proxy = config
        .proxy_config("0.0.0.0:5060".parse().unwrap())
        .unwrap();
    assert_eq!(proxy.address, "203.0.113.5:5080".parse().unwrap());
    assert_eq!(proxy.invite_timeout, Duration::from_millis(1500));
    assert_eq!(proxy.default_group, 1);
    assert_eq!(proxy.groups[0].max_attempts, 1);
    assert_eq!(proxy.groups[1].distribution, Distribution::Random);
    assert_eq!(proxy.groups[1].trunks, [1, 0]);
    assert_eq!(proxy.groups[1].max_attempts, 2);
    let probe = proxy.trunks[0].probe.unwrap();
    assert_eq!(
        (
            probe.interval,
            probe.timeout,
            probe.fall,
            probe.rise,
            probe.only_2xx
        ),
        (Duration::from_secs(10), Duration::from_secs(3), 2, 4, true)
    );
    assert!(proxy.trunks[1].probe.is_none());
    assert_eq!(proxy.trunks[0].transport, Transport::Udp, "the default");
    assert_eq!(proxy.trunks[1].transport, Transport::Tcp, "any case");
    assert!(proxy.trunks[1].spec.registered);
    let register = proxy.trunks[1].register.as_ref().unwrap();
    assert_eq!(register.address, "198.51.100.7:5070".parse().unwrap());
    assert_eq!(register.expires, Duration::from_secs(3600));
    assert!(!format!("{register:?}").contains("s3cret"));
}

#[test]
fn errors_name_the_key() {
    let config = parse(
        r#"
        [voice]
        listen = "0.0.0.0:5060"
        invite_timeout = "50ms"
        [[voice.trunks]]
        name = "a"
        address = "x"
        transport = "tls"
        weight = 0
        media_region = ""
        failover_region = "eu"
        probe = { interval = "5s", timeout = "10s", fall = 0 }
        register = { registrar = "http://x", user = "" }
        [[voice.trunks]]
        name = "a"
        address = "gw.example:5060"
        media_region = "eu"
        failover_region = "eu"
        [[voice.groups]]
        name = "g"
        trunks = ["a", "nope", "a"]
        max_attempts = 9
        prefixes = [""]
        "#,
    );
    assert_eq!(
        issues(&config),
        [
            "voice.public_address: required when voice.listen (0.0.0.0:5060) is not a specific address: Via and Record-Route must name where to reach the proxy",
            "voice.invite_timeout: must be at least 100ms, got 50ms",
            "voice.trunks[0].address: \"x\" is not ip:port (names are not resolved)",
            "voice.trunks[0].transport: \"tls\" is not \"udp\" or \"tcp\"",
            "voice.trunks[0].weight: must be at least 1",
            "voice.trunks[0].media_region: must not be empty (SPEC V3)",
            "voice.trunks[0].probe.timeout: must be at least 100ms and at most probe.interval (5s), got 10s",
            "voice.trunks[0].probe.fall: must be 1 to 100, got 0",
            "voice.trunks[0].register.registrar: \"http://x\" is not a sip: URI",
            "voice.trunks[0].register.user: must not be empty",
            "voice.trunks[1].name: \"a\" is used by another trunk",
            "voice.trunks[1].address: \"gw.example:5060\" is not ip:port (names are not resolved)",
            "voice.groups[0].trunks[1]: no trunk is named \"nope\"",
            "voice.groups[0].trunks[2]: \"a\" is listed twice",
            "voice.groups[0].max_attempts: must be 1 to the group's 3 trunks, got 9",
            "voice.groups[0].prefixes[0]: must not be empty (use voice.default_group)",
        ]
    );
}

#[test]
fn unknown_keys_and_bad_durations_are_refused_by_serde() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct File {
        voice: VoiceConfig,
    }
    let unknown = toml::from_str::<File>(
        "[voice]\nlisten = \"127.0.0.1:5060\"\ntrunks = []\nfr_timer = \"2s\"\n",
    )
    .unwrap_err();
    assert!(unknown.to_string().contains("fr_timer"), "{unknown}");
    let duration = toml::from_str::<File>(
        "[voice]\nlisten = \"127.0.0.1:5060\"\ntrunks = []\ninvite_timeout = \"2\"\n",
    )
    .unwrap_err();
    assert!(
        duration.to_string().contains("is not a duration"),
        "{duration}"
    );
}

#[test]
fn no_trunks_is_an_error() {
    let config = VoiceConfig::new("127.0.0.1:5060", Vec::new());
    assert_eq!(
        issues(&config),
        ["voice.trunks: at least one trunk is required"]
    );
}

/// DESIGN.md invariant 6: the call cap and its Retry-After default to 10,000
/// and 5 s, reach the proxy core, and bad values name their key.
#[test]
fn max_calls_and_retry_after_default_reach_the_proxy_and_are_checked() {
    let text = |extra: &str| {
        format!(
            "[voice]\nlisten = \"127.0.0.1:5060\"\n{extra}\n[[voice.trunks]]\nname = \"a\"\n\
             address = \"192.0.2.10:5060\"\nmedia_region = \"eu\"\nfailover_region = \"eu\"\n"
        )
    };
    let config = parse(&text(""));
    assert_eq!(
        (config.max_calls, config.retry_after),
        (10_000, Duration::from_secs(5))
    );
    let proxy = parse(&text("max_calls = 250\nretry_after = \"30s\""))
        .proxy_config("127.0.0.1:5060".parse().unwrap())
        .unwrap();
    assert_eq!(
        (proxy.max_calls, proxy.retry_after),
        (250, Duration::from_secs(30))
    );
    assert_eq!(proxy.initial_capacity, crate::proxy::INITIAL_CAPACITY);

    assert_eq!(
        issues(&parse(&text("max_calls = 0\nretry_after = \"1500ms\""))),
        [
            "voice.max_calls: must be 1 to 1000000, got 0",
            "voice.retry_after: must be whole seconds (Retry-After counts seconds), got 1.5s",
        ]
    );
    assert_eq!(
        issues(&parse(&text("max_calls = 2000000\nretry_after = \"2h\""))),
        [
            "voice.max_calls: must be 1 to 1000000, got 2000000",
            "voice.retry_after: must be at most 3600s, got 7200s",
        ]
    );
}

/// `media = "anchor"` on a group turns the relay on with `[voice.media]`'s
/// defaults: the proxy's own IP, ports 30000-39999, 60 s, 2 h, 500 ms;
/// groups without it stay direct and no relay is set up.
#[test]
fn anchored_groups_get_the_media_relay() {
    let text = r#"
        [voice]
        listen = "127.0.0.1:5060"
        [[voice.trunks]]
        name = "a"
        address = "192.0.2.10:5060"
        media_region = "eu-west"
        failover_region = "eu-central"
        [[voice.groups]]
        name = "recorded"
        trunks = ["a"]
        media = "anchor"
        [[voice.groups]]
        name = "plain"
        trunks = ["a"]
        prefixes = ["+1"]
        "#;
    let config = parse(text);
    assert_eq!(issues(&config), Vec::<String>::new());
    let proxy = config
        .proxy_config("127.0.0.1:5060".parse().unwrap())
        .unwrap();
    assert_eq!(proxy.groups[0].media, MediaMode::Anchor);
    assert_eq!(proxy.groups[1].media, MediaMode::Direct);
    let media = proxy.media.expect("a group anchors");
    assert_eq!(media.address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!((media.first_port, media.last_port), (30_000, 39_999));
    assert_eq!(media.timers.timeout, Duration::from_secs(60));
    assert_eq!(media.timers.hold_timeout, Duration::from_secs(7200));
    assert_eq!(media.timers.relatch_after, Duration::from_millis(500));
    assert!(media.strict_source, "only the SDP's IP latches by default");

    let direct = parse(&text.replace("media = \"anchor\"", ""));
    let proxy = direct
        .proxy_config("127.0.0.1:5060".parse().unwrap())
        .unwrap();
    assert!(proxy.media.is_none());

    let explicit = parse(&format!(
        "{text}\n[voice.media]\naddress = \"192.0.2.50\"\nports = \"40000-40099\"\ntimeout = \"30s\"\nhold_timeout = \"1h\"\nrelatch_after = \"200ms\"\nstrict_source = false\n"
    ));
    let media = explicit
        .proxy_config("127.0.0.1:5060".parse().unwrap())
        .unwrap()
        .media
        .unwrap();
    assert_eq!(media.address, "192.0.2.50".parse::<IpAddr>().unwrap());
    assert_eq!((media.first_port, media.last_port), (40_000, 40_099));
    assert_eq!(media.timers.relatch_after, Duration::from_millis(200));
    assert!(!media.strict_source);
}

/// Every bad `[voice.media]` value is named by its key.
#[test]
fn media_errors_name_their_keys() {
    let config = parse(
        r#"
        [voice]
        listen = "127.0.0.1:30010"
        [[voice.trunks]]
        name = "a"
        address = "192.0.2.10:5060"
        media_region = "eu-west"
        failover_region = "eu-central"
        [[voice.groups]]
        name = "g"
        trunks = ["a"]
        media = "anchor"
        [voice.media]
        address = "0.0.0.0"
        ports = "30000-30020"
        timeout = "10s"
        hold_timeout = "5s"
        relatch_after = "5ms"
        "#,
    );
    let found = issues(&config);
    for key in [
        "voice.media.address",
        "voice.media.ports",
        "voice.media.hold_timeout",
        "voice.media.relatch_after",
    ] {
        assert!(
            found.iter().any(|i| i.starts_with(key)),
            "{key}: {found:#?}"
        );
    }
    assert!(
        found.iter().any(|i| i.contains("SIP port of voice.listen")),
        "{found:#?}"
    );
    for (ports, why) in [
        ("30000", "is not \"first-last\""),
        ("40000-30000", "below the last"),
        ("30001-30004", "at least two RTP/RTCP pairs"),
        ("0-100", "1 or more"),
    ] {
        let mut config = config.clone();
        config.media.ports = ports.into();
        let found = issues(&config);
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("voice.media.ports") && i.contains(why)),
            "{ports}: {found:#?}"
        );
    }
    let mut config = config.clone();
    config.media.address = Some("pbx.example".into());
    assert!(issues(&config)
        .iter()
        .any(|i| i.starts_with("voice.media.address") && i.contains("not an IP")));
}

/// A group's `media` must be `direct` or `anchor`.
#[test]
fn unknown_media_mode_is_refused() {
    #[derive(Deserialize)]
    struct File {
        #[allow(dead_code)]
        voice: VoiceConfig,
    }
    let error = toml::from_str::<File>(
        r#"
        [voice]
        [[voice.trunks]]
        name = "a"
        address = "192.0.2.10:5060"
        media_region = "x"
        failover_region = "y"
        [[voice.groups]]
        name = "g"
        trunks = ["a"]
        media = "record"
        "#,
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("anchor"), "{error}");
}
