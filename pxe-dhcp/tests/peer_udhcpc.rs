//! A real DHCP client against the wire layer: busybox `udhcpc` in one network namespace, a
//! few lines of std UDP in another that answer it with [`PacketBuilder`] replies, addressed
//! by [`reply_destination`]. The client's messages must parse into the facts it was told to
//! send (PXE vendor class, arch, GUID), and it must accept our OFFER and ACK: it reports the
//! lease and the options it read (including an RFC 3396 split option 67) to a script.
//!
//! Needs root, `ip` and `busybox`; skips without them outside CI.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pxe_dhcp::wire::{
    reply_destination, ClientRequest, MessageType, Packet, PacketBuilder, ReplyDestination,
    SERVER_PORT,
};
use pxe_policy::{Arch, ClientGuid, MacAddr};
use pxe_testkit::{prerequisites, ChildGuard, NetNs};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x53, 0x42]);
const GUID: &str = "9e0c1ab0-0000-4000-8000-000000000009";

/// A boot URL of `len` bytes; past 255 RFC 3396 splits it.
fn url(len: usize) -> String {
    let head = "http://192.0.2.1/boot.ipxe?";
    format!("{head}{}", "x".repeat(len - head.len()))
}

/// How the server shapes its replies.
#[derive(Clone, Copy)]
struct Shape {
    /// Whether udhcpc asks for broadcast replies (`-B`).
    broadcast: bool,
    /// The length of the URL in option 67.
    url_len: usize,
    /// Whether options may continue in `file`/`sname` (then `file` carries no name).
    overload: bool,
}

/// What the server saw, for the test to check after the client is done.
struct Seen {
    discover: ClientRequest,
    request: ClientRequest,
    destinations: Vec<ReplyDestination>,
}

