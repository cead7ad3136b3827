//! `netboot serve` on loopback (DHCP off): the script each client gets follows the TOML table
//! (`--config`) or the external service (`--delegate`), and the iPXE binaries are served under
//! `/ipxe/`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use pxe_testkit::ChildGuard;

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");

/// `GET path` on a fresh connection; the status line and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Starts `netboot serve ARGS` on loopback with ports the kernel picks (so that tests running
/// at once never race for one), and returns it with the HTTP port it logged.
fn start(args: &[&str], ipxe_dir: &std::path::Path) -> (ChildGuard, u16) {
    let mut command = Command::new(NETBOOT);
    command
        .arg("serve")
        .args(args)
        .args(["--dhcp", "off", "--listen", "127.0.0.1"])
        .args(["--tftp-port", "0", "--http-port", "0"])
        .arg("--ipxe-dir")
        .arg(ipxe_dir)
        .stderr(Stdio::null());
    let (guard, http) =
        ChildGuard::spawn_reporting_address(&mut command, "netboot serving", "http");
    (guard, http.port())
}

#[test]
fn table_decides_each_clients_script() {
    let dir = tempfile::tempdir().unwrap();
    let ipxe = dir.path().join("ipxe");
    std::fs::create_dir(&ipxe).unwrap();
    std::fs::write(ipxe.join("snponly.efi"), b"efi binary").unwrap();
    let table = dir.path().join("site.toml");
    std::fs::write(
        &table,
        r#"
[profiles.debian]
kernel = "/debian/vmlinuz"
cmdline = "console=ttyS0"

[profiles.disk]
action = "exit"

[[groups]]
profile = "debian"
mac = ["52:54:00:00:00:01"]

[[groups]]
profile = "disk"
"#,
    )
    .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let (_server, port) = start(
        &[
            "--config",
            table.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
        &ipxe,
    );

    let (status, body) = get(port, "/boot.ipxe?mac=52:54:00:00:00:01&platform=pcbios");
    assert!(status.contains("200"), "{status}");
    assert!(body.starts_with("#!ipxe\n"), "{body}");
    assert!(
        body.contains("kernel /debian/vmlinuz console=ttyS0"),
        "{body}"
    );

    let (_, other) = get(port, "/boot.ipxe?mac=52:54:00:00:00:02&platform=efi");
    assert!(other.contains("exit"), "{other}");
    assert!(!other.contains("kernel"), "{other}");

    let (status, binary) = get(port, "/ipxe/snponly.efi");
    assert!(status.contains("200"), "{status}");
    assert_eq!(binary, "efi binary");
}

#[test]
fn delegate_decides_and_failure_falls_back_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    // The delegate: one answer, then it is gone.
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/decide", service.local_addr().unwrap());
    let answer = std::thread::spawn(move || {
        let (mut stream, _) = service.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.ends_with(b"}") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"chain":"http://192.0.2.1/special.ipxe"}"#;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let (_server, port) = start(
        &["--delegate", &url, "--delegate-timeout-ms", "2000"],
        dir.path(),
    );

    let (_, body) = get(port, "/boot.ipxe?mac=52:54:00:00:00:03&serial=SN-42");
    assert!(
        body.contains("chain http://192.0.2.1/special.ipxe"),
        "{body}"
    );
    let request = answer.join().unwrap();
    assert!(request.contains("\"serial\":\"SN-42\""), "{request}");

    // The service is gone now: the client is sent to its disk.
    let (_, fallback) = get(port, "/boot.ipxe?mac=52:54:00:00:00:03&platform=efi");
    assert!(fallback.contains("exit"), "{fallback}");
}
