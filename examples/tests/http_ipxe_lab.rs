//! Real iPXE (QEMU under TCG, in a lab namespace) against pxe-http, with dnsmasq (a real
//! peer) handing out addresses and the bare script URL `http://192.0.2.1:8080/boot.ipxe`.
//!
//! - `http_real_ipxe_prints_hostile_values_verbatim`: pxe-http runs in-process with a policy
//!   whose custom script echoes hostile values between markers, then boots the lab payload
//!   with a hostile command line. SeaBIOS + iPXE ROM; the serial console must show every value
//!   verbatim, and the kernel must report exactly the command line asked for.
//! - `http_netboot_boots_linux_on_{bios,uefi}`: the `netboot http` binary with `--kernel`,
//!   `--initrd`, `--cmdline` (the built-in boot-everyone policy, relative file URLs) boots the
//!   payload on SeaBIOS + iPXE ROM and on OVMF + iPXE EFI ROM (where the script must name the
//!   initrd on the command line).
//!
//! The machines boot one at a time (a lock): two TCG machines on two cores would each crawl.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pxe_http::{BootService, ServeConfig};
use pxe_policy::{ClientFacts, Command, Policy, Script, ScriptDecision, Url};
use pxe_testkit::lab::{vm_prerequisites, Firmware, Lab, LabProcess, Nic, VmConfig};
use pxe_testkit::payload::{boot_payload, BootPayload, PAYLOAD_TOOLS};
use pxe_testkit::reference::Dnsmasq;

/// Values that would be syntax in a naive script: splitting, comments, chaining, options,
/// labels, line continuation, and expansion look-alikes that iPXE can carry.
const HOSTILE: &[&str] = &[
    "two  spaces and   three",
    "# not a comment",
    "x || echo INJECTED-OR",
    "&& echo INJECTED-AND",
    "; echo INJECTED-SEMI",
    "-n",
    "--",
    ":label-lookalike",
    "ends with a backslash \\",
    "dollar $ and {braces} and }$ { spaced",
    "100% {mac}",
    "goto end",
    "quote \" and ' apostrophe",
];

/// A command line the kernel must see exactly (`initrd=` is for the EFI stub; harmless here).
const CMDLINE: &str = "console=ttyS0 pxe.hostile=\"a  b\" # c || d && e ; f --g $h {i}";

/// From VM start to the payload's end marker; a boot takes about 30 s under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

const BEGIN: &str = "PXE-HOSTILE-BEGIN";
const END: &str = "PXE-HOSTILE-END";

/// Echoes every hostile value between markers, then boots the payload.
struct HostileEcho {
    server: SocketAddr,
    seen: Arc<Mutex<Vec<ClientFacts>>>,
}

impl HostileEcho {
    fn script(&self) -> Script {
        let base = format!("http://{}", self.server);
        let file = |name: &str| Url::new(&base).unwrap().segment(name).unwrap();
        let mut script = Script::new();
        script.push(Command::echo(BEGIN));
        for value in HOSTILE {
            script.push(Command::echo(*value));
        }
        script
            .push(Command::echo(END))
            .push(Command::kernel(file("vmlinuz")).cmdline(CMDLINE))
            .push(Command::initrd(file("initrd.img")))
            .push(Command::boot());
        script
    }
}

impl Policy for HostileEcho {
    fn script<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a {
        self.seen.lock().unwrap().push(client.clone());
        std::future::ready(ScriptDecision::Custom(self.script()))
    }
}

#[test]
fn http_real_ipxe_prints_hostile_values_verbatim() {
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    let Some(setup) = Setup::new("http_real_ipxe_prints_hostile_values", firmware, "http5") else {
        return;
    };
    let (payload, lab, root, server) = (setup.payload, &setup.lab, &setup.root, setup.server);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let policy = HostileEcho {
        server,
        seen: seen.clone(),
    };
    // Fail here, not after a five-minute boot, if a value cannot be carried.
    policy
        .script()
        .render()
        .expect("the hostile script renders");
    let service = BootService::builder()
        .root(root)
        .policy(policy)
        .build()
        .expect("service");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_thread = lab.ns().spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(server).await.expect("bind");
            tokio::select! {
                () = pxe_http::serve(listener, service, ServeConfig::default()) => {}
                _ = stopped => {}
            }
        });
    });

    let dnsmasq = start_dnsmasq(lab, server);

    let uuid = "9e0c1ab0-0000-4000-8000-0000000000a5";
    let vm_config = with_serial_console(lab, VmConfig::new(firmware).uuid(uuid));
    let mut vm = lab.vm(&vm_config);
    let outcome = vm.wait_for_marker(&payload.end_marker(), BOOT_TIMEOUT);
    let _ = stop.send(());
    server_thread.join().expect("server thread");
    let seen_marker = outcome.unwrap_or_else(|missing| {
        panic!(
            "did not boot: {missing}\n--- dnsmasq ---\n{}",
            dnsmasq.log()
        )
    });
    let console = seen_marker.console.replace('\r', "");

    // The values, in order, each on its own line between the markers.
    let begin = console
        .find(&format!("{BEGIN}\n"))
        .expect("begin marker echoed");
    let end = console[begin..]
        .find(&format!("{END}\n"))
        .expect("end marker echoed")
        + begin;
    let echoed: Vec<&str> = console[begin + BEGIN.len() + 1..end].lines().collect();
    assert_eq!(echoed, HOSTILE, "console:\n{console}");
    // An injected `echo INJECTED-…` would print its word alone on a line.
    assert!(
        !console
            .lines()
            .any(|line| line.trim().starts_with("INJECTED")),
        "an injected command ran:\n{console}"
    );

    let printed = payload
        .printed_cmdline(&seen_marker.console)
        .expect("the payload prints its command line");
    assert_eq!(printed.trim_end(), CMDLINE);

    // The facts iPXE sent in the query reached the policy.
    let seen = seen.lock().unwrap();
    let facts = seen.first().expect("the policy was asked");
    assert_eq!(facts.mac.octets(), vm.mac());
    assert_eq!(facts.arch, Some(pxe_policy::Arch::X86_BIOS));
    assert_eq!(
        facts.guid.map(|g| g.to_string()),
        Some(uuid.to_string()),
        "uuid from ${{uuid}}"
    );
    eprintln!(
        "real iPXE echoed {} hostile values verbatim; boot took {:.1?}",
        HOSTILE.len(),
        seen_marker.elapsed
    );
}

