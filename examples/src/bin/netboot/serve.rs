//! `netboot serve`: decide per client from a TOML table of groups and profiles
//! (`--config FILE`, see `pxe_policy::table`) or by asking an external service
//! (`--delegate URL`, see `pxe_policy::delegate`). Boot files named by relative URLs come from
//! `--root`.

use std::path::PathBuf;
use std::time::Duration;

use pxe_http::{BootService, HttpDelegate};
use pxe_policy::delegate::DelegatePolicy;
use pxe_policy::table::TablePolicy;
use pxe_policy::{ScriptDecision, SharedPolicy};

use crate::allinone::{self, ServerFlags};

/// Flags of `netboot serve`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("policy").required(true).args(["config", "delegate"])))]
pub(crate) struct Args {
    /// The table of groups and profiles.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Ask this service (`http://host:port/path`, JSON in, decision out) per client instead.
    #[arg(long)]
    delegate: Option<String>,
    /// How long the delegate may take per question before the fallback is used.
    #[arg(long, default_value_t = 2000)]
    delegate_timeout_ms: u64,
    /// Directory of boot files served over HTTP at `/` (kernels, initrds, images).
    #[arg(long)]
    root: Option<PathBuf>,
    #[command(flatten)]
    server: ServerFlags,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let policy = match (&args.config, &args.delegate) {
        (Some(config), _) => {
            tracing::info!(config = %config.display(), "serving clients by table");
            SharedPolicy::new(TablePolicy::load(config)?)
        }
        (None, Some(url)) => {
            let timeout = Duration::from_millis(args.delegate_timeout_ms);
            tracing::info!(%url, ?timeout, "serving clients as a delegate decides; on failure they boot from disk");
            // When the service cannot answer, a client boots from its disk: the safe default
            // for a machine that may already be installed.
            SharedPolicy::new(DelegatePolicy::new(
                HttpDelegate::new(url, timeout)?,
                ScriptDecision::ExitToDisk,
            ))
        }
        (None, None) => anyhow::bail!("netboot serve needs --config FILE or --delegate URL"),
    };
    let mut http = BootService::builder();
    if let Some(root) = &args.root {
        http = http.root(root);
    }
    allinone::run(args.server, policy, http).await
}
