//! `surge tenant`: create tenants (each with a fresh API key) and list them.

use std::fmt;

use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;
use shared::backend::Backends;
use shared::config::Config;
use shared::domain::TenantId;

use crate::output::emit;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant (or add a key to an existing one) and print its new API key once.
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// A new key, shown once.
#[derive(Serialize)]
struct NewKey {
    tenant: TenantId,
    api_key: String,
}

impl fmt::Display for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.api_key)
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Tenants(Vec<TenantId>);

impl fmt::Display for Tenants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|tenant| writeln!(f, "{tenant}"))
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    match args.command {
        TenantCommand::Add { name, json } => {
            let tenant: TenantId =
                name.parse().with_context(|| format!("invalid tenant name {name:?}: use 1-64 of a-z, 0-9 and '-'"))?;
            let backends = Backends::open(config).await?;
            let key = dispatcher::add_tenant(&backends, &tenant).await?;
            emit(&NewKey { tenant: tenant.clone(), api_key: key.expose().to_owned() }, json)?;
            if !json {
                eprintln!("tenant {tenant}: store this key now; it is not shown again");
            }
            Ok(())
        }
        TenantCommand::List { json } => {
            let backends = Backends::open(config).await?;
            emit(&Tenants(backends.tenants.list_tenants().await?), json)
        }
    }
}
