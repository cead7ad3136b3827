//! The all-in-one server's settings: one struct that is both the command-line flags and the
//! `[server]` table of a site file, and what they resolve to once defaults and checks apply.
//!
//! A flag `--foo-bar` is `foo_bar` in `[server]`; a flag given on the command line wins over
//! the file. `examples/site.toml` shows every key.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pxe::dhcp::lease::{Reservation, Subnet};
use pxe::dhcp::proto::ProxyStrategy;
use pxe::policy::MacAddr;
use pxe::tftp::PortMode;
use pxe_lease_postgres::PostgresStore;
use serde::Deserialize;

/// How DHCP is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DhcpChoice {
    /// proxyDHCP beside the site's DHCP server: boot information only, no addresses.
    Proxy,
    /// The only DHCP server on the segment: addresses from --pool, and boot information.
    Authoritative,
    /// No DHCP at all (another DHCP server points clients here).
    Off,
}

impl std::fmt::Display for DhcpChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Proxy => "proxy",
            Self::Authoritative => "authoritative",
            Self::Off => "off",
        })
    }
}

/// How a proxy offer tells PXE firmware where its boot file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum StrategyChoice {
    /// BIOS clients get option 43.6 = 8, UEFI clients are sent to port 4011.
    Auto,
    /// Option 43.6 = 8: "use the boot file in this offer" (what BIOS ROMs follow).
    BootFile,
    /// No option 43: the client asks again on port 4011 (what many UEFI firmwares follow).
    BootServer,
}

impl StrategyChoice {
    /// The fixed strategy, or `None` for the per-architecture default.
    fn strategy(self) -> Option<ProxyStrategy> {
        match self {
            Self::Auto => None,
            Self::BootFile => Some(ProxyStrategy::UseBootFile),
            Self::BootServer => Some(ProxyStrategy::AskBootServer),
        }
    }
}

impl FromStr for StrategyChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(text, true)
            .map_err(|_| format!("{text:?}: expected auto, boot-file or boot-server"))
    }
}

/// Implements `Deserialize` through `FromStr`, so that a site file takes the same text as the
/// flag.
macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(Pool, Reserve, ClientStrategy, PortSpan);

/// `FIRST-LAST[/PREFIX]`: a pool of addresses and, optionally, its subnet's prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pool {
    first: Ipv4Addr,
    last: Ipv4Addr,
    prefix_len: Option<u8>,
}

impl FromStr for Pool {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (span, prefix_len) = match text.split_once('/') {
            Some((span, len)) => {
                let len: u8 = len
                    .trim()
                    .parse()
                    .ok()
                    .filter(|len| (8..=30).contains(len))
                    .ok_or_else(|| format!("{text:?}: the prefix length must be 8 to 30"))?;
                (span, Some(len))
            }
            None => (text, None),
        };
        let (first, last) = crate::parse_span::<Ipv4Addr>(span)?;
        Ok(Self {
            first,
            last,
            prefix_len,
        })
    }
}

/// `MAC=IP[,HOSTNAME]`: a fixed address (and host name) for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reserve {
    mac: MacAddr,
    ip: Ipv4Addr,
    host_name: Option<String>,
}

impl FromStr for Reserve {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || format!("{text:?}: expected MAC=IP or MAC=IP,HOSTNAME");
        let (mac, rest) = text.split_once('=').ok_or_else(usage)?;
        let (ip, host_name) = match rest.split_once(',') {
            Some((ip, name)) => (ip, Some(name.trim().to_string())),
            None => (rest, None),
        };
        let mac = mac
            .trim()
            .parse()
            .map_err(|e| format!("{text:?}: {mac:?}: {e}"))?;
        let ip = ip
            .trim()
            .parse()
            .map_err(|e| format!("{text:?}: {ip:?}: {e}"))?;
        let reserve = Self { mac, ip, host_name };
        reserve
            .reservation()
            .map_err(|e| format!("{text:?}: {e}"))?;
        Ok(reserve)
    }
}

impl Reserve {
    fn reservation(&self) -> Result<Reservation, pxe::dhcp::lease::InvalidName> {
        let reservation = Reservation::by_mac(self.mac, self.ip);
        match &self.host_name {
            Some(name) => reservation.host_name(name.clone()),
            None => Ok(reservation),
        }
    }
}

