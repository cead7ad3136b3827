//! `pxe::Server`'s own HTTP, on the caller's runtime and on threads of its own
//! (`ServerBuilder::http_threads`), fetched by curl on loopback: boot files (small, read with
//! the look-up, and large, streamed in chunks), a Range request, the iPXE binaries' mount
//! and the script; and a graceful stop.

use std::num::NonZeroUsize;
use std::process::Command;

use pxe::policy::{BootEveryone, LinuxBoot};
use pxe::DhcpMode;

fn curl(url: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "curl {url}: {output:?}");
    let mut body = output.stdout;
    let at = body.iter().rposition(|&b| b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[at + 1..]).into_owned();
    body.truncate(at);
    (status, body)
}

async fn serves_files(threads: Option<NonZeroUsize>) {
    if !pxe_testkit::prerequisites("server_http", false, &["curl"]) {
        return;
    }
    let (root, ipxe) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (root, ipxe) = (root.path(), ipxe.path());
    let small: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
    // Larger than one read with the look-up (64 KiB), so it is streamed in chunks.
    let large: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("small.bin"), &small).unwrap();
    std::fs::write(root.join("large.bin"), &large).unwrap();
    std::fs::write(ipxe.join("undionly.kpxe"), b"ipxe binary").unwrap();

    let policy = BootEveryone(LinuxBoot::new("/vmlinuz").cmdline("console=ttyS0"));
    let mut builder = pxe::Server::builder(policy)
        .listen("127.0.0.1".parse().unwrap())
        .dhcp(DhcpMode::Off)
        .without_tftp()
        .ipxe_dir(ipxe)
        .http_root(root)
        .http_port(0, pxe::http::ServeConfig::default());
    if let Some(threads) = threads {
        builder = builder.http_threads(threads);
    }
    let server = builder.start().await.expect("server starts");
    let base = format!("http://{}", server.http_addr().expect("serves HTTP"));
    let stop = server.shutdown_handle();
    let running = tokio::spawn(server.run());

    let base_for_curl = base.clone();
    let (small_got, large_got, ranged, binary, script) = tokio::task::spawn_blocking(move || {
        let base = base_for_curl;
        (
            curl(&format!("{base}/small.bin"), &[]),
            curl(&format!("{base}/large.bin"), &[]),
            curl(&format!("{base}/large.bin"), &["-r", "100000-100009"]),
            curl(&format!("{base}/ipxe/undionly.kpxe"), &[]),
            curl(&format!("{base}/boot.ipxe"), &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(small_got, ("200".to_string(), small));
    assert_eq!(large_got.0, "200");
    assert!(
        large_got.1 == large,
        "the large file arrives whole and unchanged"
    );
    assert_eq!(
        ranged,
        ("206".to_string(), large[100_000..100_010].to_vec())
    );
    assert_eq!(binary, ("200".to_string(), b"ipxe binary".to_vec()));
    assert_eq!(script.0, "200");
    assert!(
        String::from_utf8_lossy(&script.1).starts_with("#!ipxe"),
        "script: {:?}",
        String::from_utf8_lossy(&script.1)
    );

    stop.shutdown();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("the server stops within 10 s")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    // Stopped means closed: a new connection is refused.
    let refused = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-o", "/dev/null"])
        .arg(format!("{base}/small.bin"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!refused.success(), "the port still answers after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_on_the_callers_runtime() {
    serves_files(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_on_threads_of_its_own() {
    serves_files(NonZeroUsize::new(2)).await;
}
