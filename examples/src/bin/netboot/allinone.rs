//! The all-in-one server over the `pxe` library: resolved [`Settings`] become a
//! [`pxe::ServerBuilder`], and the server runs until a part fails or Ctrl-C. `netboot boot`,
//! `serve` and `dhcp` differ only in the policy, the files they add and what they leave out.

use anyhow::Context as _;
use pxe::dhcp::proto::Quirks;
use pxe::http::ServeConfig;
use std::path::PathBuf;

use pxe::policy::{Loader, SharedPolicy};
use pxe::{DhcpMode, LoaderFiles, PxelinuxFiles, ServerBuilder, ShimGrubFiles};

use crate::settings::{DhcpChoice, Settings};

/// The library's builder for these settings (TFTP and HTTP included; callers take out what
/// they do not serve).
pub(crate) fn builder(settings: &Settings, policy: SharedPolicy) -> ServerBuilder {
    let mut builder = pxe::Server::builder(policy)
        .dhcp(match settings.dhcp {
            DhcpChoice::Off => DhcpMode::Off,
            DhcpChoice::Proxy => DhcpMode::Proxy,
            DhcpChoice::Authoritative => DhcpMode::Authoritative(settings.subnets.clone()),
        })
        .chainload_rom_ipxe(settings.chainload_ipxe_rom)
        .ipxe_dir(&settings.ipxe_dir)
        .tftp(
            settings.tftp_port,
            // netboot is the machine's boot server: it polls and follows CPUs (documented in
            // ARCHITECTURE.md); the library does neither unless asked.
            pxe::tftp::ServerConfig {
                ports: settings.tftp_ports.clone(),
                ..pxe::tftp::ServerConfig::dedicated()
            },
        )
        .http_port(settings.http_port, ServeConfig::default())
        // Like `netboot http`: threads of its own, one runtime each (pxe_http::serve_on_threads).
        .http_threads(settings.http_threads)
        .ipv6_router_advertisements(settings.ipv6_ra);
    if let Some(listen) = settings.listen {
        builder = builder.listen(listen);
    }
    if let Some(interface) = &settings.interface {
        builder = builder.interface(interface.clone());
    }
    if let Some(root) = &settings.root {
        builder = builder.http_root(root);
    }
    if let Some(strategy) = settings.proxy_strategy {
        builder = builder.proxy_strategy(strategy);
    }
    for (mac, strategy) in &settings.client_strategies {
        let mut quirks = Quirks::default();
        quirks.proxy_strategy = strategy.or(settings.proxy_strategy);
        builder = builder.client_quirks(*mac, quirks);
    }
    for reservation in &settings.reservations {
        builder = builder.reservation(reservation.clone());
    }
    if let Some(hold) = settings.offer_hold {
        builder = builder.offer_hold(hold);
    }
    if let Some(path) = &settings.lease_file {
        builder = builder.lease_file(path.clone());
    }
    if let Some(store) = &settings.lease_store {
        builder = builder.lease_store(store.clone());
    }
    builder
}

/// Waits until the lease database (`--lease-store`) answers and has its schema, saying so
/// once and retrying every 2 s; at once without one.
pub(crate) async fn wait_for_lease_store(settings: &Settings) {
    if let Some(store) = &settings.lease_store {
        tracing::info!(database = %store.target(), "leases in PostgreSQL");
        store.wait_until_ready().await;
    }
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

/// Starts `builder`, logs what it serves where, and serves until a part fails or Ctrl-C.
pub(crate) async fn run(settings: &Settings, builder: ServerBuilder) -> anyhow::Result<()> {
    let builder = match metrics_endpoint(settings.metrics).await? {
        Some(metrics) => builder.metrics(metrics),
        None => builder,
    };
    wait_for_lease_store(settings).await;
    let server = builder.start().await?;
    let show = |addr: Option<std::net::SocketAddr>| {
        addr.map_or_else(|| "off".to_string(), |addr| addr.to_string())
    };
    tracing::info!(
        dhcp = %dhcp_ports(settings),
        tftp = %show(server.tftp_addr()),
        http = %show(server.http_addr()),
        script = %server.script_url(),
        ipxe_dir = %settings.ipxe_dir.display(),
        root = %settings.root.as_ref().map_or_else(|| "none".to_string(), |r| r.display().to_string()),
        "netboot serving"
    );
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("stopping on Ctrl-C");
            stop.shutdown();
        }
    });
    server.run().await.context("netboot stopped")
}

/// With `--metrics ADDR:PORT`: new metrics, served at `http://ADDR:PORT/metrics` on this
/// runtime from now on (the port is bound here, so a taken one stops netboot at start).
pub(crate) async fn metrics_endpoint(
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<pxe::Metrics>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(url = %format!("http://{bound}/metrics"), "prometheus metrics");
    let metrics = pxe::Metrics::new();
    let serving = metrics.clone();
    tokio::spawn(async move {
        if let Err(error) = serving.serve(listener).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(Some(metrics))
}

/// Where the loaders other than iPXE are (`netboot boot --loader`, a table's `loader = …`).
#[derive(Debug, clap::Args)]
pub(crate) struct LoaderDirs {
    /// Where `shimx64.efi.signed` is (Debian package shim-signed).
    #[arg(long, default_value = "/usr/lib/shim")]
    shim_dir: PathBuf,
    /// Where `grubnetx64.efi.signed` is (Debian package grub-efi-amd64-signed).
    #[arg(long, default_value = "/usr/lib/grub/x86_64-efi-signed")]
    grub_dir: PathBuf,
    /// Where `pxelinux.0` is (Debian package pxelinux).
    #[arg(long, default_value = "/usr/lib/PXELINUX")]
    pxelinux_dir: PathBuf,
    /// Where `ldlinux.c32` is (Debian package syslinux-common).
    #[arg(long, default_value = "/usr/lib/syslinux/modules/bios")]
    syslinux_dir: PathBuf,
}

impl LoaderDirs {
    /// The files of `loaders` (iPXE needs none), for `ServerBuilder::loaders`; `None` when only
    /// iPXE is used.
    pub(crate) fn files(&self, loaders: &[Loader]) -> Option<LoaderFiles> {
        let files = LoaderFiles {
            shim_grub: loaders
                .contains(&Loader::Grub)
                .then(|| ShimGrubFiles::in_dirs(&self.shim_dir, &self.grub_dir)),
            pxelinux: loaders
                .contains(&Loader::Pxelinux)
                .then(|| PxelinuxFiles::in_dirs(&self.pxelinux_dir, &self.syslinux_dir)),
        };
        (files.shim_grub.is_some() || files.pxelinux.is_some()).then_some(files)
    }
}
