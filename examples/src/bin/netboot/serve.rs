//! `netboot serve --config FILE`: decide per client from a TOML table of groups and profiles
//! (see `pxe_policy::table`). Boot files named by relative URLs come from `--root`.

use std::path::PathBuf;

use pxe_http::BootService;
use pxe_policy::table::TablePolicy;
use pxe_policy::SharedPolicy;

use crate::allinone::{self, ServerFlags};

/// Flags of `netboot serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The table of groups and profiles.
    #[arg(long)]
    config: PathBuf,
    /// Directory of boot files served over HTTP at `/` (kernels, initrds, images).
    #[arg(long)]
    root: Option<PathBuf>,
    #[command(flatten)]
    server: ServerFlags,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let table = TablePolicy::load(&args.config)?;
    let mut http = BootService::builder();
    if let Some(root) = &args.root {
        http = http.root(root);
    }
    tracing::info!(config = %args.config.display(), "serving clients by table");
    allinone::run(args.server, SharedPolicy::new(table), http).await
}
