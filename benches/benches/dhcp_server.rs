//! The DHCP server's per-packet path without sockets: parse → decide → emit, through
//! `pxe_dhcp::proto::Engine`, for a proxy offer and for an authoritative DISCOVER + REQUEST
//! (the lease table grows as it runs, as under perfdhcp).
//!
//! `cargo bench -p pxe-benches --bench dhcp_server`
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pxe_dhcp::lease::Subnet;
use pxe_dhcp::proto::{Arrival, Engine, Mode, ProtoConfig, Service};
use pxe_dhcp::wire::{MessageType, OptionCode, Packet, PacketBuilder};
use pxe_policy::{BootDecision, MacAddr};

const IPXE_DISCOVER: &[u8] = include_bytes!("../../testdata/dhcp/ipxe-bios-rom-discover.bin");
const EDK2_DISCOVER: &[u8] = include_bytes!("../../testdata/dhcp/edk2-pxe-discover.bin");

fn arrival() -> Arrival {
    Arrival::new(
        Service::Dhcp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        2,
        Ipv4Addr::new(198, 18, 0, 1),
    )
}

/// One request through accept → policy (the default decision) → respond → emit.
fn serve(engine: &mut Engine, bytes: &[u8], now: SystemTime, out: &mut [u8]) -> usize {
    let arrival = arrival();
    let Ok(accepted) = engine.accept(bytes, &arrival, now) else {
        return 0;
    };
    let decision = accepted
        .facts()
        .map(|facts| BootDecision::chainload_for(facts.arch));
    match engine.respond(&accepted, &arrival, decision, now).reply {
        Ok(reply) => reply.packet.emit(out).unwrap_or(0),
        Err(_) => 0,
    }
}

fn proxy(c: &mut Criterion) {
    let mut group = c.benchmark_group("dhcp_server_proxy");
    group.throughput(Throughput::Elements(1));
    let now = SystemTime::now();
    let mut out = vec![0u8; 1500];
    for (name, bytes) in [
        ("ipxe_discover", IPXE_DISCOVER),
        ("edk2_discover", EDK2_DISCOVER),
    ] {
        let mut engine = Engine::new(ProtoConfig::default());
        group.bench_function(format!("offer/{name}"), |b| {
            b.iter(|| serve(&mut engine, black_box(bytes), now, &mut out))
        });
    }
    group.finish();
}

fn authoritative(c: &mut Criterion) {
    let mut group = c.benchmark_group("dhcp_server_authoritative");
    // One iteration is a whole DORA: DISCOVER → OFFER, REQUEST → ACK.
    group.throughput(Throughput::Elements(1));
    let mut config = ProtoConfig::default();
    config.mode = Mode::Authoritative {
        subnets: vec![Subnet::new(
            Ipv4Addr::new(198, 18, 0, 0),
            15,
            Ipv4Addr::new(198, 18, 1, 0),
            Ipv4Addr::new(198, 19, 255, 254),
        )],
        reservations: vec![],
    };
    let mut engine = Engine::new(config);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut out = vec![0u8; 1500];
    let mut client: u32 = 0;
    group.bench_function("dora/plain_client", |b| {
        b.iter(|| {
            // A new client each time, up to 100k, then the same ones again (renewals).
            client = (client + 1) % 100_000;
            let [_, x, y, z] = client.to_be_bytes();
            let mac = MacAddr([2, 0, 0, x, y, z]);
            let discover = PacketBuilder::request(MessageType::Discover, client, mac)
                .to_vec()
                .unwrap();
            let len = serve(&mut engine, &discover, now, &mut out);
            let offered = Packet::new_checked(&out[..len]).unwrap().yiaddr();
            let mut request = PacketBuilder::request(MessageType::Request, client, mac);
            request
                .set_server_identifier(Ipv4Addr::new(198, 18, 0, 1))
                .set_option(OptionCode::REQUESTED_IP_ADDRESS, &offered.octets());
            let request = request.to_vec().unwrap();
            black_box(serve(&mut engine, &request, now, &mut out))
        })
    });
    group.finish();
}

criterion_group!(benches, proxy, authoritative);
criterion_main!(benches);
