//! `netboot`: the all-in-one network-boot server, and each protocol on its own.
//!
//! - `netboot tftp --root DIR --listen ADDR:PORT`: the TFTP server alone.
//! - `netboot http --root DIR --listen ADDR:PORT`: the HTTP boot-file server alone.
//!
//! Each subcommand lives in its own module.

mod http;
mod tftp;

use clap::{Parser, Subcommand};

/// The all-in-one PXE / iPXE network-boot server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a directory over TFTP, read-only.
    Tftp(tftp::Args),
    /// Serve a directory of boot files over HTTP.
    Http(http::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Some(Command::Tftp(args)) => tftp::run(args).await,
        Some(Command::Http(args)) => http::run(args).await,
        None => anyhow::bail!(
            "netboot: the all-in-one server is not built yet; `netboot tftp` and `netboot http` \
             run each protocol alone (see --help)"
        ),
    }
}
