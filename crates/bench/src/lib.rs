//! hotsite's benchmark drivers, in one place (README.md beside this crate
//! lists every benchmark, what it measures and its command).
//!
//! - [`messaging`]: `hotsite bench`, the messaging gateway (and Kannel)
//!   against the simulated aggregator; a library module because the
//!   `hotsite` binary runs it (under its default `lab` feature) and it
//!   starts that same binary as the gateway under test.
//! - `src/bin/`: `voice_proxy` (the voice proxy alone, driven by SIPp in
//!   `voice/bench.sh`), `voice_flood` (RSS under an INVITE flood, in process
//!   or against a running daemon) and `store_throughput` (the SQLite store's
//!   group commit).
//!
//! Never linked by a production build of the daemon: `hotsite` depends on this
//! crate only through its `lab` feature, like on `hotsite-lab`.

pub mod messaging;
