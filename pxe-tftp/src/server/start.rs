//! From an admitted read request to a running transfer: the file opened (on a blocking
//! thread, a few at once), a port taken, and where the transfer runs.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pxe_udp::segments;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::admission::Slot;
use super::driver::{block_on, drive};
use super::event_loop::{EventLoopPort, Incoming};
use super::host_cpu::{FollowCpu, PollFirst};
use super::own_thread::{OwnThreadPort, TransferSockets};
use super::story::BootStory;
use super::PortMode;
use crate::error::{Error, ErrorCode};
use crate::listener::ReadRequest;
use crate::summary::Refusal;
use crate::transfer::{Transfer, Transmit};

/// The [`crate::TftpObserver::request_refused`] reason for a file that could not be served.
fn refusal_label(error: &Error) -> &'static str {
    match error.code() {
        ErrorCode::FILE_NOT_FOUND => "not_found",
        ErrorCode::ACCESS_VIOLATION => "access_denied",
        _ => "error",
    }
}

/// ERROR 0 "server busy": a refused request, or an evicted transfer's last word.
pub(super) fn server_busy(peer: SocketAddr) -> Transmit {
    Transmit::error(peer, ErrorCode::NOT_DEFINED, "server busy, try again")
}

/// A new socket for `peer`'s transfer, on `local`: an ephemeral port, or a free one from
/// the configured range.
async fn bind_transfer_socket(
    local: IpAddr,
    ports: &PortMode,
    peer: SocketAddr,
) -> io::Result<UdpSocket> {
    let PortMode::Range(range) = ports else {
        return UdpSocket::bind(SocketAddr::new(local, 0)).await;
    };
    let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
    let span = end.saturating_sub(start) + 1;
    // Start at a spot that differs per client so that concurrent transfers rarely collide.
    let offset = u32::from(peer.port()) % span;
    for i in 0..span {
        let port = start + (offset + i) % span;
        if let Ok(socket) = UdpSocket::bind(SocketAddr::new(local, port as u16)).await {
            return Ok(socket);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port in the transfer range",
    ))
}

/// Answers `peer`'s request with the ERROR for `error`.
async fn refuse(socket: &UdpSocket, peer: SocketAddr, error: &Error) {
    tracing::debug!(%peer, %error, "request refused");
    send_quietly(
        socket,
        &Transmit::error(peer, error.code(), error.wire_message()),
    )
    .await;
}

/// Sends a reply whose loss only the peer notices.
async fn send_quietly(socket: &UdpSocket, reply: &Transmit) {
    if let Err(error) = segments::send_one_async(socket, reply).await {
        tracing::debug!(peer = %reply.destination, %error, "cannot send error reply");
    }
}

