//! Loopback integration tests: the real binary's parts over real sockets, and
//! third-party protocol implementations as peers. One test binary (matklad).

mod cli;
mod crash;
mod daemon;
mod desktop;
mod desktop_client;
mod failover;
mod gateway;
mod host;
mod http;
mod interop;
#[cfg(feature = "lab")]
mod lab_commands;
mod limits;
mod monitoring;
mod netns;
mod notify;
mod packaging;
mod production_build;
mod realworld;
mod recording;
mod recording_run;
mod shared_queue;
mod shared_store;
mod site;
mod status_follow;
