//! [`ServerBuilder`] → [`Server`]: the composition of DHCP, TFTP, HTTP and the optional IPv6
//! announcer around one policy, and the handle that stops them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use pxe_dhcp::lease::{LeaseStore, Reservation, Subnet};
use pxe_dhcp::proto::{ProxyStrategy, Quirks};
use pxe_dhcp::server::{DhcpServer, DhcpServerBuilder};
use pxe_http::{BootService, BootServiceBuilder, ServeConfig};
use pxe_policy::{ClientRecords, IpxeBinary, MacAddr, Policy, SharedPolicy};
use pxe_tftp::Directory;
use tokio_util::sync::CancellationToken;

use crate::loaders::{LoaderFiles, LoaderSource, ServedLoaders, PXELINUX_PREFIX};
use crate::metrics::Metrics;
use crate::ra::RouterAnnouncer;

/// The URL path iPXE fetches its script from.
pub const SCRIPT_PATH: &str = "/boot.ipxe";
/// The URL prefix the iPXE binaries are served under over HTTP (UEFI HTTP Boot fetches them
/// there; TFTP serves the same files at its root).
pub const IPXE_PREFIX: &str = "/ipxe/";

/// How DHCP is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpMode {
    /// No DHCP: the site's DHCP server points clients at this server's TFTP and HTTP.
    Off,
    /// proxyDHCP beside the site's DHCP server: boot information only, no addresses.
    Proxy,
    /// The only DHCP server of these subnets: addresses and boot information. A subnet the
    /// server has no address in is served to requests relayed from it.
    Authoritative(Vec<Subnet>),
}

impl std::fmt::Display for DhcpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Proxy => "proxy",
            Self::Authoritative(_) => "authoritative",
        })
    }
}

/// Where the HTTP stage is served.
#[derive(Debug, Clone)]
enum HttpMode {
    /// pxe binds this port and serves: on the runtime that runs the server, or on
    /// `threads` threads of its own.
    Own {
        port: u16,
        config: ServeConfig,
        threads: Option<NonZeroUsize>,
    },
    /// The embedder mounts [`Server::http_service`] in its own server, reachable by clients
    /// at this base URL (`http://host[:port][/prefix]`, no trailing slash).
    External { base_url: String },
}

