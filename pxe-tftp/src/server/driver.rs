//! The one loop that drives a [`Transfer`], whatever carries its datagrams.
//!
//! Like the client's driver (`client.rs`), it only moves what the sans-IO state machine asks
//! for: the datagrams [`Transfer::poll_transmit`] has ready go out, finished events go to
//! the [`BootStory`], and the loop then waits for the next datagram or the transfer's next
//! deadline, whichever comes first. Where the datagrams travel is a [`TransferPort`]: a tokio
//! socket or the listener's routed inbox ([`super::event_loop`]), or blocking system calls
//! on a thread of the transfer's own ([`super::own_thread`]), run to completion by
//! [`block_on`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::admission::Slot;
use super::start::server_busy;
use super::story::BootStory;
use crate::transfer::{Event, Transfer, Transmit};

/// Longest datagram a transfer reads (an ACK is 4 bytes, an ERROR a few hundred).
pub(super) const MAX_DATAGRAM: usize = 2048;

/// How long the loop waits when the transfer names no deadline (it always has one while it
/// runs; this only keeps a wait bounded).
pub(super) const IDLE: Duration = Duration::from_secs(3600);

/// What a wait for the next datagram ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// A datagram of `len` bytes, now at the start of the buffer, from `from`.
    Datagram { from: SocketAddr, len: usize },
    /// The deadline passed.
    TimedOut,
    /// Woken with nothing to hand over (an eviction, an ICMP error of an earlier send): the
    /// loop looks at the transfer again.
    Woken,
    /// The port cannot carry the transfer any longer: it ends.
    Closed,
}

/// How a transfer's datagrams travel.
pub(super) trait TransferPort {
    /// Sends `batch` in order. A failed send is the peer's loss, which the transfer's
    /// retransmission covers.
    async fn send(&mut self, batch: &[Transmit]);

    /// Waits for the transfer's next datagram into `buf`, until `deadline` at most.
    async fn receive(&mut self, buf: &mut [u8], deadline: Instant) -> Received;
}

/// Drives `transfer` over `port` until it finishes, is evicted, or its port closes.
pub(super) async fn drive(
    transfer: &mut Transfer,
    port: &mut impl TransferPort,
    slot: &Slot,
    story: &BootStory,
) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut batch = Vec::new();
    let mut answered = false;
    loop {
        let now = Instant::now();
        batch.extend(std::iter::from_fn(|| transfer.poll_transmit(now)));
        port.send(&batch).await;
        batch.clear();
        if !answered {
            answered = true;
            slot.started();
        }
        while let Some(Event::Finished(outcome)) = transfer.poll_event() {
            story.log(&outcome);
        }
        if transfer.is_finished() {
            return;
        }
        if slot.handle.is_evicted() {
            story.evicted();
            port.send(&[server_busy(slot.peer())]).await;
            return;
        }
        let deadline = transfer.poll_timeout().unwrap_or(now + IDLE);
        match port.receive(&mut buf, deadline).await {
            Received::Datagram { from, len } => {
                transfer.handle_datagram(Instant::now(), from, &buf[..len]);
                slot.handle.note_progress(transfer);
            }
            Received::TimedOut => transfer.handle_timeout(Instant::now()),
            Received::Woken => {}
            Received::Closed => return,
        }
    }
}

/// Runs `future` to completion on the calling thread, sleeping while it is pending.
///
/// A transfer on a thread of its own makes only blocking calls, so its driver never is
/// pending and this polls it once; the park is there so that any future is run correctly.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_a_future_that_is_woken_from_another_thread() {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let sending = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sender.send(7).unwrap();
        });
        assert_eq!(block_on(receiver).unwrap(), 7);
        sending.join().unwrap();
        assert_eq!(block_on(async { 1 + 1 }), 2);
    }
}