/// Answers one DISCOVER and one REQUEST from `MAC`, then returns. Bounded by `deadline`.
fn serve(server: &NetNs, client_if: &str, shape: Shape) -> Seen {
    let guid: ClientGuid = GUID.parse().unwrap();
    let socket = server.enter(|| UdpSocket::bind(("0.0.0.0", SERVER_PORT)).unwrap());
    socket.set_broadcast(true).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    let mut discover = None;
    let mut destinations = Vec::new();
    while Instant::now() < deadline {
        let Ok((len, _from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(request) = ClientRequest::parse(&buf[..len]) else {
            continue;
        };
        if request.chaddr != MAC {
            continue;
        }
        let reply_type = match request.message_type {
            Some(MessageType::Discover) => MessageType::Offer,
            Some(MessageType::Request) => MessageType::Ack,
            _ => continue,
        };
        let mut reply = PacketBuilder::reply_to(&request, reply_type);
        reply
            .set_yiaddr(OFFERED)
            .set_siaddr(SERVER)
            .set_server_identifier(SERVER)
            .set_subnet_mask(Ipv4Addr::new(255, 255, 255, 0))
            .set_lease_time(600)
            .set_client_guid(guid)
            .set_bootfile_name(url(shape.url_len).as_bytes())
            .set_overload_allowed(shape.overload);
        if !shape.overload {
            reply.set_file(b"undionly.kpxe").unwrap();
        }
        // udhcpc sends no option 57: 548 bytes is the limit.
        let bytes = reply.to_vec().expect("the reply fits the client's limit");
        let overloaded = Packet::new_checked(&bytes[..]).unwrap().overload();
        assert_eq!(overloaded.is_some(), shape.overload, "{overloaded:?}");
        let to = reply_destination(&request.addressing(), reply_type, OFFERED);
        if let ReplyDestination::Hardware { ip, mac } = to {
            // The client has no address and cannot answer ARP: tell the kernel where it is.
            server.ip(&[
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                &mac.to_string(),
                "dev",
                client_if,
            ]);
        }
        destinations.push(to);
        socket.send_to(&bytes, to.socket_addr()).unwrap();
        match reply_type {
            MessageType::Offer => discover = Some(request),
            _ => {
                return Seen {
                    discover: discover.expect("a DISCOVER came first"),
                    request,
                    destinations,
                }
            }
        }
    }
    panic!("no DISCOVER/REQUEST exchange with udhcpc before the deadline");
}

/// The environment udhcpc gave its script for `event`, as `NAME=value` pairs.
fn script_env(dir: &Path, event: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join(format!("{event}.env")))
        .unwrap_or_else(|e| panic!("udhcpc ran no `{event}` event: {e}"));
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn exchange(label: &str, shape: Shape) {
    let broadcast = shape.broadcast;
    if !prerequisites(label, true, &["ip", "busybox"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nenv > '{}'/\"$1\".env\n", dir.path().display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let server = NetNs::new("dw-srv");
    let client = NetNs::new("dw-cli");
    server.link("dws0", Some("192.0.2.1/24"), &client, "dwc0", None);
    client.ip(&["link", "set", "dwc0", "address", &MAC.to_string()]);
    // Limited broadcast leaves by the only link (the namespace has no default route).
    server.ip(&["route", "add", "255.255.255.255/32", "dev", "dws0"]);

    let guid: ClientGuid = GUID.parse().unwrap();
    let guid_hex: String = [0u8]
        .iter()
        .chain(guid.to_wire().iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut command = client.command("busybox");
    command
        .args([
            "udhcpc", "-i", "dwc0", "-f", "-q", "-n", "-t", "8", "-T", "1",
        ])
        .args(["-A", "1", "-s"])
        .arg(&script)
        .args(["-V", "PXEClient:Arch:00007:UNDI:003016"])
        .args(["-x", "0x5d:0007", "-x", &format!("0x61:{guid_hex}")])
        .args(["-O", "67", "-O", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if broadcast {
        command.arg("-B");
    }
    let mut udhcpc = ChildGuard::spawn(&mut command);
    let seen = serve(&server, "dws0", shape);
    let status = udhcpc
        .wait_timeout(Duration::from_secs(15))
        .is_some_and(|status| status.success());
    let output = std::mem::replace(&mut udhcpc.0, Command::new("true").spawn().unwrap());
    let output = output.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(status, "udhcpc did not obtain the lease:\n{log}");

    // What the real client sent, as the wire layer reads it.
    for request in [&seen.discover, &seen.request] {
        assert_eq!(request.chaddr, MAC);
        assert_eq!(request.broadcast(), broadcast);
        assert!(request.is_pxe_client(), "{request:?}");
        assert_eq!(request.arch(), Some(Arch::X64_UEFI));
        assert_eq!(request.client_arch, [Arch::X64_UEFI]);
        assert_eq!(request.client_guid, Some(guid));
        assert!(request.malformed.is_empty(), "{:?}", request.malformed);
    }
    assert_eq!(seen.request.xid, seen.discover.xid);
    assert_eq!(seen.request.server_id, Some(SERVER));
    assert_eq!(seen.request.requested_ip, Some(OFFERED));
    let expected = if broadcast {
        ReplyDestination::Broadcast
    } else {
        ReplyDestination::Hardware {
            ip: OFFERED,
            mac: MAC,
        }
    };
    assert_eq!(seen.destinations, [expected, expected]);

    // What the real client read from our replies.
    let bound = script_env(dir.path(), "bound");
    assert_eq!(
        bound.get("ip").map(String::as_str),
        Some("192.0.2.50"),
        "{bound:?}"
    );
    assert_eq!(bound.get("serverid").map(String::as_str), Some("192.0.2.1"));
    assert_eq!(
        bound.get("subnet").map(String::as_str),
        Some("255.255.255.0")
    );
    assert_eq!(bound.get("siaddr").map(String::as_str), Some("192.0.2.1"));
    if !shape.overload {
        assert_eq!(
            bound.get("boot_file").map(String::as_str),
            Some("undionly.kpxe")
        );
    }
    assert_eq!(
        bound.get("bootfile").map(String::as_str),
        Some(url(shape.url_len).as_str()),
        "option 67 comes back whole"
    );
}

/// RFC 2131 §4.1: no broadcast bit, no ciaddr, no giaddr: unicast to yiaddr at chaddr.
/// Option 67 is 260 bytes, so RFC 3396 splits it in two instances.
#[test]
fn udhcpc_takes_a_lease_from_unicast_replies() {
    let shape = Shape {
        broadcast: false,
        url_len: 260,
        overload: false,
    };
    exchange("udhcpc_takes_a_lease_from_unicast_replies", shape);
}

/// RFC 2131 §4.1: the broadcast bit (`udhcpc -B`): replies to 255.255.255.255.
#[test]
fn udhcpc_takes_a_lease_from_broadcast_replies() {
    let shape = Shape {
        broadcast: true,
        url_len: 100,
        overload: false,
    };
    exchange("udhcpc_takes_a_lease_from_broadcast_replies", shape);
}

/// RFC 2131 §4.1 / RFC 2132 §9.3: a 400-byte option 67 only fits 548 bytes by continuing
/// in `file` and `sname` (option 52 = 3); udhcpc reads it back whole.
#[test]
fn udhcpc_reads_options_overloaded_into_file_and_sname() {
    let shape = Shape {
        broadcast: true,
        url_len: 400,
        overload: true,
    };
    exchange("udhcpc_reads_options_overloaded_into_file_and_sname", shape);
}
