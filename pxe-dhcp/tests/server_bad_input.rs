//! Bad input: truncated packets, hlen > 16, option lengths past the end, overload loops,
//! giant packets, wrong op codes. Each is dropped (a `debug` log) and the server keeps
//! serving: first on the pure engine, then over a real socket in a namespace.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use pxe_dhcp::proto::{Arrival, Engine, NoReply, ProtoConfig, Service};
use pxe_dhcp::server::DhcpServer;
use pxe_dhcp::wire::{DecodeError, MessageType, Packet, MAGIC_COOKIE};
use pxe_policy::{BootEveryone, LinuxBoot, SharedPolicy};
use pxe_testkit::prerequisites;
use server_lab::{await_reply, capture, client_socket, server_and_client, RunningServer};

/// The BOOTP header (236 bytes) of a real PXE DISCOVER, then the cookie and `options`.
fn with_options(options: &[u8]) -> Vec<u8> {
    let mut bytes = capture("ipxe-bios-rom-discover.bin")[..236].to_vec();
    bytes.extend_from_slice(&MAGIC_COOKIE);
    bytes.extend_from_slice(options);
    bytes
}

/// Every kind of bad message, named.
fn bad_messages() -> Vec<(&'static str, Vec<u8>)> {
    let good = capture("ipxe-bios-rom-discover.bin");
    let mut hlen_17 = good.clone();
    hlen_17[2] = 17;
    let mut hlen_255 = good.clone();
    hlen_255[2] = 255;
    let mut bootreply = good.clone();
    bootreply[0] = 2;
    let mut op_zero = good.clone();
    op_zero[0] = 0;
    let mut op_seven = good.clone();
    op_seven[0] = 7;
    let mut bad_cookie = good.clone();
    bad_cookie[236] = 0;
    // Option 52 says "options continue in file", and file holds another 52 and an option
    // running past its end: the overload must not be followed in a loop.
    let mut overload_loop = with_options(&[53, 1, 1, 52, 1, 3, 60, 9]);
    overload_loop.extend_from_slice(b"PXEClient");
    overload_loop.push(255);
    overload_loop[108] = 52; // file: 52 again…
    overload_loop[109] = 1;
    overload_loop[110] = 3;
    overload_loop[111] = 60; // …then an option claiming more than file holds.
    overload_loop[112] = 200;
    let mut bad_overload_value = with_options(&[53, 1, 1, 52, 1, 9, 255]);
    bad_overload_value.truncate(250);
    vec![
        ("empty", Vec::new()),
        ("truncated header", good[..100].to_vec()),
        ("truncated before the cookie", good[..238].to_vec()),
        ("hlen 17", hlen_17),
        ("hlen 255", hlen_255),
        ("bootreply", bootreply),
        ("op 0", op_zero),
        ("op 7", op_seven),
        ("bad cookie", bad_cookie),
        (
            "option length past the end",
            with_options(&[53, 1, 1, 60, 200, b'P', b'X']),
        ),
        ("option length byte missing", with_options(&[53, 1, 1, 60])),
        ("overload loop", overload_loop),
        ("overload value 9", bad_overload_value),
        (
            "message type with a bad length",
            with_options(&[
                53, 0, 60, 9, b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', 255,
            ]),
        ),
    ]
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn engine_drops_bad_messages_with_a_reason() {
    let engine = Engine::new(ProtoConfig::default());
    let arrival = Arrival::new(
        Service::Dhcp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        1,
        Ipv4Addr::new(192, 0, 2, 1),
    );
    for (name, bytes) in bad_messages() {
        let silence = engine.accept(&bytes, &arrival, now()).expect_err(name);
        match (name, &silence) {
            ("hlen 17" | "hlen 255", NoReply::Malformed(DecodeError::BadHardwareLength { .. })) => {
            }
            (
                "bootreply" | "op 0" | "op 7",
                NoReply::Malformed(DecodeError::NotARequest { .. }),
            ) => {}
            ("message type with a bad length", NoReply::NoMessageType) => {}
            (_, NoReply::Malformed(_)) => {}
            _ => panic!("{name}: unexpected {silence:?}"),
        }
        // The reason reads as a lower-case sentence for the debug log.
        let text = silence.to_string();
        assert!(
            !text.is_empty() && !text.starts_with(char::is_uppercase),
            "{name}: {text}"
        );
    }
    // A giant datagram of valid options is still read (options end where the buffer does),
    // and a giant one of nonsense is dropped.
    let mut giant = capture("ipxe-bios-rom-discover.bin");
    giant.resize(60_000, 0);
    assert!(engine.accept(&giant, &arrival, now()).is_ok());
    let mut nonsense = with_options(&[53, 1, 1]);
    nonsense.resize(60_000, 0xfe);
    assert!(matches!(
        engine.accept(&nonsense, &arrival, now()),
        Err(NoReply::Malformed(_))
    ));
}

#[test]
fn server_keeps_serving_after_bad_input() {
    if !prerequisites("server_keeps_serving_after_bad_input", true, &["ip"]) {
        return;
    }
    let (server_ns, client_ns) = server_and_client("bad");
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);
    let _server = RunningServer::start(&server_ns, || {
        DhcpServer::builder(SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz"))))
    });
    client_ns.enter(|| {
        let socket = client_socket(68);
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        let mut giant = with_options(&[53, 1, 1]);
        giant.resize(60_000, 0xfe);
        for round in 0..3u32 {
            for (_, bytes) in bad_messages() {
                socket.send_to(&bytes, to).unwrap();
            }
            socket.send_to(&giant, to).unwrap();
            // And to the boot server port.
            for (_, bytes) in bad_messages() {
                socket
                    .send_to(&bytes, SocketAddrV4::new(server_lab::SERVER_IP, 4011))
                    .unwrap();
            }
            // A good DISCOVER still gets its proxy offer.
            let mut discover = capture("ipxe-bios-rom-discover.bin");
            let xid = 0x0bad_0000 + round;
            discover[4..8].copy_from_slice(&xid.to_be_bytes());
            socket.send_to(&discover, to).unwrap();
            let offer = await_reply(&socket, xid, MessageType::Offer, Duration::from_secs(3))
                .unwrap_or_else(|| panic!("no offer after bad input, round {round}"));
            assert_eq!(
                Packet::new_checked(&offer[..]).unwrap().boot_file(),
                Some(&b"http://192.0.2.1/boot.ipxe"[..])
            );
        }
    });
}
