//! The all-in-one server: DHCP (proxy or authoritative), TFTP for the iPXE binaries, and HTTP
//! for scripts and boot files, all asking one policy. `netboot boot` and `netboot serve` differ
//! only in the policy and the files they add.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use pxe_dhcp::lease::Subnet;
use pxe_dhcp::server::DhcpServer;
use pxe_http::{BootService, BootServiceBuilder, ServeConfig};
use pxe_policy::{ClientMemory, IpxeBinary, SharedPolicy};
use pxe_tftp::{Directory, ServerConfig};

/// How DHCP is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DhcpChoice {
    /// proxyDHCP beside the site's DHCP server: boot information only, no addresses.
    Proxy,
    /// The only DHCP server on the segment: addresses from --pool, and boot information.
    Authoritative,
    /// No DHCP at all (another server points clients here).
    Off,
}

/// Flags every all-in-one mode shares.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerFlags {
    /// The address clients are given for TFTP and HTTP (and the address those bind to).
    /// Default: each DHCP reply names the server's address on the client's segment, and
    /// TFTP/HTTP listen on every address.
    #[arg(long)]
    listen: Option<Ipv4Addr>,
    /// Serve DHCP only on this interface.
    #[arg(long)]
    interface: Option<String>,
    /// How DHCP is served.
    #[arg(long, value_enum, default_value_t = DhcpChoice::Proxy)]
    dhcp: DhcpChoice,
    /// Addresses handed out in authoritative mode, `FIRST-LAST`.
    #[arg(long, value_parser = crate::parse_span::<Ipv4Addr>, required_if_eq("dhcp", "authoritative"))]
    pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Prefix length of the pool's subnet.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
    prefix_len: u8,
    /// Default router handed out in authoritative mode.
    #[arg(long)]
    router: Option<Ipv4Addr>,
    /// Keep authoritative leases in this file (crash-safe journal); default: memory only.
    #[arg(long)]
    lease_file: Option<PathBuf>,
    /// Seconds an offered address is held for its client in authoritative mode. A full pool
    /// still offers new clients the oldest pending offer's address, so this only decides how
    /// soon a slow client's offer may be reclaimed.
    #[arg(long, default_value_t = pxe_dhcp::lease::DEFAULT_OFFER_HOLD.as_secs(), value_name = "SECS")]
    dhcp_offer_hold: u64,
    /// Hand iPXE found in a NIC's option ROM our iPXE build too (as firmware PXE gets it),
    /// instead of sending it straight to the script: for old or limited ROM builds.
    #[arg(long)]
    chainload_ipxe_rom: bool,
    /// Where the iPXE binaries are (Debian's `ipxe` package installs /usr/lib/ipxe).
    #[arg(long, default_value = "/usr/lib/ipxe")]
    ipxe_dir: PathBuf,
    /// TFTP port.
    #[arg(long, default_value_t = 69)]
    tftp_port: u16,
    /// HTTP port.
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// Send IPv6 Router Advertisements with router lifetime 0 (no prefixes, no DHCPv6 flags)
    /// on --interface, every 4 s and in answer to each Router Solicitation. iPXE otherwise
    /// waits ~13 s for an IPv6 router on each `dhcp`; this tells it there is none. Off by
    /// default: a server that announces on a site network must be asked to, and a segment
    /// with a real IPv6 router does not need it.
    #[arg(long, requires = "interface")]
    ipv6_ra: bool,
}

impl ServerFlags {
    /// `http://HOST:PORT`, where HOST is --listen or, when the DHCP server fills it in, the
    /// server's address on the client's segment.
    fn http_base(&self) -> String {
        let host = self
            .listen
            .map_or_else(|| "${next-server}".to_string(), |ip| ip.to_string());
        if self.http_port == 80 {
            format!("http://{host}")
        } else {
            format!("http://{host}:{}", self.http_port)
        }
    }

    fn bind_ip(&self) -> IpAddr {
        self.listen
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4)
    }
}

/// The URL path iPXE fetches its script from.
const SCRIPT_PATH: &str = "/boot.ipxe";
/// The URL prefix of the iPXE binaries (UEFI HTTP Boot fetches them there).
const IPXE_PREFIX: &str = "/ipxe/";

