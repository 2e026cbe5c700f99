//! How commands print: a report renders as text for people (`Display`) and serialises for
//! `--json`; progress goes to stderr and is hidden for `--json`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// The arguments of a command whose only option is `--json`.
#[derive(clap::Args)]
pub(crate) struct JsonOnly {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Prints `report` on stdout: pretty JSON with `--json`, its text otherwise.
pub(crate) fn emit(report: &(impl Serialize + fmt::Display), json: bool) -> anyhow::Result<()> {
    if json {
        print_json(report)
    } else {
        print!("{report}");
        Ok(())
    }
}

/// Prints `value` on stdout as pretty JSON.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A progress bar on stderr counting jobs; hidden for `--json`.
pub(crate) fn progress(what: &'static str, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} jobs ({per_sec}, {elapsed})")
            .expect("valid template"),
    );
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
