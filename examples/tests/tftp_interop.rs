//! `netboot tftp` against real TFTP clients (curl, tftp-hpa, atftp, busybox) on loopback, and
//! against a lossy link: 10% random loss injected with nft inside a network namespace, and
//! while silent requests from many addresses hold every transfer slot.
//!
//! Every download must be byte-identical. Sizes cover the empty file, one short block, one
//! exact block (which needs an empty final block), one block and a byte, 1 MiB, and 40 MiB
//! (81 920 blocks of 512 bytes: block numbers roll over).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pxe_testkit::{prerequisites, ChildGuard, NetNs};

const SIZES: [usize; 6] = [0, 511, 512, 513, 1 << 20, 40 << 20];

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pxe-tftp-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        Self(dir)
    }

    fn root(&self) -> PathBuf {
        self.0.join("root")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.0.join("out").join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic, incompressible-looking content (xorshift), different per size.
fn content(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn write_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    SIZES
        .iter()
        .map(|&len| {
            let name = format!("file-{len}.bin");
            let data = content(len);
            std::fs::write(root.join(&name), &data).unwrap();
            (name, data)
        })
        .collect()
}

/// Starts `netboot tftp` on a port the kernel picks (tests running at once never race for a
/// port) and returns it with the address it logged.
fn start_netboot(root: &Path, extra: &[&str]) -> (ChildGuard, SocketAddr) {
    ChildGuard::spawn_reporting_address(
        Command::new(env!("CARGO_BIN_EXE_netboot"))
            .args(["tftp", "--root"])
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::null()),
        "tftp serving",
        "listen",
    )
}

