//! The transfer limits, without sockets: which read requests get a transfer, which are a
//! retransmission of one starting, and which transfer makes room for a newcomer when every
//! slot is taken. The listener carries out the answer.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Shared;
use crate::summary::Refusal;
use crate::transfer::Transfer;

/// What the listener knows of a running transfer, to pick one to evict.
#[derive(Debug)]
pub(super) struct TransferHandle {
    id: u64,
    pub(super) peer: SocketAddr,
    started: Instant,
    /// Set once the client has acknowledged anything: never evicted after that.
    acknowledged: AtomicBool,
    /// Set when the transfer lost its slot to a newcomer; it then ends at its next wake-up.
    evicted: AtomicBool,
    /// Wakes an event-loop transfer when it is evicted.
    pub(super) wake: tokio::sync::Notify,
}

impl TransferHandle {
    /// Records that the client acknowledged something, the first time it happens.
    pub(super) fn note_progress(&self, transfer: &Transfer) {
        if transfer.has_progressed() && !self.acknowledged.load(Ordering::Relaxed) {
            self.acknowledged.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// The limits [`Active::admit`] applies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Most transfers in all.
    pub(super) total: usize,
    /// Most transfers from one client address.
    pub(super) per_client: usize,
    /// Single-port mode: each transfer gets an inbox the listener routes its datagrams to.
    pub(super) single_port: bool,
}

/// What becomes of a read request.
#[derive(Debug)]
pub(super) enum Admission {
    /// A transfer may start; `evicted` lost its slot to it. In single-port mode, `inbox` is
    /// where the listener routes the client's datagrams.
    Admitted {
        handle: Arc<TransferHandle>,
        inbox: Option<mpsc::Receiver<Bytes>>,
        evicted: Option<Arc<TransferHandle>>,
    },
    /// The client's transfer is still opening its file: the request is a retransmission.
    Repeated,
    /// Refused: the client gets ERROR 0 "server busy".
    Refused(Refusal),
}

/// Every transfer holding a slot.
#[derive(Debug, Default)]
pub(super) struct Active {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    /// Every transfer holding a slot, by id.
    transfers: HashMap<u64, Arc<TransferHandle>>,
    next_id: u64,
    /// Single-port mode: where to hand each client's datagrams.
    pub(super) routes: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    /// Clients whose transfer has not sent its first packet yet (it is opening the file): a
    /// repeated request from one of them is a retransmission, not a second download.
    starting: HashSet<SocketAddr>,
}

impl Active {
    /// Admits `from`'s read request within `limits`, taking a slot for it. When every slot is
    /// taken, the oldest transfer whose client has acknowledged nothing (a spoofed source, a
    /// scanner, a client gone) is evicted to make room: it is told through its handle and
    /// ends at its next wake-up. Only when every transfer has made progress is the request
    /// refused.
    pub(super) fn admit(&mut self, from: SocketAddr, limits: Limits, now: Instant) -> Admission {
        if self.starting.contains(&from) {
            return Admission::Repeated;
        }
        let for_client = self.per_client.get(&from.ip()).copied().unwrap_or(0);
        if for_client >= limits.per_client {
            return Admission::Refused(Refusal::BusyPerClient);
        }
        let mut evicted = None;
        if self.total >= limits.total {
            let Some(victim) = self.eviction_candidate() else {
                return Admission::Refused(Refusal::BusyOverall);
            };
            self.release(&victim);
            victim.evicted.store(true, Ordering::Relaxed);
            victim.wake.notify_one();
            evicted = Some(victim);
        }
        self.total += 1;
        *self.per_client.entry(from.ip()).or_default() += 1;
        self.starting.insert(from);
        let id = self.next_id;
        self.next_id += 1;
        let handle = Arc::new(TransferHandle {
            id,
            peer: from,
            started: now,
            acknowledged: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        });
        self.transfers.insert(id, handle.clone());
        let inbox = limits.single_port.then(|| {
            let (sender, receiver) = mpsc::channel(super::event_loop::INBOX_DATAGRAMS);
            self.routes.insert(from, sender);
            receiver
        });
        Admission::Admitted {
            handle,
            inbox,
            evicted,
        }
    }

    /// Gives `handle`'s slot back, once: on eviction or when its task ends.
    fn release(&mut self, handle: &TransferHandle) {
        if self.transfers.remove(&handle.id).is_none() {
            return;
        }
        self.total -= 1;
        if let Some(count) = self.per_client.get_mut(&handle.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&handle.peer.ip());
            }
        }
        self.routes.remove(&handle.peer);
        self.starting.remove(&handle.peer);
    }

