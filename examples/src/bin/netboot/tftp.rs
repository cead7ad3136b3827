//! `netboot tftp`: the TFTP server alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use pxe_tftp::{Directory, Rollover, Server, ServerConfig, TransferConfig};

use crate::settings::{port_mode, PortSpan};

/// Flags of `netboot tftp`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory to serve (nothing outside it is ever read).
    #[arg(long)]
    root: PathBuf,
    /// Address and port to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Largest block size granted (RFC 2348); 1468 fits a 1500-byte MTU.
    #[arg(long, default_value_t = 1468, value_parser = clap::value_parser!(u16).range(8..=65464))]
    max_blksize: u16,
    /// Largest window granted (RFC 7440).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    max_windowsize: u16,
    /// Retransmission timeout in milliseconds when the client negotiates none.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions before a silent client's transfer is dropped.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Largest `timeout` option (seconds) granted to a client; a larger one is left out of
    /// the OACK and --timeout-ms applies.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=255))]
    max_client_timeout_secs: u64,
    /// Seconds a transfer may wait for its client's first ACK before it is dropped.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    first_ack_limit_secs: u64,
    /// Seconds a transfer may go without progress before it is dropped.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    stall_limit_secs: u64,
    /// Block number after 65535: 0 or 1.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    rollover: u8,
    /// Serve every transfer from the listening port (told apart by client address).
    #[arg(long, conflicts_with = "port_range")]
    single_port: bool,
    /// Take transfer ports from this range, e.g. `50000-50999`.
    #[arg(long)]
    port_range: Option<PortSpan>,
    /// Most concurrent transfers overall; when all are taken, a new request takes the place
    /// of the oldest transfer whose client has acknowledged nothing.
    #[arg(long, default_value_t = 4096)]
    max_transfers: usize,
    /// Most concurrent transfers per client address.
    #[arg(long, default_value_t = 16)]
    max_per_client: usize,
    /// Match file names case-insensitively when no exact match exists.
    #[arg(long)]
    case_insensitive: bool,
    /// Microseconds a lock-step transfer polls for the next ACK before sleeping (0: never).
    #[arg(long, default_value_t = 50)]
    lock_step_poll_us: u64,
    /// Microseconds a windowed transfer polls for the next ACK before sleeping (0: never),
    /// and with --follow-cpu only while it cannot run on the CPU its client's ACKs arrive
    /// on. Off by default: it costs more CPU per MiB than it gains (scripts/bench-tftp).
    #[arg(long, default_value_t = 0)]
    windowed_poll_us: u64,
    /// Move a windowed transfer's thread (or a lock-step one that does not poll) to the CPU
    /// its client's ACKs arrive on, one transfer per CPU, instead of leaving it where the
    /// scheduler puts it.
    #[arg(long)]
    follow_cpu: bool,
    /// Serve Prometheus metrics (TFTP transfers, refusals, bytes) at
    /// `http://ADDR:PORT/metrics` [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let source = Directory::new(&args.root)
        .with_context(|| format!("cannot serve {}", args.root.display()))?
        .case_insensitive(args.case_insensitive);
    let ports = port_mode(args.single_port, args.port_range);
    let config = ServerConfig {
        transfer: TransferConfig {
            max_blksize: args.max_blksize,
            max_windowsize: args.max_windowsize,
            timeout: Duration::from_millis(args.timeout_ms.max(1)),
            max_retries: args.retries,
            max_negotiated_timeout: Duration::from_secs(args.max_client_timeout_secs),
            first_ack_limit: Duration::from_secs(args.first_ack_limit_secs),
            stall_limit: Duration::from_secs(args.stall_limit_secs),
            rollover: if args.rollover == 1 {
                Rollover::ToOne
            } else {
                Rollover::ToZero
            },
        },
        ports,
        max_transfers: args.max_transfers,
        max_transfers_per_client: args.max_per_client,
        lock_step_poll: Duration::from_micros(args.lock_step_poll_us),
        windowed_poll: Duration::from_micros(args.windowed_poll_us),
        follow_peer_cpu: args.follow_cpu,
        observer: crate::allinone::metrics_endpoint(args.metrics)
            .await?
            .map(|metrics| metrics.tftp_observer()),
        ..ServerConfig::default()
    };
    let server = Server::bind(args.listen, source, config)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %server.local_addr(), root = %args.root.display(), "tftp serving");
    // One thread for every transfer: lock-step speed is wakeup latency (see the method).
    server.run_on_own_thread().await?;
    Ok(())
}
