//! IPv6 Router Advertisements that end iPXE's IPv6 autoconfiguration wait (`--ipv6-ra`).
//!
//! iPXE (Debian's 2019 build, in QEMU's ROMs and in `undionly.kpxe`/`snponly.efi`) configures
//! IPv6 alongside DHCPv4 on every `dhcp` command and waits for a Router Advertisement, sending
//! Router Solicitations for ~13 s before it gives up. On a segment without an IPv6 router that
//! wait is pure loss, paid once per iPXE instance (twice when a ROM chainloads `undionly.kpxe`).
//! An RA with router lifetime 0, no managed/other flags and no prefixes tells iPXE that there
//! is nothing to configure, so its IPv6 configurator finishes at once; since the lifetime is 0
//! no host takes this server as a default router, and without prefixes nobody forms addresses.
//!
//! Why it is opt-in: a server that announces itself on a site network (even "I am not a
//! router") must be asked to. On a segment that has a real IPv6 router this is unnecessary,
//! and some networks run RA Guard that flags any other announcer.
//!
//! The [`RouterAnnouncer`] sends that RA to all nodes (`ff02::1`) on one interface every
//! [`ANNOUNCE_INTERVAL`], and answers each Router Solicitation at once: by multicast when the
//! last multicast RA is at least 3 s old (RFC 4861's MIN_DELAY_BETWEEN_RAS), else by unicast
//! to the soliciting host (§6.2.6 allows it), else (a solicitation from the unspecified
//! address) with the next multicast RA, brought forward as far as the rate limit allows.
//! Multicast first because it is faster: a unicast answer waits for neighbour discovery, and
//! iPXE answers the first neighbour solicitation ~1 s late (seen in the lab's captures).
//! Answers skip §6.2.6's random 0–0.5 s delay, which keeps several routers from answering in
//! step: this announcer is no router, and the delay would only add to every boot. Source address: the interface's link-local address, which the
//! kernel picks because the socket is bound to that interface; the kernel also computes the
//! ICMPv6 checksum, as it must on Linux raw ICMPv6 sockets (RFC 3542 §3.1).

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use crate::ndp::{parse_router_solicitation, router_advertisement, NotSolicitation};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::time::Instant;

/// How often an unsolicited RA goes out, for a client whose solicitations were all lost. Not
/// shorter: within [`MIN_DELAY_BETWEEN_RAS`] after each one, answers have to go by unicast,
/// which is slower.
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(10);
/// RFC 4861 MIN_DELAY_BETWEEN_RAS: the least time between two multicast RAs.
const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// Unicast answers allowed per [`ANSWER_WINDOW`]: a rack booting at once fits, a flood of
/// solicitations does not turn into a flood of answers.
const ANSWERS_PER_WINDOW: u32 = 64;
const ANSWER_WINDOW: Duration = Duration::from_secs(1);
/// The pause after a failed receive, so that a lasting failure does not spin.
const RECEIVE_RETRY: Duration = Duration::from_millis(500);

/// RFC 4861 §4.2: hop limit 255 on every ND message, so receivers know it is on-link.
const ND_HOP_LIMIT: u32 = 255;
/// All nodes on the link: where unsolicited RAs go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All routers on the link: where hosts send their solicitations.
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// A budget of [`ANSWERS_PER_WINDOW`] unicast answers per [`ANSWER_WINDOW`].
#[derive(Debug)]
struct AnswerBudget {
    window_start: Instant,
    spent: u32,
}

impl AnswerBudget {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            spent: 0,
        }
    }

    /// Takes one answer from the budget at `now`; false when the window's budget is spent.
    fn take(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= ANSWER_WINDOW {
            self.window_start = now;
            self.spent = 0;
        }
        if self.spent < ANSWERS_PER_WINDOW {
            self.spent += 1;
            true
        } else {
            false
        }
    }
}

/// When the next multicast RA goes out: every [`ANNOUNCE_INTERVAL`], or sooner when asked,
/// but never within [`MIN_DELAY_BETWEEN_RAS`] of the previous one.
#[derive(Debug)]
struct MulticastSchedule {
    next: Instant,
    last_sent: Option<Instant>,
}

impl MulticastSchedule {
    /// The first unsolicited RA goes out one interval after `now`, not at once: clients that
    /// start right after the server (a test lab, a rack powered on together) then find
    /// multicast answers allowed.
    fn new(now: Instant) -> Self {
        Self {
            next: now + ANNOUNCE_INTERVAL,
            last_sent: None,
        }
    }

    fn next(&self) -> Instant {
        self.next
    }

