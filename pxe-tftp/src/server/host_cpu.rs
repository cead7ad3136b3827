//! What a transfer on a thread of its own may do to its host's CPUs, only when the embedder
//! asks ([`ServerConfig::lock_step_poll`], [`ServerConfig::windowed_poll`],
//! [`ServerConfig::follow_peer_cpu`]; `netboot` does): poll for the next ACK before sleeping
//! ([`PollFirst`]), and run on the CPU the peer's ACKs arrive on ([`FollowCpu`]).

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pxe_udp::receive_now;
use tokio::sync::Semaphore;

#[cfg(doc)]
use super::ServerConfig;

/// Runs a transfer's thread on the CPU that its peer's datagrams arrive on, while no other
/// transfer runs there.
///
/// The kernel delivers each ACK on one CPU (a NIC queue's interrupt, or the sender's CPU on
/// loopback) and then wakes the transfer's thread. Asleep on another CPU, the thread costs
/// that CPU a wake-up too: an interprocessor interrupt and, on a virtual machine whose CPU
/// went idle, tens of microseconds before it runs. On the CPU that took the ACK, the wake-up
/// is a local one, and the ACK's data is still in that CPU's cache. One transfer per CPU, so
/// a NIC with a single queue never gets every transfer piled on its CPU; the thread gets its
/// old affinity back when the transfer ends.
pub(super) struct FollowCpu<'c> {
    claims: &'c Mutex<HashSet<usize>>,
    /// The thread's affinity before the transfer; `None` if unknown, and then it never pins.
    allowed: Option<nix::sched::CpuSet>,
    pinned: Option<usize>,
}

impl<'c> FollowCpu<'c> {
    pub(super) fn new(claims: &'c Mutex<HashSet<usize>>) -> Self {
        let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok();
        Self {
            claims,
            allowed,
            pinned: None,
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashSet<usize>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the thread to the CPU that the last datagram on `socket` (connected to the
    /// peer) arrived on, if no other transfer runs there; else lets it run anywhere again.
    pub(super) fn follow(&mut self, socket: &std::net::UdpSocket) {
        let Some(allowed) = self.allowed else {
            return;
        };
        // -1 (as usize, out of range) until the socket has received a datagram.
        let Ok(cpu) = socket2::SockRef::from(socket).cpu_affinity() else {
            return;
        };
        if self.pinned == Some(cpu) || !allowed.is_set(cpu).unwrap_or(false) {
            return;
        }
        self.unpin();
        if !self.claims().insert(cpu) {
            return;
        }
        let mut only = nix::sched::CpuSet::new();
        if only.set(cpu).is_ok() && set_thread_affinity(&only).is_ok() {
            self.pinned = Some(cpu);
        } else {
            self.claims().remove(&cpu);
        }
    }

    /// Whether the thread runs on the CPU the peer's last datagram arrived on (and there
    /// alone), so that the next one wakes it without a cross-CPU interrupt.
    pub(super) fn is_on_arrival_cpu(&self) -> bool {
        self.pinned.is_some()
    }

    /// Gives the thread its old affinity back and the CPU to other transfers.
    fn unpin(&mut self) {
        let (Some(allowed), Some(cpu)) = (self.allowed, self.pinned.take()) else {
            return;
        };
        if let Err(error) = set_thread_affinity(&allowed) {
            tracing::debug!(%error, "cannot restore a transfer thread's CPU affinity");
        }
        self.claims().remove(&cpu);
    }
}

impl Drop for FollowCpu<'_> {
    fn drop(&mut self) {
        self.unpin();
    }
}

/// Sets the calling thread's CPU affinity.
fn set_thread_affinity(cpus: &nix::sched::CpuSet) -> nix::Result<()> {
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), cpus)
}

/// The CPUs the server may run on, when it starts.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How many transfers may poll at once: one per two CPUs (none on a single CPU, where a
/// polling thread would only keep its peer from running), so polling never takes the CPUs
/// the event loop and the other transfers need.
pub(super) fn pollers() -> Semaphore {
    Semaphore::new(cpus() / 2)
}

/// The transfers in progress (every one holding a slot, on a thread or on the event loop),
/// against the server's CPUs: polling pays only while a CPU would otherwise idle, so none
/// polls while there are more transfers than CPUs. In a boot storm, a transfer that polled
/// would take the CPU from the hundreds waiting on the event loop.
#[derive(Debug)]
pub(super) struct Load {
    transfers: AtomicUsize,
    cpus: usize,
}