fn run_client(label: &str, command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{label}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{label}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_identical(label: &str, path: &Path, expected: &[u8]) {
    // curl does not create the output file of an empty download.
    let got = if expected.is_empty() && !path.exists() {
        Vec::new()
    } else {
        std::fs::read(path).unwrap_or_else(|e| panic!("{label}: no output {}: {e}", path.display()))
    };
    assert!(
        got == expected,
        "{label}: got {} bytes, expected {} (content differs)",
        got.len(),
        expected.len()
    );
}

type ClientCommand = fn(addr: SocketAddr, name: &str, out: &Path) -> Command;

fn clients() -> Vec<(&'static str, ClientCommand)> {
    vec![
        ("curl blksize 1468", |addr, name, out| {
            let mut c = Command::new("curl");
            c.args(["-sS", "--tftp-blksize", "1468", "-o"]).arg(out);
            c.arg(format!("tftp://{addr}/{name}"));
            c
        }),
        ("curl default", |addr, name, out| {
            let mut c = Command::new("curl");
            c.args(["-sS", "-o"]).arg(out);
            c.arg(format!("tftp://{addr}/{name}"));
            c
        }),
        ("tftp-hpa", |addr, name, out| {
            let mut c = Command::new("tftp");
            c.args([
                "-m",
                "octet",
                &addr.ip().to_string(),
                &addr.port().to_string(),
                "-c",
                "get",
                name,
            ]);
            c.arg(out);
            c
        }),
        ("atftp windowsize 16", |addr, name, out| {
            let mut c = Command::new("atftp");
            c.args([
                "--option",
                "blksize 1468",
                "--option",
                "windowsize 16",
                "--option",
                "tsize 0",
            ]);
            c.args(["-g", "-r", name, "-l"]).arg(out);
            c.args([addr.ip().to_string(), addr.port().to_string()]);
            c
        }),
        ("busybox blksize 1468", |addr, name, out| {
            let mut c = Command::new("busybox");
            c.args(["tftp", "-g", "-r", name, "-l"]).arg(out);
            c.args([
                "-b",
                "1468",
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ]);
            c
        }),
        ("busybox default", |addr, name, out| {
            let mut c = Command::new("busybox");
            c.args(["tftp", "-g", "-r", name, "-l"]).arg(out);
            c.args([addr.ip().to_string(), addr.port().to_string()]);
            c
        }),
    ]
}

fn interop(label: &str, extra: &[&str]) {
    let scratch = Scratch::new(label);
    let files = write_files(&scratch.root());
    let (_server, listen) = start_netboot(&scratch.root(), extra);
    for (client, command) in clients() {
        for (name, data) in &files {
            // 40 MiB in lock-step 512-byte blocks is the rollover case: once per client is
            // enough, and the windowed and large-block clients cover it quickly.
            let what = format!("{label}: {client} {name}");
            let out = scratch.out(&format!("{client}-{name}").replace(' ', "_"));
            let mut command = command(listen, name, &out);
            if client.starts_with("curl") && data.is_empty() {
                // curl 7.88 fails an empty download whose OACK says tsize 0 ("getpeername()
                // failed", against tftpd-hpa too): fetch the empty file without options.
                command.arg("--tftp-no-options");
            }
            let started = std::time::Instant::now();
            run_client(&what, &mut command);
            eprintln!("{what}: {:?}", started.elapsed());
            assert_identical(&what, &out, data);
            let _ = std::fs::remove_file(&out);
        }
    }
}

#[test]
fn real_clients_download_byte_identical_files() {
    if !prerequisites(
        "tftp real clients",
        false,
        &["curl", "tftp", "atftp", "busybox"],
    ) {
        return;
    }
    interop("ephemeral", &[]);
}

#[test]
fn tftp_hpa_netascii_download_restores_the_text() {
    if !prerequisites("tftp netascii", false, &["tftp"]) {
        return;
    }
    let scratch = Scratch::new("netascii");
    let text = b"#!ipxe\nchain http://192.0.2.1/boot.ipxe\r\nbare cr\r here\n".repeat(100);
    std::fs::write(scratch.root().join("boot.txt"), &text).unwrap();
    let (_server, listen) = start_netboot(&scratch.root(), &[]);
    let out = scratch.out("boot.txt");
    let mut tftp = Command::new("tftp");
    tftp.args([
        "-m",
        "netascii",
        "127.0.0.1",
        &listen.port().to_string(),
        "-c",
        "get",
        "boot.txt",
    ])
    .arg(&out);
    run_client("tftp-hpa netascii", &mut tftp);
    assert_identical("tftp-hpa netascii", &out, &text);
}

#[test]
fn real_clients_download_in_single_port_mode() {
    if !prerequisites(
        "tftp single-port",
        false,
        &["curl", "tftp", "atftp", "busybox"],
    ) {
        return;
    }
    interop("single", &["--single-port"]);
}

#[test]
fn transfers_complete_through_ten_percent_loss() {
    if !prerequisites("tftp 10% loss", true, &["ip", "nft", "ethtool", "tftp"]) {
        return;
    }
    let ns = NetNs::new("tftploss");
    // Loopback would carry a whole GSO window as one packet past nft, so one drop would lose a
    // window at once; segmenting in software first makes the loss hit single datagrams, as on
    // a real link.
    ns.run_checked("ethtool", &["-K", "lo", "tx-udp-segmentation", "off"]);
    ns.run_checked("nft", &["add", "table", "inet", "loss"]);
    ns.run_checked(
        "nft",
        &["add chain inet loss input { type filter hook input priority 0 ; }"],
    );
    ns.run_checked(
        "nft",
        &["add rule inet loss input udp dport != 0 numgen random mod 10 0 counter drop"],
    );
    let scratch = Scratch::new("loss");
    let data = content(1 << 20);
    std::fs::write(scratch.root().join("big"), &data).unwrap();
    let small = content(200_000);
    std::fs::write(scratch.root().join("small"), &small).unwrap();
    let medium = content(100_000);
    std::fs::write(scratch.root().join("medium"), &medium).unwrap();
    let listen: SocketAddr = "127.0.0.1:69".parse().unwrap();
    let mut command = ns.command("env");
    command.stdout(std::process::Stdio::null());
    let mut netboot = command;
    netboot
        .arg(env!("CARGO_BIN_EXE_netboot"))
        .args(["tftp", "--root"])
        .arg(scratch.root())
        .args([
            "--listen",
            "127.0.0.1:69",
            "--timeout-ms",
            "100",
            "--retries",
            "20",
        ])
        .env("RUST_LOG", "warn");
    let _server = ChildGuard::spawn(&mut netboot);
    std::thread::sleep(Duration::from_millis(500));

    // The crate's own client, windowed and lock-step, with a short timeout.
    let result = ns.enter(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut results = Vec::new();
            for (file, windowsize) in [("big", Some(16)), ("small", None)] {
                let options = pxe_tftp::DownloadOptions {
                    blksize: Some(1468),
                    windowsize,
                    tsize: true,
                    timeout: Duration::from_millis(100),
                    max_retries: 20,
                    ..Default::default()
                };
                let started = std::time::Instant::now();
                results.push(pxe_tftp::download(listen, file, options).await);
                eprintln!("own client window {windowsize:?}: {:?}", started.elapsed());
            }
            results
        })
    });
    for (downloaded, expected) in result.into_iter().zip([&data, &small]) {
        let downloaded = downloaded.expect("download through 10% loss");
        assert!(downloaded.data == *expected, "content differs");
        assert_eq!(downloaded.tsize, Some(expected.len() as u64));
    }
    // A real client through the same loss: tftp-hpa, lock-step, with a 1 s retransmission
    // timer. curl is left out: its retransmission timer makes a lossy download take minutes.
    // atftp (0.8.0) is left out: its client aborts after its first timeout ("tftp: unknown
    // error") and on a retransmitted OACK ("tftp: unexpected OACK", where RFC 2347 wants an
    // ACK again), so no server can carry it through loss.
    let out = scratch.out("tftp-hpa-medium");
    let mut tftp_hpa = ns.command("tftp");
    tftp_hpa
        .arg("127.0.0.1")
        .stdin(std::process::Stdio::piped());
    let mut child = ChildGuard::spawn(&mut tftp_hpa);
    let script = format!(
        "binary\nrexmt 1\ntimeout 120\nget medium {}\nquit\n",
        out.display()
    );
    // Dropping stdin after the script ends the session once the download is over.
    std::io::Write::write_all(
        &mut child.0.stdin.take().expect("tftp-hpa's stdin"),
        script.as_bytes(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let status = child
        .wait_timeout(Duration::from_secs(180))
        .expect("tftp-hpa through loss finishes within 180 s");
    eprintln!("tftp-hpa: {:?}", started.elapsed());
    assert!(status.success(), "tftp-hpa through loss: {status}");
    assert_identical("tftp-hpa through loss", &out, &medium);
    // The loss really happened: the rule's counter saw drops.
    let listing = ns.run_checked("nft", &["list chain inet loss input"]);
    let ruleset = String::from_utf8_lossy(&listing.stdout);
    let dropped: u64 = ruleset
        .split("packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!("{dropped} packets dropped");
    assert!(dropped > 0, "no packet was dropped:\n{ruleset}");
}

#[test]
fn real_clients_are_served_while_silent_requests_hold_every_slot() {
    if !prerequisites("tftp slots under a flood", false, &["tftp", "atftp"]) {
        return;
    }
    let scratch = Scratch::new("flood");
    let data = content(1 << 20);
    std::fs::write(scratch.root().join("file.bin"), &data).unwrap();
    // Few slots, and a first-ACK limit far longer than the test: only eviction frees them.
    let (_server, addr) = start_netboot(
        &scratch.root(),
        &["--max-transfers", "4", "--first-ack-limit-secs", "600"],
    );
    // Silent clients from eight addresses ask for the longest timeout and never answer.
    let silent: Vec<std::net::UdpSocket> = (1..=8)
        .map(|i| {
            let socket = std::net::UdpSocket::bind(format!("127.0.5.{i}:0")).unwrap();
            socket
                .send_to(b"\x00\x01file.bin\x00octet\x00timeout\x00255\x00", addr)
                .unwrap();
            socket
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for (label, client) in clients()
        .into_iter()
        .filter(|(label, _)| ["tftp-hpa", "atftp"].iter().any(|c| label.starts_with(c)))
    {
        let out = scratch.out(label);
        run_client(label, &mut client(addr, "file.bin", &out));
        assert_identical(label, &out, &data);
    }
    drop(silent);
}
