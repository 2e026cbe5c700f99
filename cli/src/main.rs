//! `surge`: runs Surge on one machine (`surge up`) and carries the operator commands. `main`
//! parses the command line, loads the config, sets up logging and hands over to the command's
//! module; each command is a `run(args, config)` in `commands/`.

#![allow(clippy::print_stdout)] // This is the CLI: stdout is its output.

mod binaries;
mod commands;
mod output;

use std::path::PathBuf;

use clap::Parser;
use shared::config::Config;
use shared::telemetry::{self, LogFormat};

use commands::Command;

#[derive(Parser)]
#[command(name = "surge", version, about = "Surge: elastic invoice processing")]
pub(crate) struct Cli {
    /// Configuration file (TOML); `SURGE_*` environment variables override it.
    #[arg(long, global = true, env = "SURGE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded backend (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = Config::process_env();
    let filter = env.get("SURGE_LOG").cloned().unwrap_or_else(|| cli.command.default_log_filter().to_owned());
    telemetry::init_tracing(cli.log_format, &filter);
    let mut config = Config::load(cli.config.as_deref(), &env)?;
    if let Some(data_dir) = &cli.data_dir {
        config.data_dir = data_dir.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli.command.run(config, cli.config))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every operator command speaks JSON for scripts; only the long-running server and the
    /// shell-completion generator do not.
    #[test]
    fn every_operator_command_has_json_output() {
        fn leaves(command: &clap::Command, path: String, out: &mut Vec<(String, bool)>) {
            if command.get_subcommands().next().is_none() {
                out.push((path, command.get_arguments().any(|a| a.get_id() == "json")));
                return;
            }
            for sub in command.get_subcommands() {
                leaves(sub, format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut found = Vec::new();
        leaves(&Cli::command(), "surge".into(), &mut found);
        let missing: Vec<&str> = found
            .iter()
            .filter(|(path, json)| !json && !["surge up", "surge completions"].contains(&path.as_str()))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(missing.is_empty(), "commands without --json: {missing:?}");
        assert!(found.len() > 15, "{found:?}");
    }
}
