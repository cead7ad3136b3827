//! The firmware lab: a network segment inside a namespace, and QEMU machines on it.
//!
//! A [`Lab`] is one namespace holding a bridge (the segment) with the server address
//! [`Lab::SERVER_ADDR`] on it. Servers run inside the namespace ([`Lab::ns`] gives
//! [`NetNs::enter`] and [`NetNs::command`]); virtual machines join the bridge through tap
//! devices that also live only in the namespace ([`Lab::vm`]). Other hosts on the segment (a
//! site DHCP server beside a proxy, say) get their own namespace linked to the bridge
//! ([`Lab::add_host`]). Nothing is created in the root namespace.
//!
//! A [`Vm`] is QEMU under TCG (never KVM: nested KVM fails on firmware code on these machines)
//! with one of the [`Firmware`] set-ups real clients use, its serial console written to a file
//! that [`Vm::wait_for_marker`] watches. Dropping the `Vm` kills QEMU by its id.
//!
//! A boot test, in outline (`netboot` stands for any server binary):
//!
//! ```no_run
//! use std::time::Duration;
//! use pxe_testkit::lab::{vm_prerequisites, Lab, LabProcess, VmConfig};
//! use pxe_testkit::{boot_payload, record_boot_time, BootCase, DhcpMode};
//!
//! let case = BootCase::UefiPxeChainSnponly;
//! if !vm_prerequisites("my_boot_test", &[case.firmware()], &[]) {
//!     return;
//! }
//! let payload = boot_payload(); // built once, cached under the target dir
//! let lab = Lab::new("mine");
//! payload.copy_to(&lab.dir().join("files")).unwrap(); // vmlinuz, initrd.img
//! let mut server = lab.ns().command("/path/to/netboot");
//! server.args(["boot", "--interface", lab.bridge(), "--listen", "192.0.2.1"]);
//! let _server = LabProcess::spawn(server, lab.dir().join("server.log"));
//! let mut vm = lab.vm(&VmConfig::new(case.firmware()).uuid(&case.uuid()));
//! let seen = vm
//!     .wait_for_marker(&payload.end_marker(), Duration::from_secs(300))
//!     .unwrap_or_else(|missing| panic!("{missing}"));
//! let cmdline = payload.printed_cmdline(&seen.console);
//! record_boot_time("pxe", case, DhcpMode::Authoritative, seen.elapsed);
//! ```

use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{ChildGuard, NetNs};

/// The tools a firmware test needs on the path, for [`crate::prerequisites`].
pub const VM_TOOLS: &[&str] = &["ip", "qemu-system-x86_64"];

/// Debian's iPXE option ROMs for QEMU (package `ipxe-qemu`). QEMU's defaults are the
/// `efi-<nic>.rom` images, which hold both a legacy (BIOS) and an EFI iPXE. The lab uses
/// QEMU's default: with `romfile=` naming a ROM explicitly (`pxe-virtio.rom`, or even the
/// default `efi-virtio.rom`), SeaBIOS's virtio iPXE never sends a DHCPDISCOVER here.
const IPXE_QEMU_DIR: &str = "/usr/lib/ipxe/qemu";
/// Debian's OVMF firmware image with its variable store built in (package `ovmf`).
const OVMF_IMAGE: &str = "/usr/share/ovmf/OVMF.fd";
/// OVMF built with Secure Boot (needs SMM), Debian `ovmf`.
const OVMF_SECURE_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// Variables with Secure Boot on and Microsoft's UEFI CA enrolled (each VM gets a copy).
const OVMF_MS_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// One network segment for firmware tests: a namespace holding the bridge `br0` with
/// [`Lab::SERVER_ADDR`]`/24`, tap devices for virtual machines, and links to other hosts.
#[derive(Debug)]
pub struct Lab {
    // Declared first so that it drops first: hosts linked to the bridge go before it.
    hosts: Vec<NetNs>,
    ns: NetNs,
    dir: tempfile::TempDir,
    next_device: AtomicU32,
}

impl Lab {
    /// The bridge's name inside the namespace.
    pub const BRIDGE: &'static str = "br0";
    /// The server address on the bridge: what clients are told to fetch from.
    pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// The segment's prefix length.
    pub const PREFIX_LEN: u8 = 24;

