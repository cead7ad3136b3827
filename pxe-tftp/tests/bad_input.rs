//! The tokio server against hostile and broken input on loopback: path traversal in many
//! spellings, malformed and truncated packets, bad options, WRQ, strangers. Each gets the
//! answer RFC 1350/2347 calls for, nothing outside the root is read, and the server keeps
//! serving. Also: the size probe, the transfer limits and single-port mode, the bound on a
//! client's timeout, and eviction of unacknowledged transfers when every slot is taken.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

use std::net::SocketAddr;

use std::time::Duration;

use pxe_tftp::wire::Packet;
use pxe_tftp::{
    Directory, DownloadOptions, ErrorCode, PortMode, Server, ServerConfig, TransferConfig,
};
use tokio::net::UdpSocket;

const SECRET: &[u8] = b"secret outside the root";

struct Lab {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn lab(config: ServerConfig) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("ok"), b"hello").unwrap();
    std::fs::write(root.join("sub/big"), vec![7u8; 100_000]).unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Directory::new(&root).unwrap(),
        config,
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let server = tokio::spawn(async move {
        server.run().await.unwrap();
    });
    Lab {
        _dir: dir,
        addr,
        server,
    }
}

fn quick() -> ServerConfig {
    ServerConfig {
        transfer: TransferConfig {
            timeout: Duration::from_millis(200),
            max_retries: 2,
            ..TransferConfig::default()
        },
        ..ServerConfig::default()
    }
}

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv(socket: &UdpSocket, wait: Duration) -> Option<(SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let (len, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(len);
    Some((from, buf))
}

async fn ask(lab: &Lab, datagram: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
    let socket = socket().await;
    socket.send_to(datagram, lab.addr).await.unwrap();
    recv(&socket, Duration::from_secs(2)).await
}

fn rrq(file: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut out = b"\x00\x01".to_vec();
    out.extend_from_slice(file.as_bytes());
    out.extend_from_slice(b"\x00octet\x00");
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

fn error_code(reply: &[u8]) -> Option<ErrorCode> {
    match Packet::parse(reply) {
        Ok(Packet::Error { code, .. }) => Some(code),
        _ => None,
    }
}

async fn assert_still_serving(lab: &Lab) {
    let got = pxe_tftp::download(lab.addr, "ok", DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(got.data, b"hello");
}

#[tokio::test]
async fn path_traversal_in_many_spellings_reads_nothing_outside() {
    let lab = lab(quick()).await;
    let root_parent = lab._dir.path().to_str().unwrap().to_string();
    let absolute_secret = format!("{root_parent}/secret");
    let spellings = [
        "../secret",
        "..\\secret",
        "/../secret",
        "sub/../../secret",
        "sub\\..\\..\\secret",
        "./../secret",
        "sub/./../../secret",
        "..",
        "link",
        "up/secret",
        "C:\\secret",
        "c:/secret",
        &absolute_secret,
        "%2e%2e/secret",
        "....//secret",
        "..%5csecret",
        "sub//..//..//secret",
    ];
    for path in spellings {
        let (_, reply) = ask(&lab, &rrq(path, &[]))
            .await
            .unwrap_or_else(|| panic!("{path}: no reply"));
        let code =
            error_code(&reply).unwrap_or_else(|| panic!("{path:?}: answered with data {reply:?}"));
        assert!(
            code == ErrorCode::ACCESS_VIOLATION || code == ErrorCode::FILE_NOT_FOUND,
            "{path:?}: error {code}"
        );
        assert!(!reply.windows(SECRET.len()).any(|w| w == SECRET));
    }
    assert_still_serving(&lab).await;
}

#[tokio::test]
async fn malformed_requests_and_wrq_get_the_rfc_answer() {
    let lab = lab(quick()).await;
    let cases: [(&[u8], Option<ErrorCode>); 12] = [
        (b"", Some(ErrorCode::ILLEGAL_OPERATION)),
        (b"\x00", Some(ErrorCode::ILLEGAL_OPERATION)),
        (b"\x00\x01", Some(ErrorCode::ILLEGAL_OPERATION)),
        (b"\x00\x01ok", Some(ErrorCode::ILLEGAL_OPERATION)),
        (b"\x00\x01ok\x00octet", Some(ErrorCode::ILLEGAL_OPERATION)),
        (
            b"\x00\x01ok\x00octet\x00blksize\x00",
            Some(ErrorCode::ILLEGAL_OPERATION),
        ),
        (b"\x00\x09junk", Some(ErrorCode::ILLEGAL_OPERATION)),
        (
            b"\x00\x02ok\x00octet\x00",
            Some(ErrorCode::ACCESS_VIOLATION),
        ),
        (b"\x00\x04\x00\x01", Some(ErrorCode::UNKNOWN_TRANSFER_ID)),
        (
            b"\x00\x03\x00\x01data",
            Some(ErrorCode::UNKNOWN_TRANSFER_ID),
        ),
        (
            b"\x00\x01ok\x00mail\x00",
            Some(ErrorCode::ILLEGAL_OPERATION),
        ),
        // Never answer an error with an error.
        (b"\x00\x05\x00\x01oops\x00", None),
    ];
    for (datagram, expected) in cases {
        let reply = ask(&lab, datagram).await;
        let code = reply.as_ref().and_then(|(_, r)| error_code(r));
        assert_eq!(code, expected, "{datagram:?} → {reply:?}");
    }
    assert_still_serving(&lab).await;
}

#[tokio::test]
async fn bad_options_get_error_8_and_unknown_ones_are_ignored() {
    let lab = lab(quick()).await;
    for options in [
        &[("blksize", "7")][..],
        &[("blksize", "abc")],
        &[("blksize", "")],
        &[("windowsize", "0")],
        &[("timeout", "0")],
        &[("timeout", "300")],
        &[("tsize", "-1")],
        &[("blksize", "512"), ("blksize", "1024")],
    ] {
        let (_, reply) = ask(&lab, &rrq("ok", options)).await.unwrap();
        assert_eq!(
            error_code(&reply),
            Some(ErrorCode::OPTION_NEGOTIATION),
            "{options:?}"
        );
    }
    // Unknown options alone: no OACK, DATA 1 straight away (RFC 2347).
    let (_, reply) = ask(&lab, &rrq("ok", &[("multicast", ""), ("x-foo", "1")]))
        .await
        .unwrap();
    assert_eq!(reply, b"\x00\x03\x00\x01hello");
    // The OACK carries only what was asked, clamped: blksize above the maximum comes back 1468.
    let (_, reply) = ask(
        &lab,
        &rrq(
            "ok",
            &[("BLKSIZE", "65464"), ("bogus", "1"), ("tsize", "0")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(reply, b"\x00\x06blksize\x001468\x00tsize\x005\x00");
    assert_still_serving(&lab).await;
}

#[tokio::test]
async fn size_probe_ends_quietly_and_stranger_gets_error_5() {
    let lab = lab(quick()).await;
    let client = socket().await;
    client
        .send_to(
            &rrq("sub/big", &[("tsize", "0"), ("blksize", "1468")]),
            lab.addr,
        )
        .await
        .unwrap();
    let (tid, oack) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(oack, b"\x00\x06tsize\x00100000\x00blksize\x001468\x00");
    client
        .send_to(b"\x00\x05\x00\x08User aborted the transfer\x00", tid)
        .await
        .unwrap();
    // With a 200 ms timeout a live transfer would have retransmitted the OACK by now.
    assert!(
        recv(&client, Duration::from_millis(700)).await.is_none(),
        "nothing after the probe"
    );

    // A real download; a stranger pokes its transfer port mid-way.
    let client = socket().await;
    client
        .send_to(&rrq("sub/big", &[]), lab.addr)
        .await
        .unwrap();
    let (tid, first) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(&first[..4], b"\x00\x03\x00\x01");
    let stranger = socket().await;
    stranger.send_to(b"\x00\x04\x00\x01", tid).await.unwrap();
    let (_, reply) = recv(&stranger, Duration::from_secs(2)).await.unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::UNKNOWN_TRANSFER_ID));
    let mut received = first[4..].to_vec();
    let mut block = 1u16;
    loop {
        client
            .send_to(&Packet::Ack { block }.to_vec(), tid)
            .await
            .unwrap();
        let (from, data) = recv(&client, Duration::from_secs(2)).await.unwrap();
        assert_eq!(from, tid);
        let Ok(Packet::Data { block: got, data }) = Packet::parse(&data) else {
            panic!("expected data, got {data:?}");
        };
        if got != block.wrapping_add(1) {
            continue; // a retransmission
        }
        block = got;
        received.extend_from_slice(data);
        if data.len() < 512 {
            client
                .send_to(&Packet::Ack { block }.to_vec(), tid)
                .await
                .unwrap();
            break;
        }
    }
    assert_eq!(received, vec![7u8; 100_000]);
}

#[tokio::test]
async fn garbage_on_a_transfer_port_ends_only_that_transfer() {
    let lab = lab(quick()).await;
    let client = socket().await;
    client
        .send_to(&rrq("sub/big", &[]), lab.addr)
        .await
        .unwrap();
    let (tid, _) = recv(&client, Duration::from_secs(2)).await.unwrap();
    client.send_to(b"\xff\xff\xff", tid).await.unwrap();
    let (_, reply) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::ILLEGAL_OPERATION));
    assert_still_serving(&lab).await;
}

#[tokio::test]
async fn per_client_limit_refuses_with_a_busy_error() {
    let lab = lab(ServerConfig {
        max_transfers_per_client: 1,
        ..quick()
    })
    .await;
    let hog = socket().await;
    hog.send_to(&rrq("sub/big", &[]), lab.addr).await.unwrap();
    let (_, first) = recv(&hog, Duration::from_secs(2)).await.unwrap();
    let (_, reply) = ask(&lab, &rrq("ok", &[])).await.unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::NOT_DEFINED));
    // Unacknowledged, block 1 comes again when the transfer's timer runs out.
    let (_, again) = recv(&hog, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        (&first[..4], again),
        (&b"\x00\x03\x00\x01"[..], first.clone())
    );
    // The hog never acknowledges: after its retries (3 × ≤ 800 ms) its slot is free again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_still_serving(&lab).await;
}

