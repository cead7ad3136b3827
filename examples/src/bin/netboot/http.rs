//! `netboot http`: the http server alone.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `netboot http`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory to serve.
    #[arg(long)]
    root: PathBuf,
    /// Address and port to listen on.
    #[arg(long)]
    listen: SocketAddr,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "netboot http: not built yet (would serve {} on {})",
        args.root.display(),
        args.listen
    )
}