    /// Creates the namespace `pxe-<label>-…` with the bridge up and [`Lab::SERVER_ADDR`] on
    /// it, plus a scratch directory (for consoles and server configs) removed on drop.
    ///
    /// Panics if it cannot (call [`crate::prerequisites`] with `needs_root` and [`VM_TOOLS`]
    /// first).
    pub fn new(label: &str) -> Self {
        let ns = NetNs::new(label);
        // forward_delay 0: a port is forwarding at once, so the first DHCPDISCOVER of a
        // firmware is never eaten by the bridge's learning state.
        ns.ip(&[
            "link",
            "add",
            Self::BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        let cidr = format!("{}/{}", Self::SERVER_ADDR, Self::PREFIX_LEN);
        ns.ip(&["addr", "add", &cidr, "dev", Self::BRIDGE]);
        ns.ip(&["link", "set", Self::BRIDGE, "up"]);
        let dir = tempfile::Builder::new()
            .prefix(&format!("pxe-lab-{label}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the lab's scratch directory: {e}"));
        Self {
            hosts: Vec::new(),
            ns,
            dir,
            next_device: AtomicU32::new(0),
        }
    }

    /// The namespace the bridge lives in: run servers here ([`NetNs::enter`],
    /// [`NetNs::command`]).
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// The bridge's interface name (`br0`): the `--interface` a server listens on.
    pub fn bridge(&self) -> &str {
        Self::BRIDGE
    }

    /// The server address on the bridge.
    pub fn server_addr(&self) -> Ipv4Addr {
        Self::SERVER_ADDR
    }

    /// `netboot serve --config SITE` (the binary at `netboot`) in this lab's namespace: on
    /// the server address and the bridge, with Debian's iPXE binaries and authoritative DHCP
    /// for 192.0.2.100–199. The caller adds what its case needs (`--root`, `--ipv6-ra`,
    /// `RUST_LOG`) and starts it.
    pub fn netboot_serve(&self, netboot: &str, site: &Path) -> Command {
        let mut command = self.ns().command(netboot);
        command
            .arg("serve")
            .arg("--config")
            .arg(site)
            .args(["--listen", &self.server_addr().to_string()])
            .args(["--interface", self.bridge()])
            .args(["--ipxe-dir", crate::cases::IPXE_DIR])
            .args([
                "--dhcp",
                "authoritative",
                "--pool",
                "192.0.2.100-192.0.2.199",
            ]);
        command
    }

    /// A scratch directory owned by the lab (removed on drop), for consoles, configs and
    /// files to serve.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds another host on the segment: a new namespace joined to the bridge by a veth pair,
    /// with `cidr` (`"192.0.2.2/24"`) on its end `eth0`. A site DHCP server beside a proxy
    /// runs there. The host is removed with the lab.
    pub fn add_host(&mut self, label: &str, cidr: &str) -> &NetNs {
        let n = self.next_device.fetch_add(1, Ordering::Relaxed);
        let host = NetNs::new(label);
        let bridge_end = format!("vh{n}");
        self.ns.link(&bridge_end, None, &host, "eth0", Some(cidr));
        self.ns
            .ip(&["link", "set", &bridge_end, "master", Self::BRIDGE]);
        self.hosts.push(host);
        self.hosts.last().expect("just pushed")
    }

    /// Creates a tap device on the bridge, up, and returns its name (`tapN`).
    pub fn add_tap(&self) -> String {
        let n = self.next_device.fetch_add(1, Ordering::Relaxed);
        let tap = format!("tap{n}");
        // A persistent tap created here stays in the namespace; QEMU attaches to it by name.
        self.ns.ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.ns.ip(&["link", "set", &tap, "master", Self::BRIDGE]);
        self.ns.ip(&["link", "set", &tap, "up"]);
        tap
    }

    /// Starts a virtual machine on the segment (a new tap device) with `config`.
    ///
    /// Panics if QEMU cannot start.
    pub fn vm(&self, config: &VmConfig) -> Vm {
        let tap = self.add_tap();
        let console = self.dir().join(format!("{tap}-console.log"));
        let qemu_log = self.dir().join(format!("{tap}-qemu.log"));
        let args = config.qemu_args(&tap, &console);
        if config.firmware == Firmware::OvmfSecureBoot {
            // qemu_args names this copy: the firmware writes its variables.
            let vars = console.with_extension("vars.fd");
            fs::copy(OVMF_MS_VARS, &vars)
                .unwrap_or_else(|e| panic!("copy {OVMF_MS_VARS} (Debian package ovmf): {e}"));
        }
        let mut command = self.ns.command("qemu-system-x86_64");
        // QEMU's own messages go to a file: a pipe nobody reads could fill and stall it.
        let log_file = fs::File::create(&qemu_log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", qemu_log.display()));
        command.args(&args).stdout(Stdio::null()).stderr(log_file);
        let started = Instant::now();
        // `ip netns exec` execs QEMU in place, so the child's id is QEMU's own.
        let child = ChildGuard::spawn(&mut command);
        Vm {
            child,
            console,
            qemu_log,
            started,
            tap,
            mac: config.mac,
            args,
        }
    }
}

/// The network card QEMU emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nic {
    /// Intel e1000 (BIOS only: OVMF has no e1000 driver).
    E1000,
    /// virtio-net-pci.
    Virtio,
}

impl Nic {
    fn device(self) -> &'static str {
        match self {
            Self::E1000 => "e1000",
            Self::Virtio => "virtio-net-pci",
        }
    }

    /// QEMU's default iPXE ROM for this NIC (legacy + EFI images in one file).
    fn ipxe_rom(self) -> PathBuf {
        Path::new(IPXE_QEMU_DIR).join(format!("efi-{}.rom", self.rom_stem()))
    }

    fn rom_stem(self) -> &'static str {
        match self {
            Self::E1000 => "e1000",
            Self::Virtio => "virtio",
        }
    }
}

/// Which firmware boots the machine, and so which client speaks first on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS with QEMU's iPXE option ROM (`ipxe-qemu`'s `efi-<nic>.rom`, QEMU's default,
    /// whose legacy image runs under SeaBIOS): a BIOS iPXE that
    /// sends option 175 and user class `iPXE`.
    SeaBiosIpxe(Nic),
    /// OVMF with the NIC's option ROM disabled (`romfile=`): EDK2's own PXE client (virtio).
    OvmfPxe,
    /// OVMF with QEMU's iPXE EFI ROM (`efi-virtio.rom`): an EFI iPXE in the NIC.
    OvmfIpxe,
    /// OVMF UEFI HTTP Boot: the ROM disabled and IPv4 PXE switched off through fw_cfg
    /// (`opt/org.tianocore/IPv4PXESupport=no`), so the HTTP Boot entry runs first.
    OvmfHttpBoot,
    /// OVMF with Secure Boot enforced and Microsoft's keys enrolled (`OVMF_CODE_4M.secboot.fd`
    /// with a copy of `OVMF_VARS_4M.ms.fd`, SMM on), the option ROM disabled: EDK2's own PXE,
    /// which runs only signed images.
    OvmfSecureBoot,
}

