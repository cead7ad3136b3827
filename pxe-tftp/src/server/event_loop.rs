//! A transfer's port on the tokio event loop: its own socket, or in single-port mode the
//! datagrams the listener routes to it by client address (and the listening socket to send
//! on).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use pxe_udp::segments::{self, Segmentation};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::time::Sleep;

use super::driver::{Received, TransferPort, IDLE};
use crate::transfer::Transmit;

/// Datagrams queued for one transfer in single-port mode; a client sends one ACK per window,
/// so more would only be a flood's.
pub(super) const INBOX_DATAGRAMS: usize = 16;

/// Where a transfer on the event loop gets its datagrams.
pub(super) enum Incoming {
    /// The transfer's own socket (the one it sends on).
    OwnSocket,
    /// Single-port mode: what the listener routes to it by client address.
    Routed(mpsc::Receiver<Bytes>),
}

/// A [`TransferPort`] on the tokio event loop.
pub(super) struct EventLoopPort<'a> {
    peer: SocketAddr,
    socket: &'a UdpSocket,
    incoming: Incoming,
    segmentation: &'a Segmentation,
    /// Wakes the transfer when it is evicted.
    evicted: &'a Notify,
    /// One timer for the whole transfer, moved rather than rebuilt at each step.
    timer: Pin<Box<Sleep>>,
}

impl<'a> EventLoopPort<'a> {
    /// A port sending on `socket` to `peer`.
    pub(super) fn new(
        peer: SocketAddr,
        socket: &'a UdpSocket,
        incoming: Incoming,
        segmentation: &'a Segmentation,
        evicted: &'a Notify,
    ) -> Self {
        Self {
            peer,
            socket,
            incoming,
            segmentation,
            evicted,
            timer: Box::pin(tokio::time::sleep(IDLE)),
        }
    }
}

impl TransferPort for EventLoopPort<'_> {
    async fn send(&mut self, batch: &[Transmit]) {
        segments::send_all_async(self.socket, batch, self.segmentation).await;
    }

    async fn receive(&mut self, buf: &mut [u8], deadline: Instant) -> Received {
        let Self {
            peer,
            socket,
            incoming,
            evicted,
            timer,
            ..
        } = self;
        let deadline = tokio::time::Instant::from_std(deadline);
        // Every block moves the deadline a little later; re-arming the timer each time costs
        // a timer-wheel update per block. Only an earlier deadline re-arms it now; a timer
        // that fires early finds nothing due and is re-armed then.
        if deadline < timer.deadline() || timer.is_elapsed() {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            biased;
            received = next_datagram(*peer, socket, incoming, buf) => received,
            () = timer.as_mut() => Received::TimedOut,
            () = evicted.notified() => Received::Woken,
        }
    }
}

/// The next datagram for a transfer, from its own socket or its route from the listener.
async fn next_datagram(
    peer: SocketAddr,
    socket: &UdpSocket,
    incoming: &mut Incoming,
    buf: &mut [u8],
) -> Received {
    match incoming {
        Incoming::OwnSocket => loop {
            match socket.recv_from(buf).await {
                Ok((len, from)) => return Received::Datagram { from, len },
                // ICMP errors of earlier sends surface here on some systems.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(error) => {
                    tracing::debug!(%error, "transfer socket failed");
                    return Received::Closed;
                }
            }
        },
        Incoming::Routed(inbox) => {
            let Some(datagram) = inbox.recv().await else {
                return Received::Closed;
            };
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            // The listener routes by address: the sender is the peer by construction.
            Received::Datagram { from: peer, len }
        }
    }
}
