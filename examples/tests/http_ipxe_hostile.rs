//! Real iPXE runs a script that pxe-http built from hostile values, and prints them.
//!
//! QEMU (TCG) with SeaBIOS and QEMU's iPXE ROM boots in a lab namespace; dnsmasq (a real
//! peer) gives it an address and the script URL with iPXE's facts in the query; pxe-http,
//! running in-process inside the namespace, answers with a policy whose custom script echoes
//! each hostile value between markers and then boots the lab's payload kernel with a hostile
//! command line. The serial console must show every value verbatim, and the kernel must
//! report exactly the command line the policy asked for.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pxe_http::{BootService, ServeConfig};
use pxe_policy::{ClientFacts, Command, Policy, Script, ScriptDecision, Url};
use pxe_testkit::lab::{vm_prerequisites, Firmware, Lab, Nic, VmConfig};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};
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
    let mut tools = vec!["dnsmasq"];
    tools.extend_from_slice(PAYLOAD_TOOLS);
    if !vm_prerequisites("http_real_ipxe_prints_hostile_values", &[firmware], &tools) {
        return;
    }
    let payload = boot_payload();
    let lab = Lab::new("http5");
    let root = lab.dir().join("files");
    payload.copy_to(&root).expect("copy the payload");
    let server: SocketAddr = (lab.server_addr(), 8080).into();

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
        .root(&root)
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
    let dnsmasq = Dnsmasq::start(lab.ns(), &lab.dir().join("dnsmasq"), &config);

    let uuid = "9e0c1ab0-0000-4000-8000-0000000000a5";
    // iPXE prints through the BIOS; SeaBIOS copies that text to the serial port when
    // `etc/sercon-port` (a little-endian integer) names one.
    let sercon = lab.dir().join("sercon-port");
    std::fs::write(&sercon, 0x3f8u16.to_le_bytes()).expect("write sercon-port");
    let mut vm_config = VmConfig::new(firmware).uuid(uuid);
    vm_config.extra_args.extend([
        "-fw_cfg".to_string(),
        format!("name=etc/sercon-port,file={}", sercon.display()),
    ]);
    let mut vm = lab.vm(&vm_config);
    let outcome = vm.wait_for_marker(&payload.end_marker(), Duration::from_secs(300));
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