/// Runs DHCP, TFTP and HTTP until one fails or Ctrl-C. `http` has the mode's own files and
/// policy; the iPXE directory and the script path are added here.
pub(crate) async fn run(
    flags: ServerFlags,
    policy: SharedPolicy,
    http: BootServiceBuilder,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        flags.ipxe_dir.is_dir(),
        "the iPXE directory {} does not exist: install Debian's `ipxe` package or pass --ipxe-dir",
        flags.ipxe_dir.display()
    );
    for (binary, clients) in [
        (IpxeBinary::UNDIONLY, "BIOS"),
        (IpxeBinary::SNPONLY_EFI, "x64 UEFI"),
    ] {
        if !flags.ipxe_dir.join(binary.file_name()).is_file() {
            tracing::warn!(
                "{binary} is not in {}: {clients} clients will fail to load iPXE (install \
                 Debian's `ipxe` package or point --ipxe-dir at a directory that has it)",
                flags.ipxe_dir.display()
            );
        }
    }

    let tftp_addr = SocketAddr::new(flags.bind_ip(), flags.tftp_port);
    let tftp = pxe_tftp::Server::bind(
        tftp_addr,
        Directory::new(&flags.ipxe_dir)
            .with_context(|| format!("cannot serve {}", flags.ipxe_dir.display()))?,
        ServerConfig::default(),
    )
    .await
    .with_context(|| format!("tftp: cannot listen on {tftp_addr}"))?;

    // iPXE tells its features (HTTPS or not) only in DHCP: the memory carries them to the
    // script request, where an https:// URL it cannot fetch is refused.
    let memory = ClientMemory::default();
    let service: BootService = http
        .mount(IPXE_PREFIX, &flags.ipxe_dir)
        .script_path(SCRIPT_PATH)
        .policy(policy.clone())
        .client_memory(memory.clone())
        .build()
        .context("http: cannot serve the boot files")?;
    let http_addr = SocketAddr::new(flags.bind_ip(), flags.http_port);
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("http: cannot listen on {http_addr}"))?;

    let base = flags.http_base();
    let dhcp = match flags.dhcp {
        DhcpChoice::Off => None,
        choice => {
            let mut builder = DhcpServer::builder(SharedPolicy::new(memory.remembering(policy)))
                .script_url(format!("{base}{SCRIPT_PATH}"))
                .http_boot_base(format!("{base}{IPXE_PREFIX}"))
                .chainload_rom_ipxe(flags.chainload_ipxe_rom);
            if let Some(listen) = flags.listen {
                builder = builder.tftp_server(listen);
            }
            if let Some(interface) = &flags.interface {
                builder = builder.interface(interface.clone());
            }
            if choice == DhcpChoice::Authoritative {
                let (first, last) = flags
                    .pool
                    .context("--dhcp authoritative needs --pool FIRST-LAST")?;
                let mut subnet = Subnet::new(first, flags.prefix_len, first, last);
                subnet.router = flags.router;
                builder = builder
                    .authoritative(vec![subnet])
                    .offer_hold(std::time::Duration::from_secs(flags.dhcp_offer_hold));
                match &flags.lease_file {
                    Some(path) => builder = builder.lease_file(path.clone()),
                    None => tracing::warn!(
                        "leases are kept in memory only (--lease-file keeps them across restarts)"
                    ),
                }
            }
            Some(builder.bind().await.context("dhcp: cannot start")?)
        }
    };

    let announcer = match (&flags.interface, flags.ipv6_ra) {
        (Some(interface), true) => Some(
            crate::ra::RouterAnnouncer::bind(interface)
                .context("ipv6-ra: cannot announce (--ipv6-ra)")?,
        ),
        _ => None,
    };

    tracing::info!(
        dhcp = ?flags.dhcp,
        tftp = %tftp.local_addr(),
        http = %listener.local_addr()?,
        script = %format!("{base}{SCRIPT_PATH}"),
        ipxe_dir = %flags.ipxe_dir.display(),
        "netboot serving"
    );

    let dhcp = async move {
        match dhcp {
            Some(server) => server.run().await.context("dhcp"),
            None => std::future::pending().await,
        }
    };
    let announcer = async move {
        match announcer {
            Some(announcer) => announcer.run().await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        result = dhcp => result,
        () = announcer => anyhow::bail!("the ipv6 announcer stopped"),
        result = tftp.run_on_own_thread() => result.context("tftp"),
        () = pxe_http::serve(listener, service, ServeConfig::default()) => {
            anyhow::bail!("http server stopped")
        }
        result = tokio::signal::ctrl_c() => {
            result.context("waiting for Ctrl-C")?;
            tracing::info!("stopping on Ctrl-C");
            Ok(())
        }
    }
}
