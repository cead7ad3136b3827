//! A zero-copy, read-only TFTP server for network boot, and a small client.
//!
//! What it does: RFC 1350 read requests (octet and netascii), RFC 2347 option negotiation
//! with blksize (RFC 2348), tsize and timeout (RFC 2349) and windowsize (RFC 7440); block
//! number rollover past 65535; bounded retransmission with Sorcerer's Apprentice avoidance;
//! EDK2's size probe (ERROR 8 after the OACK) ended quietly. Files come from a
//! [`FileSource`] ([`Directory`] confined to its root, or [`MemoryFiles`]) as shared
//! [`bytes::Bytes`]: every DATA block is a slice of one buffer per file.
//!
//! What it does not do: write requests (refused with ERROR 2), multicast (RFC 2090).
//! Netascii is the one mode that copies: each block is converted from the shared file as it
//! is sent.
//!
//! Sending: each window of equal-size DATA blocks goes out in one UDP GSO `sendmsg` (an
//! iovec for each 4-byte header, one for each slice of the file), falling back to one
//! vectored send per block where the kernel refuses GSO; the system calls are `pxe_udp`'s,
//! shared with pxe-dhcp. Transfers on their own port run on a blocking thread, up to eight
//! at once: one `poll` and one `recvmsg` per ACK and one `sendmsg` per block or window, as
//! lock-step speed is wake-up latency. Every transfer, on a thread or on the event loop,
//! runs the same driver loop. A lock-step transfer may also poll its socket for up to
//! [`ServerConfig::lock_step_poll`] before it sleeps, which cuts the turnaround to near
//! peers; a windowed transfer may move its thread to the CPU its client's ACKs arrive on
//! (one transfer per CPU; [`ServerConfig::follow_peer_cpu`]), so that the wake-up after each
//! ACK is local to that CPU rather than an interrupt to another, idle one, and poll for up
//! to [`ServerConfig::windowed_poll`] only while it cannot. All of these are off by default
//! (a library neither busy-polls nor re-pins its host's threads unless asked);
//! [`ServerConfig::dedicated`] turns on lock-step polling, the one that measured worth its
//! CPU, for a process that serves TFTP on its own.
//!
//! Layers, each usable alone:
//! - [`wire`]: packet parse and emit, no I/O.
//! - [`options`]: option negotiation, a pure function.
//! - [`listener`]: the listening port's rules (a read request accepted with its mode and
//!   options, anything else refused or ignored), a pure function.
//! - [`Transfer`] (server) and [`Download`] (client): sans-IO state machines; time is an
//!   argument, datagrams go in and out through `handle_*` and `poll_*`.
//! - [`Server`] and [`download()`]: thin tokio drivers around them, and [`Directory`], files
//!   under a root. These are the `server` feature (on by default), the one part that needs
//!   tokio, nix, socket2 and memmap2; with `default-features = false` the crate is the
//!   sans-IO layers above and [`MemoryFiles`], with no I/O dependency at all.
//!
//! A server on loopback and a download from it:
//!
//! ```
//! use pxe_tftp::{download, DownloadOptions, MemoryFiles, Server, ServerConfig};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut files = MemoryFiles::new();
//! files.insert("undionly.kpxe", vec![7u8; 70_000]);
//! let server = Server::bind("127.0.0.1:0".parse()?, files, ServerConfig::default()).await?;
//! let addr = server.local_addr();
//! tokio::spawn(server.run());
//!
//! let options = DownloadOptions {
//!     blksize: Some(1432),
//!     tsize: true,
//!     ..DownloadOptions::default()
//! };
//! let downloaded = download(addr, "undionly.kpxe", options).await?;
//! assert_eq!(downloaded.data, vec![7u8; 70_000]);
//! assert_eq!(downloaded.tsize, Some(70_000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
// One `unsafe` block: mapping a served file read-only (`directory.rs`, `map_read_only`).
#![deny(unsafe_code)]

#[cfg(feature = "server")]
mod client;
#[cfg(feature = "server")]
mod directory;
mod download;
mod error;
pub mod listener;
pub mod netascii;
#[cfg(feature = "server")]
mod observe;
pub mod options;
#[cfg(feature = "server")]
mod server;
mod source;
#[cfg(feature = "server")]
mod summary;
mod transfer;
pub mod wire;

/// The `bytes` crate, whose `Bytes` carries file content through the public API.
pub use bytes;
#[cfg(feature = "server")]
pub use client::download;
#[cfg(feature = "server")]
pub use directory::Directory;
pub use download::{Download, DownloadOptions, Downloaded};
pub use error::{DecodeError, Error, ErrorCode};
#[cfg(feature = "server")]
pub use observe::TftpObserver;
pub use options::{Rollover, TransferConfig};
#[cfg(feature = "server")]
pub use server::{PortMode, Server, ServerConfig};
pub use source::{normalize, FileSource, MemoryFiles};
pub use transfer::{Event, Outcome, Transfer, Transmit};
