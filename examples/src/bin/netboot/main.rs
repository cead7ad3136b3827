//! `netboot`: the all-in-one network-boot server, and each protocol on its own.
//!
//! - `netboot boot KERNEL [INITRD…] --cmdline "…"`: DHCP + TFTP + HTTP, every client boots
//!   that kernel.
//! - `netboot serve --config FILE`: DHCP + TFTP + HTTP, clients matched against a TOML table.
//! - `netboot tftp --root DIR --listen ADDR:PORT`: the TFTP server alone.
//! - `netboot http --root DIR --listen ADDR:PORT`: the HTTP boot-file server alone.
//!
//! Each subcommand lives in its own module.

mod allinone;
mod boot;
mod http;
mod ra;
mod serve;
mod tftp;

use std::io::IsTerminal as _;

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
    /// Boot every client into one kernel: DHCP, TFTP (iPXE) and HTTP (script, kernel, initrds).
    Boot(boot::Args),
    /// Boot clients by a table of groups and profiles (TOML).
    Serve(serve::Args),
    /// Serve a directory over TFTP, read-only.
    Tftp(tftp::Args),
    /// Serve a directory of boot files over HTTP.
    Http(http::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // Colour only for a person at a terminal, not in log files.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Some(Command::Boot(args)) => boot::run(args).await,
        Some(Command::Serve(args)) => serve::run(args).await,
        Some(Command::Tftp(args)) => tftp::run(args).await,
        Some(Command::Http(args)) => http::run(args).await,
        None => anyhow::bail!(
            "netboot: choose a mode: `netboot boot KERNEL [INITRD…]` or `netboot serve --config \
             FILE` (or `tftp` / `http` alone); `netboot --help` says more, and `bash \
             scripts/demo` boots a VM end to end"
        ),
    }
}

/// Parses `FIRST-LAST` (a pool of addresses, a range of ports) with FIRST <= LAST.
fn parse_span<T>(text: &str) -> Result<(T, T), String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: expected FIRST-LAST"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<T>()
            .map_err(|e| format!("{:?}: {e}", part.trim()))
    };
    let (first, last) = (parse(first)?, parse(last)?);
    if first > last {
        return Err(format!("{first} comes after {last}"));
    }
    Ok((first, last))
}