impl Firmware {
    /// The NIC this firmware boots from.
    pub fn nic(self) -> Nic {
        match self {
            Self::SeaBiosIpxe(nic) => nic,
            Self::OvmfPxe | Self::OvmfIpxe | Self::OvmfHttpBoot | Self::OvmfSecureBoot => {
                Nic::Virtio
            }
        }
    }

    /// Whether the firmware is UEFI (x64), so iPXE needs `initrd=<name>` on the kernel command
    /// line and the iPXE flavour is `snponly.efi`.
    pub fn is_uefi(self) -> bool {
        !matches!(self, Self::SeaBiosIpxe(_))
    }

    /// The files this firmware set-up needs, for a clear failure when a package is missing.
    pub fn required_files(self) -> Vec<PathBuf> {
        match self {
            Self::SeaBiosIpxe(nic) => {
                vec![nic.ipxe_rom()]
            }
            Self::OvmfPxe | Self::OvmfHttpBoot => vec![PathBuf::from(OVMF_IMAGE)],
            Self::OvmfIpxe => vec![PathBuf::from(OVMF_IMAGE), Nic::Virtio.ipxe_rom()],
            Self::OvmfSecureBoot => {
                vec![PathBuf::from(OVMF_SECURE_CODE), PathBuf::from(OVMF_MS_VARS)]
            }
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SeaBiosIpxe(Nic::E1000) => f.write_str("SeaBIOS + iPXE ROM (e1000)"),
            Self::SeaBiosIpxe(Nic::Virtio) => f.write_str("SeaBIOS + iPXE ROM (virtio)"),
            Self::OvmfPxe => f.write_str("OVMF EDK2 PXE (virtio)"),
            Self::OvmfIpxe => f.write_str("OVMF + iPXE EFI ROM (virtio)"),
            Self::OvmfHttpBoot => f.write_str("OVMF UEFI HTTP Boot (virtio)"),
            Self::OvmfSecureBoot => f.write_str("OVMF Secure Boot, EDK2 PXE (virtio)"),
        }
    }
}

static NEXT_MAC: AtomicU32 = AtomicU32::new(1);

/// How to start a [`Vm`].
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// The firmware set-up.
    pub firmware: Firmware,
    /// The NIC's MAC address.
    pub mac: [u8; 6],
    /// The SMBIOS UUID (`-uuid`), which firmware sends as option 97.
    pub uuid: Option<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// More QEMU arguments, appended last.
    pub extra_args: Vec<String>,
}

impl VmConfig {
    /// A configuration for `firmware` with a fresh MAC in QEMU's range (`52:54:00:…`, unique
    /// within this process), no UUID and 512 MiB.
    pub fn new(firmware: Firmware) -> Self {
        let n = NEXT_MAC.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // The pid's low byte keeps two test processes running at once apart.
        let mac = [0x52, 0x54, 0x00, pid as u8, (n >> 8) as u8, n as u8];
        Self {
            firmware,
            mac,
            uuid: None,
            memory_mib: 512,
            extra_args: Vec::new(),
        }
    }

    /// Sets the SMBIOS UUID.
    pub fn uuid(mut self, uuid: &str) -> Self {
        self.uuid = Some(uuid.to_string());
        self
    }

