//! A neighbour (ARP) entry for a client that has no address yet, so a reply can be unicast
//! to `yiaddr` at `chaddr` (RFC 2131 §4.1: "the server unicasts DHCPOFFER and DHCPACK
//! messages to the client's hardware address and 'yiaddr' address"). The client cannot
//! answer ARP for an address it does not have, so the server tells the kernel where the
//! address is before sending, as dnsmasq and others do, with the SIOCSARP ioctl.
//!
//! The only `unsafe` in this crate is here: the ioctl call. Neither std nor nix wraps
//! SIOCSARP, and a netlink client would be a large dependency for one message.
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
    let mut request = libc::arpreq {
        arp_pa: sockaddr(libc::AF_INET, &ipv4_sockaddr_data(ip)),
        arp_ha: sockaddr(i32::from(libc::ARPHRD_ETHER), &mac.octets()),
        // ATF_COM: the hardware address is known (a complete entry); without ATF_PERM the
        // kernel keeps it as a learnt (stale) entry that expires.
        arp_flags: libc::ATF_COM,
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
    // SAFETY: `socket` is an open descriptor for the duration of the call (the borrow
    // guarantees it). SIOCSARP reads one `struct arpreq` from the pointer, which points to
    // a fully initialised `libc::arpreq` that lives until the call returns; the kernel does
    // not keep the pointer. An invalid entry makes the call fail with an errno, nothing
    // else.
    let result = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCSARP as _,
            std::ptr::from_mut(&mut request),
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
