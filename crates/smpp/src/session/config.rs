//! Settings of one session, with their defaults and bounds.

use std::time::Duration;

use hotsite_core::Secret;

use crate::pdu::BindKind;

/// Settings of one [`Session`](super::Session).
///
/// Defaults (from [`SessionConfig::new`]): transceiver bind, window 10,
/// enquire_link after 10 s of silence, peer dead after 30 s of silence, 10 s
/// response timeout, throttling pauses from 1 s doubling up to 30 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Transceiver by default (SPEC M4): receipts and MOs come back on every bind.
    pub bind_kind: BindKind,
    /// Account name (at most 15 characters).
    pub system_id: String,
    /// Password (at most 8 characters). `{:?}` never shows it; the bind is the
    /// only place it is exposed.
    pub password: Secret,
    /// `system_type` (at most 12 characters, usually empty).
    pub system_type: String,
    /// Most submits outstanding at once.
    pub window: usize,
    /// An `enquire_link` goes out after this long without receiving anything.
    pub enquire_link_interval: Duration,
    /// The peer is dead after this long without receiving anything, even if the
    /// TCP connection is still up. Must exceed `enquire_link_interval`.
    pub dead_peer_timeout: Duration,
    /// How long a request waits for its response.
    pub response_timeout: Duration,
    /// First pause after a throttling answer; doubles on each one in a row.
    pub throttle_pause: Duration,
    /// The longest throttling pause.
    pub throttle_pause_max: Duration,
}

impl SessionConfig {
    /// The defaults, for the given account.
    pub fn new(system_id: &str, password: &str) -> SessionConfig {
        SessionConfig {
            bind_kind: BindKind::Transceiver,
            system_id: system_id.to_owned(),
            password: Secret::new(password),
            system_type: String::new(),
            window: 10,
            enquire_link_interval: Duration::from_secs(10),
            dead_peer_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            throttle_pause: Duration::from_secs(1),
            throttle_pause_max: Duration::from_secs(30),
        }
    }

    /// Checks the bounds. Each error names the setting, so a config loader can
    /// point at the key.
    pub fn validate(&self) -> Result<(), SessionConfigError> {
        use SessionConfigError::*;
        if self.system_id.is_empty() || self.system_id.len() > 15 {
            return Err(SystemId(self.system_id.len()));
        }
        if self.password.expose().len() > 8 {
            return Err(Password(self.password.expose().len()));
        }
        if self.system_type.len() > 12 {
            return Err(SystemType(self.system_type.len()));
        }
        if self.window == 0 || self.window > 10_000 {
            return Err(Window(self.window));
        }
        if self.enquire_link_interval.is_zero() {
            return Err(EnquireLinkInterval);
        }
        if self.dead_peer_timeout <= self.enquire_link_interval {
            return Err(DeadPeerTimeout {
                dead_peer_timeout: self.dead_peer_timeout,
                enquire_link_interval: self.enquire_link_interval,
            });
        }
        if self.response_timeout.is_zero() {
            return Err(ResponseTimeout);
        }
        if self.throttle_pause.is_zero() || self.throttle_pause_max < self.throttle_pause {
            return Err(ThrottlePause);
        }
        Ok(())
    }
}

/// A [`SessionConfig`] value out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionConfigError {
    /// `system_id`.
    #[error("system_id must be 1 to 15 characters, got {0}")]
    SystemId(usize),
    /// `password`.
    #[error("password must be at most 8 characters, got {0}")]
    Password(usize),
    /// `system_type`.
    #[error("system_type must be at most 12 characters, got {0}")]
    SystemType(usize),
    /// `window`.
    #[error("window must be between 1 and 10000, got {0}")]
    Window(usize),
    /// `enquire_link_interval`.
    #[error("enquire_link_interval must be greater than zero")]
    EnquireLinkInterval,
    /// `dead_peer_timeout`.
    #[error("dead_peer_timeout ({dead_peer_timeout:?}) must exceed enquire_link_interval ({enquire_link_interval:?}), or a live peer would be declared dead before it is asked")]
    DeadPeerTimeout {
        /// The configured timeout.
        dead_peer_timeout: Duration,
        /// The configured interval.
        enquire_link_interval: Duration,
    },
    /// `response_timeout`.
    #[error("response_timeout must be greater than zero")]
    ResponseTimeout,
    /// `throttle_pause` / `throttle_pause_max`.
    #[error("throttle_pause must be greater than zero and not above throttle_pause_max")]
    ThrottlePause,
}

impl SessionConfigError {
    /// The setting the error is about, as named in configuration files.
    pub fn key(&self) -> &'static str {
        use SessionConfigError::*;
        match self {
            SystemId(_) => "system_id",
            Password(_) => "password",
            SystemType(_) => "system_type",
            Window(_) => "window",
            EnquireLinkInterval => "enquire_link_interval",
            DeadPeerTimeout { .. } => "dead_peer_timeout",
            ResponseTimeout => "response_timeout",
            ThrottlePause => "throttle_pause",
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    /// Issue 11: the bind password is a `Secret`; a logged config never shows it.
    #[test]
    fn debug_never_shows_the_password() {
        let config = SessionConfig::new("hotsite", "pw-4242");
        assert!(!format!("{config:?}").contains("pw-4242"), "{config:?}");
        assert_eq!(config.password.expose(), "pw-4242");
    }
}
