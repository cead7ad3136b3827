//! TFTP server comparison: the load generator behind `scripts/bench-tftp`.
//!
//! Scenarios (the performance goals), each run against every server, timing the
//! median of `TFTP_BENCH_RUNS` (default 5) runs with the crate's own client (the same client
//! for every server). Runs go round-robin over the servers (run 1 of each, then run 2…), so
//! that a shared machine's changing load falls on all of them alike:
//! - `window16`, `window64`: 64 MiB at blksize 1468, windowsize 16 / 64;
//! - `lockstep`: 64 MiB at blksize 1432 (iPXE's request), one ACK per block;
//! - these three download the way firmware does, on one thread that polls its socket and
//!   never sleeps, and also give the server's reply time (the mean from each ACK to the
//!   next DATA, `reply us`);
//! - `window16-sleeping`, `window64-sleeping`, `lockstep-sleeping`: the same with the crate's
//!   tokio client, which sleeps between datagrams as the TFTP tools do, so each round trip
//!   also pays for waking the client;
//! - `edk2`: EDK2's way to fetch a 1 MiB `snponly.efi` (`bench-1m`), 16 times a run: a size
//!   probe (`tsize=0 blksize=1468 windowsize=4`, the OACK answered with ERROR 8), then the
//!   file from a new port with `blksize=1468 windowsize=4`, by the polling client;
//! - `storm`: 1000 concurrent clients fetching a 74 KiB file (undionly.kpxe's size);
//! - `rss`: 200 concurrent lock-step downloads of one 16 MiB file, sampling the server's RSS.
//!
//! The client's CPU time over each bulk run's time (`client %`) tells who set the pace: the
//! polling client is always near 100; the sleeping client near 100 means the client was the
//! bottleneck, and a faster server could not have shown.
//!
//! Server CPU time comes from `/proc/PID/stat` (user + system, and reaped children; the mean
//! over the runs, since /proc counts in 10 ms ticks; tftpd-hpa
//! forks a child per transfer that it never reaps into its counters, so its CPU shows as
//! `-`), RSS from the sum of `VmRSS` over the server's process tree (tftpd-hpa's children
//! included), sampled every 20 ms.
//!
//! Environment: `TFTP_BENCH_SERVERS=name=ADDR:PORT@PID,…` (the servers to measure; their
//! roots hold `bench-64m`, `bench-1m`, `bench-74k`, `bench-16m`); `TFTP_BENCH_SCENARIOS` (comma list,
//! default all); `TFTP_BENCH_RUNS`. Without `TFTP_BENCH_SERVERS` it starts pxe-tftp in
//! process on loopback and reports throughput only (`cargo bench -p pxe-benches --bench
//! tftp_peers`); all traffic stays on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pxe_tftp::{DownloadOptions, MemoryFiles, Server, ServerConfig};

const MIB: usize = 1 << 20;

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 9] = [
    "window16",
    "window64",
    "lockstep",
    "window16-sleeping",
    "window64-sleeping",
    "lockstep-sleeping",
    "edk2",
    "storm",
    "rss",
];

/// Downloads per run of the `edk2` scenario: one 1 MiB fetch is over in milliseconds.
const EDK2_FETCHES: usize = 16;

#[derive(Debug, Clone)]
struct Target {
    name: String,
    addr: SocketAddr,
    pid: Option<u32>,
}

fn ticks_per_second() -> f64 {
    100.0 // USER_HZ on Linux
}

/// User + system CPU seconds of `pid` and its reaped children.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at ") ".
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the name.
    let ticks: u64 = fields.get(11..15).map(|f| f.iter().sum()).unwrap_or(0);
    ticks as f64 / ticks_per_second()
}

fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

fn tree_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The options every bench download asks for.
fn download_options(blksize: u16, windowsize: Option<u16>) -> DownloadOptions {
    DownloadOptions {
        blksize: Some(blksize),
        windowsize,
        timeout: Duration::from_millis(500),
        max_retries: 8,
        ..DownloadOptions::default()
    }
}

