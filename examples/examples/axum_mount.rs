//! An axum application that mounts pxe's HTTP stage beside its own routes: pxe runs DHCP and
//! TFTP and decides by a site table, the application owns the HTTP port and keeps its own
//! endpoints (`/health`, `/api/info`), and mounts pxe's Prometheus metrics at `/metrics`. pxe
//! is told the base URL clients use, and `pxe::axum::client_addr` passes axum's `ConnectInfo`
//! to it.
//!
//! ```sh
//! sudo cargo run -p pxe-examples --example axum_mount -- \
//!     --config examples/site.toml --listen 192.0.2.1 --interface br0
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use pxe::policy::table::TablePolicy;
use pxe::{DhcpMode, Server};

/// Command line of the example.
#[derive(Debug, Parser)]
struct Args {
    /// The table of groups and profiles (the site file's `[server]` table is netboot's and is
    /// ignored here).
    #[arg(long)]
    config: PathBuf,
    /// The server's address: DHCP names it, the application listens on it.
    #[arg(long)]
    listen: Ipv4Addr,
    /// The interface DHCP serves (proxyDHCP beside the site's DHCP server).
    #[arg(long)]
    interface: String,
    /// The application's HTTP port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Boot files served at `/` for relative kernel URLs in the table.
    #[arg(long)]
    root: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let args = Args::parse();
    let addr = SocketAddr::from((args.listen, args.port));
    // The application owns the metrics: pxe counts into them, the router renders them.
    let metrics = pxe::Metrics::new();
    let mut builder = Server::builder(TablePolicy::load(&args.config)?)
        .metrics(metrics.clone())
        .listen(args.listen)
        .interface(args.interface.clone())
        .dhcp(DhcpMode::Proxy)
        .http_external(format!("http://{addr}"));
    if let Some(root) = &args.root {
        builder = builder.http_root(root);
    }
    let server = builder.start().await?;
    let script = server.script_url().to_string();

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", pxe::axum::metrics_route(metrics))
        .route(
            "/api/info",
            get(move || async move { Json(BTreeMap::from([("script", script)])) }),
        )
        .fallback_service(server.http_service())
        .layer(axum::middleware::from_fn(pxe::axum::client_addr));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let http = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    tokio::select! {
        result = server.run() => result?,
        result = http => result?,
        result = tokio::signal::ctrl_c() => result?,
    }
    Ok(())
}