    /// The QEMU command line (after the program name) for a machine on `tap` whose serial
    /// console goes to `console`.
    pub fn qemu_args(&self, tap: &str, console: &Path) -> Vec<String> {
        // Secure Boot builds of OVMF need SMM, which keeps their variables from the guest.
        let machine = match self.firmware {
            Firmware::OvmfSecureBoot => "q35,smm=on",
            _ => "q35",
        };
        let mut args: Vec<String> = [
            "-machine",
            machine,
            // TCG only: KVM here fails on firmware code.
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
            "-vga",
            "none",
            // A power-off or reboot of the guest ends QEMU, so a crash loop ends the test.
            "-no-reboot",
            "-m",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.push(self.memory_mib.to_string());
        args.push("-serial".into());
        args.push(format!("file:{}", console.display()));
        args.push("-netdev".into());
        args.push(format!("tap,id=net0,ifname={tap},script=no,downscript=no"));
        let nic = self.firmware.nic();
        let mut device = format!("{},netdev=net0,mac={}", nic.device(), format_mac(self.mac));
        match self.firmware {
            // QEMU's default ROM (Debian: /usr/lib/ipxe/qemu/efi-<nic>.rom). Naming that same
            // file in `romfile=` leaves SeaBIOS's virtio iPXE silent here, so it is not named.
            Firmware::SeaBiosIpxe(_) | Firmware::OvmfIpxe => {}
            // An empty romfile disables the option ROM: EDK2's own network stack drives the NIC.
            Firmware::OvmfPxe | Firmware::OvmfHttpBoot | Firmware::OvmfSecureBoot => {
                device.push_str(",romfile=")
            }
        }
        args.push("-device".into());
        args.push(device);
        if self.firmware == Firmware::OvmfSecureBoot {
            // Code read-only in pflash 0, this VM's own variables (a copy Lab::vm makes) in
            // pflash 1, writable only from SMM.
            let vars = console.with_extension("vars.fd");
            for arg in [
                "-global",
                "driver=cfi.pflash01,property=secure,value=on",
                "-global",
                "ICH9-LPC.disable_s3=1",
                "-drive",
            ] {
                args.push(arg.into());
            }
            args.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SECURE_CODE}"
            ));
            args.push("-drive".into());
            args.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
        } else if self.firmware.is_uefi() {
            args.push("-bios".into());
            args.push(OVMF_IMAGE.into());
        }
        if self.firmware == Firmware::OvmfHttpBoot {
            for knob in ["IPv4PXESupport", "IPv6PXESupport"] {
                args.push("-fw_cfg".into());
                args.push(format!("name=opt/org.tianocore/{knob},string=no"));
            }
        }
        if let Some(uuid) = &self.uuid {
            args.push("-uuid".into());
            args.push(uuid.clone());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// A running QEMU machine, killed (by its process id) when dropped.
#[derive(Debug)]
pub struct Vm {
    child: ChildGuard,
    console: PathBuf,
    qemu_log: PathBuf,
    started: Instant,
    tap: String,
    mac: [u8; 6],
    args: Vec<String>,
}

/// What [`Vm::wait_for_marker`] saw.
#[derive(Clone, Debug)]
pub struct MarkerSeen {
    /// Time from QEMU's start to the marker's first appearance on the console (measured by
    /// polling every 50 ms).
    pub elapsed: Duration,
    /// The whole console text at that moment.
    pub console: String,
}

/// Why [`Vm::wait_for_marker`] gave up.
#[derive(Clone, Debug)]
pub struct MarkerMissing {
    /// The marker waited for.
    pub marker: String,
    /// How long it waited.
    pub waited: Duration,
    /// QEMU's exit status and stderr, if it ended before the marker showed.
    pub exited: Option<String>,
    /// The console text so far.
    pub console: String,
    /// The QEMU command line, to reproduce by hand.
    pub command: String,
}

impl fmt::Display for MarkerMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "marker {:?} not on the console after {:.1?}",
            self.marker, self.waited
        )?;
        if let Some(exited) = &self.exited {
            write!(f, "; QEMU ended first: {exited}")?;
        }
        // The console tail is what tells why: firmware errors, kernel panics.
        let tail_start = self.console.len().saturating_sub(4000);
        let tail_start = (tail_start..self.console.len())
            .find(|&i| self.console.is_char_boundary(i))
            .unwrap_or(self.console.len());
        write!(
            f,
            "\nqemu-system-x86_64 {}\n--- console (last 4000 bytes) ---\n{}\n---",
            self.command,
            &self.console[tail_start..]
        )
    }
}

impl std::error::Error for MarkerMissing {}

impl Vm {
    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The tap device the machine is on.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// The machine's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The file the serial console is written to.
    pub fn console_path(&self) -> &Path {
        &self.console
    }

