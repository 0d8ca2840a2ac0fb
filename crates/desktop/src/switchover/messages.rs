//! What goes into the machine and what comes out, as JSON-friendly types.
//!
//! The JSON shapes (`{"kind": "...", ...}`) are the contract with the
//! transcripts and with `web/switchover.js`: renaming a kind, a field or a
//! reason here breaks both, on purpose.

use serde::{Deserialize, Serialize};

use super::Millis;

/// Something that happened, told to [`Switchover::handle_input`](super::Switchover::handle_input).
///
/// Inputs other than `start` and the configuration connection results concern
/// the site the machine is at: the driver drops events of a connection stack
/// it has torn down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Input {
    /// The desktop starts (or starts again, e.g. after a refused login): the
    /// machine forgets everything but its options and its random sequence.
    Start {
        /// The site whose configuration service to try first without a usable
        /// cached preferred site (D1: either site will do).
        site: String,
        /// The preferred site cached from an earlier run, if any (D3).
        #[serde(default)]
        cached_preferred_site: Option<String>,
        /// Several people share this desktop: no caching (D3).
        #[serde(default)]
        hot_seating: bool,
    },
    /// The configuration service of `site` accepted the connection and the
    /// application's and agent's credentials (D1).
    ConfigConnected {
        /// The site connected to.
        site: String,
    },
    /// Connecting to (or authenticating at) the configuration service of
    /// `site` failed, or the connection dropped before the config answer (D1).
    ConfigFailed {
        /// The site that failed.
        site: String,
    },
    /// The configuration service answered with the agent's sites (D2).
    ConfigAnswer {
        /// The agent's preferred site.
        preferred: String,
        /// The agent's secondary site.
        secondary: String,
    },
    /// A listener's service is ON (again).
    ListenerOn {
        /// Which one: `telephony`, `configuration` or `statistics`.
        listener: Listener,
    },
    /// A listener's service is OFF. For telephony: neither server of the
    /// site's pair answers (D4).
    ListenerOff {
        /// Which one: `telephony`, `configuration` or `statistics`.
        listener: Listener,
    },
    /// The agent is logged in at the current site: the answer to `log_in`, or
    /// a login by hand after the machine stayed put.
    AgentLoggedIn,
    /// The site refused the login.
    LoginRefused {
        /// The site's words, for logs; the machine does not read them.
        #[serde(default)]
        detail: String,
    },
    /// The agent was logged out at the current site (D6).
    AgentLoggedOut {
        /// Why, as the site says it.
        reason: LogoutReason,
    },
    /// The agent's phone lost its registration (SPEC S8).
    DnOutOfService,
    /// The agent's phone registered again (SPEC S8).
    DnBackInService,
}

/// The desktop's listeners. Inputs name the first three; warnings also name
/// `dn`, whose state comes as `dn_out_of_service` / `dn_back_in_service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    /// The telephony service (agent and DN state), D4.
    Telephony,
    /// The configuration service, D5.
    Configuration,
    /// The statistics service, D5.
    Statistics,
    /// The agent's phone (DN), D6.
    Dn,
}

/// Why the site logged the agent out, spelled as the site spells it (D6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogoutReason {
    /// The agent logged out: no action.
    #[serde(rename = "manual")]
    Manual,
    /// A supervisor logged the agent out: no action.
    #[serde(rename = "supervisor")]
    Supervisor,
    /// The phone's registration expired: wait for it to come back.
    #[serde(rename = "dr-force_logout")]
    DrForceLogout,
    /// The site is draining: switch over.
    #[serde(rename = "graceful_shutdown_logout")]
    GracefulShutdownLogout,
    /// The agent logged in at the peer site (SPEC S1: one site at a time):
    /// another desktop has it there, no action.
    #[serde(rename = "peer_login")]
    PeerLogin,
}

