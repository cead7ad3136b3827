//! A DHCP load generator that is not the bottleneck: it finds a proxy server's real capacity
//! where perfdhcp (one packet per system call, one thread) tops out first.
//!
//! It sends a real firmware DISCOVER (EDK2's PXE DISCOVER from `testdata`, by default) over
//! and over as a relay agent would forward it: `giaddr` is the generator's own address, so
//! every reply comes back unicast to its port 67, and each copy gets its own `xid` and
//! `chaddr` (a pool of distinct clients). Batches go out with one `sendmmsg` and come back with
//! one `recvmmsg`. An OFFER counts when its `xid` matches a DISCOVER still waiting and its
//! `chaddr` is that DISCOVER's; a reply after the timeout counts as late, not answered.
//!
//! Closed loop (the default): at most `--window` DISCOVERs outstanding, a slot freed by each
//! OFFER or by the timeout: the answered rate is the server's capacity when the window keeps
//! its queue non-empty. Open loop (`--rate`): DISCOVERs at a fixed rate, whatever comes back.
//! Bounded both ways: at most `--count` DISCOVERs and `--seconds` of sending.
//!
//! Run it (as root, in a namespace whose address is `--local`; `scripts/bench-dhcp` does):
//! `cargo bench -p pxe-benches --bench dhcp_blast -- --local 198.18.0.2 --server 198.18.0.1`
//!
//! It prints one line: `sent S answered A lost L late T seconds D offers/s R`.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use pxe_dhcp::wire::{field, MessageType, Op, Packet};
use pxe_udp::pktinfo::{receive_queued, send_queued, ReceiveBatch, Route};
use pxe_udp::{ask_buffer_size, wait_readable, Buffer};

/// DISCOVERs per `sendmmsg` and replies per `recvmmsg`.
const BATCH: usize = 64;
/// The default request: UEFI PXE firmware (EDK2), the most common network-boot client.
const EDK2_DISCOVER: &[u8] = include_bytes!("../../testdata/dhcp/edk2-pxe-discover.bin");

/// The generator's command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "dhcp_blast",
    about = "DHCP proxy load generator (see the file's docs)"
)]
struct Options {
    /// The generator's address: the relay address (giaddr) replies come back to, on port 67.
    #[arg(long)]
    local: Ipv4Addr,
    /// The server, `ADDR` or `ADDR:PORT` (port 67 by default).
    #[arg(long, value_parser = parse_server)]
    server: SocketAddrV4,
    /// A DHCP message to send instead of EDK2's PXE DISCOVER.
    #[arg(long, value_parser = read_template)]
    template: Option<Template>,
    /// Most DISCOVERs sent.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Most seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// DISCOVERs outstanding at most (closed loop).
    #[arg(long, default_value_t = 256, conflicts_with = "rate")]
    window: u64,
    /// DISCOVERs per second, whatever comes back (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Distinct simulated clients (chaddr values).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Milliseconds after which an unanswered DISCOVER counts as lost.
    #[arg(long = "timeout-ms", default_value = "500", value_parser = parse_millis)]
    timeout: Duration,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Whether a send failed only because the socket buffer or the device queue is full (the
/// DISCOVERs are sent again later).
fn full(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.raw_os_error() == Some(Errno::ENOBUFS as i32)
}

/// A DHCP message read from a file, checked to parse.
#[derive(Debug, Clone)]
struct Template(Vec<u8>);

fn parse_server(text: &str) -> Result<SocketAddrV4, String> {
    text.parse()
        .or_else(|_| text.parse().map(|ip| SocketAddrV4::new(ip, 67)))
        .map_err(|_| format!("{text:?}: expected ADDR or ADDR:PORT"))
}

fn parse_millis(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_millis)
        .map_err(|e| format!("{text:?}: {e}"))
}

fn read_template(path: &str) -> Result<Template, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    Packet::new_checked(&bytes[..]).map_err(|e| format!("{path}: not a DHCP message: {e}"))?;
    Ok(Template(bytes))
}

impl Options {
    /// The request every simulated client sends.
    fn template(&self) -> &[u8] {
        self.template.as_ref().map_or(EDK2_DISCOVER, |t| &t.0)
    }
}

/// The MAC of simulated client `n`: locally administered, unicast.
fn client_mac(n: u32) -> [u8; 6] {
    let [a, b, c, d] = n.to_be_bytes();
    [0x02, 0x00, a, b, c, d]
}

/// One DISCOVER per simulated client, relayed by `local`; only the `xid` changes per send.
fn discovers(options: &Options) -> Vec<Vec<u8>> {
    (0..options.clients)
        .map(|n| {
            let mut packet = options.template().to_vec();
            packet[field::HOPS] = 1;
            packet[field::GIADDR].copy_from_slice(&options.local.octets());
            packet[field::CHADDR][..6].copy_from_slice(&client_mac(n));
            packet
        })
        .collect()
}