/// Why a server could not start or stopped: which part, and its error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The iPXE binaries' directory is missing.
    #[error("the iPXE directory {} does not exist: install Debian's `ipxe` package or point the server at one", path.display())]
    IpxeDir {
        /// The directory.
        path: PathBuf,
    },
    /// TFTP could not bind or serve.
    #[error("tftp on UDP {addr}")]
    Tftp {
        /// The address it was to serve on.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: pxe_tftp::Error,
    },
    /// The HTTP service could not be built (a directory to serve is missing, say).
    #[error("http: cannot serve the boot files")]
    HttpFiles(#[source] pxe_http::Error),
    /// HTTP could not bind.
    #[error("http: cannot listen on TCP {addr}")]
    HttpBind {
        /// The address it was to listen on.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The HTTP server stopped accepting connections.
    #[error("http: the server stopped accepting connections")]
    HttpStopped,
    /// DHCP could not start or failed while serving.
    #[error("dhcp")]
    Dhcp(#[source] pxe_dhcp::Error),
    /// A loader's file is missing or unreadable ([`ServerBuilder::loaders`]).
    #[error("{}: cannot read it (Debian package `{package}`)", path.display())]
    LoaderFile {
        /// The file.
        path: PathBuf,
        /// The Debian package that installs it.
        package: &'static str,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The IPv6 announcer could not open its socket.
    #[error("ipv6 router advertisements on {interface}")]
    RouterAdvertisements {
        /// The interface.
        interface: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// Configures a [`Server`]; [`ServerBuilder::start`] binds everything.
#[derive(Debug)]
#[must_use]
pub struct ServerBuilder {
    policy: SharedPolicy,
    listen: Option<Ipv4Addr>,
    interface: Option<String>,
    dhcp: DhcpMode,
    reservations: Vec<Reservation>,
    lease_file: Option<PathBuf>,
    lease_store: Option<Arc<dyn LeaseStore>>,
    offer_hold: Option<std::time::Duration>,
    chainload_rom_ipxe: bool,
    proxy_strategy: Option<ProxyStrategy>,
    client_quirks: Vec<(MacAddr, Quirks)>,
    ipxe_dir: PathBuf,
    /// `None`: TFTP is served elsewhere (DHCP alone).
    tftp: Option<(u16, pxe_tftp::ServerConfig)>,
    http: HttpMode,
    files: BootServiceBuilder,
    ipv6_ra: bool,
    records: ClientRecords,
    /// `Some`: shim + GRUB and PXELINUX are served ([`Self::loaders`]).
    loaders: Option<LoaderFiles>,
    /// The HTTP stage's boot files, which TFTP serves too when loaders are served: the root
    /// and single files by URL path.
    boot_root: Option<PathBuf>,
    boot_files: Vec<(String, PathBuf)>,
    /// `Some`: every part reports to these metrics ([`Self::metrics`]).
    metrics: Option<Metrics>,
}

impl ServerBuilder {
    fn new(policy: SharedPolicy) -> Self {
        Self {
            policy,
            listen: None,
            interface: None,
            dhcp: DhcpMode::Proxy,
            reservations: Vec::new(),
            lease_file: None,
            lease_store: None,
            offer_hold: None,
            chainload_rom_ipxe: false,
            proxy_strategy: None,
            client_quirks: Vec::new(),
            ipxe_dir: PathBuf::from("/usr/lib/ipxe"),
            tftp: Some((69, pxe_tftp::ServerConfig::default())),
            http: HttpMode::Own {
                port: 80,
                config: ServeConfig::default(),
                threads: None,
            },
            files: BootService::builder(),
            ipv6_ra: false,
            records: ClientRecords::default(),
            loaders: None,
            boot_root: None,
            boot_files: Vec::new(),
            metrics: None,
        }
    }

    /// The address clients are given for TFTP and HTTP, and the address those bind to.
    /// Default: each DHCP reply names the server's address on the client's segment, and
    /// TFTP/HTTP listen on every address.
    pub fn listen(mut self, address: Ipv4Addr) -> Self {
        self.listen = Some(address);
        self
    }

    /// Serves DHCP only on this interface (SO_BINDTODEVICE), and announces there with
    /// [`ipv6_router_advertisements`](Self::ipv6_router_advertisements).
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interface = Some(name.into());
        self
    }

    /// How DHCP is served (default: [`DhcpMode::Proxy`]).
    pub fn dhcp(mut self, mode: DhcpMode) -> Self {
        self.dhcp = mode;
        self
    }

    /// A fixed address for one client (authoritative mode).
    pub fn reservation(mut self, reservation: Reservation) -> Self {
        self.reservations.push(reservation);
        self
    }

    /// Keeps authoritative leases in this crash-safe journal (default: memory only).
    pub fn lease_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lease_file = Some(path.into());
        self
    }

    /// Keeps authoritative leases in `store` instead of the embedded table and journal: a
    /// PostgreSQL database shared by several servers (`pxe_lease_postgres::PostgresStore`),
    /// or a store of the embedder's own. [`Self::lease_file`] and [`Self::offer_hold`] then
    /// do not apply, and the reservations the store keeps are the ones consulted.
    pub fn lease_store(mut self, store: Arc<dyn LeaseStore>) -> Self {
        self.lease_store = Some(store);
        self
    }

    /// How long an offer holds its address (authoritative mode; default
    /// `pxe_dhcp::lease::DEFAULT_OFFER_HOLD`).
    pub fn offer_hold(mut self, hold: std::time::Duration) -> Self {
        self.offer_hold = Some(hold);
        self
    }

    /// Hands iPXE found in a NIC's ROM our iPXE build too, instead of the script.
    pub fn chainload_rom_ipxe(mut self, yes: bool) -> Self {
        self.chainload_rom_ipxe = yes;
        self
    }

    /// How proxy offers point PXE firmware at its boot file (default: by architecture).
    pub fn proxy_strategy(mut self, strategy: ProxyStrategy) -> Self {
        self.proxy_strategy = Some(strategy);
        self
    }

    /// Workarounds for one client's firmware (its proxy strategy among them).
    pub fn client_quirks(mut self, mac: MacAddr, quirks: Quirks) -> Self {
        self.client_quirks.push((mac, quirks));
        self
    }

    /// Where the iPXE binaries are (default `/usr/lib/ipxe`, Debian's `ipxe` package). TFTP
    /// serves this directory, and HTTP serves it under [`IPXE_PREFIX`].
    pub fn ipxe_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.ipxe_dir = dir.into();
        self
    }

    /// Serves TFTP on this port (default 69; 0 lets the kernel choose) with these limits and
    /// transfer settings.
    pub fn tftp(mut self, port: u16, config: pxe_tftp::ServerConfig) -> Self {
        self.tftp = Some((port, config));
        self
    }

    /// Serves no TFTP: DHCP names [`listen`](Self::listen) (or this host) as the TFTP server,
    /// and another server serves the iPXE binaries there.
    pub fn without_tftp(mut self) -> Self {
        self.tftp = None;
        self
    }

    /// Serves HTTP on this port (default 80; 0 lets the kernel choose) with these timeouts,
    /// on the runtime that runs [`Server::run`] (see [`http_threads`](Self::http_threads)).
    pub fn http_port(mut self, port: u16, config: ServeConfig) -> Self {
        self.http = HttpMode::Own {
            port,
            config,
            threads: None,
        };
        self
    }

    /// Serves HTTP (when pxe serves it, see [`http_port`](Self::http_port)) on `threads`
    /// threads of its own, each with its own single-threaded runtime, from
    /// [`start`](Self::start) on: [`pxe_http::serve_on_threads`], the threading of `netboot
    /// http`. Those threads also do the file system calls themselves, where the runtime's
    /// tasks hand them to its blocking pool. For a server that owns the machine's CPUs;
    /// an embedder that keeps pxe on its own runtime leaves this unset.
    pub fn http_threads(mut self, threads: NonZeroUsize) -> Self {
        if let HttpMode::Own { threads: own, .. } = &mut self.http {
            *own = Some(threads);
        }
        self
    }

    /// Serves no HTTP of its own: the embedder mounts [`Server::http_service`] in its own HTTP
    /// server, which clients reach at `base_url` (`http://host[:port][/prefix]`). Scripts and
    /// DHCP replies name URLs under it.
    pub fn http_external(mut self, base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        self.http = HttpMode::External { base_url };
        self
    }

    /// Serves the files below `dir` over HTTP at `/` (kernels, initrds, images).
    pub fn http_root(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.boot_root = Some(dir.clone());
        self.files = self.files.root(dir);
        self
    }

    /// Keeps up to `bytes` of small HTTP boot files in memory (see
    /// [`BootServiceBuilder::file_cache`]; default [`pxe_http::DEFAULT_FILE_CACHE`], `0` off).
    pub fn http_file_cache(mut self, bytes: usize) -> Self {
        self.files = self.files.file_cache(bytes);
        self
    }

    /// Serves one file over HTTP at the URL path `at`, without the rest of its directory.
    pub fn http_file(mut self, at: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        let (at, file) = (at.into(), file.into());
        self.boot_files.push((at.clone(), file.clone()));
        self.files = self.files.file(at, file);
        self
    }

    /// Serves shim + GRUB and PXELINUX from these files (Debian's by default), for clients the
    /// policy gives [`BootDecision::ShimGrub`](pxe_policy::BootDecision::ShimGrub) or
    /// [`BootDecision::Pxelinux`](pxe_policy::BootDecision::Pxelinux): firmware PXE gets
    /// `shimx64.efi` or `pxelinux.0` as its boot file (a ROM iPXE too with
    /// [`chainload_rom_ipxe`](Self::chainload_rom_ipxe)), and TFTP serves `grubx64.efi`,
    /// `ldlinux.c32`, each client's `grub/grub.cfg` and `pxelinux.cfg/01-<mac>` (rendered from
    /// [`Policy::script`]), and the HTTP stage's boot files under their URL paths. Without
    /// it, or for an iPXE client, such a client keeps iPXE and the log says so. GRUB reads no
    /// proxyDHCP offer: it needs this server (or the site's DHCP server's `siaddr`) as its
    /// TFTP server. [`start`](Self::start) fails, naming the package, when a file is missing.
    pub fn loaders(mut self, files: LoaderFiles) -> Self {
        self.loaders = Some(files);
        self
    }

    /// Counts what every part does in `metrics` (DHCP requests and their outcomes, clients
    /// per boot stage, leases per pool, TFTP transfers, HTTP requests and bytes, the policy's
    /// decision time; see [`crate::metrics`]). Keep a clone to render or serve them. Without
    /// it no part counts anything.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The store of client records the stages share (default: a new one of
    /// [`ClientRecords::DEFAULT_CAPACITY`] clients). Pass one to read it from the application
    /// (what is known of a machine, which MAC an address belongs to) or to bound it otherwise.
    pub fn client_records(mut self, records: ClientRecords) -> Self {
        self.records = records;
        self
    }

    /// Sends IPv6 Router Advertisements with router lifetime 0 on the
    /// [`interface`](Self::interface), which ends iPXE's ~13 s wait for an IPv6 router on
    /// segments without one. Off by default: a server must be asked to announce on a site
    /// network.
    pub fn ipv6_router_advertisements(mut self, yes: bool) -> Self {
        self.ipv6_ra = yes;
        self
    }

    /// The base of every URL clients are given: the external base, or `http://HOST[:PORT]`
    /// where HOST is [`listen`](Self::listen) or, filled in by the DHCP server, its address
    /// on the client's segment.
    fn http_base(&self, bound_port: Option<u16>) -> String {
        match &self.http {
            HttpMode::External { base_url } => base_url.clone(),
            HttpMode::Own { port, .. } => {
                let host = self
                    .listen
                    .map_or_else(|| "${next-server}".to_string(), |ip| ip.to_string());
                match bound_port.unwrap_or(*port) {
                    80 => format!("http://{host}"),
                    port => format!("http://{host}:{port}"),
                }
            }
        }
    }

    /// The DHCP server alone, configured as [`start`](Self::start) would (its replies name
    /// the TFTP and HTTP servers of these settings), for running DHCP without TFTP and HTTP;
    /// `None` with [`DhcpMode::Off`].
    pub fn into_dhcp_server(self) -> Option<DhcpServerBuilder> {
        let base = self.http_base(None);
        self.dhcp_builder(self.timed_policy(), &base)
    }

    /// The policy, timed into the metrics when there are any.
    fn timed_policy(&self) -> SharedPolicy {
        match &self.metrics {
            Some(metrics) => SharedPolicy::new(metrics.timed(self.policy.clone())),
            None => self.policy.clone(),
        }
    }

    fn dhcp_builder(&self, policy: SharedPolicy, base: &str) -> Option<DhcpServerBuilder> {
        let subnets = match &self.dhcp {
            DhcpMode::Off => return None,
            DhcpMode::Proxy => None,
            DhcpMode::Authoritative(subnets) => Some(subnets),
        };
        let mut builder = DhcpServer::builder(policy)
            .script_url(format!("{base}{SCRIPT_PATH}"))
            .http_boot_base(format!("{base}{IPXE_PREFIX}"))
            .chainload_rom_ipxe(self.chainload_rom_ipxe);
        if let Some(metrics) = &self.metrics {
            builder = builder.observer(metrics.dhcp_observer());
        }
        if let Some(listen) = self.listen {
            builder = builder.tftp_server(listen);
        }
        if let Some(interface) = &self.interface {
            builder = builder.interface(interface.clone());
        }
        if let Some(strategy) = self.proxy_strategy {
            builder = builder.proxy_strategy(strategy);
        }
        for (mac, quirks) in &self.client_quirks {
            builder = builder.quirks(*mac, quirks.clone());
        }
        if let Some(subnets) = subnets {
            builder = builder.authoritative(subnets.clone());
            for reservation in &self.reservations {
                builder = builder.reservation(reservation.clone());
            }
            if let Some(hold) = self.offer_hold {
                builder = builder.offer_hold(hold);
            }
            match (&self.lease_store, &self.lease_file) {
                (Some(store), _) => builder = builder.lease_store(Arc::clone(store)),
                (None, Some(path)) => builder = builder.lease_file(path.clone()),
                (None, None) => tracing::warn!(
                    "leases are kept in memory only (a lease file keeps them across restarts)"
                ),
            }
        }
        Some(builder)
    }

    /// The checks [`start`](Self::start) makes before it binds anything: the iPXE directory
    /// exists (an error), and has the builds BIOS and x64 UEFI clients get (a warning each);
    /// the loaders' files ([`loaders`](Self::loaders)) are there (an error naming the package).
    pub fn check(&self) -> Result<(), Error> {
        if !self.ipxe_dir.is_dir() {
            return Err(Error::IpxeDir {
                path: self.ipxe_dir.clone(),
            });
        }
        if let Some(loaders) = &self.loaders {
            loaders.check()?;
        }
        for (binary, clients) in [
            (IpxeBinary::UNDIONLY, "BIOS"),
            (IpxeBinary::SNPONLY_EFI, "x64 UEFI"),
        ] {
            if !self.ipxe_dir.join(binary.file_name()).is_file() {
                tracing::warn!(
                    "{binary} is not in {}: {clients} clients will fail to load iPXE \
                     (Debian's `ipxe` package has it)",
                    self.ipxe_dir.display()
                );
            }
        }
        Ok(())
    }

    /// Binds every part (TFTP, HTTP unless external, DHCP unless off, the announcer when
    /// asked) and returns the server, ready to [`run`](Server::run). Must run inside a tokio
    /// runtime. Fails with the part that could not start.
    pub async fn start(mut self) -> Result<Server, Error> {
        self.check()?;
        // Every stage asks the timed policy: decision time is measured once, here.
        self.policy = self.timed_policy();
        let bind_ip = self
            .listen
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4);

        // One record per client across stages: DHCP's facts (iPXE's features among them, which
        // its HTTP requests never carry) reach the script request, and the script request's
        // (the serial…) the next DHCP request; addresses map back to MACs for the logs.
        let records = self.records.clone();
        let tftp = match &self.tftp {
            Some((port, config)) => {
                let addr = SocketAddr::new(bind_ip, *port);
                let tftp_error = |source| Error::Tftp { addr, source };
                let directory = Directory::new(&self.ipxe_dir).map_err(tftp_error)?;
                let mut config = pxe_tftp::ServerConfig {
                    client_records: Some(records.clone()),
                    ..config.clone()
                };
                if let Some(metrics) = &self.metrics {
                    config.observer = Some(metrics.tftp_observer());
                }
                let server = match &self.loaders {
                    None => pxe_tftp::Server::bind(addr, directory, config).await,
                    Some(files) => {
                        let source = self.loader_source(files, directory, &records)?;
                        pxe_tftp::Server::bind(addr, source, config).await
                    }
                }
                .map_err(tftp_error)?;
                Some(server)
            }
            None => None,
        };

        let mut files = std::mem::replace(&mut self.files, BootService::builder());
        if let Some(pxelinux) = self.loaders.as_ref().and_then(|l| l.pxelinux.as_ref()) {
            // lpxelinux.0 takes its directory from its own URL: ldlinux.c32 and its configs
            // are asked for beside it.
            files = files
                .file(format!("{PXELINUX_PREFIX}lpxelinux.0"), &pxelinux.lpxelinux)
                .file(format!("{PXELINUX_PREFIX}ldlinux.c32"), &pxelinux.ldlinux)
                .pxelinux_configs(PXELINUX_PREFIX);
        }
        if let Some(metrics) = &self.metrics {
            files = files.observer(metrics.http_observer());
        }
        let service = files
            .mount(IPXE_PREFIX, &self.ipxe_dir)
            .script_path(SCRIPT_PATH)
            .policy(self.policy.clone())
            .client_records(records.clone())
            .build()
            .map_err(Error::HttpFiles)?;
        let (http, http_addr) = match &self.http {
            HttpMode::Own {
                port,
                config,
                threads,
            } => {
                let addr = SocketAddr::new(bind_ip, *port);
                let bind_error = |source| Error::HttpBind { addr, source };
                let http = match threads {
                    Some(threads) => OwnHttp::Threads(
                        pxe_http::serve_on_threads(addr, service.clone(), *config, *threads)
                            .map_err(bind_error)?,
                    ),
                    None => OwnHttp::OnRuntime(
                        tokio::net::TcpListener::bind(addr)
                            .await
                            .map_err(bind_error)?,
                        *config,
                    ),
                };
                let bound = match &http {
                    OwnHttp::Threads(threads) => threads.local_addr(),
                    OwnHttp::OnRuntime(listener, _) => listener.local_addr().map_err(bind_error)?,
                };
                (Some(http), Some(bound))
            }
            HttpMode::External { .. } => (None, None),
        };
        let base = self.http_base(http_addr.map(|a| a.port()));

        let policy = SharedPolicy::new(ServedLoaders {
            policy: records.recording(self.policy.clone()),
            files: self.loaders.clone(),
            rom_ipxe_as_firmware: self.chainload_rom_ipxe,
            http_base: base.clone(),
        });
        let dhcp = match self.dhcp_builder(policy, &base) {
            Some(builder) => Some(
                builder
                    .client_records(records.clone())
                    .bind()
                    .await
                    .map_err(Error::Dhcp)?,
            ),
            None => None,
        };
        if let (Some(metrics), Some(dhcp)) = (&self.metrics, &dhcp) {
            if let Some(store) = dhcp.lease_store() {
                metrics.watch_leases(store, dhcp.subnets());
            }
        }

        let announcer = match (&self.interface, self.ipv6_ra) {
            (Some(interface), true) => {
                Some(RouterAnnouncer::bind(interface).map_err(|source| {
                    Error::RouterAdvertisements {
                        interface: interface.clone(),
                        source,
                    }
                })?)
            }
            _ => None,
        };

        Ok(Server {
            tftp_addr: tftp.as_ref().map(pxe_tftp::Server::local_addr),
            tftp,
            http,
            http_addr,
            service,
            dhcp,
            dhcp_mode: self.dhcp,
            announcer,
            script_url: format!("{base}{SCRIPT_PATH}"),
            records,
            stop: CancellationToken::new(),
        })
    }
}

impl ServerBuilder {
    /// The TFTP root when loaders are served ([`LoaderSource`]).
    fn loader_source(
        &self,
        files: &LoaderFiles,
        ipxe: Directory,
        records: &ClientRecords,
    ) -> Result<LoaderSource, Error> {
        let tftp_error = |source| Error::Tftp {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            source,
        };
        let mut single = Vec::new();
        for (at, file) in &self.boot_files {
            let dir = file.parent().unwrap_or(std::path::Path::new("/"));
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let dir = Directory::new(dir).map_err(tftp_error)?;
            single.push((at.trim_start_matches('/').to_string(), dir, name));
        }
        let root = match &self.boot_root {
            Some(dir) => Some(Directory::new(dir).map_err(tftp_error)?),
            None => None,
        };
        Ok(LoaderSource {
            loaders: files.load()?,
            files: single,
            root,
            ipxe,
            records: records.clone(),
            policy: SharedPolicy::new(records.recording(self.policy.clone())),
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

/// Stops a running [`Server`] from anywhere: clone it freely.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Asks the server to stop: [`Server::run`] returns `Ok(())` soon after.
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A bound network-boot server: [`run`](Self::run) serves until a part fails or the
/// [`ShutdownHandle`] is used.
#[derive(Debug)]
pub struct Server {
    tftp: Option<pxe_tftp::Server>,
    tftp_addr: Option<SocketAddr>,
    http: Option<OwnHttp>,
    http_addr: Option<SocketAddr>,
    service: BootService,
    dhcp: Option<DhcpServer>,
    dhcp_mode: DhcpMode,
    announcer: Option<RouterAnnouncer>,
    script_url: String,
    records: ClientRecords,
    stop: CancellationToken,
}

/// HTTP that pxe serves itself.
#[derive(Debug)]
enum OwnHttp {
    /// Listening, served by [`Server::run`] on its runtime.
    OnRuntime(tokio::net::TcpListener, ServeConfig),
    /// Already serving on threads of its own; dropping it stops them.
    Threads(pxe_http::ServerThreads),
}

impl Server {
    /// A server asking `policy` about every client; see the builder's methods.
    pub fn builder(policy: impl Policy) -> ServerBuilder {
        ServerBuilder::new(SharedPolicy::new(policy))
    }

    /// Where TFTP listens, unless it is served elsewhere.
    pub fn tftp_addr(&self) -> Option<SocketAddr> {
        self.tftp_addr
    }

    /// Where HTTP listens, unless it is served by the embedder.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The URL iPXE is sent to for its script.
    pub fn script_url(&self) -> &str {
        &self.script_url
    }

    /// What every stage has learned of each client, by MAC.
    pub fn client_records(&self) -> &ClientRecords {
        &self.records
    }

    /// How DHCP is served.
    pub fn dhcp_mode(&self) -> &DhcpMode {
        &self.dhcp_mode
    }

    /// The HTTP stage as a `tower::Service`, for an embedder that serves HTTP itself (see
    /// [`ServerBuilder::http_external`]). Give it each request's client address as a
    /// [`pxe_http::ClientAddr`] extension (with axum: the `axum` feature's
    /// `pxe::axum::client_addr`).
    pub fn http_service(&self) -> BootService {
        self.service.clone()
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// Serves until a part fails (the error names it) or the [`ShutdownHandle`] is used
    /// (`Ok(())`). On shutdown the sockets close; transfers and downloads already under way
    /// on their own tasks or threads finish or time out on their own.
    pub async fn run(self) -> Result<(), Error> {
        let Server {
            tftp,
            tftp_addr,
            http,
            service,
            dhcp,
            announcer,
            stop,
            ..
        } = self;
        let dhcp = async move {
            match dhcp {
                Some(server) => server.run().await.map_err(Error::Dhcp),
                None => std::future::pending().await,
            }
        };
        let announcer = async move {
            match announcer {
                Some(announcer) => announcer.run().await,
                None => std::future::pending::<()>().await,
            }
        };
        let tftp = async move {
            match (tftp, tftp_addr) {
                (Some(server), Some(addr)) => server
                    .run_on_own_thread()
                    .await
                    .map_err(|source| Error::Tftp { addr, source }),
                _ => std::future::pending().await,
            }
        };
        let (on_runtime, http_threads) = match http {
            Some(OwnHttp::OnRuntime(listener, config)) => (Some((listener, config)), None),
            Some(OwnHttp::Threads(threads)) => (None, Some(threads)),
            None => (None, None),
        };
        let http = async move {
            match on_runtime {
                Some((listener, config)) => pxe_http::serve(listener, service, config).await,
                // Threads of its own serve it (or the embedder does).
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = dhcp => result,
            () = announcer => Ok(()), // never: it retries every failure itself
            result = tftp => result,
            () = http => Err(Error::HttpStopped),
            () = stop.cancelled() => {
                tracing::info!("stopping: shutdown asked");
                Ok(())
            }
        };
        if let Some(threads) = http_threads {
            // Stopping them waits for the threads: not on this runtime's thread.
            let _ = tokio::task::spawn_blocking(move || drop(threads)).await;
        }
        result
    }
}
