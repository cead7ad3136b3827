//! Test support shared by the pxe crates' integration tests: the lab rules in one place.
//!
//! - [`prerequisites`]: a test that needs root, a network namespace or a real peer (curl,
//!   tftp-hpa, dhclient, QEMU…) calls it first. Outside CI a missing prerequisite skips the
//!   test with a clear message; with `CI` set in the environment it fails the test, because CI
//!   installs everything (`scripts/test`).
//! - [`NetNs`]: a network namespace the test owns, removed (with every process still inside
//!   it) when dropped; [`NetNs::link`] joins two with a veth pair. Addresses come from the
//!   documentation ranges 192.0.2.0/24 and 198.18.0.0/15, and only ever inside namespaces.
//! - [`NetNs::enter`] runs a closure on a thread that has joined the namespace, so a test can
//!   run a library server (a tokio runtime) inside it without a subprocess.
//! - [`lab`]: the firmware lab, a bridge in a namespace ([`Lab`]) and QEMU machines on it
//!   ([`Vm`]) booting SeaBIOS + iPXE, OVMF's own PXE, OVMF + iPXE, or UEFI HTTP Boot, with
//!   [`Vm::wait_for_marker`] on the serial console.
//! - [`cases`]: the five firmware paths ([`BootCase`]) and [`record_boot_time`].
//! - [`reference`](mod@reference): dnsmasq and nginx as real peer servers inside a namespace.
//! - [`payload`]: the kernel + busybox initrd those machines boot, built once and cached.
//! - [`perfdhcp`](mod@perfdhcp): Kea's perfdhcp as a DHCP load peer, and its report.
//!
//! What it does not do: install packages, or touch the root namespace's addresses and routes.

pub mod cases;
pub mod lab;
pub mod payload;
pub mod perfdhcp;
pub mod postgres;
pub mod reference;

