//! DHCP wire layer: parsing real client messages and emitting replies, per packet.
//!
//! `cargo bench -p pxe-benches --bench dhcp_wire`
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pxe_dhcp::wire::{
    reply_destination, ClientRequest, MessageType, Packet, PacketBuilder, PxeVendorOptions,
};

const IPXE_DISCOVER: &[u8] = include_bytes!("../../testdata/dhcp/ipxe-bios-rom-discover.bin");
const EDK2_DISCOVER: &[u8] = include_bytes!("../../testdata/dhcp/edk2-pxe-discover.bin");

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("dhcp_parse");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in [
        ("ipxe_discover", IPXE_DISCOVER),
        ("edk2_discover", EDK2_DISCOVER),
    ] {
        group.bench_function(format!("new_checked/{name}"), |b| {
            b.iter(|| Packet::new_checked(black_box(bytes)).unwrap().xid())
        });
        group.bench_function(format!("options_iter/{name}"), |b| {
            let packet = Packet::new_checked(bytes).unwrap();
            b.iter(|| black_box(&packet).options().count())
        });
        group.bench_function(format!("client_request/{name}"), |b| {
            b.iter(|| ClientRequest::parse(black_box(bytes)).unwrap())
        });
    }
    group.finish();
}

fn proxy_offer(request: &ClientRequest) -> PacketBuilder {
    let server = Ipv4Addr::new(192, 0, 2, 1);
    let mut offer = PacketBuilder::reply_to(request, MessageType::Offer);
    offer
        .set_server_identifier(server)
        .set_siaddr(server)
        .set_vendor_class(b"PXEClient")
        .set_bootfile_name(b"http://192.0.2.1/boot.ipxe?mac=${mac}")
        .set_pxe_vendor_options(&PxeVendorOptions::use_boot_file());
    if let Some(guid) = request.client_guid {
        offer.set_client_guid(guid);
    }
    offer
}

fn emit(c: &mut Criterion) {
    let mut group = c.benchmark_group("dhcp_emit");
    group.throughput(Throughput::Elements(1));
    let request = ClientRequest::parse(IPXE_DISCOVER).unwrap();
    let offer = proxy_offer(&request);
    let mut buf = [0u8; 1500];
    group.bench_function("emit/proxy_offer", |b| {
        b.iter(|| black_box(&offer).emit(&mut buf).unwrap())
    });
    group.bench_function("build_and_emit/proxy_offer", |b| {
        b.iter(|| {
            let offer = proxy_offer(black_box(&request));
            let len = offer.emit(&mut buf).unwrap();
            let to = reply_destination(&request.addressing(), MessageType::Offer, offer.yiaddr());
            (len, to)
        })
    });
    group.bench_function("parse_and_reply/ipxe_discover", |b| {
        b.iter(|| {
            let request = ClientRequest::parse(black_box(IPXE_DISCOVER)).unwrap();
            proxy_offer(&request).emit(&mut buf).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, parse, emit);
criterion_main!(benches);
