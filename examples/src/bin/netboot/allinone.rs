//! The all-in-one server: DHCP (proxy or authoritative), TFTP for the iPXE binaries, and HTTP
//! for scripts and boot files, all asking one policy. `netboot boot` and `netboot serve` differ
//! only in the policy and the files they add.

use std::net::SocketAddr;

use anyhow::Context as _;
use pxe_dhcp::proto::Quirks;
use pxe_dhcp::server::{DhcpServer, DhcpServerBuilder};
use pxe_http::{BootService, BootServiceBuilder, ServeConfig};
use pxe_policy::{ClientMemory, IpxeBinary, SharedPolicy};
use pxe_tftp::{Directory, ServerConfig};

use crate::settings::{DhcpChoice, Settings};

/// The URL path iPXE fetches its script from.
pub(crate) const SCRIPT_PATH: &str = "/boot.ipxe";
/// The URL prefix of the iPXE binaries (UEFI HTTP Boot fetches them there).
const IPXE_PREFIX: &str = "/ipxe/";

/// Warns about iPXE binaries missing from --ipxe-dir, and fails when the directory is.
pub(crate) fn check_ipxe_dir(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.ipxe_dir.is_dir(),
        "the iPXE directory {} does not exist: install Debian's `ipxe` package or pass --ipxe-dir",
        settings.ipxe_dir.display()
    );
    for (binary, clients) in [
        (IpxeBinary::UNDIONLY, "BIOS"),
        (IpxeBinary::SNPONLY_EFI, "x64 UEFI"),
    ] {
        if !settings.ipxe_dir.join(binary.file_name()).is_file() {
            tracing::warn!(
                "{binary} is not in {}: {clients} clients will fail to load iPXE (install \
                 Debian's `ipxe` package or point --ipxe-dir at a directory that has it)",
                settings.ipxe_dir.display()
            );
        }
    }
    Ok(())
}

/// The DHCP server for `settings` (not yet bound), or `None` with `--dhcp off`.
pub(crate) fn dhcp_builder(settings: &Settings, policy: SharedPolicy) -> Option<DhcpServerBuilder> {
    if settings.dhcp == DhcpChoice::Off {
        return None;
    }
    let base = settings.http_base();
    let mut builder = DhcpServer::builder(policy)
        .script_url(format!("{base}{SCRIPT_PATH}"))
        .http_boot_base(format!("{base}{IPXE_PREFIX}"))
        .chainload_rom_ipxe(settings.chainload_ipxe_rom);
    if let Some(listen) = settings.listen {
        builder = builder.tftp_server(listen);
    }
    if let Some(interface) = &settings.interface {
        builder = builder.interface(interface.clone());
    }
    if let Some(strategy) = settings.proxy_strategy {
        builder = builder.proxy_strategy(strategy);
    }
    for (mac, strategy) in &settings.client_strategies {
        let mut quirks = Quirks::default();
        quirks.proxy_strategy = strategy.or(settings.proxy_strategy);
        builder = builder.quirks(*mac, quirks);
    }
    if settings.dhcp == DhcpChoice::Authoritative {
        builder = builder.authoritative(settings.subnets.clone());
        for reservation in &settings.reservations {
            builder = builder.reservation(reservation.clone());
        }
        match &settings.lease_file {
            Some(path) => builder = builder.lease_file(path.clone()),
            None => tracing::warn!(
                "leases are kept in memory only (--lease-file keeps them across restarts)"
            ),
        }
    }
    Some(builder)
}

/// What the DHCP server listens on, for the "serving" line.
pub(crate) fn dhcp_ports(settings: &Settings) -> String {
    match settings.dhcp {
        DhcpChoice::Off => "off".to_string(),
        choice => format!(
            "{choice} on UDP 67 and 4011{}",
            settings
                .interface
                .as_ref()
                .map_or_else(String::new, |name| format!(" ({name})"))
        ),
    }
}

/// Runs DHCP, TFTP and HTTP until one fails or Ctrl-C. `http` has the mode's own files and
/// policy; the iPXE directory and the script path are added here.
pub(crate) async fn run(
    settings: Settings,
    policy: SharedPolicy,
    http: BootServiceBuilder,
) -> anyhow::Result<()> {
    check_ipxe_dir(&settings)?;

    let tftp_addr = SocketAddr::new(settings.bind_ip, settings.tftp_port);
    let tftp_config = ServerConfig {
        ports: settings.tftp_ports.clone(),
        ..ServerConfig::default()
    };
    let tftp = pxe_tftp::Server::bind(
        tftp_addr,
        Directory::new(&settings.ipxe_dir)
            .with_context(|| format!("cannot serve {}", settings.ipxe_dir.display()))?,
        tftp_config,
    )
    .await
    .with_context(|| format!("tftp: cannot listen on UDP {tftp_addr}"))?;

    // iPXE tells its features (HTTPS or not) only in DHCP: the memory carries them to the
    // script request, where an https:// URL it cannot fetch is refused.
    let memory = ClientMemory::default();
    let mut http = http
        .mount(IPXE_PREFIX, &settings.ipxe_dir)
        .script_path(SCRIPT_PATH)
        .policy(policy.clone())
        .client_memory(memory.clone());
    if let Some(root) = &settings.root {
        http = http.root(root);
    }
    let service: BootService = http.build().context("http: cannot serve the boot files")?;
    let http_addr = SocketAddr::new(settings.bind_ip, settings.http_port);
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("http: cannot listen on TCP {http_addr}"))?;

    let dhcp = match dhcp_builder(&settings, SharedPolicy::new(memory.remembering(policy))) {
        Some(builder) => Some(builder.bind().await.context("dhcp: cannot start")?),
        None => None,
    };

    let announcer = match (&settings.interface, settings.ipv6_ra) {
        (Some(interface), true) => Some(
            crate::ra::RouterAnnouncer::bind(interface)
                .context("ipv6-ra: cannot announce (--ipv6-ra)")?,
        ),
        _ => None,
    };

    let base = settings.http_base();
    tracing::info!(
        dhcp = %dhcp_ports(&settings),
        tftp = %tftp.local_addr(),
        http = %listener.local_addr()?,
        script = %format!("{base}{SCRIPT_PATH}"),
        ipxe_dir = %settings.ipxe_dir.display(),
        root = %settings.root.as_ref().map_or_else(|| "none".to_string(), |r| r.display().to_string()),
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