#[tokio::test]
async fn a_client_timeout_above_the_bound_is_left_out_of_the_oack() {
    let lab = lab(quick()).await;
    let client = socket().await;
    client
        .send_to(&rrq("ok", &[("timeout", "255"), ("tsize", "0")]), lab.addr)
        .await
        .unwrap();
    let (tid, oack) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        oack, b"\x00\x06tsize\x005\x00",
        "timeout 255 is not granted"
    );
    client.send_to(b"\x00\x04\x00\x00", tid).await.unwrap();
    let (_, data) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(data, b"\x00\x03\x00\x01hello");
    client.send_to(b"\x00\x04\x00\x01", tid).await.unwrap();
    // Within the bound, the option is granted and echoed exactly (RFC 2349).
    let (_, oack) = ask(&lab, &rrq("ok", &[("timeout", "5")])).await.unwrap();
    assert_eq!(oack, b"\x00\x06timeout\x005\x00");
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn silent_transfers_holding_every_slot_make_room_for_a_real_client() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This test's runtime runs on this thread: the listener's lines land here.
    let _logging = tracing::subscriber::set_default(subscriber);
    let slots = 8;
    let lab = lab(ServerConfig {
        max_transfers: slots,
        summary_interval: Duration::from_millis(300),
        transfer: TransferConfig {
            // Long enough that only eviction can free a slot within the test (about 6 s of
            // retransmissions); short enough that the runtime's end does not wait long for
            // the transfers on blocking threads.
            first_ack_limit: Duration::from_secs(30),
            max_retries: 5,
            ..quick().transfer
        },
        ..quick()
    })
    .await;
    // Silent clients from as many addresses take every slot, with the longest timeout
    // they may ask for, and never acknowledge anything.
    let mut silent = Vec::new();
    for i in 0..slots {
        let address = format!("127.0.3.{}:0", i + 1);
        let hog = UdpSocket::bind(address.as_str()).await.unwrap();
        hog.send_to(&rrq("sub/big", &[("timeout", "255")]), lab.addr)
            .await
            .unwrap();
        let (_, first) = recv(&hog, Duration::from_secs(2)).await.unwrap();
        assert_eq!(&first[..4], b"\x00\x03\x00\x01");
        silent.push(hog);
    }
    // A real client still gets served: it takes the place of the oldest silent transfer,
    // whose client learns it was let go.
    assert_still_serving(&lab).await;
    let busy_reply = loop {
        let (_, reply) = recv(&silent[0], Duration::from_secs(20))
            .await
            .expect("the evicted client hears of it");
        if error_code(&reply).is_some() {
            break reply;
        }
    };
    assert_eq!(error_code(&busy_reply), Some(ErrorCode::NOT_DEFINED));
    assert!(String::from_utf8_lossy(&busy_reply).contains("server busy"));
    // A transfer that makes progress is never evicted: with every slot held by
    // acknowledged transfers, a newcomer is refused instead.
    let mut busy = Vec::new();
    for i in 0..slots {
        let address = format!("127.0.4.{}:0", i + 1);
        let client = UdpSocket::bind(address.as_str()).await.unwrap();
        client
            .send_to(&rrq("sub/big", &[]), lab.addr)
            .await
            .unwrap();
        let (tid, first) = recv(&client, Duration::from_secs(2)).await.unwrap();
        if &first[..4] == b"\x00\x03\x00\x01" {
            client.send_to(b"\x00\x04\x00\x01", tid).await.unwrap();
            recv(&client, Duration::from_secs(2)).await.unwrap();
        }
        busy.push(client);
    }
    let (_, reply) = ask(&lab, &rrq("ok", &[])).await.unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::NOT_DEFINED));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let text = log.text();
    let summaries: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("tftp under load"))
        .collect();
    assert!(!summaries.is_empty(), "no summary in:\n{text}");
    let evicted_total: u64 = summaries
        .iter()
        .filter_map(|line| {
            line.split("evicted=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    // One for the download; the newcomers take its freed slot, then the seven silent ones.
    assert_eq!(evicted_total, slots as u64, "{text}");
    assert!(
        summaries
            .iter()
            .any(|line| !line.contains("busy_overall=0")),
        "the refusal is counted: {text}"
    );
    assert!(
        !text
            .lines()
            .any(|line| line.contains("WARN") && !line.contains("tftp under load")),
        "no per-request warning: {text}"
    );
}

#[tokio::test]
async fn single_port_mode_serves_from_the_listening_port() {
    let lab = lab(ServerConfig {
        ports: PortMode::Single,
        ..quick()
    })
    .await;
    let client = socket().await;
    client
        .send_to(&rrq("ok", &[("blksize", "1468")]), lab.addr)
        .await
        .unwrap();
    let (from, oack) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(from, lab.addr);
    assert_eq!(oack, b"\x00\x06blksize\x001468\x00");
    client.send_to(b"\x00\x04\x00\x00", lab.addr).await.unwrap();
    let (from, data) = recv(&client, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        (from, data.as_slice()),
        (lab.addr, &b"\x00\x03\x00\x01hello"[..])
    );
    client.send_to(b"\x00\x04\x00\x01", lab.addr).await.unwrap();
    // Concurrent downloads through the one port.
    let downloads = (0..8).map(|_| {
        pxe_tftp::download(
            lab.addr,
            "sub/big",
            DownloadOptions {
                blksize: Some(1468),
                windowsize: Some(8),
                ..Default::default()
            },
        )
    });
    for result in futures_join_all(downloads).await {
        assert_eq!(result.unwrap().data, vec![7u8; 100_000]);
    }
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn port_range_mode_answers_from_a_port_in_the_range() {
    // A range of ten ports above the ephemeral range's usual start, unlikely to be busy.
    let lab = lab(ServerConfig {
        ports: PortMode::Range(31_000..=31_009),
        ..quick()
    })
    .await;
    for _ in 0..3 {
        let client = socket().await;
        client.send_to(&rrq("ok", &[]), lab.addr).await.unwrap();
        let (from, data) = recv(&client, Duration::from_secs(2)).await.unwrap();
        assert!((31_000..=31_009).contains(&from.port()), "{from}");
        assert_eq!(data, b"\x00\x03\x00\x01hello");
        client.send_to(b"\x00\x04\x00\x01", from).await.unwrap();
    }
}

#[tokio::test]
async fn a_server_on_its_own_thread_serves_and_stops_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok"), b"hello").unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Directory::new(dir.path()).unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run_on_own_thread());
    let downloaded = pxe_tftp::download(addr, "ok", DownloadOptions::default()).await;
    assert_eq!(downloaded.unwrap().data, b"hello");
    serving.abort();
    // The server thread lets go of the port once the future is dropped.
    let mut rebound = None;
    for _ in 0..100 {
        rebound = UdpSocket::bind(addr).await.ok();
        if rebound.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        rebound.is_some(),
        "port {addr} still held by the server thread"
    );
}
