//! `netboot serve`: decide per client from a site file (`--config FILE`: a TOML table of
//! groups and profiles, see `pxe_policy::table`, plus the server settings in `[server]`) or by
//! asking an external service (`--delegate URL`, see `pxe_policy::delegate`). Boot files
//! named by relative URLs come from `--root`. `netboot check` runs the same checks without
//! serving.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use pxe::http::HttpDelegate;
use pxe::policy::delegate::DelegatePolicy;
use pxe::policy::table::TablePolicy;
use pxe::policy::{ScriptDecision, SharedPolicy};

use crate::allinone;
use crate::settings::{site_server_flags, ServerFlags, Settings};

/// Flags of `netboot serve` and `netboot check`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("policy").required(true).args(["config", "delegate"])))]
pub(crate) struct Args {
    /// The site file: groups and profiles (the table format of `pxe_policy::table`; see
    /// examples/site.toml), and optionally a `[server]` table with these flags' settings
    /// (`--foo-bar` is `foo_bar`). Flags given here win over the file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Ask this service per client instead: `http://host:port/path`. netboot POSTs one JSON
    /// object per question, `{"stage": "boot"|"script", "mac", "kind", "arch", "guid",
    /// "serial", "asset", "manufacturer", "product", "hostname", "vendor_class", "user_class",
    /// "ip", "ipxe_features",
    /// "https", "relay", "extra"}`: at the DHCP stage ("boot") and when iPXE fetches its
    /// script ("script"). The answer has the shape of a table profile: one of `kernel` (with
    /// `initrds`, `cmdline`), `chain`, `sanboot` or `action` ("exit", "ignore"). When the
    /// service fails or is slow, the client boots from its disk.
    #[arg(long)]
    delegate: Option<String>,
    /// How long the delegate may take per question before the fallback is used.
    #[arg(long, default_value_t = 2000)]
    delegate_timeout_ms: u64,
    #[command(flatten)]
    loader_dirs: allinone::LoaderDirs,
    #[command(flatten)]
    server: ServerFlags,
}

/// A policy and settings that passed every check start-up can make.
pub(crate) struct Prepared {
    pub(crate) settings: Settings,
    pub(crate) policy: SharedPolicy,
    /// One line on where decisions come from, for logs and `netboot check`.
    pub(crate) source: String,
    /// The loaders' files the table's profiles need (`loader = …`).
    pub(crate) loaders: Option<pxe::LoaderFiles>,
}

/// Loads and checks the policy and the settings.
pub(crate) fn prepare(args: Args) -> anyhow::Result<Prepared> {
    match (&args.config, &args.delegate) {
        (Some(config), _) => {
            let settings = args.server.over(site_server_flags(config)?).resolve()?;
            let table = TablePolicy::load(config)?;
            let mut urls = Vec::new();
            let mut profiles = 0;
            for (name, decision) in table.profile_decisions() {
                profiles += 1;
                let owner = format!("profile {name:?}");
                match decision {
                    ScriptDecision::Linux(linux) => {
                        urls.push((owner.clone(), linux.kernel.clone()));
                        for initrd in &linux.initrds {
                            urls.push((owner.clone(), initrd.clone()));
                        }
                    }
                    ScriptDecision::Chain(url) | ScriptDecision::Sanboot(url) => {
                        urls.push((owner, url.clone()));
                    }
                    _ => {}
                }
            }
            settings.check_served_urls(urls.iter().map(|(o, u)| (o.as_str(), u.as_str())))?;
            Ok(Prepared {
                settings,
                loaders: args.loader_dirs.files(&table.loaders()),
                policy: SharedPolicy::new(table),
                source: format!("table {} ({profiles} profiles)", config.display()),
            })
        }
        (None, Some(url)) => {
            let settings = args.server.resolve()?;
            let timeout = Duration::from_millis(args.delegate_timeout_ms);
            // When the service cannot answer, a client boots from its disk: the safe default
            // for a machine that may already be installed.
            let delegate =
                HttpDelegate::new(url, timeout).with_context(|| format!("--delegate {url:?}"))?;
            Ok(Prepared {
                settings,
                policy: SharedPolicy::new(DelegatePolicy::new(
                    delegate,
                    ScriptDecision::ExitToDisk,
                )),
                source: format!(
                    "delegate {url} (timeout {timeout:?}; on failure clients boot from disk)"
                ),
                loaders: None,
            })
        }
        (None, None) => anyhow::bail!("netboot serve needs --config FILE or --delegate URL"),
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let prepared = prepare(args)?;
    tracing::info!("serving clients by {}", prepared.source);
    let mut builder = allinone::builder(&prepared.settings, prepared.policy);
    if let Some(files) = prepared.loaders {
        builder = builder.loaders(files);
    }
    allinone::run(&prepared.settings, builder).await
}

/// `netboot check`: every check `serve` makes at start, then a summary; binds nothing.
pub(crate) fn check(args: Args) -> anyhow::Result<()> {
    let prepared = prepare(args)?;
    let settings = &prepared.settings;
    let mut builder = allinone::builder(settings, prepared.policy.clone());
    if let Some(files) = prepared.loaders.clone() {
        builder = builder.loaders(files);
    }
    builder.check()?;
    let listen = settings
        .listen
        .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
    println!("decisions: {}", prepared.source);
    println!("dhcp: {}", allinone::dhcp_ports(settings));
    for subnet in &settings.subnets {
        println!(
            "  subnet {}/{}: pool {}-{}, router {}, dns [{}], domain {}, lease {} s",
            subnet.network,
            subnet.prefix_len,
            subnet.pool_start,
            subnet.pool_end,
            subnet
                .router
                .map_or_else(|| "none".to_string(), |r| r.to_string()),
            subnet
                .dns_servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            subnet.domain_name.as_deref().unwrap_or("none"),
            subnet.lease_time.as_secs()
        );
    }
    for reservation in &settings.reservations {
        println!(
            "  reserve {} = {}{}",
            reservation.mac.map_or_else(String::new, |m| m.to_string()),
            reservation.ip,
            reservation
                .host_name
                .as_ref()
                .map_or_else(String::new, |n| format!(" ({n})"))
        );
    }
    println!(
        "tftp: UDP {listen}:{} serving {}",
        settings.tftp_port,
        settings.ipxe_dir.display()
    );
    println!(
        "http: TCP {listen}:{} serving {}",
        settings.http_port,
        settings
            .root
            .as_ref()
            .map_or_else(|| "no --root".to_string(), |r| r.display().to_string())
    );
    println!("ok: netboot serve would start with these settings");
    Ok(())
}
