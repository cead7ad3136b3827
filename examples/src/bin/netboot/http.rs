//! `netboot http`: the http server alone.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use pxe_http::{BootService, ServeConfig};
use pxe_policy::{BootEveryone, LinuxBoot};

/// Flags of `netboot http`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory to serve.
    #[arg(long)]
    root: PathBuf,
    /// Address and port to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Answer script requests (at --script-path) by booting this kernel URL on every client.
    #[arg(long)]
    kernel: Option<String>,
    /// Initrd URLs for --kernel, in load order.
    #[arg(long, requires = "kernel")]
    initrd: Vec<String>,
    /// Kernel command line for --kernel, passed exactly.
    #[arg(long, requires = "kernel", default_value = "")]
    cmdline: String,
    /// Path of the script endpoint.
    #[arg(long, default_value = "/boot.ipxe")]
    script_path: String,
    /// Seconds a connection may take to send request headers (and may sit idle).
    #[arg(long, default_value_t = 30)]
    header_timeout: u64,
    /// Seconds a response write may make no progress before the connection is dropped (also
    /// the period over which --min-send-rate is checked).
    #[arg(long, default_value_t = 60)]
    write_timeout: u64,
    /// Bytes per second a client must at least read a response at (measured over the time
    /// the server waits on it); slower clients are dropped. 0 only checks for progress.
    #[arg(long, default_value_t = ServeConfig::default().min_send_rate)]
    min_send_rate: u64,
    /// Most connections held at once; more are closed at once. Keep it below half of the
    /// file descriptor limit (`ulimit -n`; netboot raises its soft limit to the hard one, up
    /// to 65536, at start).
    #[arg(long, default_value_t = ServeConfig::default().max_connections)]
    max_connections: usize,
    /// Most connections one client address holds at once; more are closed at once.
    #[arg(long, default_value_t = ServeConfig::default().max_connections_per_client)]
    max_connections_per_client: usize,
    /// Bytes of small files (64 KiB or less each) kept in memory (or, above 16 KiB, kept
    /// open for `sendfile`), each request for one checked with a single `stat`; 0 turns it
    /// off.
    #[arg(long, default_value_t = pxe_http::DEFAULT_FILE_CACHE)]
    file_cache_bytes: usize,
    /// Threads that serve connections, accepting from one listening socket (default: one
    /// per CPU).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// Serve Prometheus metrics (requests by route and status, bytes, policy decision time)
    /// at `http://ADDR:PORT/metrics` [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = BootService::builder()
        .root(&args.root)
        .script_path(args.script_path.clone())
        .file_cache(args.file_cache_bytes);
    let metrics = crate::allinone::metrics_endpoint(args.metrics).await?;
    if let Some(metrics) = &metrics {
        builder = builder.observer(metrics.http_observer());
    }
    if let Some(kernel) = &args.kernel {
        let mut linux = LinuxBoot::new(kernel.clone()).cmdline(args.cmdline.clone());
        for initrd in &args.initrd {
            linux = linux.initrd(initrd.clone());
        }
        let policy = BootEveryone(linux);
        builder = match &metrics {
            Some(metrics) => builder.policy(metrics.timed(policy)),
            None => builder.policy(policy),
        };
    }
    let service = builder.build()?;
    let config = ServeConfig::default()
        .header_timeout(Duration::from_secs(args.header_timeout))
        .write_timeout(Duration::from_secs(args.write_timeout))
        .min_send_rate(args.min_send_rate)
        .max_connections(args.max_connections)
        .max_connections_per_client(args.max_connections_per_client);
    // Standalone, the server gets threads of its own (one runtime each, like nginx's
    // workers) rather than sharing this multi-threaded runtime: see
    // `pxe_http::serve_on_threads`.
    let threads = args.threads.unwrap_or_else(crate::settings::one_per_cpu);
    let server = match pxe_http::serve_on_threads(args.listen, service, config, threads) {
        Ok(server) => server,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot listen on {}: address in use (is another server running on it?)",
            args.listen
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot listen on {}", args.listen))
        }
    };
    tracing::info!(
        root = %args.root.display(),
        listen = %server.local_addr(),
        threads,
        "serving boot files over http"
    );
    tokio::task::spawn_blocking(move || server.join()).await?;
    Ok(())
}
