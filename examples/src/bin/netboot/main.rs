//! `netboot`: the all-in-one network-boot server, and each protocol on its own.
//!
//! - `netboot boot KERNEL [INITRD…] --cmdline "…"`: DHCP + TFTP + HTTP, every client boots
//!   that kernel.
//! - `netboot serve --config FILE`: DHCP + TFTP + HTTP, clients matched against a TOML table
//!   (the site file, which may also carry the server settings in `[server]`).
//! - `netboot check --config FILE`: the checks `serve` makes at start, without serving.
//! - `netboot dhcp`: the DHCP server alone.
//! - `netboot tftp --root DIR --listen ADDR:PORT`: the TFTP server alone.
//! - `netboot http --root DIR --listen ADDR:PORT`: the HTTP boot-file server alone.
//!
//! Each subcommand lives in its own module.

mod allinone;
mod boot;
mod dhcp;
mod http;
mod serve;
mod settings;
mod tftp;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// netboot: a network-boot server for PXE, iPXE and UEFI HTTP Boot clients.
#[derive(Debug, Parser)]
#[command(
    name = "netboot",
    version,
    about = "netboot: a network-boot server for PXE, iPXE and UEFI HTTP Boot clients",
    long_about = "netboot: a network-boot server for PXE, iPXE and UEFI HTTP Boot clients.\n\n\
        `boot` and `serve` run DHCP (proxy beside the site's DHCP server, or authoritative), \
        TFTP for the iPXE binaries and HTTP for iPXE scripts and boot files, all from one \
        policy. Firmware gets iPXE over TFTP (or HTTP for UEFI HTTP Boot), iPXE gets a script \
        over HTTP, the script loads the kernel and initrds.\n\n\
        Ports: UDP 67 and 4011 (DHCP, proxyDHCP), UDP 69 (TFTP), TCP 80 (HTTP). Binding them \
        needs root, or CAP_NET_BIND_SERVICE plus CAP_NET_RAW (DHCP binds to --interface) and \
        CAP_NET_ADMIN (authoritative replies to clients without an address).\n\n\
        Logs: RUST_LOG=debug shows why each packet was answered or not; RUST_LOG=info (the \
        default) shows each client's stages.\n\n\
        Try it in a VM first: `bash scripts/demo` in the source tree boots one through \
        netboot inside a network namespace."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot every client into one kernel: DHCP, TFTP (iPXE) and HTTP (script, kernel,
    /// initrds).
    Boot(boot::Args),
    /// Boot clients by a site file (groups and profiles in TOML, see examples/site.toml) or
    /// by asking an external service (--delegate).
    Serve(serve::Args),
    /// Check a site file and settings as `serve` would at start, print what would be served,
    /// and exit (binds nothing).
    Check(serve::Args),
    /// Serve DHCP alone (proxy or authoritative), pointing clients at TFTP and HTTP on
    /// --listen.
    Dhcp(dhcp::Args),
    /// Serve a directory over TFTP, read-only.
    Tftp(tftp::Args),
    /// Serve a directory of boot files over HTTP.
    Http(http::Args),
}

/// RUST_LOG, or `info`. The lease database's connection pool warns once per connection it
/// loses (sixteen lines for one outage): quiet unless RUST_LOG names it, since the DHCP
/// server says once, itself, that the lease store is unreachable and again when it is back.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let wanted = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match "deadpool=error".parse() {
        Ok(quiet) if !wanted.contains("deadpool") => filter.add_directive(quiet),
        _ => filter,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // Colour only for a person at a terminal, not in log files.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(log_filter())
        .init();
    raise_open_file_limit();
    let result = match Cli::parse().command {
        Some(Command::Boot(args)) => boot::run(args).await,
        Some(Command::Serve(args)) => serve::run(args).await,
        Some(Command::Check(args)) => serve::check(args),
        Some(Command::Dhcp(args)) => dhcp::run(args).await,
        Some(Command::Tftp(args)) => tftp::run(args).await,
        Some(Command::Http(args)) => http::run(args).await,
        None => Err(anyhow::anyhow!(
            "choose a mode: `netboot boot KERNEL [INITRD…]` or `netboot serve --config \
             FILE` (or `dhcp` / `tftp` / `http` alone); `netboot --help` says more, and `bash \
             scripts/demo` boots a VM end to end"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, every cause after a colon: a configuration error is not a crash.
            eprintln!("netboot: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The most open files `netboot` asks for: a few thousand connections and transfers with a
/// file each, without a limit so high that tools walking every descriptor slow down.
const OPEN_FILES_WANTED: u64 = 65_536;

/// Raises the soft limit on open files toward the hard one (as Go programs do at start):
/// the usual soft limit of 1024 is what HTTP's 512 connections, each with a file open, and
/// the file cache's open files already come close to. The library never does this; the
/// binary is a server of its own. A failure leaves the limit as it was.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let wanted = hard.min(OPEN_FILES_WANTED);
    if soft < wanted {
        match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
            Ok(()) => tracing::debug!(from = soft, to = wanted, "open-file limit raised"),
            Err(error) => tracing::debug!(%error, soft, "open-file limit left as it was"),
        }
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