/// One download with the crate's tokio client, which sleeps in `epoll_wait` between
/// datagrams as the TFTP tools do.
async fn fetch(
    addr: SocketAddr,
    file: &str,
    blksize: u16,
    windowsize: Option<u16>,
) -> Result<usize, pxe_tftp::Error> {
    let options = download_options(blksize, windowsize);
    Ok(pxe_tftp::download(addr, file, options).await?.data.len())
}

/// What one bulk download measured besides its length.
struct Fetched {
    len: usize,
    /// Mean time from the client's ACK to the first DATA after it, when the client knows.
    reply: Option<Duration>,
}

/// One download driven the way firmware drives its NIC: a single thread that never sleeps,
/// polling the socket (iPXE's main loop and EDK2's MTFTP both poll). So every microsecond of
/// a round trip is either the network stack or the server, and the time from each ACK to
/// the next DATA, the server's reply time, is measured here too.
fn fetch_polling(
    addr: SocketAddr,
    file: &str,
    blksize: u16,
    windowsize: Option<u16>,
) -> Result<Fetched, pxe_tftp::Error> {
    let io = |source| pxe_tftp::Error::Io {
        action: "polling the client socket",
        source,
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    socket.set_nonblocking(true).map_err(io)?;
    let mut download = pxe_tftp::Download::new(addr, file, download_options(blksize, windowsize));
    let mut buf = vec![0u8; 65536];
    // When the last ACK left, until the first DATA after it arrives.
    let mut acked: Option<Instant> = None;
    let (mut replies, mut reply_total) = (0u32, Duration::ZERO);
    loop {
        let now = Instant::now();
        while let Some(transmit) = download.poll_transmit(now) {
            socket
                .send_to(&transmit.to_vec(), transmit.destination)
                .map_err(io)?;
            acked = Some(Instant::now());
        }
        if let Some(result) = download.take_result() {
            let reply = (replies > 0).then(|| reply_total / replies);
            return result.map(|d| Fetched {
                len: d.data.len(),
                reply,
            });
        }
        let deadline = download
            .poll_timeout()
            .expect("a running download has a deadline");
        loop {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    let received = Instant::now();
                    if let Some(sent) = acked.take() {
                        reply_total += received - sent;
                        replies += 1;
                    }
                    download.handle_datagram(received, from, &buf[..len]);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        download.handle_timeout(now);
                        break;
                    }
                    std::hint::spin_loop();
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
}

/// EDK2's size probe: a read request for `file` with `tsize=0 blksize=1468 windowsize=4`,
/// whose OACK it answers with ERROR 8 ("User aborted the transfer") once it has the size.
fn probe_size_like_edk2(addr: SocketAddr, file: &str) -> Result<(), pxe_tftp::Error> {
    use pxe_tftp::wire::{Packet, Request, TftpOption};
    let io = |source| pxe_tftp::Error::Io {
        action: "probing the size",
        source,
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    let options = [("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")]
        .map(|(name, value)| TftpOption { name, value });
    let request = Packet::Rrq(Request {
        filename: file,
        mode: "octet",
        options: options.to_vec(),
    });
    socket.send_to(&request.to_vec(), addr).map_err(io)?;
    let mut buf = [0u8; 2048];
    let (len, from) = socket.recv_from(&mut buf).map_err(io)?;
    if !matches!(Packet::parse(&buf[..len]), Ok(Packet::Oack { .. })) {
        return Err(pxe_tftp::Error::Protocol {
            reason: "no OACK to the size probe",
        });
    }
    let abort = Packet::Error {
        code: pxe_tftp::ErrorCode(8),
        message: "User aborted the transfer",
    };
    socket.send_to(&abort.to_vec(), from).map_err(io)?;
    Ok(())
}

/// EDK2's whole fetch: the size probe, then the file with blksize 1468 and windowsize 4.
fn fetch_like_edk2(addr: SocketAddr, file: &str) -> Result<Fetched, pxe_tftp::Error> {
    probe_size_like_edk2(addr, file)?;
    fetch_polling(addr, file, 1468, Some(4))
}

struct Row {
    scenario: &'static str,
    server: String,
    seconds: f64,
    mib_per_s: f64,
    cpu_ms_per_mib: Option<f64>,
    /// The client's CPU time over the run's time, in percent: near 100 for the sleeping
    /// client means the client, not the server, set the pace.
    client_busy_percent: Option<f64>,
    reply_us: Option<f64>,
    failures: usize,
    peak_rss_mib: Option<f64>,
}

/// One server's measurements in one scenario, gathered run by run.
#[derive(Default)]
struct Samples {
    times: Vec<f64>,
    cpu_ms_per_mib: Vec<f64>,
    client_busy_percent: Vec<f64>,
    reply_us: Vec<f64>,
    failures: usize,
    peak_rss_kib: u64,
}

impl Samples {
    /// One download's result: its reply time, or a failure (a wrong length or an error).
    fn record(
        &mut self,
        target: &Target,
        scenario: &str,
        fetched: Result<Fetched, pxe_tftp::Error>,
        expected_len: usize,
    ) {
        match fetched {
            Ok(Fetched { len, reply }) if len == expected_len => {
                self.reply_us.extend(reply.map(|r| r.as_secs_f64() * 1e6));
            }
            Ok(Fetched { len, .. }) => {
                eprintln!("{}: {scenario}: got {len} bytes", target.name);
                self.failures += 1;
            }
            Err(e) => {
                eprintln!("{}: {scenario}: {e}", target.name);
                self.failures += 1;
            }
        }
    }
}

/// Block size, window size and client of a bulk scenario; `-sleeping` names the tokio
/// client, the rest poll like firmware.
fn bulk_load(scenario: &str) -> (u16, Option<u16>, bool) {
    let polling = !scenario.ends_with("-sleeping");
    match scenario.trim_end_matches("-sleeping") {
        "window16" => (1468, Some(16), polling),
        "window64" => (1468, Some(64), polling),
        _ => (1432, None, polling),
    }
}

/// One 64 MiB download; its time, reply time and the server's CPU go into `samples`.
async fn bulk_run(target: &Target, scenario: &'static str, samples: &mut Samples) {
    let (blksize, windowsize, polling) = bulk_load(scenario);
    let cpu_before = target.pid.map(cpu_seconds);
    let client_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let addr = target.addr;
    let fetched = if polling {
        tokio::task::spawn_blocking(move || fetch_polling(addr, "bench-64m", blksize, windowsize))
            .await
            .expect("the polling client does not panic")
    } else {
        fetch(addr, "bench-64m", blksize, windowsize)
            .await
            .map(|len| Fetched { len, reply: None })
    };
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds(std::process::id()) - client_before;
    samples.record(target, scenario, fetched, 64 * MIB);
    samples.times.push(elapsed);
    samples
        .client_busy_percent
        .push(client_cpu * 100.0 / elapsed.max(1e-9));
    if let (Some(pid), Some(before)) = (target.pid, cpu_before) {
        samples
            .cpu_ms_per_mib
            .push((cpu_seconds(pid) - before) * 1000.0 / 64.0);
    }
}

/// [`EDK2_FETCHES`] fetches of `bench-1m` the way EDK2 fetches a boot file, one after the
/// other; their total time and the server's CPU go into `samples`.
async fn edk2_run(target: &Target, samples: &mut Samples) {
    let cpu_before = target.pid.map(cpu_seconds);
    let started = Instant::now();
    let addr = target.addr;
    let fetched = tokio::task::spawn_blocking(move || {
        (0..EDK2_FETCHES)
            .map(|_| fetch_like_edk2(addr, "bench-1m"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("the polling client does not panic");
    samples.times.push(started.elapsed().as_secs_f64());
    for result in fetched {
        samples.record(target, "edk2", result, MIB);
    }
    if let (Some(pid), Some(before)) = (target.pid, cpu_before) {
        let mib = EDK2_FETCHES as f64;
        samples
            .cpu_ms_per_mib
            .push((cpu_seconds(pid) - before) * 1000.0 / mib);
    }
}

/// Many clients at once; the total time and the server's peak RSS go into `samples`.
async fn concurrent_run(target: &Target, scenario: &'static str, samples: &mut Samples) {
    let (file, clients, size) = concurrent_load(scenario);
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = target.pid.map(|pid| {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(tree_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let addr = target.addr;
            tokio::spawn(async move { fetch(addr, file, 1468, None).await })
        })
        .collect();
    for handle in handles {
        match handle.await {
            Ok(Ok(len)) if len == size => {}
            Ok(Ok(len)) => {
                eprintln!("{}: {scenario}: got {len} bytes", target.name);
                samples.failures += 1;
            }
            Ok(Err(e)) => {
                if samples.failures < 3 {
                    eprintln!("{}: {scenario}: {e}", target.name);
                }
                samples.failures += 1;
            }
            Err(e) => panic!("client task: {e}"),
        }
    }
    samples.times.push(started.elapsed().as_secs_f64());
    done.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        sampler.join().unwrap();
    }
    samples.peak_rss_kib = samples.peak_rss_kib.max(peak.load(Ordering::Relaxed));
}

/// File, number of clients and file size of a concurrent scenario.
fn concurrent_load(scenario: &str) -> (&'static str, usize, usize) {
    match scenario {
        "storm" => ("bench-74k", 1000, 74 * 1024),
        _ => ("bench-16m", 200, 16 * MIB),
    }
}

/// Runs `scenario` against every target, one run of each in turn (so that the load of a
/// shared machine falls on every server alike), and gives each server's medians.
async fn measure(targets: &[Target], scenario: &'static str, runs: usize) -> Vec<Row> {
    let concurrent = matches!(scenario, "storm" | "rss");
    let runs = if scenario == "rss" { 1 } else { runs };
    let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for _ in 0..runs {
        for (target, samples) in targets.iter().zip(&mut samples) {
            if concurrent {
                concurrent_run(target, scenario, samples).await;
            } else if scenario == "edk2" {
                edk2_run(target, samples).await;
            } else {
                bulk_run(target, scenario, samples).await;
            }
        }
    }
    let mib = if concurrent {
        let (_, clients, size) = concurrent_load(scenario);
        (clients * size) as f64 / MIB as f64
    } else if scenario == "edk2" {
        EDK2_FETCHES as f64
    } else {
        64.0
    };
    targets
        .iter()
        .zip(samples)
        .map(|(target, samples)| {
            let seconds = median(samples.times);
            Row {
                scenario,
                server: target.name.clone(),
                seconds,
                mib_per_s: mib / seconds,
                cpu_ms_per_mib: (!samples.cpu_ms_per_mib.is_empty())
                    // The mean, not the median: /proc counts CPU in 10 ms ticks, about
                    // 8 ticks per windowed run, and a mean over runs keeps the fraction.
                    .then(|| mean(&samples.cpu_ms_per_mib)),
                client_busy_percent: (!samples.client_busy_percent.is_empty())
                    .then(|| mean(&samples.client_busy_percent)),
                reply_us: (!samples.reply_us.is_empty()).then(|| median(samples.reply_us)),
                failures: samples.failures,
                peak_rss_mib: (concurrent && target.pid.is_some())
                    .then(|| samples.peak_rss_kib as f64 / 1024.0),
            }
        })
        .collect()
}

fn parse_servers(spec: &str) -> Vec<Target> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (name, rest) = entry.split_once('=').expect("name=ADDR:PORT@PID");
            let (addr, pid) = match rest.split_once('@') {
                Some((addr, pid)) => (addr, Some(pid.parse().expect("pid"))),
                None => (rest, None),
            };
            Target {
                name: name.to_string(),
                addr: addr.parse().expect("ADDR:PORT"),
                pid,
            }
        })
        .collect()
}

async fn in_process_target() -> (Target, tokio::task::JoinHandle<()>) {
    let mut files = MemoryFiles::new();
    files.insert("bench-64m", vec![0xa5u8; 64 * MIB]);
    files.insert("bench-1m", vec![0x1eu8; MIB]);
    files.insert("bench-74k", vec![0x5au8; 74 * 1024]);
    files.insert("bench-16m", vec![0x3cu8; 16 * MIB]);
    let config = ServerConfig {
        max_transfers_per_client: 2000,
        ..ServerConfig::dedicated()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), files, config)
        .await
        .unwrap();
    let addr = server.local_addr();
    let task = tokio::spawn(async move {
        let _ = server.run().await;
    });
    (
        Target {
            name: "pxe-tftp (in process)".to_string(),
            addr,
            pid: None,
        },
        task,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let runs: usize = std::env::var("TFTP_BENCH_RUNS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5);
        let scenarios = std::env::var("TFTP_BENCH_SCENARIOS")
            .unwrap_or_else(|_| SCENARIOS.join(","));
        let (targets, _server) = match std::env::var("TFTP_BENCH_SERVERS") {
            Ok(spec) => (parse_servers(&spec), None),
            Err(_) => {
                let (target, task) = in_process_target().await;
                (vec![target], Some(task))
            }
        };
        let mut rows = Vec::new();
        for scenario in SCENARIOS {
            if !scenarios.split(',').any(|s| s == scenario) {
                continue;
            }
            for row in measure(&targets, scenario, runs).await {
                report(&row, &[]);
                rows.push(row);
            }
        }
        println!(
            "\nsummary (median of {runs} runs; ratio = fastest peer's time / pxe-tftp's time, over peers without failures):"
        );
        println!(
            "{:<18} {:<18} {:>8} {:>9} {:>12} {:>9} {:>9} {:>6} {:>9} {:>7}",
            "scenario",
            "server",
            "time s",
            "MiB/s",
            "cpu ms/MiB",
            "client %",
            "reply us",
            "fails",
            "rss MiB",
            "ratio"
        );
        for row in &rows {
            let peers: Vec<&Row> = rows
                .iter()
                // A peer that failed transfers (atftpd above FD_SETSIZE clients) sets no bar.
                .filter(|r| {
                    r.scenario == row.scenario
                        && !r.server.starts_with("pxe-tftp")
                        && r.failures == 0
                })
                .collect();
            report(row, &peers);
        }
    });
}

fn report(row: &Row, peers: &[&Row]) {
    let fastest_peer = peers
        .iter()
        .map(|r| r.seconds)
        .fold(f64::INFINITY, f64::min);
    let ratio = if row.server.starts_with("pxe-tftp") && fastest_peer.is_finite() {
        format!("{:.2}x", fastest_peer / row.seconds)
    } else {
        "-".to_string()
    };
    // 0 CPU means unmeasurable here: tftpd-hpa's per-transfer children are never reaped into
    // its counters.
    let opt = |v: Option<f64>| {
        v.filter(|v| *v > 0.0)
            .map_or("-".to_string(), |v| format!("{v:.2}"))
    };
    println!(
        "{:<18} {:<18} {:>8.3} {:>9.1} {:>12} {:>9} {:>9} {:>6} {:>9} {:>7}",
        row.scenario,
        row.server,
        row.seconds,
        row.mib_per_s,
        opt(row.cpu_ms_per_mib),
        row.client_busy_percent
            .map_or("-".to_string(), |v| format!("{v:.0}")),
        opt(row.reply_us),
        row.failures,
        opt(row.peak_rss_mib),
        ratio
    );
}
