//! The switchover machine (SPEC D1–D8), sans-IO.
//!
//! One [`Switchover`] per desktop decides where the desktop is and what it
//! does there. It owns no socket and no clock: the driver tells it what
//! happened ([`Switchover::handle_input`]) and when a deadline passed
//! ([`Switchover::handle_timeout`]), and carries out its decisions
//! ([`Switchover::poll_output`]). Time is a millisecond count from an origin
//! the driver picks ([`Millis`]), so the Rust machine and its JavaScript twin
//! (`web/switchover.js`) read the same transcripts with the same numbers.
//!
//! The run loop, as for every machine in hotsite: after each `handle_*` call
//! drain `poll_output` until it returns `None`, then sleep until
//! `poll_timeout` (or the next input) and call `handle_timeout` with the
//! current time once it has passed. `poll_timeout` always moves past `now`
//! after `handle_timeout(now)`.
//!
//! What it does, by SPEC item:
//!
//! - D1: `start` → `connect` to the given site (or the cached preferred one,
//!   D3). A failed connection → `connect` to the other site; both failed →
//!   `wait` `retry_delay_ms` + jitter, then `connect` to them in turn.
//! - D2: the config answer's preferred site is here → `log_in`; elsewhere →
//!   `switch_over` to it, unless it failed or was just left (then `log_in`
//!   here: no ping-pong).
//! - D3: with caching and without hot seating, start at the cached preferred
//!   site and `cache_preferred_site` whenever the answer differs.
//! - D4: telephony OFF → `warn`, `wait` until `site_timeout_ms`, `reconnect`
//!   every `retry_delay_ms` + jitter; ON → `clear_warning`; the deadline
//!   passes → `switch_over`.
//! - D5: configuration or statistics OFF → `warn` and `reconnect` only.
//! - D6: logout `manual`/`supervisor`/`peer_login` → `stay`; `dr-force_logout` → `wait`
//!   for `dn_back_in_service` (then `log_in` again here), or switch over once
//!   `site_sip_register_timeout_ms` passes; `graceful_shutdown_logout` →
//!   `switch_over`.
//! - D7: every [`Output`] carries its [`Reason`].
//! - D8: `switch_over` restarts the stack at the other site; the machine is
//!   then there, and the flow starts again from `connect`.

mod messages;
mod options;
mod rng;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

pub use messages::{Input, InputError, Listener, LogoutReason, Output, Reason};
pub use options::{
    Options, OptionsError, DEFAULT_RETRY_DELAY_MS, DEFAULT_RETRY_JITTER_MS,
    DEFAULT_SITE_TIMEOUT_MS, MAX_DURATION_MS,
};
use rng::SplitMix64;

/// Milliseconds since an origin the driver picks. Kept below 2^53 by any
/// sane driver, so JavaScript numbers hold it exactly.
pub type Millis = u64;

/// 0 or 1: a site by its place in [`Options::sites`].
type SiteIndex = usize;

fn other(site: SiteIndex) -> SiteIndex {
    1 - site
}

/// Where the machine is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started.
    Idle,
    /// `connect` sent; waiting for `config_connected` / `config_failed`.
    Connecting { site: SiteIndex },
    /// Both sites failed; `connect` to `site` at `until` (D1).
    RetryWait { site: SiteIndex, until: Millis },
    /// `switch_over` sent; `connect` to `site` at `until` (the spread, D8).
    SwitchSpread {
        site: SiteIndex,
        reason: Reason,
        until: Millis,
    },
    /// Connected to the configuration service; waiting for its answer.
    ReadingConfig { site: SiteIndex },
    /// `log_in` sent.
    LoggingIn { site: SiteIndex },
    /// The agent works here.
    LoggedIn { site: SiteIndex },
    /// After `dr-force_logout`: waiting for the phone, until `until` if set (D6).
    AwaitingDn {
        site: SiteIndex,
        until: Option<Millis>,
    },
    /// After a manual, supervisor or peer_login logout or a refused login: no action.
    Stopped { site: SiteIndex },
}

