//! Memory under hostile load, on loopback: what the server holds stays bounded by its
//! configuration whatever is in the root and whatever clients ask.
//!
//! One test per binary, so that the process's resident memory (read from
//! `/proc/self/status`) is this server's and the load generator's, nothing else's.
//! The root holds a 1 GiB sparse file and a 4 MiB text file; 1,000 source addresses on
//! 127.0.0.0/8 send 10,000 mixed requests (octet and netascii, every block size and window,
//! most clients silent, some acknowledging), bounded in count and time, while a real client
//! downloads. Anonymous memory (the heap: what a whole-file read or a netascii copy would
//! take) must grow by less than [`ANON_GROWTH_LIMIT`]; file pages mapped from the root are
//! page cache and are reported, not bounded.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pxe_tftp::wire::{Packet, Request, TftpOption};
use pxe_tftp::{Directory, DownloadOptions, Server, ServerConfig, TransferConfig};

/// Most anonymous memory the whole load may add (the issue saw 1.1 GB).
const ANON_GROWTH_LIMIT: u64 = 96 << 20;
const ADDRESSES: usize = 1_000;
const ROUNDS: usize = 10;
/// The whole load's time bound.
const LOAD_TIME_LIMIT: Duration = Duration::from_secs(90);

/// `VmRSS`, `RssAnon` and `RssFile` of this process, in bytes.
fn memory() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// The `i`th request of the mix: every file, both modes, block sizes and windows.
fn request(i: usize) -> Vec<u8> {
    let file = ["big", "text", "text", "big"][i % 4];
    let mode = if i.is_multiple_of(3) {
        "octet"
    } else {
        "netascii"
    };
    let blksize = [512, 1468, 8192, 65464][i / 4 % 4];
    let windowsize = [1, 16, 64][i / 16 % 3];
    let (blksize, windowsize) = (blksize.to_string(), windowsize.to_string());
    let mut options = vec![
        TftpOption {
            name: "blksize",
            value: &blksize,
        },
        TftpOption {
            name: "windowsize",
            value: &windowsize,
        },
        TftpOption {
            name: "tsize",
            value: "0",
        },
    ];
    if i.is_multiple_of(5) {
        options.push(TftpOption {
            name: "timeout",
            value: "255",
        });
    }
    Packet::Rrq(Request {
        filename: file,
        mode,
        options,
    })
    .to_vec()
}

/// Answers what reached `socket`: an acknowledging client ACKs each OACK and DATA it gets
/// (so its transfers run), a silent one never answers. Returns how many datagrams came.
fn answer_waiting(socket: &std::net::UdpSocket, acknowledges: bool) -> usize {
    let mut buf = [0u8; 70_000];
    let mut received = 0;
    while let Ok((len, from)) = socket.recv_from(&mut buf) {
        received += 1;
        if !acknowledges {
            continue;
        }
        let block = match Packet::parse(&buf[..len]) {
            Ok(Packet::Oack { .. }) => 0,
            Ok(Packet::Data { block, .. }) => block,
            _ => continue,
        };
        let _ = socket.send_to(&Packet::Ack { block }.to_vec(), from);
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_hostile_load_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: no disk, and a whole-file read would take 1 GiB of heap.
    std::fs::File::create(dir.path().join("big"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let line = b"a line of text for netascii, with its line end\n";
    let text: Vec<u8> = line.iter().copied().cycle().take(4 << 20).collect();
    std::fs::write(dir.path().join("text"), &text).unwrap();
    std::fs::write(dir.path().join("ok"), b"hello").unwrap();
    let config = ServerConfig {
        transfer: TransferConfig {
            first_ack_limit: Duration::from_secs(2),
            stall_limit: Duration::from_secs(4),
            ..TransferConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Directory::new(dir.path()).unwrap(),
        config,
    )
    .await
    .unwrap();
    let addr: SocketAddr = server.local_addr();
    let serving = tokio::spawn(server.run_on_own_thread());

    let before = memory();
    let load = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let clients: Vec<std::net::UdpSocket> = (0..ADDRESSES)
            .map(|i| {
                let local = format!("127.2.{}.{}:0", i / 250, i % 250 + 1);
                let socket = std::net::UdpSocket::bind(local.as_str()).unwrap();
                socket.set_nonblocking(true).unwrap();
                socket
            })
            .collect();
        let mut peak = memory();
        let mut sent = 0usize;
        let mut replies = 0usize;
        'rounds: for round in 0..ROUNDS {
            for (i, client) in clients.iter().enumerate() {
                if started.elapsed() > LOAD_TIME_LIMIT {
                    break 'rounds;
                }
                let _ = client.send_to(&request(round * ADDRESSES + i), addr);
                sent += 1;
                if i % 100 == 99 {
                    for (j, client) in clients.iter().enumerate() {
                        replies += answer_waiting(client, j % 10 == 0);
                    }
                    let now = memory();
                    peak = (peak.0.max(now.0), peak.1.max(now.1), peak.2.max(now.2));
                }
            }
        }
        // The acknowledging clients keep their transfers going a while longer.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            for (j, client) in clients.iter().enumerate() {
                replies += answer_waiting(client, j % 10 == 0);
            }
            let now = memory();
            peak = (peak.0.max(now.0), peak.1.max(now.1), peak.2.max(now.2));
            std::thread::sleep(Duration::from_millis(50));
        }
        (sent, replies, peak, started.elapsed())
    });
    // A real client is served while the load runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let downloaded = pxe_tftp::download(addr, "ok", DownloadOptions::default())
        .await
        .expect("a real client is served during the load");
    assert_eq!(downloaded.data, b"hello");
    let (sent, replies, peak, took) = load.await.unwrap();
    // Every silent transfer is let go within its first-ACK limit, every stalled one within
    // its stall limit.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = memory();
    eprintln!(
        "{sent} requests from {ADDRESSES} addresses in {took:?}, {replies} datagrams back; VmRSS/RssAnon/RssFile MiB: \
         before {:.1}/{:.1}/{:.1}, peak {:.1}/{:.1}/{:.1}, after {:.1}/{:.1}/{:.1}",
        mib(before.0),
        mib(before.1),
        mib(before.2),
        mib(peak.0),
        mib(peak.1),
        mib(peak.2),
        mib(after.0),
        mib(after.1),
        mib(after.2),
    );
    assert_eq!(sent, ADDRESSES * ROUNDS, "the load ran to its end in time");
    assert!(
        replies >= sent / 2,
        "most requests were answered: {replies}"
    );
    assert!(
        peak.1.saturating_sub(before.1) < ANON_GROWTH_LIMIT,
        "anonymous memory grew by {:.1} MiB",
        mib(peak.1.saturating_sub(before.1))
    );
    let downloaded = pxe_tftp::download(addr, "ok", DownloadOptions::default())
        .await
        .expect("still serving after the load");
    assert_eq!(downloaded.data, b"hello");
    serving.abort();
}