/// `MAC=auto|boot-file|boot-server`: the proxy strategy for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientStrategy {
    mac: MacAddr,
    strategy: StrategyChoice,
}

impl FromStr for ClientStrategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (mac, strategy) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected MAC=auto|boot-file|boot-server"))?;
        Ok(Self {
            mac: mac
                .trim()
                .parse()
                .map_err(|e| format!("{text:?}: {mac:?}: {e}"))?,
            strategy: strategy.trim().parse()?,
        })
    }
}

/// `START-END`: a range of UDP ports, 1 <= START <= END.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortSpan(u16, u16);

impl FromStr for PortSpan {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (start, end) = crate::parse_span::<u16>(text)?;
        if start == 0 {
            return Err("port 0 is not a port; expected 1 <= START <= END".to_string());
        }
        Ok(Self(start, end))
    }
}

/// Where TFTP transfers take their ports: the listening port, a range, or any.
pub(crate) fn port_mode(single_port: bool, range: Option<PortSpan>) -> PortMode {
    match (single_port, range) {
        (true, _) => PortMode::Single,
        (false, Some(PortSpan(start, end))) => PortMode::Range(start..=end),
        (false, None) => PortMode::Ephemeral,
    }
}

/// The all-in-one server's flags, which are also the `[server]` table of a site file.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServerFlags {
    /// The address clients are given for TFTP and HTTP, and the address those bind to.
    /// Default: the address of --interface when given; otherwise each DHCP reply names the
    /// server's address on the client's segment, and TFTP/HTTP listen on every address.
    #[arg(long, help_heading = "Network")]
    pub(crate) listen: Option<Ipv4Addr>,
    /// Serve on this interface only: DHCP is bound to it (SO_BINDTODEVICE), and TFTP and HTTP
    /// listen on its IPv4 address (unless --listen names one). In authoritative mode it needs
    /// an address inside each directly attached pool's subnet.
    #[arg(long, help_heading = "Network")]
    pub(crate) interface: Option<String>,
    /// Directory of boot files served over HTTP at `/` (kernels, initrds, images): relative
    /// kernel and initrd URLs in a table are looked up here.
    #[arg(long, help_heading = "Network")]
    pub(crate) root: Option<PathBuf>,

    /// How DHCP is served [default: proxy]. With `off`, the site's DHCP server must hand out
    /// next-server = this host and file `undionly.kpxe` (BIOS) or `snponly.efi` (x64 UEFI),
    /// and to iPXE (user class `iPXE`) the file `http://HOST/boot.ipxe`.
    #[arg(long, value_enum, help_heading = "DHCP")]
    pub(crate) dhcp: Option<DhcpChoice>,
    /// Addresses handed out in authoritative mode, `FIRST-LAST[/PREFIX]`; repeat it for
    /// several subnets. A subnet the server is not on is served to requests relayed from it
    /// (giaddr inside it).
    #[arg(long, help_heading = "DHCP")]
    pub(crate) pool: Vec<Pool>,
    /// Prefix length of a pool's subnet when the pool does not give one [default: 24].
    #[arg(long, value_parser = clap::value_parser!(u8).range(8..=30), help_heading = "DHCP")]
    pub(crate) prefix_len: Option<u8>,
    /// Default router (option 3) of the pool whose subnet holds it; repeat it per subnet.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) router: Vec<Ipv4Addr>,
    /// DNS server (option 6) handed out in authoritative mode; repeat it for several.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) dns: Vec<Ipv4Addr>,
    /// DNS domain name (option 15) handed out in authoritative mode.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) domain: Option<String>,
    /// Lease time in seconds handed out in authoritative mode [default: 3600].
    #[arg(long, value_parser = clap::value_parser!(u64).range(60..), help_heading = "DHCP")]
    pub(crate) lease_time: Option<u64>,
    /// A fixed address, and optionally a host name (option 12), for one client:
    /// `MAC=IP[,HOSTNAME]`; repeat it per client.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) reserve: Vec<Reserve>,
    /// Keep authoritative leases in this file (crash-safe journal) [default: memory only].
    #[arg(long, help_heading = "DHCP")]
    pub(crate) lease_file: Option<PathBuf>,
    /// Keep authoritative leases in PostgreSQL instead: `postgres://USER@HOST/DB`, or
    /// `host=/run/postgresql user=pxe dbname=pxe`. Every netboot naming the same database
    /// serves the same pools without ever giving one address to two clients; the schema is
    /// created at first contact, and reservations given here are written there.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "lease_file",
        help_heading = "DHCP"
    )]
    pub(crate) lease_store: Option<String>,
    /// Seconds an offered address is held for its client in authoritative mode [default: 10].
    /// A full pool still offers new clients the oldest pending offer's address, so this only
    /// decides how soon a slow client's offer may be reclaimed.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..), help_heading = "DHCP")]
    pub(crate) dhcp_offer_hold: Option<u64>,
    /// How proxy offers point PXE firmware at its boot file [default: auto].
    #[arg(long, value_enum, help_heading = "DHCP")]
    pub(crate) proxy_strategy: Option<StrategyChoice>,
    /// The proxy strategy for one client, `MAC=auto|boot-file|boot-server`; repeat it.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) client_proxy_strategy: Vec<ClientStrategy>,
    /// Hand iPXE found in a NIC's option ROM our iPXE build too (as firmware PXE gets it),
    /// instead of sending it straight to the script: for old or limited ROM builds.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) chainload_ipxe_rom: bool,
    /// Send IPv6 Router Advertisements with router lifetime 0 (no prefixes, no DHCPv6 flags)
    /// on --interface, every 4 s and in answer to each Router Solicitation. iPXE otherwise
    /// waits ~13 s for an IPv6 router on each `dhcp`; this tells it there is none. Off by
    /// default: a server that announces on a site network must be asked to, and a segment
    /// with a real IPv6 router does not need it.
    #[arg(long, help_heading = "DHCP")]
    pub(crate) ipv6_ra: bool,

    /// Where the iPXE binaries are [default: /usr/lib/ipxe, Debian's `ipxe` package].
    #[arg(long, help_heading = "TFTP")]
    pub(crate) ipxe_dir: Option<PathBuf>,
    /// TFTP port [default: 69].
    #[arg(long, help_heading = "TFTP")]
    pub(crate) tftp_port: Option<u16>,
    /// Serve every TFTP transfer from the TFTP port (for firewalls that pass only port 69).
    #[arg(long, conflicts_with = "tftp_port_range", help_heading = "TFTP")]
    pub(crate) tftp_single_port: bool,
    /// Take TFTP transfer ports from this range, e.g. `50000-50999` [default: any port].
    #[arg(long, help_heading = "TFTP")]
    pub(crate) tftp_port_range: Option<PortSpan>,

    /// HTTP port [default: 80].
    #[arg(long, help_heading = "HTTP")]
    pub(crate) http_port: Option<u16>,
    /// Threads that serve HTTP, each with its own connections, as `netboot http` does
    /// [default: one per CPU].
    #[arg(long, help_heading = "HTTP")]
    pub(crate) http_threads: Option<NonZeroUsize>,

    /// Serve Prometheus metrics at `http://ADDR:PORT/metrics` (DHCP requests by type and
    /// outcome, leases per pool, TFTP transfers, HTTP requests and bytes, policy decision
    /// time, clients per boot stage) [default: off]. Give an address only the monitoring
    /// network reaches, such as `127.0.0.1:9420`.
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Metrics")]
    pub(crate) metrics: Option<SocketAddr>,
}

