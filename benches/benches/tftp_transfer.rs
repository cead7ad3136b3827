//! CPU cost of pxe-tftp's sans-IO server state machine alone: a 16 MiB transfer driven to
//! completion with ACKs fed straight back, no sockets. What remains per MiB in a real server
//! is the system calls.

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_main, Criterion, Throughput};
use pxe_tftp::bytes::Bytes;
use pxe_tftp::options::{negotiate, TransferConfig};
use pxe_tftp::wire::{Packet, TftpOption};
use pxe_tftp::{Event, Outcome, Transfer};

fn run(content: &Bytes, windowsize: &str) -> u64 {
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let requested = [
        TftpOption {
            name: "blksize",
            value: "1468",
        },
        TftpOption {
            name: "windowsize",
            value: windowsize,
        },
    ];
    let config = TransferConfig::default();
    let negotiated = negotiate(&requested, &config).unwrap();
    let mut transfer = Transfer::new(peer, content.clone(), &requested, &negotiated, &config);
    let now = Instant::now();
    let mut sent = 0u64;
    let mut last_block = 0u16;
    loop {
        while let Some(transmit) = transfer.poll_transmit(now) {
            sent += transmit.len() as u64;
            let header = transmit.header();
            last_block = if header.len() == 4 {
                u16::from_be_bytes([header[2], header[3]])
            } else {
                0
            };
        }
        if let Some(Event::Finished(outcome)) = transfer.poll_event() {
            assert!(matches!(outcome, Outcome::Completed { .. }));
            return sent;
        }
        transfer.handle_datagram(now, peer, &Packet::Ack { block: last_block }.to_vec());
    }
}

fn bench(c: &mut Criterion) {
    let content = Bytes::from(vec![0u8; 16 << 20]);
    let mut group = c.benchmark_group("tftp_transfer_state_machine");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(content.len() as u64));
    for windowsize in ["1", "16", "64"] {
        group.bench_function(format!("16MiB_blksize1468_window{windowsize}"), |b| {
            b.iter(|| run(&content, windowsize))
        });
    }
    group.finish();
}

// criterion's macro generates an undocumented function.
#[allow(missing_docs)]
mod entry {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(entry::benches);
