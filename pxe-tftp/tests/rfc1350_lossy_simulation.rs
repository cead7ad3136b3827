//! Deterministic simulation: the crate's client ([`Download`]) and server ([`Transfer`])
//! state machines exchange datagrams over a simulated network with seeded loss, duplication
//! and reordering, on a fake clock. Every transfer must complete byte-identical, or end in
//! the error the situation calls for (a timeout when the link dies, ERROR 1 for a missing
//! file, ERROR 8 for a refused option).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pxe_tftp::options::negotiate;
use pxe_tftp::wire::{Mode, Packet};
use pxe_tftp::{
    Download, DownloadOptions, Error, ErrorCode, Event, Outcome, Rollover, Transfer, TransferConfig,
};

/// SplitMix64: a tiny seeded generator, so the simulation needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    loss: f64,
    duplicate: f64,
    /// Up to this much extra delay per datagram: datagrams overtake each other.
    jitter_us: u64,
    /// After this much simulated time every datagram is lost (the peer disappears).
    dies_after: Option<Duration>,
}

const CLEAN: Link = Link {
    loss: 0.0,
    duplicate: 0.0,
    jitter_us: 0,
    dies_after: None,
};

#[derive(Debug)]
struct Report {
    client: Result<Vec<u8>, Error>,
    server: Option<Outcome>,
    /// Datagrams the server sent.
    server_sent: u64,
}

const CLIENT: &str = "192.0.2.10:40000";
const SERVER: &str = "192.0.2.1:69";
const SERVER_TID: &str = "192.0.2.1:50001";

fn simulate(
    seed: u64,
    link: Link,
    content: &[u8],
    config: &TransferConfig,
    options: DownloadOptions,
    filename: &str,
) -> Report {
    let client_addr: SocketAddr = CLIENT.parse().unwrap();
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let tid: SocketAddr = SERVER_TID.parse().unwrap();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut now = start;
    let mut client = Download::new(server_addr, filename, options.clone());
    let mut server: Option<Transfer> = None;
    let mut server_outcome = None;
    let mut server_sent = 0u64;
    // In flight: (delivery time, sequence) → (from, to, bytes).
    let mut in_flight: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Vec<u8>)> =
        BTreeMap::new();
    let mut seq = 0u64;
    let mut send = |now: Instant,
                    from: SocketAddr,
                    to: SocketAddr,
                    bytes: Vec<u8>,
                    rng: &mut Rng,
                    in_flight: &mut BTreeMap<_, _>| {
        let dead = link.dies_after.is_some_and(|d| now - start >= d);
        let copies = if rng.chance(link.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            if dead || rng.chance(link.loss) {
                continue;
            }
            let delay = Duration::from_micros(100 + rng.below(link.jitter_us + 1));
            seq += 1;
            in_flight.insert((now + delay, seq), (from, to, bytes.clone()));
        }
    };
    for _step in 0..5_000_000u64 {
        while let Some(t) = client.poll_transmit(now) {
            send(
                now,
                client_addr,
                t.destination,
                t.to_vec(),
                &mut rng,
                &mut in_flight,
            );
        }
        if let Some(transfer) = server.as_mut() {
            while let Some(t) = transfer.poll_transmit(now) {
                server_sent += 1;
                send(
                    now,
                    tid,
                    t.destination,
                    t.to_vec(),
                    &mut rng,
                    &mut in_flight,
                );
            }
            while let Some(Event::Finished(outcome)) = transfer.poll_event() {
                server_outcome = Some(outcome);
            }
        }
        let server_done = server.as_ref().is_none_or(Transfer::is_finished);
        if client.is_finished() && server_done {
            break;
        }
        let timers = [
            client.poll_timeout(),
            server.as_ref().and_then(Transfer::poll_timeout),
            in_flight.keys().next().map(|&(at, _)| at),
        ];
        let Some(next) = timers.into_iter().flatten().min() else {
            break;
        };
        now = now.max(next);
        if let Some(entry) = in_flight.first_entry() {
            if entry.key().0 <= now {
                let (from, to, bytes) = entry.remove();
                if to == client_addr {
                    client.handle_datagram(now, from, &bytes);
                } else if to == server_addr {
                    // The listener: a request starts the transfer once; repeats are dropped
                    // (a real server would start a second transfer on a new port).
                    if server.is_none() {
                        match accept(&bytes, content, config, from) {
                            Ok(transfer) => server = Some(transfer),
                            Err(error) => {
                                let reply = Packet::Error {
                                    code: error.code(),
                                    message: error.wire_message(),
                                };
                                send(now, tid, from, reply.to_vec(), &mut rng, &mut in_flight);
                            }
                        }
                    }
                } else if let Some(transfer) = server.as_mut() {
                    transfer.handle_datagram(now, from, &bytes);
                }
                continue;
            }
        }
        client.handle_timeout(now);
        if let Some(transfer) = server.as_mut() {
            transfer.handle_timeout(now);
        }
    }
    let client = client
        .take_result()
        .expect("the client reaches a result")
        .map(|downloaded| downloaded.data);
    Report {
        client,
        server: server_outcome,
        server_sent,
    }
}

