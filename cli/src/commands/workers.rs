//! `surge workers roll`: asks the running deployment to replace its worker processes batch by
//! batch and follows the roll until it ends.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use dispatcher::{RollState, RollStatus};
use shared::config::Config;

use crate::output::print_json;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: WorkersCommand,
}

#[derive(Subcommand)]
enum WorkersCommand {
    /// Replace every worker process, batch by batch (start new ones, wait until they beat,
    /// drain the old ones), while uploads keep being accepted: after an upgrade of
    /// surge-worker, or to recycle the pool.
    Roll {
        /// Workers replaced at a time.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// The deployment's URL; default: the `surge up` running on this data directory.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let WorkersCommand::Roll { batch, url, json } = args.command;
    let client = RollClient::new(config, url)?;
    client.start(batch).await?;
    let bar = roll_bar(json);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = client.status().await?;
        bar.set_length(status.total as u64);
        bar.set_position(status.replaced as u64);
        bar.set_message(status.phase.clone());
        match status.state {
            RollState::Running => continue,
            RollState::Done => {
                bar.finish_and_clear();
                if json {
                    return print_json(&status);
                }
                if status.total == 0 {
                    println!("{}", status.phase);
                } else {
                    println!("rolled {} worker(s) in batches of {}", status.replaced, status.batch);
                }
                return Ok(());
            }
            RollState::Failed | RollState::Idle => {
                bar.abandon();
                if json {
                    print_json(&status)?;
                }
                let reason = status.error.unwrap_or_else(|| "the deployment no longer knows of it (restarted?)".into());
                anyhow::bail!("the roll failed: {reason}");
            }
        }
    }
}

/// The running deployment's roll endpoint, with the operator token.
struct RollClient {
    client: reqwest::Client,
    endpoint: String,
    token: String,
}

impl RollClient {
    /// Finds the deployment (`url`, or the `surge up` running on this data directory) and the
    /// admin token.
    fn new(config: &Config, url: Option<String>) -> anyhow::Result<RollClient> {
        let url = match url {
            Some(url) => url,
            None => dispatcher::running::find(&config.data_dir)
                .map(|r| r.url)
                .with_context(|| format!("no running surge up found in {} (pass --url)", config.data_dir.display()))?,
        };
        let token = match &config.api.admin_token {
            Some(token) => token.clone(),
            None => dispatcher::read_admin_token(&config.data_dir)?.context(
                "no admin token: set api.admin_token (SURGE_API__ADMIN_TOKEN) or run on the deployment's data directory",
            )?,
        };
        Ok(RollClient { client: reqwest::Client::new(), endpoint: format!("{url}/admin/workers/roll"), token })
    }

    async fn start(&self, batch: usize) -> anyhow::Result<()> {
        let body = serde_json::json!({ "batch": batch });
        let response = self.client.post(&self.endpoint).bearer_auth(&self.token).json(&body).send().await?;
        if !response.status().is_success() {
            let status = response.status();
            anyhow::bail!("the deployment refused the roll ({status}): {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn status(&self) -> anyhow::Result<RollStatus> {
        let response = self.client.get(&self.endpoint).bearer_auth(&self.token).send().await?;
        Ok(response.error_for_status()?.json().await?)
    }
}

fn roll_bar(hidden: bool) -> indicatif::ProgressBar {
    let bar = if hidden { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} workers replaced · {msg} ({elapsed})")
            .expect("valid template"),
    );
    bar
}