    /// The console text so far (lossy UTF-8; firmware writes escape sequences).
    pub fn console(&self) -> String {
        fs::read(&self.console)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `marker` appears on the serial console, for at most `timeout` from now.
    ///
    /// Returns the time from QEMU's start to the marker and the console text, or why not
    /// (timeout, or QEMU ended first) with the console text for the failure message.
    pub fn wait_for_marker(
        &mut self,
        marker: &str,
        timeout: Duration,
    ) -> Result<MarkerSeen, MarkerMissing> {
        let deadline = Instant::now() + timeout;
        loop {
            let console = self.console();
            if console.contains(marker) {
                return Ok(MarkerSeen {
                    elapsed: self.started.elapsed(),
                    console,
                });
            }
            let exited = match self.child.0.try_wait() {
                Ok(Some(status)) => Some(self.exit_report(status)),
                Ok(None) => None,
                Err(e) => Some(format!("cannot wait for QEMU: {e}")),
            };
            if exited.is_some() || Instant::now() >= deadline {
                // The marker may have been written just before QEMU powered off.
                let console = self.console();
                if console.contains(marker) {
                    return Ok(MarkerSeen {
                        elapsed: self.started.elapsed(),
                        console,
                    });
                }
                return Err(MarkerMissing {
                    marker: marker.to_string(),
                    waited: timeout,
                    exited,
                    console,
                    command: self.args.join(" "),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `timeout`) for QEMU to end by itself, e.g. after the guest powered off.
    /// Returns whether it did.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn exit_report(&self, status: std::process::ExitStatus) -> String {
        let stderr = fs::read_to_string(&self.qemu_log).unwrap_or_default();
        format!("{status}: {}", stderr.trim())
    }
}

/// Checks that every file `firmware` needs exists; returns the missing ones in words.
pub fn missing_firmware_files(firmware: Firmware) -> Vec<String> {
    firmware
        .required_files()
        .into_iter()
        .filter(|path| !path.is_file())
        .map(|path| format!("{} (Debian packages ovmf, ipxe-qemu)", path.display()))
        .collect()
}

/// Whether QEMU is installed with the firmware files `firmware` needs; like
/// [`crate::prerequisites`] (skip outside CI, fail in CI) for a VM test.
pub fn vm_prerequisites(test: &str, firmware: &[Firmware], tools: &[&str]) -> bool {
    let mut all_tools: Vec<&str> = VM_TOOLS.to_vec();
    all_tools.extend_from_slice(tools);
    if !crate::prerequisites(test, true, &all_tools) {
        return false;
    }
    let missing: Vec<String> = firmware
        .iter()
        .flat_map(|fw| missing_firmware_files(*fw))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("SKIP {test}: needs {}", missing.join(", "));
    assert!(!crate::in_ci(), "{reason}; CI must run every test");
    eprintln!("{reason}");
    false
}

/// A process started inside the lab namespace with its output captured to a file in the lab's
/// directory, killed by its id when dropped.
#[derive(Debug)]
pub struct LabProcess {
    /// The process (killed and reaped on drop).
    pub child: ChildGuard,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl LabProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let file2 = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone {}: {e}", log.display()));
        command.stdout(file).stderr(file2);
        let child = ChildGuard::spawn(&mut command);
        Self { child, log }
    }

    /// Starts `command` like [`spawn`](Self::spawn) and waits (30 s at most) for `ready` in
    /// its log; panics with the log if it never comes (the server could not start).
    pub fn spawn_ready(command: Command, log: PathBuf, ready: &str) -> Self {
        let mut process = Self::spawn(command, log);
        if process
            .wait_for_log(ready, Duration::from_secs(30))
            .is_none()
        {
            panic!(
                "no {ready:?} in the log: the server did not start\n{}",
                process.log_text()
            );
        }
        process
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits (at most `timeout`) until the log contains `needle`, and returns the log then;
    /// `None` on timeout or if the process ended without logging it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return Some(log);
            }
            if self.exited().is_some() {
                // It may have logged the line on its way out.
                let log = self.log_text();
                return log.contains(needle).then_some(log);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has ended, with its status in words.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.0.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait: {e}")),
        }
    }
}

/// What [`marker_disk`]'s boot sector prints on COM1.
pub const DISK_MARKER: &str = "PXE-LAB-DISK-BOOTED";

/// An 8 MiB raw disk image whose boot sector prints [`DISK_MARKER`] on COM1 and halts, so the
/// console tells when a machine left the network for its local disk. The sector is 16-bit
/// code loaded at 0x7c00: `cli; cld; ds = 0; si = text; dx = 0x3f8`, each byte of the
/// NUL-terminated text out to COM1's data port, then `hlt` forever.
pub fn marker_disk() -> Vec<u8> {
    let mut sector = vec![
        0xfa, // cli
        0xfc, // cld
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, 0x17, 0x7c, // mov si, 0x7c17 (the text below)
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xac, // next: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz halt
        0xee, // out dx, al
        0xeb, 0xf8, // jmp next
        0xf4, // halt: hlt
        0xeb, 0xfd, // jmp halt
    ];
    assert_eq!(sector.len(), 0x17, "the text's address above");
    sector.extend_from_slice(format!("{DISK_MARKER}\r\n\0").as_bytes());
    sector.resize(510, 0);
    sector.extend_from_slice(&[0x55, 0xaa]);
    // 8 MiB: at least one cylinder of the geometry iPXE's INT 13 emulation guesses for a
    // disk with no partitions (255 heads × 63 sectors = 16065 sectors). A smaller image (a
    // `sanboot` disk) has zero cylinders, and iPXE refuses every CHS read as out of range,
    // its own read of this sector included.
    sector.resize(8 << 20, 0);
    sector
}

/// The tools [`IscsiTarget`] runs (Debian `tgt`).
pub const ISCSI_TOOLS: &[&str] = &["tgtd", "tgtadm"];

static NEXT_TGT_CONTROL: AtomicU32 = AtomicU32::new(0);

/// An iSCSI target: Debian `tgt`'s daemon run in a lab namespace, listening on
/// [`Lab::SERVER_ADDR`]:3260 and serving one disk image as one LUN of one target, to one
/// initiator name only (its ACL): an initiator that logs in under another name is refused.
/// tgtd ignores SIGTERM while it has targets, so dropping this kills it by its id and removes
/// its control socket (`/run/tgtd/socket.N`, N unique to this process and target).
#[derive(Debug)]
pub struct IscsiTarget {
    process: LabProcess,
    control: String,
}

impl IscsiTarget {
    /// Starts tgtd in `lab`'s namespace (its log in the lab's directory) with `target` (an
    /// iSCSI name) whose `lun` (1 or more: LUN 0 is tgt's controller) is `image`, and binds it
    /// to `initiator`. Panics with tgtd's log if any step fails.
    pub fn start(lab: &Lab, target: &str, lun: u8, image: &Path, initiator: &str) -> Self {
        let n = NEXT_TGT_CONTROL.fetch_add(1, Ordering::Relaxed);
        // The management channel is a Unix socket named after this number (not a TCP port;
        // tgtd refuses large ones, 39360 among them): the pid keeps test processes apart, n
        // the targets of one.
        let control = ((std::process::id() % 100) * 64 + n % 64).to_string();
        let mut command = lab.ns().command("tgtd");
        command.args([
            "-f",
            "-C",
            &control,
            "--iscsi",
            &format!("portal={}:3260", Lab::SERVER_ADDR),
        ]);
        let log = lab.dir().join(format!("tgtd-{control}.log"));
        let process = LabProcess::spawn(command, log);
        let mut target_daemon = Self { process, control };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !target_daemon.admin(&["--op", "show", "--mode", "target"]).0 {
            if Instant::now() >= deadline || target_daemon.process.exited().is_some() {
                panic!("tgtd did not start:\n{}", target_daemon.process.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let lun = lun.to_string();
        let image = image.to_str().expect("image paths are UTF-8");
        for step in [
            &[
                "--op", "new", "--mode", "target", "--tid", "1", "-T", target,
            ][..],
            &[
                "--op",
                "new",
                "--mode",
                "logicalunit",
                "--tid",
                "1",
                "--lun",
                &lun,
                "-b",
                image,
            ][..],
            // By name (`-I` would be an initiator address).
            &[
                "--op",
                "bind",
                "--mode",
                "target",
                "--tid",
                "1",
                "--initiator-name",
                initiator,
            ][..],
        ] {
            let (ok, output) = target_daemon.admin(step);
            assert!(
                ok,
                "tgtadm {step:?} failed: {output}\n{}",
                target_daemon.process.log_text()
            );
        }
        target_daemon
    }

    /// `tgtadm --op show --mode target`: targets, LUNs, ACL, and the initiators logged in
    /// (`I_T nexus` … `Initiator: NAME`).
    pub fn show(&self) -> String {
        self.admin(&["--op", "show", "--mode", "target"]).1
    }

    /// tgtd's own log.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    fn admin(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("tgtadm")
            .args(["-C", &self.control, "--lld", "iscsi"])
            .args(args)
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(output) => (
                output.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run tgtadm: {e}")),
        }
    }
}

impl Drop for IscsiTarget {
    fn drop(&mut self) {
        // Kill (by id) and reap first, so the socket is no longer in use.
        let _ = self.process.child.0.kill();
        let _ = self.process.child.0.wait();
        for suffix in ["", ".lock"] {
            let _ = fs::remove_file(format!("/run/tgtd/socket.{}{suffix}", self.control));
        }
    }
}

/// The tools [`efi_marker_disk`] builds its image with (Debian `gdisk`, `dosfstools`,
/// `mtools`), for [`vm_prerequisites`].
pub const EFI_DISK_TOOLS: &[&str] = &["sgdisk", "mkfs.fat", "mmd", "mcopy"];

/// Debian's signed, monolithic GRUB (package `grub-efi-amd64-signed`), the disk's loader.
pub const EFI_DISK_LOADER: &str = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";

/// Writes to `path` a 20 MiB raw disk image that UEFI firmware boots as a local disk: a GPT
/// with one EFI System Partition (FAT16, 1 MiB to 17 MiB) holding `\EFI\BOOT\BOOTX64.EFI`
/// (Debian's signed GRUB, [`EFI_DISK_LOADER`]) and `\EFI\debian\grub.cfg`, which echoes
/// [`DISK_MARKER`] and stays at GRUB's prompt. GRUB writes to the firmware's console, which
/// OVMF copies to the serial port, so the console tells when the machine left the network
/// for its disk. The removable-media path is what firmware boots from a disk with no boot
/// entry of its own; the config sits under the prefix built into Debian's image
/// (`/EFI/debian`).
///
/// Panics if a tool ([`EFI_DISK_TOOLS`]) or the loader is missing, or fails.
pub fn efi_marker_disk(path: &Path) {
    const MIB: u64 = 1 << 20;
    let scratch = tempfile::tempdir().expect("scratch directory for the disk image");
    let esp = scratch.path().join("esp.img");
    let esp_str = esp.to_str().expect("temporary paths are UTF-8");
    // mkfs.fat counts in KiB. FAT16: enough clusters at 16 MiB, which EDK2's FAT driver reads
    // like FAT32.
    crate::run_checked(
        "mkfs.fat",
        &["-C", "-F", "16", "-n", "PXE-LAB-ESP", esp_str, "16384"],
    );
    let config = scratch.path().join("grub.cfg");
    fs::write(
        &config,
        format!("echo {DISK_MARKER}\necho the disk's GRUB is waiting at its prompt\n"),
    )
    .expect("write grub.cfg");
    for dir in ["::/EFI", "::/EFI/BOOT", "::/EFI/debian"] {
        crate::run_checked("mmd", &["-i", esp_str, dir]);
    }
    crate::run_checked(
        "mcopy",
        &["-i", esp_str, EFI_DISK_LOADER, "::/EFI/BOOT/BOOTX64.EFI"],
    );
    crate::run_checked(
        "mcopy",
        &[
            "-i",
            esp_str,
            config.to_str().expect("UTF-8"),
            "::/EFI/debian/grub.cfg",
        ],
    );
    let partition = fs::read(&esp).expect("read the ESP image");
    let image =
        fs::File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    image.set_len(20 * MIB).expect("size the disk image");
    drop(image);
    let disk = path.to_str().expect("disk image paths are UTF-8");
    // One partition from sector 2048 (1 MiB) for the FAT image, type EF00 (ESP).
    let end = format!("1:2048:{}", 2048 + partition.len() as u64 / 512 - 1);
    crate::run_checked(
        "sgdisk",
        &[
            "--new",
            &end,
            "--typecode",
            "1:ef00",
            "--change-name",
            "1:ESP",
            disk,
        ],
    );
    use std::io::{Seek, SeekFrom, Write};
    let mut image = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("reopen the disk image");
    image.seek(SeekFrom::Start(MIB)).expect("seek to the ESP");
    image.write_all(&partition).expect("write the ESP");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Waits for a DHCPDISCOVER from `mac` on the server side of the bridge.
    fn wait_for_discover(lab: &Lab, mac: [u8; 6], timeout: Duration) -> Option<Vec<u8>> {
        lab.ns().enter(|| {
            let socket = UdpSocket::bind("0.0.0.0:67").expect("bind DHCP server port in the lab");
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("set read timeout");
            let deadline = Instant::now() + timeout;
            let mut buf = [0u8; 1500];
            while Instant::now() < deadline {
                let Ok((len, _)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let packet = &buf[..len];
                // op 1 (BOOTREQUEST), chaddr at 28, magic cookie at 236, then option 53 = 1.
                if len > 243
                    && packet[0] == 1
                    && packet[28..34] == mac
                    && packet[236..240] == [99, 130, 83, 99]
                    && is_discover(&packet[240..])
                {
                    return Some(packet.to_vec());
                }
            }
            None
        })
    }

    fn is_discover(mut options: &[u8]) -> bool {
        while let [code, rest @ ..] = options {
            match code {
                0 => options = rest,
                255 => return false,
                _ => {
                    let [len, rest @ ..] = rest else { return false };
                    let len = *len as usize;
                    if rest.len() < len {
                        return false;
                    }
                    if *code == 53 {
                        return rest[..len] == [1];
                    }
                    options = &rest[len..];
                }
            }
        }
        false
    }

    #[test]
    fn qemu_args_select_the_firmware() {
        let console = Path::new("/tmp/console.log");
        let args = |fw| VmConfig::new(fw).qemu_args("tap0", console).join(" ");
        let bios = args(Firmware::SeaBiosIpxe(Nic::E1000));
        assert!(bios.contains("-device e1000,netdev=net0,"));
        assert!(!bios.contains("romfile"), "QEMU's default iPXE ROM: {bios}");
        assert!(!bios.contains("-bios"));
        assert!(bios.contains("-accel tcg"));
        assert!(bios.contains("ifname=tap0,script=no,downscript=no"));
        let pxe = args(Firmware::OvmfPxe);
        assert!(pxe.contains("virtio-net-pci,netdev=net0,mac=52:54:00:"));
        assert!(pxe.ends_with("romfile= -bios /usr/share/ovmf/OVMF.fd"));
        let ipxe = args(Firmware::OvmfIpxe);
        assert!(!ipxe.contains("romfile") && ipxe.contains("-bios /usr/share/ovmf/OVMF.fd"));
        let http = args(Firmware::OvmfHttpBoot);
        assert!(http.contains("-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no"));
        assert!(!pxe.contains("IPv4PXESupport"));
        let secure = args(Firmware::OvmfSecureBoot);
        assert!(secure.starts_with("-machine q35,smm=on "), "{secure}");
        assert!(
            secure.contains("romfile= ") && !secure.contains("-bios"),
            "{secure}"
        );
        assert!(secure.contains(
            "-global driver=cfi.pflash01,property=secure,value=on -global ICH9-LPC.disable_s3=1"
        ));
        assert!(secure.contains(
            "unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd -drive \
             if=pflash,format=raw,unit=1,file=/tmp/console.vars.fd"
        ));
        assert!(pxe.starts_with("-machine q35 "));
        let with_uuid = VmConfig::new(Firmware::OvmfPxe)
            .uuid("9e0c1ab0-0000-4000-8000-000000000001")
            .qemu_args("tap0", console)
            .join(" ");
        assert!(with_uuid.ends_with("-uuid 9e0c1ab0-0000-4000-8000-000000000001"));
    }

    /// The payload itself, booted straight from QEMU (`-kernel`), prints the marker and a
    /// command line holding iPXE syntax verbatim: what a network boot shows can be compared
    /// with what was sent.
    #[test]
    fn payload_prints_its_command_line_verbatim() {
        let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
        let mut tools = crate::payload::PAYLOAD_TOOLS.to_vec();
        tools.push("qemu-system-x86_64");
        if !vm_prerequisites(
            "payload_prints_its_command_line_verbatim",
            &[firmware],
            &tools,
        ) {
            return;
        }
        let payload = crate::payload::boot_payload();
        // What a network boot must carry, plus `${…}` (which iPXE would expand, but the
        // payload does not care): the payload prints any of it unchanged.
        let cmdline = format!(
            "console=ttyS0 {} pxe.expand=${{y}}",
            crate::cases::SYNTAX_CMDLINE
        );
        let mut config = VmConfig::new(firmware);
        config.extra_args = vec![
            "-kernel".into(),
            payload.kernel.display().to_string(),
            "-initrd".into(),
            payload.initrd.display().to_string(),
            "-append".into(),
            cmdline.clone(),
        ];
        let lab = Lab::new("tk-payload");
        let mut vm = lab.vm(&config);
        let seen = vm
            .wait_for_marker(&payload.end_marker(), Duration::from_secs(120))
            .unwrap_or_else(|missing| panic!("{missing}"));
        assert_eq!(payload.printed_cmdline(&seen.console), Some(cmdline));
        // /init powers the machine off, which ends QEMU (-no-reboot).
        assert!(
            vm.wait_for_exit(Duration::from_secs(30)),
            "QEMU still running"
        );
        eprintln!("direct kernel boot: marker after {:.1?}", seen.elapsed);
    }

    /// A second host on the segment (the site DHCP server of a proxy-mode test) reaches the
    /// VMs: its dnsmasq, with no PXE options at all, leases an address to the firmware.
    #[test]
    fn site_dhcp_server_on_a_second_host_leases_to_firmware() {
        let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
        let test = "site_dhcp_server_on_a_second_host_leases_to_firmware";
        if !vm_prerequisites(test, &[firmware], &["dnsmasq"]) {
            return;
        }
        let mut lab = Lab::new("tk-site");
        let dir = lab.dir().join("site");
        let config = crate::reference::Dnsmasq::site_config(
            &dir,
            "eth0",
            Ipv4Addr::new(192, 0, 2, 50),
            Ipv4Addr::new(192, 0, 2, 59),
        );
        let site = lab.add_host("tk-site-dhcp", "192.0.2.2/24");
        let mut dnsmasq = crate::reference::Dnsmasq::start(site, &dir, &config);
        let vm = lab.vm(&VmConfig::new(firmware));
        let ack = "DHCPACK(eth0) ";
        let mac = format_mac(vm.mac());
        let log = dnsmasq
            .wait_for_log_line(&[ack, &mac], Duration::from_secs(90))
            .unwrap_or_else(|| panic!("no DHCPACK to {mac} within 90 s:\n{}", dnsmasq.log()));
        assert!(
            log.contains("192.0.2.5"),
            "lease outside the site range: {log}"
        );
        // The lab's own address answers from the second host: one segment.
        crate::run_checked(
            "ip",
            &[
                "netns",
                "exec",
                lab.hosts[0].name(),
                "ping",
                "-c",
                "1",
                "-W",
                "2",
                "192.0.2.1",
            ],
        );
    }

    /// A QEMU that ends early is reported with its own message, at once, not after the
    /// timeout.
    #[test]
    fn qemu_that_ends_early_is_reported() {
        let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
        if !vm_prerequisites("qemu_that_ends_early_is_reported", &[firmware], &[]) {
            return;
        }
        let lab = Lab::new("tk-bad");
        let mut config = VmConfig::new(firmware);
        config.extra_args = vec!["-no-such-option".into()];
        let mut vm = lab.vm(&config);
        let missing = vm
            .wait_for_marker("never", Duration::from_secs(60))
            .expect_err("QEMU rejects the option");
        let exited = missing.exited.as_deref().expect("QEMU ended");
        assert!(exited.contains("no-such-option"), "{exited}");
        assert!(missing.to_string().contains("QEMU ended first"));
        assert!(vm.elapsed() < Duration::from_secs(60));
    }

    /// The EFI disk's layout as the tools read it back: a GPT with one ESP at 1 MiB, whose
    /// FAT holds the removable-media loader and the config that prints the marker.
    #[test]
    fn efi_marker_disk_has_an_esp_with_the_loader_and_the_marker() {
        let test = "efi_marker_disk_has_an_esp_with_the_loader_and_the_marker";
        let mut tools = EFI_DISK_TOOLS.to_vec();
        tools.push("mtype");
        if !crate::prerequisites(test, false, &tools) {
            return;
        }
        if !Path::new(EFI_DISK_LOADER).is_file() {
            let reason = format!("SKIP {test}: needs {EFI_DISK_LOADER} (grub-efi-amd64-signed)");
            assert!(!crate::in_ci(), "{reason}; CI must run every test");
            eprintln!("{reason}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.img");
        efi_marker_disk(&disk);
        let disk = disk.to_str().unwrap();
        let table = crate::run_checked("sgdisk", &["--print", disk]);
        let table = String::from_utf8_lossy(&table.stdout);
        let partition = table
            .lines()
            .find(|line| line.trim_start().starts_with("1 "))
            .unwrap_or_else(|| panic!("no partition 1:\n{table}"));
        let fields: Vec<&str> = partition.split_whitespace().collect();
        assert_eq!(fields[1], "2048", "{table}");
        assert!(fields.contains(&"EF00"), "{table}");
        let fat = format!("{disk}@@1M");
        let loader = crate::run_checked("mtype", &["-i", &fat, "::/EFI/BOOT/BOOTX64.EFI"]);
        assert_eq!(loader.stdout, fs::read(EFI_DISK_LOADER).unwrap());
        let config = crate::run_checked("mtype", &["-i", &fat, "::/EFI/debian/grub.cfg"]);
        let config = String::from_utf8_lossy(&config.stdout);
        assert!(
            config.starts_with(&format!("echo {DISK_MARKER}\n")),
            "{config}"
        );
    }

    #[test]
    fn distinct_vms_get_distinct_macs() {
        let a = VmConfig::new(Firmware::OvmfPxe);
        let b = VmConfig::new(Firmware::OvmfPxe);
        assert_ne!(a.mac, b.mac);
        assert_eq!(format_mac([0x52, 0x54, 0, 0xab, 1, 2]), "52:54:00:ab:01:02");
    }

    /// The harness itself, with no boot server: SeaBIOS's iPXE ROM on a tap in the lab
    /// broadcasts a DHCPDISCOVER that a socket on the bridge's side receives, and nothing of
    /// the lab is left behind. (virtio here; the reference boots run e1000 and the OVMF
    /// set-ups.)
    #[test]
    fn firmware_dhcpdiscover_reaches_the_bridge() {
        let firmware = Firmware::SeaBiosIpxe(Nic::Virtio);
        if !vm_prerequisites("firmware_dhcpdiscover_reaches_the_bridge", &[firmware], &[]) {
            return;
        }
        let ns_name;
        let dir;
        {
            let lab = Lab::new("tk-lab");
            ns_name = lab.ns().name().to_string();
            dir = lab.dir().to_path_buf();
            let mut vm = lab.vm(&VmConfig::new(firmware));
            let pid = vm.pid();
            let discover = wait_for_discover(&lab, vm.mac(), Duration::from_secs(90));
            let seen_after = vm.elapsed();
            let discover = discover.unwrap_or_else(|| {
                panic!(
                    "no DHCPDISCOVER from {} within 90 s (QEMU alive: {})",
                    format_mac(vm.mac()),
                    !vm.wait_for_exit(Duration::ZERO)
                )
            });
            eprintln!(
                "DHCPDISCOVER from {} after {seen_after:.1?} ({} bytes)",
                format_mac(vm.mac()),
                discover.len()
            );
            // Option 60 of a BIOS PXE client (docs/FIRMWARE.md): x86 BIOS, UNDI 2.1.
            let vendor_class = b"PXEClient:Arch:00000:UNDI:002001";
            assert!(discover
                .windows(vendor_class.len())
                .any(|w| w == vendor_class));
            drop(vm);
            // Killed by its id and reaped: no such process any more.
            assert!(!Path::new(&format!("/proc/{pid}")).exists());
        }
        let list = crate::run_checked("ip", &["netns", "list"]);
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&ns_name));
        assert!(!dir.exists());
    }
}
