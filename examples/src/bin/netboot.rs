//! `netboot`: the all-in-one network-boot server.
//!
//! The protocol servers are being built; until they land this binary only says so.

use clap::Parser;

/// The all-in-one PXE / iPXE network-boot server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "netboot: the all-in-one server is not built yet; see README.md for what works today"
    )
}