/// Serves an admitted request: opens its file, takes a port, and drives the transfer on a
/// thread of its own while one is free and there are no more transfers than CPUs (own ports
/// only), else on the event loop.
pub(super) async fn serve_transfer(
    slot: Slot,
    listener: Arc<UdpSocket>,
    request: ReadRequest,
    inbox: Option<mpsc::Receiver<Bytes>>,
) {
    let peer = slot.peer();
    let shared = slot.shared.clone();
    let ReadRequest {
        filename,
        mode,
        negotiated,
        ..
    } = &request;
    let opened = {
        // Never closed, so acquiring only waits.
        let _permit = slot.shared.opening.acquire().await;
        let shared = shared.clone();
        let filename = filename.clone();
        tokio::task::spawn_blocking(move || shared.source.open(&filename, peer)).await
    };
    let content = match opened {
        Ok(Ok(content)) => content,
        Ok(Err(error)) => {
            shared.refused(peer, refusal_label(&error));
            return refuse(&listener, peer, &error).await;
        }
        Err(join) => {
            tracing::warn!(%peer, file = filename, error = %join, "file source panicked");
            shared.refused(peer, "error");
            let error = Error::Io {
                action: "opening a file",
                source: io::Error::other("file source failed"),
            };
            return refuse(&listener, peer, &error).await;
        }
    };
    if slot.handle.is_evicted() {
        shared.refused(peer, "evicted");
        return send_quietly(&listener, &server_busy(peer)).await;
    }
    let own_socket = match inbox {
        Some(_) => None,
        None => {
            let local = listener.local_addr().map(|a| a.ip());
            let bound = match local {
                Ok(ip) => bind_transfer_socket(ip, &shared.config.ports, peer).await,
                Err(e) => Err(e),
            };
            match bound {
                Ok(socket) => Some(socket),
                Err(source) => {
                    tracing::debug!(%peer, error = %source, "cannot open a transfer socket");
                    shared.summary.record(Refusal::NoSocket);
                    shared.refused(peer, "no_socket");
                    let error = Error::Io {
                        action: "opening a transfer socket",
                        source,
                    };
                    return refuse(&listener, peer, &error).await;
                }
            }
        }
    };
    let started = Instant::now();
    let mut transfer = Transfer::with_mode(
        peer,
        content,
        *mode,
        &request.wire_options(),
        negotiated,
        &shared.config.transfer,
    );
    tracing::debug!(%peer, file = filename, ?negotiated, "transfer started");
    if let Some(observer) = &shared.config.observer {
        observer.transfer_started(peer, filename);
    }
    let story = BootStory {
        summary: shared.summary.clone(),
        mac: match (&shared.config.client_records, peer.ip()) {
            (Some(records), std::net::IpAddr::V4(ip)) => records.mac_of(ip),
            _ => None,
        },
        peer,
        file: filename.clone(),
        options: negotiated.clone(),
        started,
        observer: shared.config.observer.clone(),
    };
    let Some(own_socket) = own_socket else {
        let incoming = inbox.map_or(Incoming::OwnSocket, Incoming::Routed);
        let mut port = EventLoopPort::new(
            peer,
            &listener,
            incoming,
            &shared.segmentation,
            &slot.handle.wake,
        );
        return drive(&mut transfer, &mut port, &slot, &story).await;
    };
    // A thread of its own pays only while the transfers fit the CPUs. In a crowd (a boot
    // storm) every datagram to a thread costs a switch to it, where the event loop takes
    // every socket that is ready in one wake-up.
    let thread = if shared.load.is_crowded() {
        None
    } else {
        shared.transfer_threads.clone().try_acquire_owned().ok()
    };
    let Some(thread) = thread else {
        let mut port = EventLoopPort::new(
            peer,
            &own_socket,
            Incoming::OwnSocket,
            &shared.segmentation,
            &slot.handle.wake,
        );
        return drive(&mut transfer, &mut port, &slot, &story).await;
    };
    let sockets = match own_socket
        .into_std()
        .and_then(|s| TransferSockets::new(s, peer))
    {
        Ok(sockets) => sockets,
        Err(error) => {
            tracing::debug!(%peer, %error, "cannot move the transfer socket to a thread");
            return;
        }
    };
    let poll_budget = if negotiated.windowsize <= 1 {
        shared.config.lock_step_poll
    } else {
        shared.config.windowed_poll
    };
    // A lock-step peer answers each block at once: on its CPU the two would take turns, so a
    // lock-step transfer that may poll stays where the scheduler puts it. A windowed one
    // follows its peer, and polls only while it cannot (see `OwnThreadPort::follow_cpu`).
    let follows =
        shared.config.follow_peer_cpu && (negotiated.windowsize > 1 || poll_budget.is_zero());
    let served = tokio::task::spawn_blocking(move || {
        let _thread = thread;
        let shared = &slot.shared;
        let mut port = OwnThreadPort {
            sockets,
            segmentation: &shared.segmentation,
            poll_first: PollFirst::new(poll_budget, &shared.pollers),
            follow_cpu: follows.then(|| FollowCpu::new(&shared.followed_cpus)),
            load: &shared.load,
        };
        block_on(drive(&mut transfer, &mut port, &slot, &story));
    });
    let _ = served.await;
}
