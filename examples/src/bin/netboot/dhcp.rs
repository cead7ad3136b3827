//! `netboot dhcp`: the DHCP server alone (proxy or authoritative), pointing clients at TFTP
//! and HTTP servers on --listen (or on this host).

use std::path::PathBuf;

use anyhow::Context as _;
use pxe::policy::table::TablePolicy;
use pxe::policy::{ClientFacts, Policy, ScriptDecision, SharedPolicy};

use crate::allinone;
use crate::settings::{site_server_flags, DhcpChoice, ServerFlags};

/// Flags of `netboot dhcp`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A site file: its table decides which clients are ignored and which iPXE build each
    /// gets, its `[server]` table holds these flags' settings. Without it every network-boot
    /// client is sent to iPXE and the script URL.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    server: ServerFlags,
}

/// Without a table: every client gets iPXE and the script URL (the DHCP stage's default).
struct ChainloadEveryone;

impl Policy for ChainloadEveryone {
    /// Not asked: `netboot dhcp` serves no scripts. Should an embedder reuse it, booting from
    /// disk is the safe answer.
    fn script<'a>(
        &'a self,
        _client: &'a ClientFacts,
    ) -> impl std::future::Future<Output = ScriptDecision> + Send + 'a {
        std::future::ready(ScriptDecision::ExitToDisk)
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let (flags, policy) = match &args.config {
        Some(path) => (
            args.server.over(site_server_flags(path)?),
            SharedPolicy::new(TablePolicy::load(path)?),
        ),
        None => (args.server, SharedPolicy::new(ChainloadEveryone)),
    };
    let settings = flags.resolve()?;
    anyhow::ensure!(
        settings.dhcp != DhcpChoice::Off,
        "netboot dhcp with --dhcp off would serve nothing"
    );
    let metrics = allinone::metrics_endpoint(settings.metrics).await?;
    allinone::wait_for_lease_store(&settings).await;
    let mut builder = allinone::builder(&settings, policy);
    if let Some(metrics) = &metrics {
        builder = builder.metrics(metrics.clone());
    }
    let server = builder
        .into_dhcp_server()
        .context("dhcp is off")?
        .bind()
        .await
        .context("dhcp: cannot start")?;
    if let (Some(metrics), Some(store)) = (&metrics, server.lease_store()) {
        metrics.watch_leases(store, server.subnets());
    }
    tracing::info!(
        dhcp = %allinone::dhcp_ports(&settings),
        "netboot dhcp serving"
    );
    tokio::select! {
        result = server.run() => result.context("dhcp"),
        result = tokio::signal::ctrl_c() => {
            result.context("waiting for Ctrl-C")?;
            tracing::info!("stopping on Ctrl-C");
            Ok(())
        }
    }
}