/// What happened to each DISCOVER, by sequence number (= its `xid`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Waiting,
    Answered,
    TimedOut,
}

fn main() {
    let options = <Options as clap::Parser>::parse();
    let socket = UdpSocket::bind(SocketAddrV4::new(options.local, 67)).expect("bind port 67");
    socket.set_nonblocking(true).expect("non-blocking");
    // Replies arrive in bursts as large as the window: room for all of them.
    ask_buffer_size(&socket, Buffer::Receive, 8 << 20);
    ask_buffer_size(&socket, Buffer::Send, 8 << 20);
    let mut packets = discovers(&options);
    let to_server = Route {
        to: options.server,
        ifindex: 0,
        source: Ipv4Addr::UNSPECIFIED,
    };
    let mut replies = ReceiveBatch::with_count(BATCH, 1500);

    let count = usize::try_from(options.count).unwrap_or(usize::MAX);
    let mut fates: Vec<Fate> = Vec::with_capacity(count.min(1 << 26));
    // (sequence, sent at) in sending order, for the timeout.
    let mut outstanding: VecDeque<(u32, Instant)> = VecDeque::new();
    let (mut answered, mut lost, mut late, mut in_flight) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(options.seconds);
    let mut last_answer = start;
    loop {
        let now = Instant::now();
        let sending = now < deadline && (fates.len() as u64) < options.count;
        if !sending && in_flight == 0 {
            break;
        }
        // Replies still in flight after sending stops get one timeout to arrive.
        if !sending && now > deadline + options.timeout {
            break;
        }
        while let Some(&(seq, sent_at)) = outstanding.front() {
            let fate = &mut fates[seq as usize];
            if *fate == Fate::Waiting {
                if now.duration_since(sent_at) < options.timeout {
                    break;
                }
                *fate = Fate::TimedOut;
                lost += 1;
                in_flight -= 1;
            }
            outstanding.pop_front();
        }

        let mut budget = if sending {
            let room = match options.rate {
                Some(rate) => {
                    let due = (now.duration_since(start).as_secs_f64() * rate) as u64;
                    due.saturating_sub(fates.len() as u64)
                }
                None => options.window.saturating_sub(in_flight),
            };
            room.min(options.count - fates.len() as u64)
                .min(BATCH as u64) as usize
        } else {
            0
        };
        let mut sent_now = 0;
        if budget > 0 {
            let first = fates.len();
            let mut chosen = Vec::with_capacity(budget);
            for i in 0..budget {
                let seq = (first + i) as u32;
                let index = (first + i) % packets.len();
                packets[index][field::XID].copy_from_slice(&seq.to_be_bytes());
                chosen.push(index);
            }
            let datagrams: Vec<(&[u8], Route)> = chosen
                .iter()
                .map(|&index| (&packets[index][..], to_server))
                .collect();
            match send_queued(socket.as_fd(), &datagrams) {
                Ok(sent) => sent_now = sent,
                Err(e) if full(&e) => {}
                Err(e) => panic!("sendmmsg: {e}"),
            }
            drop(datagrams);
            for _ in 0..sent_now {
                let seq = fates.len() as u32;
                fates.push(Fate::Waiting);
                outstanding.push_back((seq, now));
            }
            in_flight += sent_now as u64;
            budget -= sent_now;
        }

        let received = match receive_queued(socket.as_fd(), &mut replies) {
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => 0,
            Err(e) => panic!("recvmmsg: {e}"),
        };
        for (datagram, _) in replies.iter().take(received) {
            let Ok(reply) = Packet::new_checked(datagram) else {
                continue;
            };
            if reply.op() != Op::BootReply || reply.message_type() != Some(MessageType::Offer) {
                continue;
            }
            let seq = reply.xid();
            let Some(fate) = fates.get_mut(seq as usize) else {
                continue;
            };
            let index = seq as usize % packets.len();
            if reply.chaddr_field()[..6] != packets[index][field::CHADDR][..6] {
                continue;
            }
            match fate {
                Fate::Waiting => {
                    *fate = Fate::Answered;
                    answered += 1;
                    in_flight -= 1;
                    last_answer = Instant::now();
                }
                Fate::TimedOut => late += 1,
                Fate::Answered => {}
            }
        }

        // Nothing to do until a reply arrives, the window or the rate allows more, or the
        // oldest DISCOVER times out: wait in poll rather than spin (the server needs the CPU).
        if received == 0 && sent_now == 0 {
            let wait = if budget > 0 { 0 } else { 1 };
            let _ = wait_readable(&[socket.as_fd()], Duration::from_millis(wait));
        }
    }
    let seconds = last_answer.duration_since(start).as_secs_f64().max(1e-9);
    println!(
        "sent {} answered {answered} lost {lost} late {late} seconds {seconds:.3} offers/s {:.0}",
        fates.len(),
        answered as f64 / seconds
    );
}
