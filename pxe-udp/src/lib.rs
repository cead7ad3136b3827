//! The UDP socket layer that pxe's UDP servers share (DHCP and TFTP) and their load
//! generators use: the system calls that neither std nor tokio exposes, each wrapped once,
//! without `unsafe`.
//!
//! - [`pktinfo`]: a socket that reports which interface and address each datagram arrived on
//!   (IP_PKTINFO) and sends out of a chosen one, moving queued datagrams with one `recvmmsg`
//!   and replies with one `sendmmsg`. DHCP needs it: a broadcast DISCOVER carries no hint of
//!   which of the server's addresses the client can reach.
//! - [`segments`]: sends of datagrams made of a header and a shared payload slice, without
//!   copying, a run of equal-size ones to one peer with one UDP GSO `sendmsg`. TFTP needs
//!   it: a window of DATA blocks is one system call.
//! - [`receive_now`] and [`wait_readable`]: a receive that never waits, with its source, and
//!   a bounded wait on a few sockets, for threads that drive a socket with blocking calls.
//! - [`ask_buffer_size`]: socket buffers sized past the sysctl cap where the process may.
//!
//! Sibling protocol crates depend on this crate, never on each other.
#![deny(unsafe_code)]

mod buffer;
pub mod pktinfo;
mod receive;
pub mod segments;

pub use buffer::{ask_buffer_size, Buffer};
pub use receive::{receive_now, wait_readable};
