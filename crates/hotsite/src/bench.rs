//! `hotsite bench`: placeholder being written; see the bench issue notes.

use std::process::ExitCode;

/// Options of `hotsite bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {}

pub(crate) async fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hotsite bench is not built yet")
}
