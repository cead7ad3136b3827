//! A provisioning application that embeds pxe: its own inventory decides what each machine
//! boots, and its own HTTP API changes the inventory. Register a machine with a profile and its
//! next network boot follows it; an unregistered machine boots from its disk.
//!
//! One axum server carries both the application's API and pxe's HTTP stage (scripts and boot
//! files); pxe runs DHCP and TFTP.
//!
//! ```sh
//! cargo run -p pxe-examples --example inventory -- --listen 192.0.2.1 --interface br0 \
//!     --kernel vmlinuz --initrd initrd.img \
//!     --profile install="console=ttyS0 auto=true" --profile rescue="console=ttyS0 single"
//! curl -X PUT http://192.0.2.1/api/machines/52:54:00:12:34:56 -d '{"profile":"install"}' \
//!     -H 'content-type: application/json'
//! curl http://192.0.2.1/api/machines
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use clap::Parser;
use pxe::dhcp::lease::Subnet;
use pxe::policy::{ClientFacts, LinuxBoot, MacAddr, Policy, ScriptDecision};
use pxe::{DhcpMode, Server};
use tokio::sync::RwLock;

/// Command line of the example.
#[derive(Debug, Parser)]
struct Args {
    /// The server's address: DHCP names it, the API and HTTP stage listen on it.
    #[arg(long)]
    listen: Ipv4Addr,
    /// The interface DHCP serves.
    #[arg(long)]
    interface: String,
    /// Hand out addresses from this pool (authoritative DHCP, a /24 around it); without it,
    /// proxyDHCP beside the site's DHCP server.
    #[arg(long, value_parser = parse_pool)]
    pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// HTTP port of the API and the boot files.
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// Where Debian's `ipxe` package put the iPXE binaries.
    #[arg(long, default_value = "/usr/lib/ipxe")]
    ipxe_dir: PathBuf,
    /// The kernel every profile boots.
    #[arg(long)]
    kernel: PathBuf,
    /// The initrd every profile boots.
    #[arg(long)]
    initrd: PathBuf,
    /// A profile: `NAME=KERNEL COMMAND LINE`; repeat it.
    #[arg(long = "profile", value_parser = parse_profile, required = true)]
    profiles: Vec<(String, String)>,
    /// Announce "no IPv6 router here" so iPXE does not wait for one (test segments).
    #[arg(long)]
    ipv6_ra: bool,
}

fn parse_pool(text: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (first, last) = text.split_once('-').ok_or("expected FIRST-LAST")?;
    Ok((
        first.parse().map_err(|e| format!("{first}: {e}"))?,
        last.parse().map_err(|e| format!("{last}: {e}"))?,
    ))
}

fn parse_profile(text: &str) -> Result<(String, String), String> {
    let (name, cmdline) = text.split_once('=').ok_or("expected NAME=CMDLINE")?;
    Ok((name.to_string(), cmdline.to_string()))
}

/// The application's inventory: named profiles, and which machine gets which.
struct Inventory {
    /// Profile name → kernel command line.
    profiles: BTreeMap<String, String>,
    /// MAC → profile name. Behind an async lock: the API writes while boots read.
    machines: RwLock<HashMap<MacAddr, String>>,
}

/// The application's policy: what the inventory says, asked at each script request.
struct InventoryPolicy(Arc<Inventory>);

impl Policy for InventoryPolicy {
    async fn script(&self, client: &ClientFacts) -> ScriptDecision {
        let machines = self.0.machines.read().await;
        let profile = machines.get(&client.mac);
        match profile.and_then(|name| self.0.profiles.get(name)) {
            Some(cmdline) => ScriptDecision::Linux(
                LinuxBoot::new("/files/vmlinuz")
                    .initrd("/files/initrd.img")
                    .cmdline(cmdline.clone()),
            ),
            // Not registered (or its profile is gone): leave the machine to its disk.
            None => ScriptDecision::ExitToDisk,
        }
    }
}

#[derive(serde::Deserialize)]
struct Registration {
    profile: String,
}

async fn register(
    State(inventory): State<Arc<Inventory>>,
    Path(mac): Path<String>,
    Json(registration): Json<Registration>,
) -> Result<String, (StatusCode, String)> {
    let mac: MacAddr = mac
        .parse()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{mac}: {e}\n")))?;
    if !inventory.profiles.contains_key(&registration.profile) {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no profile {:?}\n", registration.profile),
        ));
    }
    tracing::info!(%mac, profile = %registration.profile, "registered");
    inventory
        .machines
        .write()
        .await
        .insert(mac, registration.profile.clone());
    Ok(format!("{mac} boots {}\n", registration.profile))
}

async fn list(State(inventory): State<Arc<Inventory>>) -> Json<BTreeMap<String, String>> {
    let machines = inventory.machines.read().await;
    Json(
        machines
            .iter()
            .map(|(mac, profile)| (mac.to_string(), profile.clone()))
            .collect(),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let inventory = Arc::new(Inventory {
        profiles: args.profiles.iter().cloned().collect(),
        machines: RwLock::new(HashMap::new()),
    });

    let http_addr = SocketAddr::from((args.listen, args.http_port));
    let dhcp = match args.pool {
        Some((first, last)) => DhcpMode::Authoritative(vec![Subnet::new(first, 24, first, last)]),
        None => DhcpMode::Proxy,
    };
    let server = Server::builder(InventoryPolicy(Arc::clone(&inventory)))
        .listen(args.listen)
        .interface(args.interface.clone())
        .dhcp(dhcp)
        .ipxe_dir(&args.ipxe_dir)
        .http_file("/files/vmlinuz", &args.kernel)
        .http_file("/files/initrd.img", &args.initrd)
        // The application serves HTTP; pxe only needs to know the URL clients use.
        .http_external(format!("http://{http_addr}"))
        .ipv6_router_advertisements(args.ipv6_ra)
        .start()
        .await?;

    let api = Router::new()
        .route("/api/machines", get(list))
        .route("/api/machines/{mac}", put(register))
        .with_state(Arc::clone(&inventory));
    let app = api
        .fallback_service(server.http_service())
        .layer(axum::middleware::from_fn(pxe::axum::client_addr));
    let listener = tokio::net::TcpListener::bind(http_addr).await?;
    tracing::info!(http = %http_addr, script = %server.script_url(), "inventory serving");

    let stop = server.shutdown_handle();
    let http = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    tokio::select! {
        result = server.run() => result?,
        result = http => result?,
        result = tokio::signal::ctrl_c() => {
            result?;
            stop.shutdown();
        }
    }
    Ok(())
}