impl Phase {
    /// The site whose listeners are set up, if any: from `log_in` on.
    fn at_site(self) -> Option<SiteIndex> {
        match self {
            Phase::LoggingIn { site }
            | Phase::LoggedIn { site }
            | Phase::AwaitingDn { site, .. }
            | Phase::Stopped { site } => Some(site),
            Phase::Idle
            | Phase::Connecting { .. }
            | Phase::RetryWait { .. }
            | Phase::SwitchSpread { .. }
            | Phase::ReadingConfig { .. } => None,
        }
    }

    /// The site the machine is at or heading to.
    fn site(self) -> Option<SiteIndex> {
        match self {
            Phase::Idle => None,
            Phase::Connecting { site }
            | Phase::RetryWait { site, .. }
            | Phase::SwitchSpread { site, .. }
            | Phase::ReadingConfig { site }
            | Phase::LoggingIn { site }
            | Phase::LoggedIn { site }
            | Phase::AwaitingDn { site, .. }
            | Phase::Stopped { site } => Some(site),
        }
    }

    /// The phase's own deadline.
    fn deadline(self) -> Option<Millis> {
        match self {
            Phase::RetryWait { until, .. } | Phase::SwitchSpread { until, .. } => Some(until),
            Phase::AwaitingDn { until, .. } => until,
            _ => None,
        }
    }
}

/// The listeners with an ON/OFF input, in the order their retries fire when
/// due at the same moment.
const WATCHED: [Listener; 3] = [
    Listener::Telephony,
    Listener::Configuration,
    Listener::Statistics,
];

fn watched_slot(listener: Listener) -> Result<usize, InputError> {
    WATCHED
        .iter()
        .position(|watched| *watched == listener)
        .ok_or(InputError::DnIsNotAListener)
}

fn off_reason(listener: Listener) -> Reason {
    match listener {
        Listener::Telephony => Reason::TelephonyOff,
        Listener::Configuration => Reason::ConfigurationOff,
        Listener::Statistics => Reason::StatisticsOff,
        Listener::Dn => Reason::DnOutOfService,
    }
}

fn on_reason(listener: Listener) -> Reason {
    match listener {
        Listener::Telephony => Reason::TelephonyOn,
        Listener::Configuration => Reason::ConfigurationOn,
        Listener::Statistics => Reason::StatisticsOn,
        Listener::Dn => Reason::DnBackInService,
    }
}

/// One watched listener at the current site.
#[derive(Debug, Clone, Copy, Default)]
struct Watch {
    off: bool,
    retry_at: Option<Millis>,
}

/// The machine's timers. When several are due at once they fire in this
/// order (the JavaScript twin's order too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Phase,
    TelephonySwitch,
    Retry(usize),
}

/// The switchover machine of one desktop. See the module docs.
#[derive(Debug)]
pub struct Switchover {
    options: Options,
    rng: SplitMix64,
    phase: Phase,
    /// Sites whose configuration service failed since they last connected (D1).
    failed: [bool; 2],
    /// The site the last switchover left. Neither it nor a failed site is
    /// switched (back) to by D2: that would only come back here.
    left: Option<SiteIndex>,
    /// Whether this start uses the cache (D3).
    caching: bool,
    cached_preferred: Option<SiteIndex>,
    watches: [Watch; 3],
    telephony_switch_at: Option<Millis>,
    dn_warned: bool,
    outputs: VecDeque<Output>,
}