/// What the server's listener does with a request (as `Server` does, minus the socket).
fn accept(
    bytes: &[u8],
    content: &[u8],
    config: &TransferConfig,
    from: SocketAddr,
) -> Result<Transfer, Error> {
    let Packet::Rrq(request) = Packet::parse(bytes)? else {
        return Err(Error::Protocol {
            reason: "not a read request",
        });
    };
    if request.filename != "file" {
        return Err(Error::NotFound {
            path: request.filename.to_string(),
        });
    }
    let negotiated = negotiate(&request.options, config)?;
    // Netascii is converted block by block by the transfer itself, as the server does.
    Ok(Transfer::with_mode(
        from,
        Bytes::copy_from_slice(content),
        request.transfer_mode().unwrap_or(Mode::Octet),
        &request.options,
        &negotiated,
        config,
    ))
}

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ 0xC0FFEE);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn windowed(blksize: u16, windowsize: u16) -> DownloadOptions {
    DownloadOptions {
        blksize: Some(blksize),
        windowsize: Some(windowsize),
        tsize: true,
        max_retries: 12,
        ..DownloadOptions::default()
    }
}

fn patient_server() -> TransferConfig {
    TransferConfig {
        max_retries: 12,
        ..TransferConfig::default()
    }
}

fn assert_completed(report: &Report, expected: &[u8], what: &str) {
    match &report.client {
        Ok(data) => assert!(
            data == expected,
            "{what}: content differs ({} vs {} bytes)",
            data.len(),
            expected.len()
        ),
        Err(error) => panic!("{what}: client failed: {error}"),
    }
    match &report.server {
        Some(Outcome::Completed { bytes, .. }) => assert!(*bytes >= expected.len() as u64),
        // Every final ACK (and every re-ACK while the client dallied) was lost: the server
        // gives up, although the client has everything.
        Some(Outcome::Failed(Error::TimedOut { .. })) => {}
        other => panic!("{what}: server ended with {other:?}"),
    }
}

#[test]
fn clean_link_every_size_and_window() {
    for len in [0, 1, 511, 512, 513, 1468, 1469, 10_000, 100_000] {
        for (blksize, windowsize) in [(512, 1), (1468, 1), (1468, 4), (1432, 16), (8, 3)] {
            let data = content(len, len as u64);
            let report = simulate(
                1,
                CLEAN,
                &data,
                &TransferConfig::default(),
                windowed(blksize, windowsize),
                "file",
            );
            let what = format!("len {len} blksize {blksize} window {windowsize}");
            assert_completed(&report, &data, &what);
            assert!(
                matches!(
                    report.server,
                    Some(Outcome::Completed {
                        retransmitted: 0,
                        ..
                    })
                ),
                "{what}"
            );
            let blocks = len as u64 / u64::from(blksize) + 1;
            assert_eq!(
                report.server_sent,
                blocks + 1,
                "{what}: one OACK and each block once"
            );
        }
    }
}

