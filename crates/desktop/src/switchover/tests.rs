//! Unit tests: options, the generator, the reason table, and that the timers
//! never spin. The behaviour itself is tested by the shared transcripts
//! (`tests/it/transcripts.rs`), which the JavaScript twin runs too.

use super::rng::SplitMix64;
use super::*;

fn options() -> Options {
    Options::with_defaults("a", "b")
}

#[track_caller]
fn check_invalid(options: Options, code: &str, message: &str) {
    let error = options.validate().unwrap_err();
    assert_eq!(error.code(), code);
    assert_eq!(error.to_string(), message);
    assert_eq!(Switchover::new(options, 1).unwrap_err(), error);
}

#[test]
fn defaults_are_valid_and_documented() {
    let options = options();
    options.validate().unwrap();
    assert_eq!(options.site_timeout_ms, Some(DEFAULT_SITE_TIMEOUT_MS));
    assert_eq!(options.site_sip_register_timeout_ms, None);
    assert_eq!(options.retry_delay_ms, DEFAULT_RETRY_DELAY_MS);
    assert_eq!(options.retry_jitter_ms, DEFAULT_RETRY_JITTER_MS);
    assert!(options.cache_preferred_site);
}

#[test]
fn site_names_must_be_two_and_different() {
    let mut empty = options();
    empty.sites[1] = String::new();
    check_invalid(
        empty,
        "empty_site_name",
        "sites: a site name must not be empty",
    );
    check_invalid(
        Options::with_defaults("a", "a"),
        "same_sites",
        "sites: both sites are named \"a\"; the pair needs two different names",
    );
}

#[test]
fn retry_delay_must_not_be_zero() {
    let mut options = options();
    options.retry_delay_ms = 0;
    check_invalid(
        options,
        "zero_retry_delay",
        "retry_delay_ms must be greater than 0, or a dead site is retried in a tight loop",
    );
}

#[test]
fn durations_above_a_day_are_refused_by_name() {
    let mut options = options();
    options.site_sip_register_timeout_ms = Some(MAX_DURATION_MS + 1);
    check_invalid(
        options,
        "too_long",
        "site_sip_register_timeout_ms is 86400001 ms, above the maximum of 86400000 ms (one day)",
    );
    let mut options = self::options();
    options.retry_jitter_ms = MAX_DURATION_MS;
    options.validate().unwrap();
    options.retry_jitter_ms += 1;
    assert_eq!(
        options.validate(),
        Err(OptionsError::TooLong {
            key: "retry_jitter_ms",
            value: MAX_DURATION_MS + 1
        })
    );
}

#[test]
fn site_timeout_below_retry_delay_is_refused_but_zero_and_none_mean_never() {
    let mut options = options();
    options.site_timeout_ms = Some(1_999);
    check_invalid(
        options.clone(),
        "site_timeout_below_retry_delay",
        "site_timeout_ms (1999) must be at least retry_delay_ms (2000), \
         or the site is given up before its first retry",
    );
    options.site_timeout_ms = Some(2_000);
    options.validate().unwrap();
    for never in [Some(0), None] {
        options.site_timeout_ms = never;
        options.validate().unwrap();
        assert_eq!(options.site_timeout(), None);
    }
}

#[test]
fn generator_matches_splitmix64_reference_values() {
    // Reference values from an independent Python SplitMix64; the JavaScript
    // twin's test pins the same numbers.
    let mut rng = SplitMix64::new(7);
    assert_eq!(rng.next_u64(), 7_191_089_600_892_374_487);
    assert_eq!(rng.next_u64(), 309_689_372_594_955_804);
    assert_eq!(rng.next_u64(), 16_616_101_746_815_609_346);
    let mut rng = SplitMix64::new(7);
    let draws: Vec<u64> = (0..6).map(|_| rng.below_or_equal(1_000)).collect();
    assert_eq!(draws, [390, 16, 901, 583, 452, 249]);
    assert_eq!(SplitMix64::new(7).below_or_equal(0), 0);
}

#[test]
fn reason_codes_are_the_json_codes_and_each_has_a_spec_item() {
    for reason in Reason::ALL {
        let json = serde_json::to_value(reason).unwrap();
        assert_eq!(json, serde_json::Value::from(reason.as_str()));
        assert!(
            ["D1", "D2", "D3", "D4", "D5", "D6"].contains(&reason.spec()),
            "{reason:?}"
        );
    }
    let mut codes: Vec<&str> = Reason::ALL.iter().map(|reason| reason.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), Reason::ALL.len(), "a reason listed twice");
}