/// A decision, read with [`Switchover::poll_output`](super::Switchover::poll_output).
///
/// Every decision carries its [`Reason`]: it is both the order to the driver
/// and the event shown to the agent and to monitoring (D7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Output {
    /// Connect to the configuration service of `site` and send the
    /// credentials; answer with `config_connected` or `config_failed`, then
    /// `config_answer` (D1). After a `switch_over` it carries the
    /// switchover's reason.
    Connect {
        /// The site to connect to.
        site: String,
        /// Why.
        reason: Reason,
    },
    /// Store `site` as the cached preferred site for the next start (D3).
    CachePreferredSite {
        /// The agent's preferred site as just read.
        site: String,
        /// Always `preferred_site_read`.
        reason: Reason,
    },
    /// Set up the telephony, DN and statistics listeners at `site` (if not up
    /// yet) and log the agent in there; answer with `agent_logged_in` or
    /// `login_refused`.
    LogIn {
        /// The site to log in at (the current one).
        site: String,
        /// Why.
        reason: Reason,
    },
    /// Tear down the whole connection stack and restart it against `site`,
    /// without restarting the program (D8). Every warning is about the old
    /// site and is cleared with it. A `connect` to `site` follows, after a
    /// random spread of at most `retry_jitter_ms` so that the desktops of a
    /// failed site do not all arrive at once.
    SwitchOver {
        /// The site to switch to.
        site: String,
        /// Why.
        reason: Reason,
    },
    /// Try the connection of `listener` at `site` again (it is OFF).
    Reconnect {
        /// The current site.
        site: String,
        /// The listener to reconnect.
        listener: Listener,
        /// Why: the listener's `*_off` reason.
        reason: Reason,
    },
    /// Show the agent a warning about `listener` (one at a time per listener).
    Warn {
        /// What the warning is about.
        listener: Listener,
        /// Why.
        reason: Reason,
    },
    /// The warning about `listener` no longer holds.
    ClearWarning {
        /// What the warning was about.
        listener: Listener,
        /// Why.
        reason: Reason,
    },
    /// The machine waits: for a retry, a listener or the phone. `until` is
    /// the deadline of the wait, `null` when it waits for as long as it takes.
    Wait {
        /// When the wait ends by itself, if ever.
        until: Option<Millis>,
        /// Why.
        reason: Reason,
    },
    /// No action: the machine stays at `site` and decides nothing more until
    /// the agent logs in again (`agent_logged_in`) or the desktop starts again.
    /// It still warns about listeners and reconnects them.
    Stay {
        /// The current site.
        site: String,
        /// Why.
        reason: Reason,
    },
}

impl Output {
    /// The reason of this decision (D7).
    pub fn reason(&self) -> Reason {
        match self {
            Output::Connect { reason, .. }
            | Output::CachePreferredSite { reason, .. }
            | Output::LogIn { reason, .. }
            | Output::SwitchOver { reason, .. }
            | Output::Reconnect { reason, .. }
            | Output::Warn { reason, .. }
            | Output::ClearWarning { reason, .. }
            | Output::Wait { reason, .. }
            | Output::Stay { reason, .. } => *reason,
        }
    }
}

/// Why a decision was taken: a stable code for events, logs, metrics and the
/// agent's screen. Each belongs to one SPEC item ([`Reason::spec`]).
///
/// A reason names the cause, so one cause can carry several decisions: a
/// `telephony_off` warns, waits and reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The first connection, at the site the start input names (D1).
    Startup,
    /// The configuration service did not answer; trying the other site (D1).
    ConfigUnreachableTryOther,
    /// Neither site's configuration service answered: wait, then try again (D1).
    ConfigUnreachableRetry,
    /// The first connection, at the cached preferred site (D3).
    CachedPreferredSite,
    /// The preferred site was read and differs from the cached one (D3).
    PreferredSiteRead,
    /// The desktop is on the agent's preferred site: log in (D2).
    OnPreferredSite,
    /// The desktop is not on the preferred site: switch over to it (D2).
    NotOnPreferredSite,
    /// The preferred site could not be reached, or was just left: log in
    /// here instead of switching back and forth (D1, D2).
    PreferredSiteUnavailable,
    /// The telephony service is OFF: warn, wait, reconnect (D4).
    TelephonyOff,
    /// The telephony service is ON again (D4).
    TelephonyOn,
    /// Telephony stayed OFF for `site_timeout_ms`: switch over (D4).
    TelephonyOffTimeout,
    /// The configuration service is OFF: warn and reconnect only (D5).
    ConfigurationOff,
    /// The configuration service is ON again (D5).
    ConfigurationOn,
    /// The statistics service is OFF: warn and reconnect only (D5).
    StatisticsOff,
    /// The statistics service is ON again (D5).
    StatisticsOn,
    /// The agent logged out: no action (D6).
    ManualLogout,
    /// A supervisor logged the agent out: no action (D6).
    SupervisorLogout,
    /// The agent logged in at the peer site and this site let it go (SPEC
    /// S1): no action, the agent is served there (D6).
    PeerLogin,
    /// The phone's registration expired and the site logged the agent out:
    /// wait for the phone (D6).
    DrForceLogout,
    /// The phone lost its registration: warn (D6).
    DnOutOfService,
    /// The phone registered again: clear the warning, and log in again if
    /// the machine was waiting for it (D6).
    DnBackInService,
    /// The phone did not come back within `site_sip_register_timeout_ms`:
    /// switch over (D6).
    DrForceLogoutRegisterTimeout,
    /// The site is draining: switch over (D6, S7).
    GracefulShutdownLogout,
    /// The site refused the login: stay, the agent has to act (D1).
    LoginRefused,
}

