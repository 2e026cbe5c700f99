//! `surge completions SHELL`: prints shell completions.

use clap::CommandFactory as _;

use crate::Cli;

#[derive(clap::Args)]
pub(crate) struct Args {
    shell: clap_complete::Shell,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    clap_complete::generate(args.shell, &mut Cli::command(), "surge", &mut std::io::stdout());
    Ok(())
}