impl Load {
    pub(super) fn new() -> Self {
        Self {
            transfers: AtomicUsize::new(0),
            cpus: cpus(),
        }
    }

    pub(super) fn transfer_started(&self) {
        self.transfers.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn transfer_ended(&self) {
        self.transfers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether there are more transfers in progress than CPUs.
    pub(super) fn is_crowded(&self) -> bool {
        self.transfers.load(Ordering::Relaxed) > self.cpus
    }
}

/// Polls a transfer's socket for a short while before its thread sleeps in `poll`
/// ([`ServerConfig::lock_step_poll`], [`ServerConfig::windowed_poll`]).
///
/// A sleeping thread is woken by the next datagram through an interrupt and the scheduler;
/// on a virtual CPU that went idle this costs tens of microseconds per block, more than
/// the whole round trip to a near peer (a VM on the same host, firmware on a fast LAN),
/// which then gets its next block that much sooner. It adapts: after
/// [`Self::MISSES`] polls in a row that the peer did not answer in time, the transfer
/// sleeps straight away for its next [`Self::BACKOFF`] blocks, then tries one poll; each
/// further miss doubles the back-off (up to [`Self::MAX_BACKOFF`]) and a hit resets it. So
/// a slow peer, or a machine too busy for polling to pay, costs almost no CPU; and no more
/// than [`pollers`] transfers poll at once.
pub(super) struct PollFirst<'p> {
    budget: Duration,
    pollers: &'p Semaphore,
    misses: u32,
    sleep_straight: u32,
    backoff: u32,
}

impl<'p> PollFirst<'p> {
    /// Polls in a row that miss before the transfer stops polling for a while.
    const MISSES: u32 = 3;
    /// How many waits sleep straight away after the first run of misses.
    const BACKOFF: u32 = 64;
    /// The longest back-off.
    const MAX_BACKOFF: u32 = 4096;

    pub(super) fn new(budget: Duration, pollers: &'p Semaphore) -> Self {
        Self {
            budget,
            pollers,
            misses: 0,
            sleep_straight: 0,
            backoff: Self::BACKOFF,
        }
    }

    fn hit(&mut self) {
        self.misses = 0;
        self.backoff = Self::BACKOFF;
    }

    fn miss(&mut self) {
        self.misses += 1;
        if self.misses >= Self::MISSES {
            // After a back-off, one more miss is enough to back off again, for longer.
            self.misses = Self::MISSES - 1;
            self.sleep_straight = self.backoff;
            self.backoff = (self.backoff * 2).min(Self::MAX_BACKOFF);
        }
    }

