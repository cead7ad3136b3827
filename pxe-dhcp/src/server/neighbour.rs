//! A neighbour (ARP) entry for a client that has no address yet, so a reply can be unicast
//! to `yiaddr` at `chaddr` (RFC 2131 §4.1: "the server unicasts DHCPOFFER and DHCPACK
//! messages to the client's hardware address and 'yiaddr' address"). The client cannot
//! answer ARP for an address it does not have, so the server tells the kernel where the
//! address is before sending, as dnsmasq and others do, with the SIOCSARP ioctl.
//!
//! [`neighbour_state`] reads an entry back (SIOCGARP): the server asks before a unicast to an
//! address it did not seed, because the kernel holds a packet to an unresolved neighbour in
//! that neighbour's queue (charged to the sending socket's buffer) for the seconds ARP takes
//! to give up; see [`super::resolution`].
//!
//! The only `unsafe` in this crate is here: the ioctl calls. Neither std nor nix wraps
//! SIOCSARP or SIOCGARP, and a netlink client would be a large dependency for two messages.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;
use pxe_policy::MacAddr;

/// Adds (or replaces) the neighbour entry `ip` → `mac` on interface `ifindex` (0: the
/// interface the route to `ip` uses). The entry is not permanent: the kernel ages it out
/// like one it learnt itself. Needs CAP_NET_ADMIN; `socket` is any IPv4 socket.
pub(crate) fn add_neighbour(
    socket: BorrowedFd<'_>,
    ifindex: u32,
    ip: Ipv4Addr,
    mac: MacAddr,
) -> io::Result<()> {
    let mut request = arp_request(ifindex, ip)?;
    request.arp_ha = sockaddr(i32::from(libc::ARPHRD_ETHER), &mac.octets());
    // ATF_COM: the hardware address is known (a complete entry); without ATF_PERM the
    // kernel keeps it as a learnt (stale) entry that expires.
    request.arp_flags = libc::ATF_COM;
    arp_ioctl(socket, libc::SIOCSARP, &mut request)
}

/// What the kernel's neighbour table says about an address on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NeighbourState {
    /// A hardware address is known (reachable, stale, being probed, or permanent): a packet
    /// leaves at once.
    Resolved,
    /// An entry without a hardware address: resolution is under way or has failed, and a
    /// packet sent now waits in the neighbour's queue (or is dropped).
    Unresolved,
    /// No entry: never contacted on this interface, or not on-link (routed).
    Absent,
}

/// The neighbour entry of `ip` on interface `ifindex` (SIOCGARP; needs no privilege).
pub(crate) fn neighbour_state(
    socket: BorrowedFd<'_>,
    ifindex: u32,
    ip: Ipv4Addr,
) -> io::Result<NeighbourState> {
    let mut request = arp_request(ifindex, ip)?;
    match arp_ioctl(socket, libc::SIOCGARP, &mut request) {
        Ok(()) if request.arp_flags & libc::ATF_COM != 0 => Ok(NeighbourState::Resolved),
        Ok(()) => Ok(NeighbourState::Unresolved),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(NeighbourState::Absent),
        Err(e) => Err(e),
    }
}

/// An `arpreq` naming `ip` on interface `ifindex` (0: none named).
fn arp_request(ifindex: u32, ip: Ipv4Addr) -> io::Result<libc::arpreq> {
    let mut request = libc::arpreq {
        arp_pa: sockaddr(libc::AF_INET, &ipv4_sockaddr_data(ip)),
        arp_ha: sockaddr(0, &[]),
        arp_flags: 0,
        arp_netmask: sockaddr(0, &[]),
        arp_dev: [0; libc::IFNAMSIZ],
    };
    if ifindex != 0 {
        let name = nix::net::if_::if_indextoname(ifindex)?;
        let name = name.as_bytes();
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (slot, &byte) in request.arp_dev.iter_mut().zip(name) {
            *slot = byte as libc::c_char;
        }
    }
    Ok(request)
}

/// SIOCSARP or SIOCGARP with `request`.
fn arp_ioctl(
    socket: BorrowedFd<'_>,
    command: libc::c_ulong,
    request: &mut libc::arpreq,
) -> io::Result<()> {
    // SAFETY: `socket` is an open descriptor for the duration of the call (the borrow
    // guarantees it). SIOCSARP reads, and SIOCGARP reads and writes, one `struct arpreq` at
    // the pointer, which points to a fully initialised `libc::arpreq` borrowed mutably until
    // the call returns; the kernel does not keep the pointer. An invalid entry makes the call
    // fail with an errno, nothing else.
    let result = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            command as _,
            std::ptr::from_mut(request),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sa_data` of a `sockaddr_in` for `ip`: port 0, then the address.
fn ipv4_sockaddr_data(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0, 0, a, b, c, d]
}

fn sockaddr(family: i32, data: &[u8]) -> libc::sockaddr {
    let mut sa_data = [0 as libc::c_char; 14];
    for (slot, &byte) in sa_data.iter_mut().zip(data) {
        *slot = byte as libc::c_char;
    }
    libc::sockaddr {
        sa_family: family as libc::sa_family_t,
        sa_data,
    }
}