/// What every test here starts from: the VM lock, a lab with the payload in `root`, and the
/// address pxe-http listens on. `None` when the test must skip.
struct Setup {
    _one_at_a_time: MutexGuard<'static, ()>,
    payload: &'static BootPayload,
    lab: Lab,
    root: PathBuf,
    server: SocketAddr,
}

impl Setup {
    fn new(test: &str, firmware: Firmware, label: &str) -> Option<Self> {
        let mut tools = vec!["dnsmasq"];
        tools.extend_from_slice(PAYLOAD_TOOLS);
        if !vm_prerequisites(test, &[firmware], &tools) {
            return None;
        }
        let one_at_a_time = ONE_VM_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let payload = boot_payload();
        let lab = Lab::new(label);
        let root = lab.dir().join("files");
        payload.copy_to(&root).expect("copy the payload");
        let server = (lab.server_addr(), 8080).into();
        Some(Self {
            _one_at_a_time: one_at_a_time,
            payload,
            lab,
            root,
            server,
        })
    }
}

/// dnsmasq on the lab bridge: addresses for everyone, and the bare script URL for iPXE.
fn start_dnsmasq(lab: &Lab, server: SocketAddr) -> Dnsmasq {
    let mut config = Dnsmasq::site_config(
        lab.dir(),
        lab.bridge(),
        "192.0.2.100".parse().unwrap(),
        "192.0.2.199".parse().unwrap(),
    );
    config.push_str(&format!(
        "dhcp-match=set:ipxe,175\n\
         dhcp-boot=tag:ipxe,http://{server}/boot.ipxe\n"
    ));
    Dnsmasq::start(lab.ns(), &lab.dir().join("dnsmasq"), &config)
}

/// iPXE on BIOS prints through the BIOS; SeaBIOS copies that text to the serial port when
/// `etc/sercon-port` (a little-endian integer) names one. (OVMF's console is on serial
/// already; the setting is SeaBIOS's alone.)
fn with_serial_console(lab: &Lab, mut config: VmConfig) -> VmConfig {
    let sercon = lab.dir().join("sercon-port");
    std::fs::write(&sercon, 0x3f8u16.to_le_bytes()).expect("write sercon-port");
    config.extra_args.extend([
        "-fw_cfg".to_string(),
        format!("name=etc/sercon-port,file={}", sercon.display()),
    ]);
    config
}

/// `netboot http` serving the payload with its built-in policy boots `firmware` to the end
/// marker, with the command line intact.
fn netboot_boots_linux(test: &str, firmware: Firmware) {
    let Some(setup) = Setup::new(test, firmware, "http5n") else {
        return;
    };
    let (payload, lab, root, server) = (setup.payload, &setup.lab, &setup.root, setup.server);
    let cmdline = "console=ttyS0 pxe.server=netboot-http  pxe.note=two-spaces";
    let mut command = lab.ns().command(env!("CARGO_BIN_EXE_netboot"));
    command
        .args(["http", "--root"])
        .arg(root)
        .args(["--listen", &server.to_string()])
        .args(["--kernel", "vmlinuz", "--initrd", "initrd.img"])
        .args(["--cmdline", cmdline])
        .env("RUST_LOG", "pxe_http=debug")
        .stdout(Stdio::null());
    let netboot = LabProcess::spawn(command, lab.dir().join("netboot.log"));
    let dnsmasq = start_dnsmasq(lab, server);
    let mut vm = lab.vm(&with_serial_console(lab, VmConfig::new(firmware)));
    let seen = vm
        .wait_for_marker(&payload.end_marker(), BOOT_TIMEOUT)
        .unwrap_or_else(|missing| {
            panic!(
                "{firmware} did not boot: {missing}\n--- netboot ---\n{}\n--- dnsmasq ---\n{}",
                netboot.log_text(),
                dnsmasq.log()
            )
        });
    let printed = payload
        .printed_cmdline(&seen.console)
        .expect("the payload prints its command line");
    // UEFI: the script appends `initrd=initrd0`, which the EFI stub needs to find the initrd,
    // and iPXE's EFI loader puts the image's name first in the load options.
    let expected = if firmware.is_uefi() {
        format!("vmlinuz {cmdline} initrd=initrd0")
    } else {
        cmdline.to_string()
    };
    assert_eq!(printed.trim_end(), expected);
    eprintln!(
        "{firmware}: booted through netboot http in {:.1?}",
        seen.elapsed
    );
}

#[test]
fn http_netboot_boots_linux_on_bios() {
    netboot_boots_linux(
        "http_netboot_boots_linux_on_bios",
        Firmware::SeaBiosIpxe(Nic::E1000),
    );
}

#[test]
fn http_netboot_boots_linux_on_uefi() {
    netboot_boots_linux("http_netboot_boots_linux_on_uefi", Firmware::OvmfIpxe);
}