impl ServerFlags {
    /// These flags, with every setting they leave unset taken from `file` (a site file's
    /// `[server]` table).
    pub(crate) fn over(self, file: ServerFlags) -> ServerFlags {
        fn list<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
            if flag.is_empty() {
                file
            } else {
                flag
            }
        }
        ServerFlags {
            listen: self.listen.or(file.listen),
            interface: self.interface.or(file.interface),
            root: self.root.or(file.root),
            dhcp: self.dhcp.or(file.dhcp),
            pool: list(self.pool, file.pool),
            prefix_len: self.prefix_len.or(file.prefix_len),
            router: list(self.router, file.router),
            dns: list(self.dns, file.dns),
            domain: self.domain.or(file.domain),
            lease_time: self.lease_time.or(file.lease_time),
            reserve: list(self.reserve, file.reserve),
            lease_file: self.lease_file.or(file.lease_file),
            lease_store: self.lease_store.or(file.lease_store),
            dhcp_offer_hold: self.dhcp_offer_hold.or(file.dhcp_offer_hold),
            proxy_strategy: self.proxy_strategy.or(file.proxy_strategy),
            client_proxy_strategy: list(self.client_proxy_strategy, file.client_proxy_strategy),
            chainload_ipxe_rom: self.chainload_ipxe_rom || file.chainload_ipxe_rom,
            ipv6_ra: self.ipv6_ra || file.ipv6_ra,
            ipxe_dir: self.ipxe_dir.or(file.ipxe_dir),
            tftp_port: self.tftp_port.or(file.tftp_port),
            tftp_single_port: self.tftp_single_port || file.tftp_single_port,
            tftp_port_range: self.tftp_port_range.or(file.tftp_port_range),
            http_port: self.http_port.or(file.http_port),
            http_threads: self.http_threads.or(file.http_threads),
            metrics: self.metrics.or(file.metrics),
        }
    }

    /// Applies the defaults and checks the settings together (what one flag alone cannot).
    pub(crate) fn resolve(self) -> anyhow::Result<Settings> {
        let dhcp = self.dhcp.unwrap_or(DhcpChoice::Proxy);
        let authoritative_only = [
            ("--pool", !self.pool.is_empty()),
            ("--router", !self.router.is_empty()),
            ("--dns", !self.dns.is_empty()),
            ("--domain", self.domain.is_some()),
            ("--lease-time", self.lease_time.is_some()),
            ("--reserve", !self.reserve.is_empty()),
            ("--lease-file", self.lease_file.is_some()),
            ("--lease-store", self.lease_store.is_some()),
            ("--dhcp-offer-hold", self.dhcp_offer_hold.is_some()),
        ];
        if dhcp != DhcpChoice::Authoritative {
            if let Some((flag, _)) = authoritative_only.iter().find(|(_, given)| *given) {
                anyhow::bail!(
                    "{flag} is only used with --dhcp authoritative (DHCP is {dhcp} here)"
                );
            }
        } else if self.pool.is_empty() {
            anyhow::bail!("--dhcp authoritative needs at least one --pool FIRST-LAST[/PREFIX]");
        }
        anyhow::ensure!(
            !(self.lease_file.is_some() && self.lease_store.is_some()),
            "--lease-file and --lease-store exclude each other (leases live in one place)"
        );
        anyhow::ensure!(
            !self.ipv6_ra || self.interface.is_some(),
            "--ipv6-ra needs --interface (the announcements go out on one link)"
        );
        anyhow::ensure!(
            !(self.tftp_single_port && self.tftp_port_range.is_some()),
            "--tftp-single-port and --tftp-port-range exclude each other"
        );

        let subnets = self.subnets()?;
        let reservations = self
            .reserve
            .iter()
            .map(|reserve| {
                anyhow::ensure!(
                    subnets.iter().any(|s| s.contains(reserve.ip)),
                    "--reserve {}={}: the address is in no --pool's subnet",
                    reserve.mac,
                    reserve.ip
                );
                Ok(reserve.reservation()?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let interface_addresses = match &self.interface {
            Some(name) => interface_ipv4(name)?,
            None => Vec::new(),
        };
        if let (Some(name), true) = (&self.interface, dhcp == DhcpChoice::Authoritative) {
            for subnet in &subnets {
                if !interface_addresses.iter().any(|ip| subnet.contains(*ip)) {
                    tracing::warn!(
                        "{name} has no address in {}/{}: its pool serves only requests \
                         relayed from that subnet",
                        subnet.network,
                        subnet.prefix_len
                    );
                }
            }
        }
        // TFTP and HTTP follow --interface: they listen on its address (which clients are
        // then given), so that a server on one segment of a multi-homed host does not answer
        // on the others.
        let listen = match (self.listen, &self.interface) {
            (Some(ip), _) => Some(ip),
            (None, Some(name)) => Some(*interface_addresses.first().with_context(|| {
                format!("--interface {name} has no IPv4 address for TFTP and HTTP to listen on")
            })?),
            (None, None) => None,
        };

        // No connection yet: the server waits for the database when it starts.
        let lease_store = match &self.lease_store {
            Some(url) => {
                let mut store =
                    PostgresStore::new(url, subnets.clone())?.reservations(reservations.clone());
                // Which server granted a lease, for operators reading the table.
                if let Some(ip) = listen {
                    let name = format!("{}/{ip}", store.name());
                    store = store.server_name(name);
                }
                if let Some(secs) = self.dhcp_offer_hold {
                    store = store.offer_hold(Duration::from_secs(secs));
                }
                Some(Arc::new(store))
            }
            None => None,
        };

        let mut client_strategies = Vec::new();
        for choice in &self.client_proxy_strategy {
            client_strategies.push((choice.mac, choice.strategy.strategy()));
        }
        Ok(Settings {
            listen,
            interface: self.interface,
            root: self.root,
            dhcp,
            subnets,
            reservations,
            lease_file: self.lease_file,
            lease_store,
            offer_hold: self.dhcp_offer_hold.map(Duration::from_secs),
            proxy_strategy: self.proxy_strategy.and_then(StrategyChoice::strategy),
            client_strategies,
            chainload_ipxe_rom: self.chainload_ipxe_rom,
            ipv6_ra: self.ipv6_ra,
            ipxe_dir: self
                .ipxe_dir
                .unwrap_or_else(|| PathBuf::from("/usr/lib/ipxe")),
            tftp_port: self.tftp_port.unwrap_or(69),
            tftp_ports: port_mode(self.tftp_single_port, self.tftp_port_range),
            http_port: self.http_port.unwrap_or(80),
            http_threads: self.http_threads.unwrap_or_else(one_per_cpu),
            metrics: self.metrics,
        })
    }

    /// One subnet per pool, with the routers, DNS servers, domain and lease time given.
    fn subnets(&self) -> anyhow::Result<Vec<Subnet>> {
        let default_len = self.prefix_len.unwrap_or(24);
        let mut subnets: Vec<Subnet> = Vec::new();
        for pool in &self.pool {
            let len = pool.prefix_len.unwrap_or(default_len);
            let mut subnet = Subnet::new(pool.first, len, pool.first, pool.last);
            anyhow::ensure!(
                subnet.contains(pool.last),
                "--pool {}-{}: both ends must lie in one /{len} subnet ({}/{len} holds the \
                 first); give the prefix as FIRST-LAST/PREFIX",
                pool.first,
                pool.last,
                subnet.network
            );
            if let Some(other) = subnets.iter().find(|s| {
                s.contains(subnet.network) || subnet.contains(s.network) // overlapping
            }) {
                anyhow::bail!(
                    "--pool {}-{}: its subnet {}/{len} overlaps {}/{} of another pool",
                    pool.first,
                    pool.last,
                    subnet.network,
                    other.network,
                    other.prefix_len
                );
            }
            subnet.dns_servers = self.dns.clone();
            if let Some(secs) = self.lease_time {
                subnet = subnet.lease_time(Duration::from_secs(secs));
            }
            if let Some(domain) = &self.domain {
                subnet = subnet.domain_name(domain.clone()).context("--domain")?;
            }
            subnets.push(subnet);
        }
        for router in &self.router {
            let subnet = subnets
                .iter_mut()
                .find(|s| s.contains(*router))
                .with_context(|| format!("--router {router} is in no --pool's subnet"))?;
            anyhow::ensure!(
                subnet.router.is_none(),
                "--router {router}: {}/{} already has router {}",
                subnet.network,
                subnet.prefix_len,
                subnet.router.unwrap_or(*router)
            );
            subnet.router = Some(*router);
        }
        Ok(subnets)
    }
}

/// The IPv4 addresses of interface `name`, in the kernel's order.
fn interface_ipv4(name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let addresses = nix::ifaddrs::getifaddrs().context("cannot list the interfaces")?;
    let mut found = false;
    let mut ips = Vec::new();
    for entry in addresses.filter(|entry| entry.interface_name == name) {
        found = true;
        if let Some(ip) = entry
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|sin| sin.ip())
        {
            ips.push(ip);
        }
    }
    anyhow::ensure!(found, "--interface {name}: no such interface");
    Ok(ips)
}

/// Settings with defaults applied and checked together: what the server runs with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where TFTP and HTTP listen, and the address clients are given for them; `None`: every
    /// address, and each DHCP reply names the server's address on the client's segment.
    pub(crate) listen: Option<Ipv4Addr>,
    pub(crate) interface: Option<String>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) dhcp: DhcpChoice,
    pub(crate) subnets: Vec<Subnet>,
    pub(crate) reservations: Vec<Reservation>,
    pub(crate) lease_file: Option<PathBuf>,
    /// Leases in PostgreSQL (`--lease-store`), not yet connected.
    pub(crate) lease_store: Option<Arc<PostgresStore>>,
    /// How long an offer holds its address; `None`: the library's default.
    pub(crate) offer_hold: Option<Duration>,
    pub(crate) proxy_strategy: Option<ProxyStrategy>,
    /// Per-client strategies; `None` is the per-architecture default.
    pub(crate) client_strategies: Vec<(MacAddr, Option<ProxyStrategy>)>,
    pub(crate) chainload_ipxe_rom: bool,
    pub(crate) ipv6_ra: bool,
    pub(crate) ipxe_dir: PathBuf,
    pub(crate) tftp_port: u16,
    pub(crate) tftp_ports: PortMode,
    pub(crate) http_port: u16,
    pub(crate) http_threads: NonZeroUsize,
    /// Where Prometheus metrics are served (`--metrics`), if anywhere.
    pub(crate) metrics: Option<SocketAddr>,
}

