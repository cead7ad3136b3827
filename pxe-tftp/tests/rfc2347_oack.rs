//! RFC 2347 option negotiation against the requests real firmware sent (testdata/tftp): the
//! OACK holds exactly the options asked for, in the client's order, with the granted values;
//! EDK2's size probe ends quietly; its real download runs windowed.

use std::net::SocketAddr;
use std::time::Instant;

use pxe_tftp::bytes::Bytes;
use pxe_tftp::options::{negotiate, TransferConfig};
use pxe_tftp::wire::{Packet, Request};
use pxe_tftp::{Event, Outcome, Transfer};

const IPXE_RRQ: &[u8] = include_bytes!("../../testdata/tftp/ipxe-undionly-rrq.bin");
const EDK2_PROBE: &[u8] = include_bytes!("../../testdata/tftp/edk2-size-probe-rrq.bin");
const EDK2_ABORT: &[u8] = include_bytes!("../../testdata/tftp/edk2-size-probe-abort.bin");
const EDK2_RRQ: &[u8] = include_bytes!("../../testdata/tftp/edk2-download-rrq.bin");

fn request(bytes: &[u8]) -> Request<'_> {
    match Packet::parse(bytes).unwrap() {
        Packet::Rrq(request) => request,
        other => panic!("not an RRQ: {other:?}"),
    }
}

fn start(bytes: &[u8], len: usize) -> (Transfer, Vec<u8>) {
    let request = request(bytes);
    let config = TransferConfig::default();
    let negotiated = negotiate(&request.options, &config).unwrap();
    let peer: SocketAddr = "192.0.2.10:1831".parse().unwrap();
    let mut transfer = Transfer::new(
        peer,
        Bytes::from(vec![1u8; len]),
        &request.options,
        &negotiated,
        &config,
    );
    let first = transfer.poll_transmit(Instant::now()).unwrap().to_vec();
    (transfer, first)
}

#[test]
fn ipxe_gets_blksize_1432_and_tsize() {
    assert_eq!(request(IPXE_RRQ).filename, "undionly.kpxe");
    let (_, oack) = start(IPXE_RRQ, 74213);
    assert_eq!(oack, b"\x00\x06blksize\x001432\x00tsize\x0074213\x00");
}

#[test]
fn edk2_size_probe_is_answered_then_ends_quietly() {
    let (mut transfer, oack) = start(EDK2_PROBE, 173792);
    // Only what was asked, in the client's order (dnsmasq dropped windowsize; we grant it).
    assert_eq!(
        oack,
        b"\x00\x06tsize\x00173792\x00blksize\x001468\x00windowsize\x004\x00"
    );
    let peer = transfer.peer();
    transfer.handle_datagram(Instant::now(), peer, EDK2_ABORT);
    assert!(matches!(
        transfer.poll_event(),
        Some(Event::Finished(Outcome::SizeProbe))
    ));
    assert!(transfer.is_finished());
    assert!(transfer.poll_transmit(Instant::now()).is_none());
    assert_eq!(transfer.poll_timeout(), None);
}

#[test]
fn edk2_download_runs_four_blocks_per_ack() {
    let (mut transfer, oack) = start(EDK2_RRQ, 173792);
    assert_eq!(oack, b"\x00\x06blksize\x001468\x00windowsize\x004\x00");
    let peer = transfer.peer();
    let now = Instant::now();
    transfer.handle_datagram(now, peer, b"\x00\x04\x00\x00");
    let window: Vec<_> = std::iter::from_fn(|| transfer.poll_transmit(now)).collect();
    assert_eq!(window.len(), 4);
    assert!(window.iter().all(|t| t.len() == 4 + 1468));
}