pub use cases::{record_boot_time, BootCase, DhcpMode, SYNTAX_CMDLINE};
pub use lab::{Firmware, Lab, MarkerMissing, MarkerSeen, Nic, Vm, VmConfig};
pub use payload::{boot_payload, BootPayload};
pub use postgres::Postgres;
pub use reference::{Dnsmasq, Nginx};

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether the tests run in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The full path of `tool` on `PATH` (plus the sbin directories, where `ip` and `dhclient`
/// live), or `None`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root (network namespaces and raw DHCP need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Checks what a test needs: root when `needs_root`, and every tool in `tools` on the path.
///
/// Returns `true` when the test can run. Otherwise, outside CI, prints
/// `SKIP <test>: <reason>` to stderr and returns `false` (the test should return early); in
/// CI it panics with the same reason, since CI must run every test.
pub fn prerequisites(test: &str, needs_root: bool, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if needs_root && !is_root() {
        missing.push("root privileges".to_string());
    }
    for tool in tools {
        if find_tool(tool).is_none() {
            missing.push(format!(
                "`{tool}` (install it, or run scripts/test which does)"
            ));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("SKIP {test}: needs {}", missing.join(", "));
    assert!(!in_ci(), "{reason}; CI must run every test");
    eprintln!("{reason}");
    false
}

/// Panics (naming `what` and showing `log`) unless every needle appears in `log` in the
/// given order: the path a boot took, as a server's log tells it.
pub fn assert_in_order(log: &str, needles: &[&str], what: &dyn std::fmt::Display) {
    let mut from = 0;
    for needle in needles {
        let at = log[from..].find(needle).unwrap_or_else(|| {
            panic!("{what}: no {needle:?} (in order: {needles:?}) in the log:\n{log}")
        });
        from += at + needle.len();
    }
}

/// Runs a command to completion and panics with its output if it fails: for lab set-up steps,
/// where a failure means the test cannot mean anything.
pub fn run_checked(program: impl AsRef<OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    assert!(
        output.status.success(),
        "{program:?} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A network namespace created by this test process and removed when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace named `pxe-<label>-<pid>-<n>` with loopback up.
    ///
    /// Panics if it cannot (call [`prerequisites`] with `needs_root` first).
    pub fn new(label: &str) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Interface and namespace names are short-lived and per-process, so a stale one from
        // a crashed run never collides with ours.
        let name = format!("pxe-{label}-{}-{id}", std::process::id());
        run_checked("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .stdin(Stdio::null());
        command
    }

    /// Runs `ip ARGS…` inside the namespace, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_checked("ip", &full)
    }

    /// Runs `program ARGS…` inside the namespace to completion, panicking on failure.
    pub fn run_checked(&self, program: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run_checked("ip", &full)
    }

    /// Joins `self` and `other` with a veth pair whose ends are named `if_self` (here) and
    /// `if_other` (there), both up. `addr_self` / `addr_other` are CIDR addresses to assign
    /// (`"192.0.2.1/24"`), or `None` to leave an end unaddressed (a DHCP client's).
    pub fn link(
        &self,
        if_self: &str,
        addr_self: Option<&str>,
        other: &NetNs,
        if_other: &str,
        addr_other: Option<&str>,
    ) {
        // Create both ends inside `self`, then move one: no interface ever exists in the root
        // namespace under a name of ours.
        self.ip(&[
            "link", "add", if_self, "type", "veth", "peer", "name", if_other,
        ]);
        self.ip(&["link", "set", if_other, "netns", &other.name]);
        for (ns, ifname, addr) in [(self, if_self, addr_self), (other, if_other, addr_other)] {
            if let Some(addr) = addr {
                ns.ip(&["addr", "add", addr, "dev", ifname]);
            }
            ns.ip(&["link", "set", ifname, "up"]);
        }
    }

    /// Runs `f` on a new thread that has joined this namespace, and returns its result.
    ///
    /// Sockets opened by `f` (including a tokio runtime built inside it) live in the
    /// namespace. Panics in `f` propagate.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    join_namespace(&path);
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs `f` on a new background thread that has joined this namespace, e.g. a library
    /// server that must keep serving while the test boots a VM; join the handle for its
    /// result. Stop it through a channel or a shutdown signal of its own.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            join_namespace(&path);
            f()
        })
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// The ids of the processes still running inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        let output = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output();
        output
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn join_namespace(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Every process inside was started by this test (the namespace is ours alone).
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A child process that is killed (by its id) and reaped when dropped, so a failing test
/// never leaves a server or client running.
#[derive(Debug)]
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    /// Spawns `command`, panicking with its description if it cannot start.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self(child)
    }
}

impl ChildGuard {
    /// Spawns a server told to listen on port 0 (the kernel picks a free one, so tests running
    /// at once never race for a port) and returns it with the address it reports: the value of
    /// the field `field=ADDR` on the first stdout line that contains `marker`. Stdout is
    /// drained afterwards so that the server never blocks on a full pipe.
    pub fn spawn_reporting_address(
        command: &mut Command,
        marker: &'static str,
        field: &'static str,
    ) -> (Self, std::net::SocketAddr) {
        use std::io::BufRead as _;
        let mut guard = Self::spawn(command.stdout(Stdio::piped()));
        let stdout = guard.0.stdout.take().expect("piped stdout");
        let (found, address) = std::sync::mpsc::channel();
        let prefix = format!("{field}=");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(marker) {
                    let address = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix(prefix.as_str())?.parse().ok());
                    let _ = found.send(address);
                }
            }
        });
        let address = address
            .recv_timeout(std::time::Duration::from_secs(30))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{command:?} logs `{marker}` with `{field}=ADDR` at start"));
        (guard, address)
    }
}

impl ChildGuard {
    /// Waits for the child to exit, at most `limit`: its status, or `None` if it is still
    /// running then (it is killed when the guard drops).
    pub fn wait_timeout(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().ok().flatten() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_link_and_tear_down() {
        if !prerequisites("namespaces_link_and_tear_down", true, &["ip", "ping"]) {
            return;
        }
        let name;
        {
            let a = NetNs::new("tk-a");
            let b = NetNs::new("tk-b");
            name = a.name().to_string();
            a.link(
                "tka0",
                Some("192.0.2.1/24"),
                &b,
                "tkb0",
                Some("192.0.2.2/24"),
            );
            a.run_checked("ping", &["-c", "1", "-W", "2", "192.0.2.2"]);
            // A socket opened by `enter` lives in the namespace: it can bind the address.
            let bound = a.enter(|| std::net::UdpSocket::bind("192.0.2.1:0").is_ok());
            assert!(bound);
        }
        let list = run_checked("ip", &["netns", "list"]);
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
    }
}