/// One thread per CPU this process may run on.
pub(crate) fn one_per_cpu() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

impl Settings {
    /// Refuses what would fail only when a client boots: relative URLs with no --root to serve
    /// them from, a --root that is not a directory. Warns about files that are missing now.
    pub(crate) fn check_served_urls<'a>(
        &self,
        urls: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<()> {
        for (owner, url) in urls {
            if url.contains("://") {
                continue;
            }
            let Some(root) = &self.root else {
                anyhow::bail!(
                    "{owner} boots {url:?}, a path relative to this server, but no --root \
                     directory serves it (pass --root DIR, or `root` in [server])"
                );
            };
            anyhow::ensure!(
                root.is_dir(),
                "--root {} is not a directory (it serves {owner}'s {url:?})",
                root.display()
            );
            let file = root.join(url.trim_start_matches('/'));
            if !file.is_file() {
                tracing::warn!(
                    "{owner} boots {url:?}, but {} is not a file (yet): that boot will fail",
                    file.display()
                );
            }
        }
        Ok(())
    }
}

/// A site file: the `[server]` settings; the policy table in the same file is read by
/// `pxe_policy::table`.
#[derive(Debug, Default, Deserialize)]
struct SiteServer {
    #[serde(default)]
    server: ServerFlags,
    #[serde(flatten)]
    _table: toml::Table,
}

