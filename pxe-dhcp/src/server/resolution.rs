//! At most one reply per destination waits for the kernel to resolve that destination's
//! hardware address.
//!
//! A unicast reply to an address with no neighbour (ARP) entry is queued by Linux in the
//! neighbour's queue while ARP asks, up to `unres_qlen_bytes` per neighbour, and each queued
//! packet stays charged to the sending socket's buffer until ARP succeeds or gives up (about
//! 3 s: `mcast_solicit` × `retrans_time`). A requester can name an address nobody answers for
//! (ciaddr of a DHCPINFORM, giaddr of a relayed request answered with a DHCPNAK): without a
//! bound, a hundred such requests a second fill the socket's send buffer and every other reply
//! with it.
//!
//! So before a unicast to an address it did not seed itself, the server asks the neighbour
//! table ([`neighbour_state`]). A reply to a resolved address leaves. A reply to an address
//! without an entry leaves too (that is how resolution starts, and routed destinations never
//! have an entry), and the address is remembered for [`RESOLUTION_WAIT`]. A reply to an
//! address whose entry is still unresolved and which already got one within that time is
//! dropped: the earlier one is still waiting, or ARP failed. So each destination holds at
//! most one packet in the kernel, and the kernel's own neighbour-table limit (`gc_thresh3`,
//! 1024 by default) bounds how many destinations can.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::neighbour::{neighbour_state, NeighbourState};

/// How long the kernel takes to give up resolving an address (3 probes 1 s apart, Linux's
/// defaults): a reply sent to an unresolved address is assumed to wait this long.
pub(crate) const RESOLUTION_WAIT: Duration = Duration::from_secs(3);

/// How many destinations are remembered at most; past that, a reply to an unresolved address
/// that is not remembered is dropped (one to an address without an entry still leaves).
const REMEMBERED: usize = 4096;

/// Whether a unicast reply may leave now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it.
    Send,
    /// Drop it: a reply to the same unresolved address is already waiting, or ARP failed.
    Unresolved,
}

/// The destinations that were sent a reply while unresolved, and when.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    sent: Mutex<HashMap<Ipv4Addr, Instant>>,
}

impl Resolution {
    /// Whether a reply to `to` out of interface `ifindex` may leave at `now`. A failed lookup
    /// lets it leave (the send buffer's own bound still applies).
    pub(crate) fn admit(
        &self,
        socket: BorrowedFd<'_>,
        ifindex: u32,
        to: Ipv4Addr,
        now: Instant,
    ) -> Verdict {
        let state = neighbour_state(socket, ifindex, to).unwrap_or(NeighbourState::Absent);
        self.decide(state, to, now)
    }

    fn decide(&self, state: NeighbourState, to: Ipv4Addr, now: Instant) -> Verdict {
        let mut sent = super::lock(&self.sent);
        if state == NeighbourState::Resolved {
            sent.remove(&to);
            return Verdict::Send;
        }
        let waiting = sent
            .get(&to)
            .is_some_and(|at| now.saturating_duration_since(*at) < RESOLUTION_WAIT);
        if state == NeighbourState::Unresolved && waiting {
            return Verdict::Unresolved;
        }
        if sent.len() >= REMEMBERED && !sent.contains_key(&to) {
            sent.retain(|_, at| now.saturating_duration_since(*at) < RESOLUTION_WAIT);
            if sent.len() >= REMEMBERED {
                return match state {
                    NeighbourState::Unresolved => Verdict::Unresolved,
                    _ => Verdict::Send,
                };
            }
        }
        sent.insert(to, now);
        Verdict::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reply_per_unresolved_destination_per_wait() {
        let resolution = Resolution::default();
        let start = Instant::now();
        let absent = Ipv4Addr::new(192, 0, 2, 77);
        // The first reply starts resolution; while it waits, more are dropped.
        assert_eq!(
            resolution.decide(NeighbourState::Absent, absent, start),
            Verdict::Send
        );
        for ms in [1, 500, 2999] {
            let now = start + Duration::from_millis(ms);
            assert_eq!(
                resolution.decide(NeighbourState::Unresolved, absent, now),
                Verdict::Unresolved
            );
        }
        // Once the wait is over (ARP failed), one more may try.
        let later = start + RESOLUTION_WAIT;
        assert_eq!(
            resolution.decide(NeighbourState::Unresolved, absent, later),
            Verdict::Send
        );
        // A resolved destination always gets its replies, and is forgotten.
        assert_eq!(
            resolution.decide(NeighbourState::Resolved, absent, later),
            Verdict::Send
        );
        assert_eq!(
            resolution.decide(NeighbourState::Unresolved, absent, later),
            Verdict::Send
        );
        // A routed destination never has an entry: never dropped.
        let routed = Ipv4Addr::new(198, 18, 0, 9);
        for _ in 0..3 {
            assert_eq!(
                resolution.decide(NeighbourState::Absent, routed, start),
                Verdict::Send
            );
        }
    }

    #[test]
    fn remembered_destinations_are_bounded() {
        let resolution = Resolution::default();
        let now = Instant::now();
        for n in 0..REMEMBERED as u32 {
            let to = Ipv4Addr::from(0xc612_0000 + n);
            assert_eq!(
                resolution.decide(NeighbourState::Absent, to, now),
                Verdict::Send
            );
        }
        let extra = Ipv4Addr::new(192, 0, 2, 200);
        assert_eq!(
            resolution.decide(NeighbourState::Unresolved, extra, now),
            Verdict::Unresolved
        );
        assert_eq!(
            resolution.decide(NeighbourState::Absent, extra, now),
            Verdict::Send
        );
        assert_eq!(crate::server::lock(&resolution.sent).len(), REMEMBERED);
        // Once the wait is over, the table makes room.
        let later = now + RESOLUTION_WAIT;
        assert_eq!(
            resolution.decide(NeighbourState::Unresolved, extra, later),
            Verdict::Send
        );
        assert_eq!(crate::server::lock(&resolution.sent).len(), 1);
    }
}