#[test]
fn loss_duplication_and_reordering_over_many_seeds() {
    let link = Link {
        loss: 0.1,
        duplicate: 0.05,
        jitter_us: 3_000,
        dies_after: None,
    };
    for seed in 0..60u64 {
        let len = [0, 511, 512, 513, 20_000, 150_000][seed as usize % 6];
        let data = content(len, seed);
        let options = match seed % 4 {
            0 => DownloadOptions {
                max_retries: 12,
                ..DownloadOptions::default()
            },
            1 => windowed(1468, 4),
            2 => windowed(512, 16),
            _ => windowed(1000, 64),
        };
        let what = format!("seed {seed} len {len} {options:?}");
        let report = simulate(seed, link, &data, &patient_server(), options, "file");
        assert_completed(&report, &data, &what);
    }
}

#[test]
fn heavy_loss_still_completes_or_times_out_cleanly() {
    let link = Link {
        loss: 0.3,
        duplicate: 0.1,
        jitter_us: 10_000,
        dies_after: None,
    };
    let mut completed = 0;
    for seed in 0..20u64 {
        let data = content(30_000, seed);
        let report = simulate(
            seed,
            link,
            &data,
            &patient_server(),
            windowed(1468, 8),
            "file",
        );
        match &report.client {
            Ok(got) => {
                assert!(*got == data, "seed {seed}: content differs");
                completed += 1;
            }
            Err(Error::TimedOut { .. }) => {}
            Err(other) => panic!("seed {seed}: wrong error {other}"),
        }
    }
    eprintln!("30% loss: {completed}/20 completed");
    assert!(
        completed >= 15,
        "only {completed}/20 completed through 30% loss"
    );
}

#[test]
fn block_numbers_roll_over_past_65535() {
    // blksize 8 makes 65 536 blocks out of half a megabyte.
    let data = content(8 * 65_536 + 100, 7);
    for rollover in [Rollover::ToZero, Rollover::ToOne] {
        let config = TransferConfig {
            rollover,
            ..patient_server()
        };
        let options = DownloadOptions {
            rollover,
            ..windowed(8, 16)
        };
        let link = Link {
            loss: 0.02,
            duplicate: 0.02,
            jitter_us: 500,
            dies_after: None,
        };
        let report = simulate(3, link, &data, &config, options, "file");
        assert_completed(&report, &data, &format!("{rollover:?}"));
    }
}

#[test]
fn a_vanishing_client_times_out_on_both_sides() {
    let link = Link {
        dies_after: Some(Duration::from_millis(5)),
        ..CLEAN
    };
    let data = content(2_000_000, 1);
    let report = simulate(
        5,
        link,
        &data,
        &TransferConfig::default(),
        windowed(512, 1),
        "file",
    );
    assert!(
        matches!(report.client, Err(Error::TimedOut { .. })),
        "{:?}",
        report.client
    );
    assert!(matches!(
        report.server,
        Some(Outcome::Failed(Error::TimedOut { retries: 5 }))
    ));
}

#[test]
fn missing_file_and_refused_option_fail_with_their_codes() {
    let data = content(100, 1);
    let report = simulate(
        1,
        CLEAN,
        &data,
        &TransferConfig::default(),
        windowed(512, 1),
        "nope",
    );
    assert!(matches!(
        report.client,
        Err(Error::Peer {
            code: ErrorCode::FILE_NOT_FOUND,
            ..
        })
    ));
    let report = simulate(
        1,
        CLEAN,
        &data,
        &TransferConfig::default(),
        windowed(7, 1),
        "file",
    );
    assert!(matches!(
        report.client,
        Err(Error::Peer {
            code: ErrorCode::OPTION_NEGOTIATION,
            ..
        })
    ));
}

#[test]
fn netascii_round_trips_through_loss() {
    let text = b"line one\nline two\r\nbare cr\r end\n".repeat(200);
    let link = Link {
        loss: 0.1,
        duplicate: 0.05,
        jitter_us: 2_000,
        dies_after: None,
    };
    for seed in 0..5 {
        let options = DownloadOptions {
            mode: Mode::Netascii,
            ..windowed(512, 4)
        };
        let report = simulate(seed, link, &text, &patient_server(), options, "file");
        assert_completed(&report, &text, "netascii");
    }
}