/// The `[server]` table of the site file at `path` (all unset when it has none). Relative
/// paths in it are relative to the file's directory, so a site file means the same from any
/// working directory.
pub(crate) fn site_server_flags(path: &Path) -> anyhow::Result<ServerFlags> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let site: SiteServer = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(0, |span| text[..span.start].matches('\n').count() + 1);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
    })?;
    let mut server = site.server;
    let dir = path.parent().unwrap_or(Path::new("."));
    for setting in [
        &mut server.root,
        &mut server.ipxe_dir,
        &mut server.lease_file,
    ] {
        if let Some(relative) = setting.as_mut().filter(|p| p.is_relative()) {
            *relative = dir.join(&*relative);
        }
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_reservations_and_strategies_parse_or_say_why() {
        let pool: Pool = "198.18.1.100-198.18.1.199/24".parse().unwrap();
        assert_eq!(pool.prefix_len, Some(24));
        assert!("192.0.2.9".parse::<Pool>().is_err());
        assert!("192.0.2.9-192.0.2.1".parse::<Pool>().is_err());
        assert!("192.0.2.1-192.0.2.9/31".parse::<Pool>().is_err());
        let reserve: Reserve = "52:54:00:12:34:56=192.0.2.10,web-01".parse().unwrap();
        assert_eq!(reserve.host_name.as_deref(), Some("web-01"));
        assert!("52:54:00:12:34:56=192.0.2.10,web 01"
            .parse::<Reserve>()
            .is_err());
        assert!("52:54:00:12:34=192.0.2.10".parse::<Reserve>().is_err());
        let choice: ClientStrategy = "52:54:00:12:34:56=boot-server".parse().unwrap();
        assert_eq!(choice.strategy, StrategyChoice::BootServer);
        assert!("0-10".parse::<PortSpan>().is_err());
    }

    #[test]
    fn flags_win_over_the_site_file_and_lists_replace_whole() {
        let file: SiteServer = toml::from_str(
            "[server]\ndhcp = \"authoritative\"\npool = [\"192.0.2.100-192.0.2.199\"]\n\
             http_port = 8080\nipv6_ra = true\ninterface = \"br0\"\n",
        )
        .unwrap();
        let flags = ServerFlags {
            http_port: Some(8081),
            pool: vec!["198.18.0.10-198.18.0.20".parse().unwrap()],
            ..ServerFlags::default()
        };
        let merged = flags.over(file.server);
        assert_eq!(merged.http_port, Some(8081));
        assert_eq!(merged.dhcp, Some(DhcpChoice::Authoritative));
        assert_eq!(merged.pool.len(), 1);
        assert_eq!(merged.pool[0].first, Ipv4Addr::new(198, 18, 0, 10));
        assert!(merged.ipv6_ra);
    }

    #[test]
    fn the_metrics_address_comes_from_the_site_file_unless_the_flag_gives_one() {
        let file: SiteServer = toml::from_str("[server]\nmetrics = \"127.0.0.1:9420\"\n").unwrap();
        let settings = ServerFlags::default()
            .over(file.server.clone())
            .resolve()
            .unwrap();
        assert_eq!(settings.metrics, Some("127.0.0.1:9420".parse().unwrap()));
        let flags = ServerFlags {
            metrics: Some("127.0.0.1:9421".parse().unwrap()),
            ..ServerFlags::default()
        };
        let settings = flags.over(file.server).resolve().unwrap();
        assert_eq!(settings.metrics, Some("127.0.0.1:9421".parse().unwrap()));
        assert!(toml::from_str::<SiteServer>("[server]\nmetrics = \"9420\"\n").is_err());
    }

    #[test]
    fn the_lease_store_comes_from_the_site_file_and_excludes_the_lease_file() {
        let file: SiteServer = toml::from_str(
            "[server]\ndhcp = \"authoritative\"\npool = [\"192.0.2.100-192.0.2.199\"]\n\
             lease_store = \"host=/run/postgresql dbname=pxe\"\n",
        )
        .unwrap();
        let settings = ServerFlags::default().over(file.server).resolve().unwrap();
        let store = settings.lease_store.expect("a lease store");
        assert!(
            store.target().contains("/run/postgresql"),
            "{}",
            store.target()
        );
        let both = ServerFlags {
            dhcp: Some(DhcpChoice::Authoritative),
            pool: vec!["192.0.2.100-192.0.2.199".parse().unwrap()],
            lease_file: Some(PathBuf::from("/tmp/leases")),
            lease_store: Some("postgres://pxe@localhost/pxe".into()),
            ..ServerFlags::default()
        };
        let error = both.resolve().unwrap_err().to_string();
        assert!(error.contains("exclude each other"), "{error}");
        let proxy = ServerFlags {
            lease_store: Some("postgres://pxe@localhost/pxe".into()),
            ..ServerFlags::default()
        };
        let error = proxy.resolve().unwrap_err().to_string();
        assert!(error.contains("--lease-store is only used"), "{error}");
    }

    #[test]
    fn unknown_server_keys_are_refused() {
        let error = toml::from_str::<SiteServer>("[server]\nhttp_prot = 80\n").unwrap_err();
        assert!(error.message().contains("http_prot"), "{error}");
    }

    #[test]
    fn subnets_take_their_routers_and_refuse_overlaps() {
        let flags = ServerFlags {
            dhcp: Some(DhcpChoice::Authoritative),
            pool: vec![
                "192.0.2.100-192.0.2.199".parse().unwrap(),
                "198.18.1.10-198.18.1.20/24".parse().unwrap(),
            ],
            router: vec![Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(192, 0, 2, 254)],
            lease_time: Some(600),
            ..ServerFlags::default()
        };
        let settings = flags.clone().resolve().unwrap();
        assert_eq!(
            settings.subnets[0].router,
            Some(Ipv4Addr::new(192, 0, 2, 254))
        );
        assert_eq!(
            settings.subnets[1].router,
            Some(Ipv4Addr::new(198, 18, 1, 1))
        );
        assert_eq!(settings.subnets[1].lease_time, Duration::from_secs(600));
        let overlapping = ServerFlags {
            pool: vec![
                "192.0.2.100-192.0.2.199".parse().unwrap(),
                "192.0.2.16-192.0.2.30/28".parse().unwrap(),
            ],
            router: Vec::new(),
            ..flags
        };
        let error = overlapping.resolve().unwrap_err().to_string();
        assert!(error.contains("overlaps"), "{error}");
    }
}