    /// The datagram (or error) that arrived while polling; `None` when the caller should
    /// sleep (see `TransferSockets::wait`).
    pub(super) fn receive(
        &mut self,
        socket: &std::net::UdpSocket,
        buf: &mut [u8],
    ) -> Option<io::Result<(usize, SocketAddr)>> {
        if self.budget.is_zero() {
            return None;
        }
        if self.sleep_straight > 0 {
            self.sleep_straight -= 1;
            return None;
        }
        let _turn = self.pollers.try_acquire().ok()?;
        let started = Instant::now();
        loop {
            match receive_now(socket, buf) {
                Ok(Some(received)) => {
                    self.hit();
                    return Some(Ok(received));
                }
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
            if started.elapsed() >= self.budget {
                self.miss();
                return None;
            }
            // Not `yield_now`: a peer polling on the same CPU (firmware in a VM pinned
            // beside this server) would then keep the CPU until its time slice ends.
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::server::own_thread::tests::socket_pair;
    use crate::server::own_thread::TransferSockets;

    fn one_poller() -> Semaphore {
        Semaphore::new(1)
    }

    #[test]
    fn polling_returns_a_datagram_already_waiting_with_its_source() {
        let (server, peer) = socket_pair();
        let pollers = one_poller();
        let mut poll = PollFirst::new(Duration::from_millis(200), &pollers);
        peer.send_to(b"\x00\x04\x00\x01", server.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 64];
        let (len, from) = poll.receive(&server, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..len], b"\x00\x04\x00\x01");
        assert_eq!(from, peer.local_addr().unwrap());
        assert_eq!(pollers.available_permits(), 1, "the turn is given back");
    }

    #[test]
    fn misses_back_off_doubling_and_a_hit_resets_the_back_off() {
        let (server, peer) = socket_pair();
        let pollers = one_poller();
        let mut poll = PollFirst::new(Duration::from_micros(20), &pollers);
        let mut buf = [0u8; 64];
        let mut backoffs = Vec::new();
        for _ in 0..PollFirst::MISSES {
            assert!(poll.receive(&server, &mut buf).is_none());
        }
        backoffs.push(poll.sleep_straight);
        // Backing off: the next waits go straight to sleep, whatever is waiting.
        peer.send_to(b"ack", server.local_addr().unwrap()).unwrap();
        for left in (0..PollFirst::BACKOFF).rev() {
            assert!(poll.receive(&server, &mut buf).is_none());
            assert_eq!(poll.sleep_straight, left);
        }
        assert!(
            poll.receive(&server, &mut buf).is_some(),
            "one probe, a hit"
        );
        assert_eq!(
            poll.backoff,
            PollFirst::BACKOFF,
            "a hit resets the back-off"
        );
        for _ in 0..PollFirst::MISSES {
            assert!(poll.receive(&server, &mut buf).is_none());
        }
        for _ in 0..8 {
            while poll.sleep_straight > 0 {
                assert!(poll.receive(&server, &mut buf).is_none());
            }
            assert!(
                poll.receive(&server, &mut buf).is_none(),
                "one probe, missed"
            );
            backoffs.push(poll.sleep_straight);
        }
        assert_eq!(
            backoffs,
            [64, 128, 256, 512, 1024, 2048, 4096, 4096, 4096],
            "doubling up to the cap"
        );
        while poll.sleep_straight > 0 {
            assert!(poll.receive(&server, &mut buf).is_none());
        }
        peer.send_to(b"ack", server.local_addr().unwrap()).unwrap();
        assert!(poll.receive(&server, &mut buf).is_some());
        assert_eq!((poll.misses, poll.backoff), (0, PollFirst::BACKOFF));
    }

    #[test]
    fn no_more_transfers_poll_than_the_bound_and_none_without_a_budget() {
        let (server, peer) = socket_pair();
        let pollers = one_poller();
        let busy = pollers.try_acquire().expect("a first turn");
        let mut poll = PollFirst::new(Duration::from_millis(200), &pollers);
        peer.send_to(b"ack", server.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        assert!(poll.receive(&server, &mut buf).is_none(), "no turn left");
        drop(busy);
        let mut off = PollFirst::new(Duration::ZERO, &pollers);
        assert!(off.receive(&server, &mut buf).is_none(), "zero budget");
        assert!(poll.receive(&server, &mut buf).is_some());
    }

    #[test]
    fn a_transfer_runs_on_its_peers_cpu_alone_and_gets_its_affinity_back() {
        // On a thread of its own: the test pins the thread it runs on.
        std::thread::spawn(|| {
            let this_thread = || nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0));
            let before = this_thread().unwrap();
            let (server, client) = socket_pair();
            let sockets = TransferSockets::new(server, client.local_addr().unwrap()).unwrap();
            client
                .send_to(b"ack", sockets.peer.local_addr().unwrap())
                .unwrap();
            let mut buf = [0u8; 64];
            sockets
                .wait(&mut buf, Duration::from_secs(2))
                .unwrap()
                .unwrap();
            let cpu = socket2::SockRef::from(&sockets.peer)
                .cpu_affinity()
                .unwrap();

            let claims = Mutex::default();
            let mut follow = FollowCpu::new(&claims);
            follow.follow(&sockets.peer);
            assert_eq!(follow.pinned, Some(cpu));
            let now = this_thread().unwrap();
            assert!(now.is_set(cpu).unwrap(), "pinned to the arrival CPU {cpu}");
            let allowed_now = (0..nix::sched::CpuSet::count())
                .filter(|&c| now.is_set(c).unwrap())
                .count();
            assert_eq!(allowed_now, 1, "and only to it");

            // A second transfer whose datagrams arrive there too stays where it was.
            let mut second = FollowCpu::new(&claims);
            second.follow(&sockets.peer);
            assert_eq!(second.pinned, None, "one transfer per CPU");

            drop(follow);
            assert_eq!(this_thread().unwrap(), before, "the old affinity is back");
            assert!(claims.lock().unwrap().is_empty(), "the CPU is free again");
        })
        .join()
        .unwrap();
    }
}