#[test]
fn input_errors_change_nothing() {
    let mut machine = Switchover::new(options(), 1).unwrap();
    let start = |site: &str| Input::Start {
        site: site.to_owned(),
        cached_preferred_site: None,
        hot_seating: false,
    };
    assert_eq!(
        machine.handle_input(0, start("c")),
        Err(InputError::UnknownSite("c".to_owned()))
    );
    assert_eq!(machine.site(), None);
    assert_eq!(machine.poll_output(), None);
    machine.handle_input(0, start("b")).unwrap();
    assert_eq!(machine.site(), Some("b"));
    assert_eq!(
        machine.handle_input(
            1,
            Input::ListenerOff {
                listener: Listener::Dn
            }
        ),
        Err(InputError::DnIsNotAListener)
    );
    assert_eq!(
        machine.poll_output(),
        Some(Output::Connect {
            site: "b".to_owned(),
            reason: Reason::Startup
        })
    );
    assert_eq!(machine.poll_output(), None);
}

/// Random inputs at random times, with every deadline honoured the moment it
/// is due: after `handle_timeout(now)` the next deadline is always later than
/// `now` (no busy loop), and no deadline is ever in the past when an input
/// arrives.
#[test]
fn poll_timeout_always_moves_on_after_handle_timeout() {
    let inputs = |pick: u64| -> Input {
        let site = |n: u64| if n % 2 == 0 { "a" } else { "b" }.to_owned();
        let listener = |n: u64| WATCHED[(n % 3) as usize];
        match pick % 13 {
            0 => Input::Start {
                site: site(pick / 13),
                cached_preferred_site: (pick % 3 == 0).then(|| site(pick / 7)),
                hot_seating: pick % 5 == 0,
            },
            1 => Input::ConfigConnected {
                site: site(pick / 13),
            },
            2 => Input::ConfigFailed {
                site: site(pick / 13),
            },
            3 => Input::ConfigAnswer {
                preferred: site(pick / 13),
                secondary: site(pick / 13 + 1),
            },
            4 | 5 => Input::ListenerOff {
                listener: listener(pick / 13),
            },
            6 => Input::ListenerOn {
                listener: listener(pick / 13),
            },
            7 => Input::AgentLoggedIn,
            8 => Input::LoginRefused {
                detail: String::new(),
            },
            9 => Input::AgentLoggedOut {
                reason: [
                    LogoutReason::Manual,
                    LogoutReason::Supervisor,
                    LogoutReason::DrForceLogout,
                    LogoutReason::GracefulShutdownLogout,
                    LogoutReason::PeerLogin,
                ][(pick / 13 % 5) as usize],
            },
            10 => Input::DnOutOfService,
            11 => Input::DnBackInService,
            _ => Input::ConfigConnected {
                site: site(pick / 13),
            },
        }
    };
    let mut timeouts_fired = 0;
    let mut reasons = std::collections::HashSet::new();
    for seed in 0..300 {
        let mut options = options();
        // Tight timers make many of them due between inputs.
        options.retry_delay_ms = 1 + seed % 3;
        options.retry_jitter_ms = seed % 4;
        options.site_timeout_ms = Some([0, 3, 10][(seed % 3) as usize]);
        options.site_sip_register_timeout_ms = Some(seed % 5);
        let mut machine = Switchover::new(options, seed).unwrap();
        let mut script = SplitMix64::new(seed ^ 0xD1D8);
        let mut now: Millis = 0;
        for _ in 0..200 {
            now += script.below_or_equal(6);
            while let Some(deadline) = machine.poll_timeout().filter(|at| *at <= now) {
                machine.handle_timeout(deadline);
                timeouts_fired += 1;
                let next = machine.poll_timeout();
                assert!(
                    next.is_none_or(|at| at > deadline),
                    "seed {seed}: after handle_timeout({deadline}) the next deadline is {next:?}"
                );
                while let Some(output) = machine.poll_output() {
                    reasons.insert(output.reason());
                }
            }
            // Sites are valid and the answer names two sites, so no error.
            machine
                .handle_input(now, inputs(script.next_u64()))
                .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
            while machine.poll_output().is_some() {}
            let next = machine.poll_timeout();
            assert!(
                next.is_none_or(|at| at >= now),
                "seed {seed}: deadline {next:?} set in the past at {now}"
            );
        }
    }
    // The script reached every kind of timer, not just the easy ones.
    assert!(timeouts_fired > 5_000, "only {timeouts_fired} timeouts");
    for reason in [
        Reason::ConfigUnreachableRetry,
        Reason::TelephonyOff,
        Reason::ConfigurationOff,
        Reason::StatisticsOff,
        Reason::TelephonyOffTimeout,
        Reason::DrForceLogoutRegisterTimeout,
        Reason::NotOnPreferredSite,
    ] {
        assert!(reasons.contains(&reason), "no timeout gave {reason:?}");
    }
}
