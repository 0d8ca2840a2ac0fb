//! `hotsite`: one program per site that keeps messages, calls, recordings and
//! agents working through failures.
//!
//! Only this crate parses arguments, installs the tracing subscriber and picks
//! the exit code (ARCHITECTURE.md).

mod check_config;
mod clock;
mod config;
mod demo;
mod lab;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hotsite",
    version,
    about = "Keeps messages, calls, recordings and agents working through site failures."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the bind-failover demo: a simulated aggregator (two sites, two SMSCs
    /// each), hotsite's SMPP client bound to all four, traffic, a site killed and
    /// an SMSC blackholed mid-run, then a report.
    Demo(demo::DemoArgs),
    /// Runs the simulated aggregator and prints the addresses it listens on.
    Lab {
        /// Lab configuration (see examples/lab.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Validates a configuration file (gateway or lab); exits non-zero with
    /// every error, each naming its key.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOTSITE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => return check_config::run(&file),
        Command::Lab { config } => runtime().and_then(|rt| rt.block_on(lab::run(&config))),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(args))),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
