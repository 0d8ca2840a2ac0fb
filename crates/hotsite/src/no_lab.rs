//! A build without the `lab` feature (the production daemon) has no `demo`,
//! `lab` or `bench`: they need the simulator, which this build does not link.
//! The commands stay as hidden names so that typing one says so and how to get
//! them, instead of clap's bare "unrecognized subcommand".

use std::ffi::OsString;
use std::process::ExitCode;

/// Why a lab command or a lab file is refused by this build.
pub(crate) const NO_LAB: &str = "this build of hotsite has no lab (built without the `lab` \
     feature); demo, desktops, lab, bench and lab files need a default build: cargo build --release -p hotsite";

/// Whatever followed the command name; not read.
#[derive(Debug, clap::Args)]
pub(crate) struct NotInThisBuild {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _ignored: Vec<OsString>,
}

/// Says that `command` is not in this build; exit code 2, like a usage error.
pub(crate) fn refuse(command: &str) -> ExitCode {
    eprintln!("error: hotsite {command}: {NO_LAB}");
    ExitCode::from(2)
}
