//! Real peer servers for the firmware lab: dnsmasq (DHCP + TFTP) and nginx (HTTP), started
//! inside a namespace with configs in a scratch directory (never `/etc`), stopped by their
//! process ids when dropped.
//!
//! The reference boots (`examples/tests/firmware_reference.rs`) serve every firmware case
//! with them, to compare the pxe servers against; a proxy-mode test runs [`Dnsmasq`] with
//! only [`Dnsmasq::site_config`] on a second host ([`crate::Lab::add_host`]) as the site's
//! plain DHCP server.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::lab::{Lab, LabProcess};
use crate::NetNs;

/// The tools the reference servers need, for [`crate::prerequisites`].
pub const REFERENCE_TOOLS: &[&str] = &["dnsmasq", "nginx"];

/// How long a server gets to come up before the test fails.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// dnsmasq running in the foreground inside a namespace (DNS off), logging every DHCP
/// exchange (`log-dhcp`) to [`Dnsmasq::log`].
#[derive(Debug)]
pub struct Dnsmasq {
    process: LabProcess,
}

impl Dnsmasq {
    /// The lines every lab dnsmasq starts with: no DNS, no `/etc` files, root kept (its files
    /// sit in a root-only scratch directory), logs to stderr, DHCP on `interface` with its
    /// lease file in `dir`. Add a `dhcp-range` (a pool, or `proxy`) and the boot rules.
    pub fn base_config(dir: &Path, interface: &str) -> String {
        let mut config = String::new();
        for line in [
            "port=0",
            "no-resolv",
            "no-hosts",
            "user=root",
            "group=root",
            "pid-file=",
            "log-facility=-",
            "log-dhcp",
        ] {
            config.push_str(line);
            config.push('\n');
        }
        let _ = writeln!(config, "interface={interface}");
        let _ = writeln!(config, "dhcp-leasefile={}", dir.join("leases").display());
        config
    }

    /// A plain authoritative DHCP server handing out `first`–`last` in a /24 (with itself as
    /// router) and no PXE options at all: the site server beside a proxy, or, with boot rules
    /// added, an all-in-one reference.
    pub fn site_config(dir: &Path, interface: &str, first: Ipv4Addr, last: Ipv4Addr) -> String {
        let mut config = Self::base_config(dir, interface);
        config.push_str("dhcp-authoritative\n");
        let _ = writeln!(config, "dhcp-range={first},{last},255.255.255.0,10m");
        config
    }

    /// A ProxyDHCP server for the /24 holding `server` (no addresses handed out): add
    /// `pxe-service` lines, which is all dnsmasq sends in this mode.
    pub fn proxy_config(dir: &Path, interface: &str, server: Ipv4Addr) -> String {
        let mut config = Self::base_config(dir, interface);
        let network = Ipv4Addr::from(u32::from(server) & 0xffff_ff00);
        let _ = writeln!(config, "dhcp-range={network},proxy,255.255.255.0");
        config
    }

    /// Writes `config` to `dir/dnsmasq.conf` and starts dnsmasq in `ns` with it, waiting
    /// until it reports that DHCP is up.
    ///
    /// Panics (with its log) if it exits or does not come up within 10 s.
    pub fn start(ns: &NetNs, dir: &Path, config: &str) -> Self {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join("dnsmasq.conf");
        fs::write(&path, config).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mut command = ns.command("dnsmasq");
        command
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", path.display()));
        let mut process = LabProcess::spawn(command, dir.join("dnsmasq.log"));
        if process.wait_for_log("DHCP, ", STARTUP_TIMEOUT).is_none() {
            panic!(
                "dnsmasq ({}) not up after {STARTUP_TIMEOUT:?} ({}):\n{}",
                path.display(),
                process.exited().unwrap_or_else(|| "still running".into()),
                process.log_text()
            );
        }
        Self { process }
    }