impl Reason {
    /// Every reason, in the order of the README's table.
    pub const ALL: [Reason; 24] = [
        Reason::Startup,
        Reason::ConfigUnreachableTryOther,
        Reason::ConfigUnreachableRetry,
        Reason::LoginRefused,
        Reason::OnPreferredSite,
        Reason::NotOnPreferredSite,
        Reason::PreferredSiteUnavailable,
        Reason::CachedPreferredSite,
        Reason::PreferredSiteRead,
        Reason::TelephonyOff,
        Reason::TelephonyOn,
        Reason::TelephonyOffTimeout,
        Reason::ConfigurationOff,
        Reason::ConfigurationOn,
        Reason::StatisticsOff,
        Reason::StatisticsOn,
        Reason::ManualLogout,
        Reason::SupervisorLogout,
        Reason::PeerLogin,
        Reason::DrForceLogout,
        Reason::DnOutOfService,
        Reason::DnBackInService,
        Reason::DrForceLogoutRegisterTimeout,
        Reason::GracefulShutdownLogout,
    ];

    /// The code, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::ConfigUnreachableTryOther => "config_unreachable_try_other",
            Reason::ConfigUnreachableRetry => "config_unreachable_retry",
            Reason::CachedPreferredSite => "cached_preferred_site",
            Reason::PreferredSiteRead => "preferred_site_read",
            Reason::OnPreferredSite => "on_preferred_site",
            Reason::NotOnPreferredSite => "not_on_preferred_site",
            Reason::PreferredSiteUnavailable => "preferred_site_unavailable",
            Reason::TelephonyOff => "telephony_off",
            Reason::TelephonyOn => "telephony_on",
            Reason::TelephonyOffTimeout => "telephony_off_timeout",
            Reason::ConfigurationOff => "configuration_off",
            Reason::ConfigurationOn => "configuration_on",
            Reason::StatisticsOff => "statistics_off",
            Reason::StatisticsOn => "statistics_on",
            Reason::ManualLogout => "manual_logout",
            Reason::SupervisorLogout => "supervisor_logout",
            Reason::PeerLogin => "peer_login",
            Reason::DrForceLogout => "dr_force_logout",
            Reason::DnOutOfService => "dn_out_of_service",
            Reason::DnBackInService => "dn_back_in_service",
            Reason::DrForceLogoutRegisterTimeout => "dr_force_logout_register_timeout",
            Reason::GracefulShutdownLogout => "graceful_shutdown_logout",
            Reason::LoginRefused => "login_refused",
        }
    }

    /// The SPEC item that asks for this decision.
    pub fn spec(self) -> &'static str {
        match self {
            Reason::Startup
            | Reason::ConfigUnreachableTryOther
            | Reason::ConfigUnreachableRetry
            | Reason::LoginRefused => "D1",
            Reason::OnPreferredSite
            | Reason::NotOnPreferredSite
            | Reason::PreferredSiteUnavailable => "D2",
            Reason::CachedPreferredSite | Reason::PreferredSiteRead => "D3",
            Reason::TelephonyOff | Reason::TelephonyOn | Reason::TelephonyOffTimeout => "D4",
            Reason::ConfigurationOff
            | Reason::ConfigurationOn
            | Reason::StatisticsOff
            | Reason::StatisticsOn => "D5",
            Reason::ManualLogout
            | Reason::SupervisorLogout
            | Reason::PeerLogin
            | Reason::DrForceLogout
            | Reason::DnOutOfService
            | Reason::DnBackInService
            | Reason::DrForceLogoutRegisterTimeout
            | Reason::GracefulShutdownLogout => "D6",
        }
    }
}

/// A misuse of the machine's API by its driver: the input is refused and
/// changes nothing. Events that are merely stale or out of order are not
/// errors; the machine ignores them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// An input named a site that is not one of the options' two sites.
    #[error("unknown site {0:?}: not one of the two sites in the options")]
    UnknownSite(String),
    /// The config answer named one site as both preferred and secondary.
    #[error("config answer names {0:?} as both the preferred and the secondary site")]
    SameSitesInConfigAnswer(String),
    /// `listener_on`/`listener_off` named the DN.
    #[error("the dn has no listener_on/listener_off: send dn_back_in_service / dn_out_of_service")]
    DnIsNotAListener,
}

impl InputError {
    /// A stable code, the same as the JavaScript twin's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::UnknownSite(_) => "unknown_site",
            InputError::SameSitesInConfigAnswer(_) => "same_sites_in_config_answer",
            InputError::DnIsNotAListener => "dn_is_not_a_listener",
        }
    }
}
