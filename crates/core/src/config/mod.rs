//! The helpers every system's configuration is read with, held once: the issue
//! accumulator, durations written as humantime strings, socket addresses,
//! http(s) URLs and secrets with a minimum length.
//!
//! Sections parse with serde (`deny_unknown_fields`) into typed settings, then
//! their values are judged into [`Issues`], so one run of `hotsite
//! check-config` lists every problem with its key. A value whose text can be
//! wrong without stopping the parse (a duration of the binary's `[smpp]`) is a
//! [`WrittenDuration`]: parsed by serde, judged by [`Issues::duration`].

mod address;
mod duration;
mod issue;
mod issues;
mod url;

pub use address::{check_host_port, parse_socket_addr};
pub use duration::{duration, parse_duration, DurationError, WrittenDuration};
pub use issue::ConfigIssue;
pub use issues::Issues;
pub use url::check_http_url;

#[cfg(test)]
mod tests;
