//! The request → decision → reply path of the DHCP server, with state: a sequence of
//! datagrams (each prefixed by a 2-byte length) through one `Engine`, proxy or authoritative,
//! on port 67 or 4011, with the policy's answer picked by the input. Every reply must emit
//! and parse back, and the lease table must never bind one address to two clients.
#![no_main]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use pxe_dhcp::lease::{Reservation, Subnet};
use pxe_dhcp::proto::{Arrival, Engine, Mode, ProtoConfig, Service};
use pxe_dhcp::wire::Packet;
use pxe_policy::{BootDecision, IpxeBinary, MacAddr};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let mut config = ProtoConfig::default();
    if setup & 1 == 1 {
        config.mode = Mode::Authoritative {
            subnets: vec![Subnet::new(
                Ipv4Addr::new(192, 0, 2, 0),
                24,
                Ipv4Addr::new(192, 0, 2, 100),
                Ipv4Addr::new(192, 0, 2, 103),
            )],
            reservations: vec![Reservation::by_mac(
                MacAddr([0x52, 0x54, 0, 0x9e, 1, 1]),
                Ipv4Addr::new(192, 0, 2, 10),
            )],
        };
    }
    config.default_quirks.no_overload = setup & 2 == 2;
    config.default_quirks.answer_request = setup & 4 == 4;
    let mut engine = Engine::new(config);
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let control = rest[2];
        let body = &rest[3..];
        let datagram = &body[..len.min(body.len())];
        rest = &body[datagram.len()..];
        let service = if control & 1 == 1 {
            Service::BootServer
        } else {
            Service::Dhcp
        };
        let local = if control & 2 == 2 {
            Ipv4Addr::new(192, 0, 2, 1)
        } else {
            Ipv4Addr::new(198, 51, 100, 1)
        };
        let arrival = Arrival::new(service, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68), 2, local);
        // Time moves on, sometimes past the lease time.
        now += Duration::from_secs(u64::from(control >> 4) * 300);
        let Ok(accepted) = engine.accept(datagram, &arrival, now) else {
            continue;
        };
        let decision = accepted.facts().map(|facts| match (control >> 2) & 3 {
            0 => BootDecision::Ignore,
            1 => BootDecision::File("x".repeat(usize::from(control))),
            2 => BootDecision::Ipxe(IpxeBinary::UNDIONLY),
            _ => BootDecision::chainload_for(facts.arch),
        });
        let outcome = engine.respond(&accepted, &arrival, decision, now);
        if let Ok(reply) = outcome.reply {
            let mut buf = vec![0u8; reply.packet.buffer_len()];
            if let Ok(len) = reply.packet.emit(&mut buf) {
                let parsed = Packet::new_checked(&buf[..len]).expect("our reply parses");
                assert!(parsed.message_type().is_some());
            }
        }
        if let Some(leases) = engine.leases() {
            let mut seen = HashSet::new();
            for lease in leases.leases(now) {
                assert!(seen.insert(lease.ip), "{} bound twice", lease.ip);
            }
        }
    }
});
