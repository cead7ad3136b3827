//! A server `Transfer` and a client `Download` driven by arbitrary datagrams (from the peer or
//! a stranger) and arbitrary clock steps. Nothing may panic; every datagram sent goes to the
//! peer or to whoever sent the last datagram; DATA never exceeds the block size; and once the
//! clock runs far enough ahead, both state machines finish. Half the runs serve netascii,
//! converted block by block from text with line ends.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pxe_tftp::bytes::Bytes;
use pxe_tftp::options::{negotiate, Rollover, TransferConfig};
use pxe_tftp::wire::{Mode, TftpOption};
use pxe_tftp::{Download, DownloadOptions, Transfer};

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (head, mut ops) = data.split_at(6);
    let peer: SocketAddr = "192.0.2.10:1000".parse().unwrap();
    let stranger: SocketAddr = "192.0.2.10:1001".parse().unwrap();
    let server_addr: SocketAddr = "192.0.2.1:69".parse().unwrap();
    let blksize = (u16::from(head[0]) + 8).to_string();
    let windowsize = (u16::from(head[1] % 20) + 1).to_string();
    let len = usize::from(u16::from_be_bytes([head[2], head[3]])) % 20_000;
    let requested = [
        TftpOption { name: "blksize", value: &blksize },
        TftpOption { name: "windowsize", value: &windowsize },
        TftpOption { name: "tsize", value: "0" },
    ];
    let requested = &requested[..usize::from(head[4] % 4)];
    let config = TransferConfig {
        rollover: if head[5] & 1 == 0 { Rollover::ToZero } else { Rollover::ToOne },
        ..TransferConfig::default()
    };
    let negotiated = negotiate(requested, &config).expect("valid options");
    let mode = if head[5] & 4 == 0 { Mode::Octet } else { Mode::Netascii };
    let content: Bytes = [b'a', b'\n', b'\r', 0].iter().copied().cycle().take(len).collect();
    let mut transfer = Transfer::with_mode(peer, content, mode, requested, &negotiated, &config);
    let mut download = Download::new(
        server_addr,
        "file",
        DownloadOptions {
            blksize: Some(u16::from(head[0]) + 8),
            windowsize: Some(u16::from(head[1] % 20) + 1),
            tsize: head[5] & 2 != 0,
            rollover: config.rollover,
            ..DownloadOptions::default()
        },
    );
    let mut now = Instant::now();
    // Ops: [kind, step, len, bytes...]: kind bit 0 = from a stranger, bit 1 = to the client.
    while ops.len() >= 3 {
        let (kind, step, n) = (ops[0], ops[1], usize::from(ops[2]));
        let n = n.min(ops.len() - 3);
        let datagram = &ops[3..3 + n];
        ops = &ops[3 + n..];
        now += Duration::from_millis(u64::from(step) * 8);
        let from = if kind & 1 == 0 { peer } else { stranger };
        if kind & 2 == 0 {
            transfer.handle_datagram(now, from, datagram);
        } else {
            download.handle_datagram(now, server_addr, datagram);
        }
        transfer.handle_timeout(now);
        download.handle_timeout(now);
        while let Some(transmit) = transfer.poll_transmit(now) {
            assert!(transmit.destination == peer || transmit.destination == from);
            if !transmit.header().is_empty() {
                assert!(transmit.payload.len() <= usize::from(negotiated.blksize));
            }
        }
        while download.poll_transmit(now).is_some() {}
        while transfer.poll_event().is_some() {}
    }
    // A silent peer: both sides give up after their bounded retries.
    for _ in 0..100 {
        now += Duration::from_secs(60);
        transfer.handle_timeout(now);
        download.handle_timeout(now);
        while transfer.poll_transmit(now).is_some() {}
        while download.poll_transmit(now).is_some() {}
    }
    assert!(transfer.is_finished(), "transfer never finished");
    assert!(download.is_finished(), "download never finished");
});