    /// Waits (at most `timeout`) for a log line holding every one of `parts` (a message and a
    /// MAC, say) and returns that line.
    pub fn wait_for_log_line(&mut self, parts: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.process.log_text();
            if let Some(line) = log
                .lines()
                .find(|line| parts.iter().all(|part| line.contains(part)))
            {
                return Some(line.to_string());
            }
            if self.process.exited().is_some() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything dnsmasq logged so far (each DHCP and TFTP exchange).
    pub fn log(&self) -> String {
        self.process.log_text()
    }

    /// The site DHCP server of a proxy-mode test: a second host on `lab`'s segment
    /// (192.0.2.2, named `<label>-site`) running dnsmasq with a pool of 192.0.2.100–199 and
    /// no PXE options at all.
    pub fn start_site(lab: &mut Lab, label: &str) -> Self {
        let dir = lab.dir().join("site");
        let config = Self::site_config(
            &dir,
            "eth0",
            Ipv4Addr::new(192, 0, 2, 100),
            Ipv4Addr::new(192, 0, 2, 199),
        );
        let host = lab.add_host(&format!("{label}-site"), "192.0.2.2/24");
        Self::start(host, &dir, &config)
    }

    /// Panics (naming `what` and showing the log) unless this server acknowledged a lease to
    /// `mac` on its `eth0` (a site server started by [`Dnsmasq::start_site`]).
    pub fn assert_leased_to(&self, mac: [u8; 6], what: &dyn std::fmt::Display) {
        let mac = crate::lab::format_mac(mac);
        let log = self.log();
        assert!(
            log.lines()
                .any(|l| l.contains("DHCPACK(eth0)") && l.contains(&mac)),
            "{what}: the site server leased nothing to {mac}:\n{log}"
        );
    }

    /// dnsmasq's process id.
    pub fn pid(&self) -> u32 {
        self.process.child.0.id()
    }
}

/// nginx as one foreground process (`master_process off`) inside a namespace, serving a
/// directory as static files with Content-Length and keep-alive, as iPXE and UEFI HTTP Boot
/// expect.
#[derive(Debug)]
pub struct Nginx {
    process: LabProcess,
    dir: PathBuf,
}

impl Nginx {
    /// Writes a config to `dir/nginx/` and starts nginx in `ns` serving `root` on `listen`,
    /// waiting until it accepts connections.
    ///
    /// Panics (with its log) if it exits or does not come up within 10 s.
    pub fn start(ns: &NetNs, dir: &Path, root: &Path, listen: SocketAddrV4) -> Self {
        let prefix = dir.join("nginx");
        fs::create_dir_all(&prefix).unwrap_or_else(|e| panic!("create {}: {e}", prefix.display()));
        let config = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             master_process off;\n\
             pid {prefix}/nginx.pid;\n\
             error_log stderr info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             \x20   access_log {prefix}/access.log;\n\
             \x20   default_type application/octet-stream;\n\
             \x20   sendfile on;\n\
             \x20   keepalive_timeout 65;\n\
             \x20   client_body_temp_path {prefix}/body;\n\
             \x20   proxy_temp_path {prefix}/proxy;\n\
             \x20   server {{\n\
             \x20       listen {listen};\n\
             \x20       root {root};\n\
             \x20   }}\n\
             }}\n",
            prefix = prefix.display(),
            root = root.display(),
        );
        let path = prefix.join("nginx.conf");
        fs::write(&path, config).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mut command = ns.command("nginx");
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&path)
            // The error log before the config is read would otherwise go to /var/log/nginx.
            .args(["-e", "stderr"]);
        let mut process = LabProcess::spawn(command, prefix.join("nginx.log"));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !ns.enter(|| {
            TcpStream::connect_timeout(&listen.into(), Duration::from_millis(200)).is_ok()
        }) {
            if let Some(status) = process.exited() {
                panic!("nginx exited ({status}):\n{}", process.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "nginx not listening on {listen} after {STARTUP_TIMEOUT:?}:\n{}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            process,
            dir: prefix,
        }
    }

    /// The access log so far: one line per request, with status and bytes.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// nginx's own log (errors) so far.
    pub fn log(&self) -> String {
        self.process.log_text()
    }

    /// nginx's process id.
    pub fn pid(&self) -> u32 {
        self.process.child.0.id()
    }
}
