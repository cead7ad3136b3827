//! The `inventory` embedding example (examples/inventory.rs) booting real firmware: the
//! application starts pxe from library code, a VM's MAC is registered with a profile over the
//! application's own HTTP API (curl), and the VM (SeaBIOS with QEMU's iPXE ROM, in the lab
//! namespace) boots that profile's command line. Before registration the inventory sends the
//! machine to its disk, which the script shows.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pxe_testkit::cases::{BootCase, IPXE_DIR};
use pxe_testkit::lab::{format_mac, vm_prerequisites, Lab, LabProcess, VmConfig};
use pxe_testkit::payload::{boot_payload, target_dir, PAYLOAD_TOOLS};

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The example's binary, built by `cargo test` with the other targets (built here when a
/// filtered run skipped it).
fn example_binary(name: &str) -> PathBuf {
    let path = target_dir().join("debug/examples").join(name);
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "-p", "pxe-examples", "--example", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the example {name}");
    }
    path
}

/// `curl ARGS` inside the lab namespace; its stdout.
fn curl(lab: &Lab, args: &[&str]) -> String {
    let output = lab
        .ns()
        .command("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_machine_registered_over_the_api_boots_its_profile() {
    let test = "a_machine_registered_over_the_api_boots_its_profile";
    let case = BootCase::BiosIpxeRom;
    let mut tools = PAYLOAD_TOOLS.to_vec();
    tools.push("curl");
    if !vm_prerequisites(test, &[case.firmware()], &tools) {
        return;
    }
    let payload = boot_payload();
    let lab = Lab::new("embinv");
    let server = lab.server_addr().to_string();
    let install = "console=ttyS0 pxe.example=inventory profile=install";
    let mut command = lab.ns().command(example_binary("inventory"));
    command
        .args(["--listen", &server, "--interface", lab.bridge()])
        .args(["--pool", "192.0.2.100-192.0.2.199", "--ipv6-ra"])
        .args(["--ipxe-dir", IPXE_DIR])
        .arg("--kernel")
        .arg(&payload.kernel)
        .arg("--initrd")
        .arg(&payload.initrd)
        .args(["--profile", &format!("install={install}")])
        .args(["--profile", "rescue=console=ttyS0 single"])
        .env("RUST_LOG", "info");
    let app = LabProcess::spawn_ready(
        command,
        lab.dir().join("inventory.log"),
        "inventory serving",
    );

    let config = VmConfig::new(case.firmware()).uuid(&case.uuid());
    let mac = format_mac(config.mac);
    // Not registered yet: the script sends the machine to its disk.
    let script = curl(&lab, &[&format!("http://{server}/boot.ipxe?mac={mac}")]);
    let script = if script.contains("chain") && !script.contains("exit") {
        // The bootstrap script: follow it with the facts it asks for.
        curl(
            &lab,
            &[&format!(
                "http://{server}/boot.ipxe?mac={mac}&platform=pcbios"
            )],
        )
    } else {
        script
    };
    assert!(script.contains("exit"), "unregistered: {script}");
    // Register it with a profile over the application's API.
    let answer = curl(
        &lab,
        &[
            "-X",
            "PUT",
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"profile":"install"}"#,
            &format!("http://{server}/api/machines/{mac}"),
        ],
    );
    assert!(answer.contains("boots install"), "{answer}");
    let listed = curl(&lab, &[&format!("http://{server}/api/machines")]);
    assert!(listed.contains(&mac), "{listed}");

    let mut vm = lab.vm(&config);
    payload.assert_boots(&mut vm, install, BOOT_TIMEOUT, || app.log_text());
}