    /// The transfer to let go for a newcomer: the oldest whose client has acknowledged
    /// nothing, if any.
    fn eviction_candidate(&self) -> Option<Arc<TransferHandle>> {
        self.transfers
            .values()
            .filter(|handle| !handle.acknowledged.load(Ordering::Relaxed))
            .min_by_key(|handle| handle.started)
            .cloned()
    }
}

/// One transfer's place in the limits; given back when the task ends, however it ends (or
/// earlier, when it is evicted).
pub(super) struct Slot {
    pub(super) shared: Arc<Shared>,
    pub(super) handle: Arc<TransferHandle>,
}

impl Slot {
    /// Takes the slot `handle` was admitted to.
    pub(super) fn new(shared: Arc<Shared>, handle: Arc<TransferHandle>) -> Self {
        shared.load.transfer_started();
        Self { shared, handle }
    }

    /// The client's address.
    pub(super) fn peer(&self) -> SocketAddr {
        self.handle.peer
    }

    /// The transfer has answered: a request from its client is no longer a retransmission.
    pub(super) fn started(&self) {
        self.shared.active().starting.remove(&self.handle.peer);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.load.transfer_ended();
        self.shared.active().release(&self.handle);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: Limits = Limits {
        total: 3,
        per_client: 2,
        single_port: false,
    };

    fn client(n: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, n], port))
    }

    fn admitted(admission: Admission) -> (Arc<TransferHandle>, Option<Arc<TransferHandle>>) {
        match admission {
            Admission::Admitted {
                handle, evicted, ..
            } => (handle, evicted),
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn a_repeated_request_is_a_retransmission_until_the_transfer_answers() {
        let mut active = Active::default();
        let now = Instant::now();
        let (handle, _) = admitted(active.admit(client(1, 1000), LIMITS, now));
        assert!(matches!(
            active.admit(client(1, 1000), LIMITS, now),
            Admission::Repeated
        ));
        active.starting.remove(&handle.peer);
        admitted(active.admit(client(1, 1000), LIMITS, now));
    }

    #[test]
    fn limits_per_client_and_in_all_with_the_oldest_silent_transfer_evicted() {
        let mut active = Active::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (first, _) = admitted(active.admit(client(1, 1), LIMITS, at(0)));
        let (second, _) = admitted(active.admit(client(1, 2), LIMITS, at(1)));
        assert!(matches!(
            active.admit(client(1, 3), LIMITS, at(2)),
            Admission::Refused(Refusal::BusyPerClient)
        ));
        // The first has been acknowledged: the second is the oldest silent one.
        first.acknowledged.store(true, Ordering::Relaxed);
        let (third, _) = admitted(active.admit(client(2, 1), LIMITS, at(3)));
        let (_, evicted) = admitted(active.admit(client(3, 1), LIMITS, at(4)));
        let evicted = evicted.expect("a transfer made room");
        assert_eq!(evicted.id, second.id);
        assert!(second.is_evicted() && !first.is_evicted());
        assert_eq!(active.total, 3);
        // Every transfer has progressed: refused.
        third.acknowledged.store(true, Ordering::Relaxed);
        for handle in active.transfers.values() {
            handle.acknowledged.store(true, Ordering::Relaxed);
        }
        assert!(matches!(
            active.admit(client(4, 1), LIMITS, at(5)),
            Admission::Refused(Refusal::BusyOverall)
        ));
        // A slot given back twice (evicted, then its task ends) counts once.
        active.release(&second);
        assert_eq!(active.total, 3);
        active.release(&first);
        assert_eq!(active.total, 2);
        assert_eq!(active.per_client.get(&first.peer.ip()), None);
    }

    #[test]
    fn single_port_transfers_get_an_inbox_routed_by_client_address() {
        let mut active = Active::default();
        let limits = Limits {
            single_port: true,
            ..LIMITS
        };
        let admission = active.admit(client(1, 1), limits, Instant::now());
        let Admission::Admitted {
            handle,
            inbox: Some(mut inbox),
            ..
        } = admission
        else {
            panic!("no inbox");
        };
        active.routes[&handle.peer]
            .try_send(Bytes::from_static(b"ack"))
            .unwrap();
        assert_eq!(inbox.try_recv().unwrap(), Bytes::from_static(b"ack"));
        active.release(&handle);
        assert!(active.routes.is_empty());
    }
}
