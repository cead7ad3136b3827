//! TFTP server comparison: the load generator behind `scripts/bench-tftp`.
//!
//! Scenarios (the performance goals), each run against every server, timing the
//! median of `TFTP_BENCH_RUNS` (default 5) runs with the crate's own client (the same client
//! for every server). Runs go round-robin over the servers (run 1 of each, then run 2…), so
//! that a shared machine's changing load falls on all of them alike:
//! - `window16`, `window64`: 64 MiB at blksize 1468, windowsize 16 / 64;
//! - `lockstep`: 64 MiB at blksize 1432 (iPXE's request), one ACK per block;
//! - `storm`: 1000 concurrent clients fetching a 74 KiB file (undionly.kpxe's size);
//! - `rss`: 200 concurrent lock-step downloads of one 16 MiB file, sampling the server's RSS.
//!
//! Server CPU time comes from `/proc/PID/stat` (user + system, and reaped children; tftpd-hpa
//! forks a child per transfer that it never reaps into its counters, so its CPU shows as
//! `-`), RSS from the sum of `VmRSS` over the server's process tree (tftpd-hpa's children
//! included), sampled every 20 ms.
//!
//! Environment: `TFTP_BENCH_SERVERS=name=ADDR:PORT@PID,…` (the servers to measure; their
//! roots hold `bench-64m`, `bench-74k`, `bench-16m`); `TFTP_BENCH_SCENARIOS` (comma list,
//! default all); `TFTP_BENCH_RUNS`. Without `TFTP_BENCH_SERVERS` it starts pxe-tftp in
//! process on loopback and reports throughput only (`cargo bench -p pxe-benches --bench
//! tftp_peers`); all traffic stays on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pxe_tftp::{DownloadOptions, MemoryFiles, Server, ServerConfig};

const MIB: usize = 1 << 20;

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

async fn fetch(
    addr: SocketAddr,
    file: &str,
    blksize: u16,
    windowsize: Option<u16>,
) -> Result<usize, pxe_tftp::Error> {
    let options = DownloadOptions {
        blksize: Some(blksize),
        windowsize,
        timeout: Duration::from_millis(500),
        max_retries: 8,
        ..DownloadOptions::default()
    };
    Ok(pxe_tftp::download(addr, file, options).await?.data.len())
}

struct Row {
    scenario: &'static str,
    server: String,
    seconds: f64,
    mib_per_s: f64,
    cpu_ms_per_mib: Option<f64>,
    failures: usize,
    peak_rss_mib: Option<f64>,
}

/// One server's measurements in one scenario, gathered run by run.
#[derive(Default)]
struct Samples {
    times: Vec<f64>,
    cpu_ms_per_mib: Vec<f64>,
    failures: usize,
    peak_rss_kib: u64,
}

/// One 64 MiB download; its time and the server's CPU go into `samples`.
async fn bulk_run(target: &Target, scenario: &'static str, samples: &mut Samples) {
    let (blksize, windowsize) = match scenario {
        "window16" => (1468, Some(16)),
        "window64" => (1468, Some(64)),
        _ => (1432, None),
    };
    let cpu_before = target.pid.map(cpu_seconds);
    let started = Instant::now();
    match fetch(target.addr, "bench-64m", blksize, windowsize).await {
        Ok(len) if len == 64 * MIB => {}
        Ok(len) => {
            eprintln!("{}: {scenario}: got {len} bytes", target.name);
            samples.failures += 1;
        }
        Err(e) => {
            eprintln!("{}: {scenario}: {e}", target.name);
            samples.failures += 1;
        }
    }
    samples.times.push(started.elapsed().as_secs_f64());
    if let (Some(pid), Some(before)) = (target.pid, cpu_before) {
        samples
            .cpu_ms_per_mib
            .push((cpu_seconds(pid) - before) * 1000.0 / 64.0);
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
            } else {
                bulk_run(target, scenario, samples).await;
            }
        }
    }
    let mib = if concurrent {
        let (_, clients, size) = concurrent_load(scenario);
        (clients * size) as f64 / MIB as f64
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
                    .then(|| median(samples.cpu_ms_per_mib)),
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
    files.insert("bench-74k", vec![0x5au8; 74 * 1024]);
    files.insert("bench-16m", vec![0x3cu8; 16 * MIB]);
    let config = ServerConfig {
        max_transfers_per_client: 2000,
        ..ServerConfig::default()
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
            .unwrap_or_else(|_| "window16,window64,lockstep,storm,rss".into());
        let (targets, _server) = match std::env::var("TFTP_BENCH_SERVERS") {
            Ok(spec) => (parse_servers(&spec), None),
            Err(_) => {
                let (target, task) = in_process_target().await;
                (vec![target], Some(task))
            }
        };
        let mut rows = Vec::new();
        for scenario in ["window16", "window64", "lockstep", "storm", "rss"] {
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
            "{:<9} {:<24} {:>8} {:>9} {:>12} {:>8} {:>9} {:>7}",
            "scenario", "server", "time s", "MiB/s", "cpu ms/MiB", "fails", "rss MiB", "ratio"
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
        "{:<9} {:<24} {:>8.3} {:>9.1} {:>12} {:>8} {:>9} {:>7}",
        row.scenario,
        row.server,
        row.seconds,
        row.mib_per_s,
        opt(row.cpu_ms_per_mib),
        row.failures,
        opt(row.peak_rss_mib),
        ratio
    );
}