    /// Whether a multicast RA may go out at `now` (none in the last [`MIN_DELAY_BETWEEN_RAS`]).
    fn multicast_allowed(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= MIN_DELAY_BETWEEN_RAS)
    }

    /// Records an RA sent at `now` and plans the next one.
    fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.next = now + ANNOUNCE_INTERVAL;
    }

    /// A solicitation to answer by multicast arrived at `now`: bring the next RA forward as
    /// far as the rate limit allows (to `now` when [`Self::multicast_allowed`]).
    fn solicited(&mut self, now: Instant) {
        let earliest = self
            .last_sent
            .map_or(now, |last| (last + MIN_DELAY_BETWEEN_RAS).max(now));
        self.next = self.next.min(earliest);
    }
}

/// Sends router-lifetime-0 Router Advertisements on one interface (see the module docs).
#[derive(Debug)]
pub struct RouterAnnouncer {
    // tokio has no raw-socket type; its UdpSocket only wraps sendto/recvfrom, which are the
    // same calls for a raw ICMPv6 socket, and keeps this free of unsafe code.
    socket: tokio::net::UdpSocket,
    interface: String,
    interface_index: u32,
}

impl RouterAnnouncer {
    /// Opens a raw ICMPv6 socket on `interface` (needs CAP_NET_RAW), with hop limit 255 and
    /// membership of all-routers so that solicitations reach it.
    pub fn bind(interface: &str) -> std::io::Result<Self> {
        // Each step's error says what it was doing: the caller adds only the interface.
        let context = |what: String| {
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let interface_index = nix::net::if_::if_nametoindex(interface)
            .map_err(std::io::Error::from)
            .map_err(context(format!("no interface named {interface}")))?;
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(
            context("cannot open a raw ICMPv6 socket (needs root or CAP_NET_RAW)".to_string()),
        )?;
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(context(format!("cannot bind to interface {interface}")))?;
        socket.set_multicast_if_v6(interface_index)?;
        socket.set_multicast_hops_v6(ND_HOP_LIMIT)?;
        socket.set_unicast_hops_v6(ND_HOP_LIMIT)?;
        // Our own RAs need not come back to us.
        socket.set_multicast_loop_v6(false)?;
        socket
            .join_multicast_v6(&ALL_ROUTERS, interface_index)
            .map_err(context(format!(
                "cannot join ff02::2 on {interface}: is IPv6 disabled there?"
            )))?;
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        Ok(Self {
            socket,
            interface: interface.to_string(),
            interface_index,
        })
    }

    /// Announces and answers for ever. Sends that fail (the interface has no usable
    /// link-local address yet, say) are logged and retried on the next round; a failed receive
    /// is logged and retried after a pause, so the announcer never stops the other servers.
    pub async fn run(self) -> ! {
        let advertisement = router_advertisement();
        let all_nodes = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, self.interface_index));
        let mut schedule = MulticastSchedule::new(Instant::now());
        let mut budget = AnswerBudget::new(Instant::now());
        let mut buffer = [0u8; 1500];
        tracing::info!(
            interface = %self.interface,
            "ipv6: announcing router lifetime 0 (ends iPXE's IPv6 wait)"
        );
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(schedule.next()) => {
                    let now = Instant::now();
                    schedule.sent(now);
                    match self.socket.send_to(&advertisement, all_nodes).await {
                        Ok(_) => tracing::trace!(interface = %self.interface, "ipv6: ra sent"),
                        // Until the interface has a link-local address (no carrier yet,
                        // duplicate address detection running), the kernel has no source.
                        Err(e) => tracing::debug!(
                            interface = %self.interface, error = %e, "ipv6: ra not sent"
                        ),
                    }
                }
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((len, from)) => {
                        let message = buffer.get(..len).unwrap_or_default();
                        self.answer(message, from, &mut schedule, &mut budget, &advertisement)
                            .await;
                    }
                    Err(e) => {
                        tracing::warn!(
                            interface = %self.interface, error = %e, "ipv6: cannot receive"
                        );
                        tokio::time::sleep(RECEIVE_RETRY).await;
                    }
                },
            }
        }
    }

    /// Answers one received ICMPv6 message if it is a Router Solicitation.
    async fn answer(
        &self,
        message: &[u8],
        from: SocketAddr,
        schedule: &mut MulticastSchedule,
        budget: &mut AnswerBudget,
        advertisement: &[u8],
    ) {
        let solicitation = match parse_router_solicitation(message) {
            Ok(solicitation) => solicitation,
            Err(NotSolicitation::OtherType { .. }) => return,
            Err(e) => {
                tracing::debug!(%from, error = %e, "ipv6: ignored");
                return;
            }
        };
        let mac = solicitation
            .mac
            .map_or_else(|| "-".to_string(), |mac| mac.to_string());
        let now = Instant::now();
        let source = match from {
            SocketAddr::V6(source)
                if !source.ip().is_unspecified() && !schedule.multicast_allowed(now) =>
            {
                source
            }
            _ => {
                // The run loop sends it: at once when allowed, else at the earliest allowed.
                tracing::info!(%mac, "ipv6: router solicitation, answering by multicast");
                schedule.solicited(now);
                return;
            }
        };
        if !budget.take(now) {
            tracing::debug!(%mac, %from, "ipv6: router solicitation not answered (rate limit)");
            return;
        }
        // A link-local source needs the interface as its scope.
        let to = SocketAddrV6::new(*source.ip(), 0, 0, self.interface_index);
        match self.socket.send_to(advertisement, SocketAddr::V6(to)).await {
            Ok(_) => tracing::info!(%mac, to = %source.ip(), "ipv6: router solicitation answered"),
            Err(e) => tracing::debug!(%mac, to = %source.ip(), error = %e, "ipv6: answer not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndp::{IPXE_SOLICITATION, ROUTER_ADVERTISEMENT};

    #[test]
    fn multicast_schedule_is_periodic_and_brought_forward_within_the_rate_limit() {
        let start = Instant::now();
        let mut schedule = MulticastSchedule::new(start);
        assert_eq!(
            schedule.next(),
            start + ANNOUNCE_INTERVAL,
            "the first periodic RA"
        );
        assert!(schedule.multicast_allowed(start));
        schedule.solicited(start);
        assert_eq!(schedule.next(), start, "a solicitation is answered at once");
        schedule.sent(start);
        assert_eq!(schedule.next(), start + ANNOUNCE_INTERVAL);
        assert!(!schedule.multicast_allowed(start + Duration::from_secs(1)));
        assert!(schedule.multicast_allowed(start + MIN_DELAY_BETWEEN_RAS));

        // A solicitation 1 s after an RA waits for the 3 s minimum, not the 4 s interval.
        schedule.solicited(start + Duration::from_secs(1));
        assert_eq!(schedule.next(), start + MIN_DELAY_BETWEEN_RAS);

        // One that comes after the minimum delay is answered at once.
        schedule.sent(start + MIN_DELAY_BETWEEN_RAS);
        let later = start + MIN_DELAY_BETWEEN_RAS * 2 + Duration::from_millis(500);
        schedule.solicited(later);
        assert_eq!(schedule.next(), later);

        // Never later than the periodic RA already planned.
        schedule.sent(later);
        schedule.solicited(later + Duration::from_secs(60));
        assert_eq!(schedule.next(), later + ANNOUNCE_INTERVAL);
    }

    #[test]
    fn answer_budget_refills_each_window() {
        let start = Instant::now();
        let mut budget = AnswerBudget::new(start);
        for _ in 0..ANSWERS_PER_WINDOW {
            assert!(budget.take(start));
        }
        assert!(!budget.take(start + Duration::from_millis(999)));
        assert!(budget.take(start + ANSWER_WINDOW));
    }

    /// Counters of the namespace's `/proc/net/snmp6`, by name, from one reading.
    fn snmp6_counters(ns: &pxe_testkit::NetNs, names: &[&str]) -> Vec<u64> {
        let output = ns.run_checked("cat", &["/proc/net/snmp6"]);
        let text = String::from_utf8_lossy(&output.stdout);
        names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|line| {
                        let (key, value) = line.split_once(char::is_whitespace)?;
                        (key == *name).then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("no {name} in /proc/net/snmp6"))
            })
            .collect()
    }

    /// One counter of the namespace's `/proc/net/snmp6`.
    fn snmp6_counter(ns: &pxe_testkit::NetNs, name: &str) -> u64 {
        snmp6_counters(ns, &[name])[0]
    }

    /// IPv6 packets received that were not multicast. The two counters are not read
    /// atomically, so read until two readings agree (bounded; traffic here is sparse).
    fn unicast_received(ns: &pxe_testkit::NetNs) -> u64 {
        let names = ["Ip6InReceives", "Ip6InMcastPkts"];
        let mut last = snmp6_counters(ns, &names);
        for _ in 0..20 {
            let now = snmp6_counters(ns, &names);
            if now == last {
                break;
            }
            last = now;
        }
        last[0].saturating_sub(last[1])
    }

    /// Waits (bounded) until `interface` in `ns` has a link-local address that finished
    /// duplicate address detection: before that the kernel has no source for ND messages.
    fn wait_for_link_local(ns: &pxe_testkit::NetNs, interface: &str) {
        for _ in 0..100 {
            let output = ns.ip(&["-6", "addr", "show", "dev", interface, "scope", "link"]);
            let text = String::from_utf8_lossy(&output.stdout);
            if text.contains("inet6 fe80") && !text.contains("tentative") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{interface} got no link-local address");
    }

    /// In two namespaces of its own joined by a veth pair: a host sends a Router Solicitation
    /// to all-routers and gets the RA by multicast; at once it solicits again and gets the RA
    /// by unicast (the rate limit holds multicast back for 3 s), both from the announcer's
    /// link-local address. The host's kernel counted the RAs as valid ICMPv6 messages (the
    /// checksum the kernel filled in is right) and saw no checksum errors.
    #[test]
    fn solicitations_in_a_namespace_are_answered_by_multicast_then_unicast() {
        if !pxe_testkit::prerequisites(
            "solicitations_in_a_namespace_are_answered_by_multicast_then_unicast",
            true,
            &["ip", "cat"],
        ) {
            return;
        }
        let server = pxe_testkit::NetNs::new("ra-srv");
        let host = pxe_testkit::NetNs::new("ra-host");
        server.link("ra0", None, &host, "eth0", None);
        wait_for_link_local(&server, "ra0");
        wait_for_link_local(&host, "eth0");

        let (host_done, stop) = tokio::sync::oneshot::channel::<()>();
        let (bound, announcer_bound) = std::sync::mpsc::channel::<()>();
        let announcer = server.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let announcer = RouterAnnouncer::bind("ra0").expect("bind the announcer");
                bound.send(()).expect("the host waits");
                // Bounded: the announcer runs until the host is done, at most 15 s.
                tokio::select! {
                    never = announcer.run() => never,
                    _ = stop => {}
                    () = tokio::time::sleep(Duration::from_secs(15)) => {}
                }
            });
        });
        let unicast_start = unicast_received(&host);

        let (multicast, unicast_before, (ra, from)) = host.enter(|| {
            let index = nix::net::if_::if_nametoindex("eth0").expect("eth0");
            let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
            socket.bind_device(Some(b"eth0")).unwrap();
            socket.set_multicast_if_v6(index).unwrap();
            socket.set_multicast_hops_v6(ND_HOP_LIMIT).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let socket = std::net::UdpSocket::from(socket);
            let all_routers = SocketAddrV6::new(ALL_ROUTERS, 0, 0, index);
            // Bounded: 20 receives of at most half a second each.
            let next_advertisement = || {
                let mut buffer = [0u8; 1500];
                for _ in 0..20 {
                    if let Ok((len, from)) = socket.recv_from(&mut buffer) {
                        if buffer[0] == ROUTER_ADVERTISEMENT {
                            return (buffer[..len].to_vec(), from);
                        }
                    }
                }
                panic!("no router advertisement came");
            };
            // Taken by value: a Receiver cannot be shared with the namespace's thread.
            let announcer_bound = announcer_bound;
            announcer_bound.recv().expect("the announcer started");
            socket.send_to(&IPXE_SOLICITATION, all_routers).unwrap();
            let (multicast, _) = next_advertisement();
            let unicast_before = unicast_received(&host);
            // Within 3 s of that multicast RA: the answer has to be unicast.
            socket.send_to(&IPXE_SOLICITATION, all_routers).unwrap();
            (multicast, unicast_before, next_advertisement())
        });
        let _ = host_done.send(());
        announcer.join().expect("the announcer thread");

        let expected = router_advertisement();
        assert_eq!(multicast[4..], expected[4..], "the multicast answer");
        assert_eq!(
            unicast_start, unicast_before,
            "the first answer came by multicast"
        );
        assert_eq!(ra.len(), expected.len());
        assert_eq!(ra[..2], expected[..2], "type and code");
        // Bytes 2–3 hold the checksum the kernel computed; the counters below show it valid.
        assert_eq!(ra[4..], expected[4..], "lifetime 0, no flags, no options");
        match from {
            SocketAddr::V6(from) => assert!(
                from.ip().segments()[0] & 0xffc0 == 0xfe80,
                "source {from} is not link-local"
            ),
            SocketAddr::V4(from) => panic!("an IPv4 source {from}"),
        }
        assert!(snmp6_counter(&host, "Icmp6InRouterAdvertisements") >= 2);
        assert_eq!(snmp6_counter(&host, "Icmp6InCsumErrors"), 0);
        let unicast_after = unicast_received(&host);
        assert!(
            unicast_after > unicast_before,
            "the solicitation (from a link-local source) was answered by unicast"
        );
    }
}