impl Switchover {
    /// A machine, idle until `start`. `seed` fixes its jitter sequence; give
    /// each desktop its own, or they retry in lockstep.
    pub fn new(options: Options, seed: u64) -> Result<Switchover, OptionsError> {
        options.validate()?;
        Ok(Switchover {
            options,
            rng: SplitMix64::new(seed),
            phase: Phase::Idle,
            failed: [false; 2],
            left: None,
            caching: false,
            cached_preferred: None,
            watches: [Watch::default(); 3],
            telephony_switch_at: None,
            dn_warned: false,
            outputs: VecDeque::new(),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The site the machine is at or heading to; `None` before `start`.
    pub fn site(&self) -> Option<&str> {
        self.phase
            .site()
            .map(|site| self.options.sites[site].as_str())
    }

    /// Feeds one input. An `Err` means the driver misused the API (an
    /// unknown site, say); the input then changes nothing. Stale or
    /// out-of-order inputs are ignored without error.
    pub fn handle_input(&mut self, now: Millis, input: Input) -> Result<(), InputError> {
        match input {
            Input::Start {
                site,
                cached_preferred_site,
                hot_seating,
            } => {
                let site = self.site_index(&site)?;
                let cached = match cached_preferred_site {
                    Some(name) => Some(self.site_index(&name)?),
                    None => None,
                };
                self.start(site, cached, hot_seating);
            }
            Input::ConfigConnected { site } => {
                let site = self.site_index(&site)?;
                if self.phase == (Phase::Connecting { site }) {
                    self.failed[site] = false;
                    self.phase = Phase::ReadingConfig { site };
                }
            }
            Input::ConfigFailed { site } => {
                let site = self.site_index(&site)?;
                match self.phase {
                    Phase::Connecting { site: current }
                    | Phase::ReadingConfig { site: current }
                        if current == site =>
                    {
                        self.config_failed(now, site);
                    }
                    _ => {}
                }
            }
            Input::ConfigAnswer {
                preferred,
                secondary,
            } => {
                let preferred_index = self.site_index(&preferred)?;
                let secondary_index = self.site_index(&secondary)?;
                if preferred_index == secondary_index {
                    return Err(InputError::SameSitesInConfigAnswer(preferred));
                }
                if let Phase::ReadingConfig { site } = self.phase {
                    self.config_answer(now, site, preferred_index);
                }
            }
            Input::ListenerOff { listener } => {
                let slot = watched_slot(listener)?;
                if self.phase.at_site().is_some() {
                    self.listener_off(now, slot);
                }
            }
            Input::ListenerOn { listener } => {
                let slot = watched_slot(listener)?;
                if let Some(site) = self.phase.at_site() {
                    self.listener_on(site, slot);
                }
            }
            Input::AgentLoggedIn => match self.phase {
                Phase::LoggingIn { site }
                | Phase::AwaitingDn { site, .. }
                | Phase::Stopped { site } => self.phase = Phase::LoggedIn { site },
                _ => {}
            },
            Input::LoginRefused { .. } => {
                if let Phase::LoggingIn { site } = self.phase {
                    self.stay(site, Reason::LoginRefused);
                }
            }
            Input::AgentLoggedOut { reason } => {
                if let Phase::LoggingIn { site } | Phase::LoggedIn { site } = self.phase {
                    self.logged_out(now, site, reason);
                }
            }
            Input::DnOutOfService => {
                if self.phase.at_site().is_some() && !self.dn_warned {
                    self.dn_warned = true;
                    self.push(Output::Warn {
                        listener: Listener::Dn,
                        reason: Reason::DnOutOfService,
                    });
                }
            }
            Input::DnBackInService => {
                if let Some(site) = self.phase.at_site() {
                    if self.dn_warned {
                        self.dn_warned = false;
                        self.push(Output::ClearWarning {
                            listener: Listener::Dn,
                            reason: Reason::DnBackInService,
                        });
                    }
                    if let Phase::AwaitingDn { .. } = self.phase {
                        self.log_in(site, Reason::DnBackInService);
                    }
                }
            }
        }
        Ok(())
    }

    /// Fires every timer due at `now`, earliest first. Calling it early is
    /// harmless: nothing is due, nothing happens.
    pub fn handle_timeout(&mut self, now: Millis) {
        // Each firing clears its timer or sets it past `now` (retry delays
        // are at least 1 ms, a zero switchover spread connects at once), so
        // this loop ends.
        while let Some((timer, at)) = self.next_timer() {
            if at > now {
                break;
            }
            self.fire(now, timer);
        }
    }

    /// The next decision, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver must call `handle_timeout` next; `None`: no deadline.
    /// Changes after every `handle_input` and `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.next_timer().map(|(_, at)| at)
    }

    fn next_timer(&self) -> Option<(Timer, Millis)> {
        let mut timers = [
            (Timer::Phase, self.phase.deadline()),
            (Timer::TelephonySwitch, self.telephony_switch_at),
            (Timer::Retry(0), self.watches[0].retry_at),
            (Timer::Retry(1), self.watches[1].retry_at),
            (Timer::Retry(2), self.watches[2].retry_at),
        ]
        .into_iter()
        .filter_map(|(timer, at)| at.map(|at| (timer, at)));
        // Strictly earlier wins, so the order above breaks ties.
        let first = timers.next()?;
        Some(timers.fold(
            first,
            |best, next| if next.1 < best.1 { next } else { best },
        ))
    }

    fn fire(&mut self, now: Millis, timer: Timer) {
        match timer {
            Timer::Phase => match self.phase {
                Phase::RetryWait { site, .. } => self.connect(site, Reason::ConfigUnreachableRetry),
                Phase::SwitchSpread { site, reason, .. } => self.connect(site, reason),
                Phase::AwaitingDn { site, .. } => {
                    self.switch_over(now, site, Reason::DrForceLogoutRegisterTimeout);
                }
                // No other phase has a deadline.
                _ => {}
            },
            Timer::TelephonySwitch => {
                self.telephony_switch_at = None;
                if let Some(site) = self.phase.at_site() {
                    self.switch_over(now, site, Reason::TelephonyOffTimeout);
                }
            }
            Timer::Retry(slot) => {
                self.watches[slot].retry_at = None;
                if let Some(site) = self.phase.at_site() {
                    let listener = WATCHED[slot];
                    self.push(Output::Reconnect {
                        site: self.name(site),
                        listener,
                        reason: off_reason(listener),
                    });
                    self.watches[slot].retry_at = Some(now + self.retry_delay());
                }
            }
        }
    }

    fn start(&mut self, site: SiteIndex, cached: Option<SiteIndex>, hot_seating: bool) {
        self.phase = Phase::Idle;
        self.failed = [false; 2];
        self.left = None;
        self.clear_site_state();
        // D3: no caching under hot seating: the cache would be another
        // person's preferred site.
        self.caching = self.options.cache_preferred_site && !hot_seating;
        self.cached_preferred = if self.caching { cached } else { None };
        match self.cached_preferred {
            Some(cached) => self.connect(cached, Reason::CachedPreferredSite),
            None => self.connect(site, Reason::Startup),
        }
    }

    fn connect(&mut self, site: SiteIndex, reason: Reason) {
        self.phase = Phase::Connecting { site };
        self.push(Output::Connect {
            site: self.name(site),
            reason,
        });
    }

    /// D1: on failure try the other site; both failed: wait, then go on
    /// alternating.
    fn config_failed(&mut self, now: Millis, site: SiteIndex) {
        self.failed[site] = true;
        let next = other(site);
        if !self.failed[next] {
            self.connect(next, Reason::ConfigUnreachableTryOther);
            return;
        }
        let until = now + self.retry_delay();
        self.phase = Phase::RetryWait { site: next, until };
        self.push(Output::Wait {
            until: Some(until),
            reason: Reason::ConfigUnreachableRetry,
        });
    }

    /// D2 and D3, once the preferred site is known.
    fn config_answer(&mut self, now: Millis, site: SiteIndex, preferred: SiteIndex) {
        // D3: always re-read; the cache only saved the first switchover.
        if self.caching && self.cached_preferred != Some(preferred) {
            self.cached_preferred = Some(preferred);
            self.push(Output::CachePreferredSite {
                site: self.name(preferred),
                reason: Reason::PreferredSiteRead,
            });
        }
        if preferred == site {
            self.log_in(site, Reason::OnPreferredSite);
        } else if self.failed[preferred] || self.left == Some(preferred) {
            // Switching to a site that just failed would only come back here.
            self.log_in(site, Reason::PreferredSiteUnavailable);
        } else {
            self.switch_over(now, site, Reason::NotOnPreferredSite);
        }
    }

    fn log_in(&mut self, site: SiteIndex, reason: Reason) {
        self.phase = Phase::LoggingIn { site };
        self.push(Output::LogIn {
            site: self.name(site),
            reason,
        });
    }

    /// D6.
    fn logged_out(&mut self, now: Millis, site: SiteIndex, reason: LogoutReason) {
        match reason {
            LogoutReason::Manual => self.stay(site, Reason::ManualLogout),
            LogoutReason::Supervisor => self.stay(site, Reason::SupervisorLogout),
            // SPEC S1: the agent is at the peer now, from another desktop.
            LogoutReason::PeerLogin => self.stay(site, Reason::PeerLogin),
            LogoutReason::DrForceLogout => {
                let until = self
                    .options
                    .site_sip_register_timeout()
                    .map(|timeout| now + timeout);
                self.phase = Phase::AwaitingDn { site, until };
                self.push(Output::Wait {
                    until,
                    reason: Reason::DrForceLogout,
                });
            }
            LogoutReason::GracefulShutdownLogout => {
                self.switch_over(now, site, Reason::GracefulShutdownLogout);
            }
        }
    }

    /// No action (D6): the agent decides. Listeners are still watched, but
    /// telephony OFF no longer leads to a switchover.
    fn stay(&mut self, site: SiteIndex, reason: Reason) {
        self.phase = Phase::Stopped { site };
        self.telephony_switch_at = None;
        self.push(Output::Stay {
            site: self.name(site),
            reason,
        });
    }

    fn listener_off(&mut self, now: Millis, slot: usize) {
        if self.watches[slot].off {
            return;
        }
        self.watches[slot].off = true;
        let listener = WATCHED[slot];
        self.push(Output::Warn {
            listener,
            reason: off_reason(listener),
        });
        // D4: only telephony can move the desktop; D5: the others only warn.
        if listener == Listener::Telephony && !matches!(self.phase, Phase::Stopped { .. }) {
            let until = self.options.site_timeout().map(|timeout| now + timeout);
            self.telephony_switch_at = until;
            self.push(Output::Wait {
                until,
                reason: Reason::TelephonyOff,
            });
        }
        self.watches[slot].retry_at = Some(now + self.retry_delay());
    }

    fn listener_on(&mut self, site: SiteIndex, slot: usize) {
        if !self.watches[slot].off {
            return;
        }
        self.watches[slot] = Watch::default();
        let listener = WATCHED[slot];
        self.push(Output::ClearWarning {
            listener,
            reason: on_reason(listener),
        });
        if listener == Listener::Telephony {
            self.telephony_switch_at = None;
            // The login may have been lost with the connection: ask again.
            if let Phase::LoggingIn { .. } = self.phase {
                self.log_in(site, Reason::TelephonyOn);
            }
        }
    }

    /// D8: to the other site of the pair, which becomes the current one.
    fn switch_over(&mut self, now: Millis, from: SiteIndex, reason: Reason) {
        let to = other(from);
        self.failed = [false; 2];
        self.left = Some(from);
        self.clear_site_state();
        self.push(Output::SwitchOver {
            site: self.name(to),
            reason,
        });
        let spread = self.rng.below_or_equal(self.options.retry_jitter_ms);
        if spread == 0 {
            self.connect(to, reason);
        } else {
            self.phase = Phase::SwitchSpread {
                site: to,
                reason,
                until: now + spread,
            };
        }
    }

    /// Forgets what belonged to the site being left: listener states, their
    /// timers and warnings.
    fn clear_site_state(&mut self) {
        self.watches = [Watch::default(); 3];
        self.telephony_switch_at = None;
        self.dn_warned = false;
    }

    fn retry_delay(&mut self) -> Millis {
        self.options.retry_delay_ms + self.rng.below_or_equal(self.options.retry_jitter_ms)
    }

    fn site_index(&self, name: &str) -> Result<SiteIndex, InputError> {
        self.options
            .sites
            .iter()
            .position(|site| site == name)
            .ok_or_else(|| InputError::UnknownSite(name.to_owned()))
    }

    fn name(&self, site: SiteIndex) -> String {
        self.options.sites[site].clone()
    }

    fn push(&mut self, output: Output) {
        self.outputs.push_back(output);
    }
}
