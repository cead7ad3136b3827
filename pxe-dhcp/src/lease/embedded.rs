//! The default lease store, [`EmbeddedStore`]: the table in memory and its journal, written
//! on a thread of the store's own (so it needs the `server` feature: tokio's oneshot carries
//! each write's completion back to the waiting request).

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use pxe_policy::MacAddr;
use tokio::sync::oneshot;

use super::{
    Assignment, DroppedRecord, Lease, LeaseAnswer, LeaseChange, LeaseClient, LeaseJournal,
    LeaseQuestion, LeaseStore, LeaseTable, Refusal, Reservation, StoreError, StoreFuture, Subnet,
};

/// The default store: a [`LeaseTable`] in memory, and (with [`EmbeddedStore::with_journal`])
/// its [`LeaseJournal`].
///
/// Decisions take the table's lock for microseconds and never wait on the disk. Journal
/// writes happen on one thread of the store's own (`pxe-lease-journal`), never on the async
/// runtime's threads and never under the table's lock: a change is queued while the lock is
/// held (so the file's order is the table's order) and the caller's future resolves when the
/// thread has written it.
///
/// The thread is woken once per batch, not once per change: a future's first poll only
/// queues its change, and the first later poll of any waiting future (its own second poll)
/// hands everything queued so far to the thread, which writes it with one `write`. A server
/// that polls every request of a received batch once before it waits on any (as
/// [`crate::server::DhcpServer`] does) thus makes one hand-off, one write and one wake-up
/// back per batch. The thread ends when the store is dropped.
#[derive(Debug)]
pub struct EmbeddedStore {
    table: Arc<Mutex<LeaseTable>>,
    journal: Option<JournalQueue>,
}

#[derive(Debug)]
struct JournalQueue {
    path: PathBuf,
    queue: Arc<Queue>,
}

/// The changes waiting for the journal thread, and the signal that wakes it.
#[derive(Debug, Default)]
struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    jobs: Vec<Job>,
    /// A waiter asked for `jobs` to be written.
    flush: bool,
    /// The store was dropped: the thread writes what is queued and ends.
    closed: bool,
    /// The thread has ended (or panicked): nothing queued will be written.
    writer_gone: bool,
}

/// Changes to append, and who waits for them.
#[derive(Debug)]
struct Job {
    changes: Vec<LeaseChange>,
    done: oneshot::Sender<io::Result<()>>,
}

impl Queue {
    /// Queues `job` without waking the thread (see [`Written`]). Dropped, so that its waiter
    /// hears the writer stopped, when the thread is gone.
    fn push(&self, job: Job) {
        let mut pending = lock(&self.pending);
        if !pending.writer_gone {
            pending.jobs.push(job);
        }
    }

    /// Asks the thread to write everything queued, waking it unless it was already asked.
    fn flush(&self) {
        let mut pending = lock(&self.pending);
        if !pending.flush && !pending.jobs.is_empty() {
            pending.flush = true;
            drop(pending);
            self.wake.notify_one();
        }
    }

    /// Waits until there is something to write and a waiter asked for it (or the store is
    /// gone), and takes it. `None`: the store was dropped and everything is written.
    fn take(&self, into: &mut Vec<Job>) -> Option<()> {
        let mut pending = lock(&self.pending);
        loop {
            if pending.jobs.is_empty() {
                if pending.closed {
                    return None;
                }
                // Asked, but a compaction already took the jobs.
                pending.flush = false;
            } else if pending.flush || pending.closed {
                pending.flush = false;
                into.append(&mut pending.jobs);
                return Some(());
            }
            pending = self
                .wake
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Ends the journal thread when the store goes.
impl Drop for JournalQueue {
    fn drop(&mut self) {
        lock(&self.queue.pending).closed = true;
        self.queue.wake.notify_one();
    }
}

/// Resolves once a queued change is written. Its first poll does not wake the journal thread:
/// it asks to be polled again (`wake_by_ref`), so that the other requests of the caller's
/// batch queue their changes first; its second poll hands everything queued to the thread.
struct Written<'a> {
    queue: &'a Queue,
    done: oneshot::Receiver<io::Result<()>>,
    stage: Stage,
}

/// Where a [`Written`] is: queued, then asked the thread to write, then waiting for it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Queued,
    Deferred,
    HandedOver,
}

impl Future for Written<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.stage {
            Stage::Queued => {
                this.stage = Stage::Deferred;
                cx.waker().wake_by_ref();
            }
            Stage::Deferred => {
                this.stage = Stage::HandedOver;
                this.queue.flush();
            }
            Stage::HandedOver => {}
        }
        Pin::new(&mut this.done).poll(cx).map(|result| {
            result.unwrap_or_else(|_| Err(io::Error::other("the lease journal writer stopped")))
        })
    }
}

impl EmbeddedStore {
    /// `table` in memory only: leases are lost when the process ends.
    pub fn in_memory(table: LeaseTable) -> Self {
        Self {
            table: Arc::new(Mutex::new(table)),
            journal: None,
        }
    }

    /// `table` kept in the journal at `path`: the journal is replayed into the table and
    /// compacted (as [`LeaseJournal::open`] does), then its writer thread starts. Returns the
    /// journal lines that were not trusted, for the caller to log. `sync_each_write` adds an
    /// `fdatasync` per write (see [`LeaseJournal::sync_each_write`]).
    pub fn with_journal(
        mut table: LeaseTable,
        path: impl Into<PathBuf>,
        sync_each_write: bool,
        now: SystemTime,
    ) -> io::Result<(Self, Vec<DroppedRecord>)> {
        let path = path.into();
        let (mut journal, dropped) = LeaseJournal::open(&path, &mut table, now)?;
        journal.sync_each_write(sync_each_write);
        let table = Arc::new(Mutex::new(table));
        let queue = Arc::new(Queue::default());
        let writer_table = Arc::clone(&table);
        let writer_queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("pxe-lease-journal".into())
            .spawn(move || write_journal(journal, &writer_table, &writer_queue))?;
        let store = Self {
            table,
            journal: Some(JournalQueue { path, queue }),
        };
        Ok((store, dropped))
    }

    /// The lease file, when there is one.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal.as_ref().map(|journal| journal.path.as_path())
    }

    /// Runs `read` on the table (to list leases, say). Holds the lock while it runs.
    pub fn with_table<T>(&self, read: impl FnOnce(&LeaseTable) -> T) -> T {
        read(&lock(&self.table))
    }

    /// Answers `question` on the table and queues its changes; the returned future resolves
    /// once they are written.
    fn decide<'a>(
        &'a self,
        subnet: &Subnet,
        client: LeaseClient<'_>,
        question: LeaseQuestion,
        now: SystemTime,
    ) -> StoreFuture<'a, LeaseAnswer> {
        let mut table = lock(&self.table);
        let Some(index) = table.subnet_index(subnet) else {
            let answer = match question {
                LeaseQuestion::Offer { .. } => LeaseAnswer::Offer(None),
                LeaseQuestion::Request { .. } => LeaseAnswer::Request(Err(Refusal::WrongSubnet)),
                LeaseQuestion::Release { .. } | LeaseQuestion::Decline { .. } => LeaseAnswer::Done,
                LeaseQuestion::Inform => LeaseAnswer::Inform { host_name: None },
            };
            return Box::pin(std::future::ready(Ok(answer)));
        };
        let (answer, changes) = table.answer(index, client, question, now);
        let written = self.persist(table, changes);
        Box::pin(async move {
            written.await?;
            Ok(answer)
        })
    }

    /// Queues `changes` for the journal while the table's lock is still held (so the
    /// journal's order is the table's), releases the lock, and returns a future that resolves
    /// once they are written. Nothing to wait for without a journal or without changes.
    fn persist(
        &self,
        table: std::sync::MutexGuard<'_, LeaseTable>,
        changes: Vec<LeaseChange>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        let queued = match &self.journal {
            Some(journal) if !changes.is_empty() => {
                let (done, written) = oneshot::channel();
                journal.queue.push(Job { changes, done });
                Some((journal, written))
            }
            _ => None,
        };
        drop(table);
        async move {
            let Some((journal, done)) = queued else {
                return Ok(());
            };
            Written {
                queue: &journal.queue,
                done,
                stage: Stage::Queued,
            }
            .await
            .map_err(|source| StoreError::Journal {
                path: journal.path.clone(),
                source,
            })
        }
    }
}
impl LeaseStore for EmbeddedStore {
    fn pool_usage<'a>(
        &'a self,
        subnet: &'a Subnet,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<super::PoolUsage>> {
        let usage = self.with_table(|table| {
            table
                .subnet_index(subnet)
                .map(|index| table.pool_usage(index, now))
        });
        Box::pin(std::future::ready(Ok(usage)))
    }

    fn offer<'a>(
        &'a self,
        subnet: &'a Subnet,
        client: LeaseClient<'a>,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Assignment>> {
        let answer = self.decide(subnet, client, LeaseQuestion::Offer { requested }, now);
        Box::pin(async move {
            match answer.await? {
                LeaseAnswer::Offer(offer) => Ok(offer),
                _ => Ok(None),
            }
        })
    }

    fn request<'a>(
        &'a self,
        subnet: &'a Subnet,
        client: LeaseClient<'a>,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> StoreFuture<'a, Result<Assignment, Refusal>> {
        let answer = self.decide(subnet, client, LeaseQuestion::Request { ip }, now);
        Box::pin(async move {
            match answer.await? {
                LeaseAnswer::Request(granted) => Ok(granted),
                _ => Ok(Err(Refusal::WrongSubnet)),
            }
        })
    }

    fn release(&self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, ()> {
        self.change(|table| table.release(mac, ip, now))
    }

    fn decline(&self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, ()> {
        self.change(|table| table.decline(mac, ip, now))
    }

    fn lease_by_mac(&self, mac: MacAddr, now: SystemTime) -> StoreFuture<'_, Option<Lease>> {
        let lease = lock(&self.table).lease_of(mac, now);
        Box::pin(std::future::ready(Ok(lease)))
    }

    fn lease_by_client_id<'a>(
        &'a self,
        client_id: &'a [u8],
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Lease>> {
        let lease = lock(&self.table).lease_of_client_id(client_id, now);
        Box::pin(std::future::ready(Ok(lease)))
    }

    fn lease_by_address(&self, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, Option<Lease>> {
        let lease = lock(&self.table).lease_of_address(ip, now);
        Box::pin(std::future::ready(Ok(lease)))
    }

    fn reservation<'a>(&'a self, client: LeaseClient<'a>) -> StoreFuture<'a, Option<Reservation>> {
        let reservation = lock(&self.table).reservation(client).cloned();
        Box::pin(std::future::ready(Ok(reservation)))
    }
}

impl EmbeddedStore {
    /// Applies a change-producing operation (release, decline) and waits for its write.
    fn change(
        &self,
        operate: impl FnOnce(&mut LeaseTable) -> Option<LeaseChange>,
    ) -> StoreFuture<'_, ()> {
        let mut table = lock(&self.table);
        let changes = operate(&mut table).into_iter().collect();
        Box::pin(self.persist(table, changes))
    }
}

/// The journal thread: waits until a waiter asks, writes everything queued with one `write`
/// and tells each waiter how it went; compacts the journal when it has grown. Ends when the
/// store is dropped.
fn write_journal(mut journal: LeaseJournal, table: &Mutex<LeaseTable>, queue: &Queue) {
    // If this thread ends for any reason (a panic included), queued waiters hear it stopped
    // rather than wait for ever.
    struct Gone<'a>(&'a Queue);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let mut pending = lock(&self.0.pending);
            pending.writer_gone = true;
            pending.jobs.clear();
        }
    }
    let _gone = Gone(queue);
    let mut batch: Vec<Job> = Vec::new();
    let mut records: Vec<LeaseChange> = Vec::new();
    while queue.take(&mut batch).is_some() {
        let written = append_batch(&mut journal, &mut records, &batch);
        finish(&mut batch, &written);
        if written.is_ok() && journal.wants_compaction() {
            // The snapshot is taken under the table's lock together with the changes queued
            // meanwhile (they were queued under that lock, so the snapshot holds them): once
            // the snapshot is durable, so are they.
            let snapshot = {
                let table = lock(table);
                batch.append(&mut lock(&queue.pending).jobs);
                table.snapshot(SystemTime::now())
            };
            let compacted = journal.compact_to(&snapshot);
            let written = match compacted {
                Ok(()) => Ok(()),
                Err(e) => {
                    tracing::error!(path = %journal.path().display(), error = %e, "lease file compaction failed");
                    append_batch(&mut journal, &mut records, &batch)
                }
            };
            finish(&mut batch, &written);
        }
    }
}

fn append_batch(
    journal: &mut LeaseJournal,
    records: &mut Vec<LeaseChange>,
    batch: &[Job],
) -> io::Result<()> {
    records.clear();
    for job in batch {
        records.extend_from_slice(&job.changes);
    }
    journal.append(records)
}

/// Tells every waiter of `batch` how the write went, and empties it.
fn finish(batch: &mut Vec<Job>, written: &io::Result<()>) {
    for job in batch.drain(..) {
        let result = match written {
            Ok(()) => Ok(()),
            // io::Error is not Clone: each waiter gets its kind and text.
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        // A waiter that gave up (its request task ended) needs no answer.
        let _ = job.done.send(result);
    }
}

/// Locks a mutex, recovering from poisoning: the table is consistent between operations.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lease::read_journal;

    fn subnet() -> Subnet {
        Subnet::new(
            Ipv4Addr::new(192, 0, 2, 0),
            24,
            Ipv4Addr::new(192, 0, 2, 10),
            Ipv4Addr::new(192, 0, 2, 250),
        )
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 1, n])
    }

    fn client(n: u8) -> LeaseClient<'static> {
        LeaseClient {
            mac: mac(n),
            client_id: None,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    /// Requests from many tasks at once: each resolves only once its binding is in the file,
    /// the file holds every binding granted, and a store reopened from it holds them all.
    #[test]
    fn granted_leases_are_in_the_journal_when_the_future_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        let now = SystemTime::now();
        let (store, dropped) =
            EmbeddedStore::with_journal(LeaseTable::new(vec![subnet()], vec![]), &path, false, now)
                .unwrap();
        assert!(dropped.is_empty());
        let store = Arc::new(store);
        let granted: Vec<Lease> = runtime().block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..200 {
                let store = Arc::clone(&store);
                let path = path.clone();
                tasks.spawn(async move {
                    let subnet = subnet();
                    let offer = store
                        .offer(&subnet, client(n), None, now)
                        .await
                        .unwrap()
                        .unwrap();
                    let lease = store
                        .request(&subnet, client(n), offer.lease.ip, now)
                        .await
                        .unwrap()
                        .unwrap()
                        .lease;
                    // Durable before the caller hears of it.
                    let on_disk = read_journal(&std::fs::read(&path).unwrap()).changes;
                    // (The file keeps whole seconds: compare the binding, not the instant.)
                    assert!(on_disk.iter().any(|change| matches!(
                        change,
                        LeaseChange::Bind(written) if written.mac == lease.mac && written.ip == lease.ip
                    )));
                    lease
                });
            }
            tasks.join_all().await
        });
        assert_eq!(granted.len(), 200);
        let mut addresses: Vec<_> = granted.iter().map(|l| l.ip).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 200, "an address granted twice");
        drop(store);
        let (reopened, _) =
            EmbeddedStore::with_journal(LeaseTable::new(vec![subnet()], vec![]), &path, false, now)
                .unwrap();
        for lease in &granted {
            let kept = reopened.with_table(|t| t.lease_of(lease.mac, now));
            assert_eq!(kept.map(|kept| kept.ip), Some(lease.ip));
        }
    }

    /// A request's first poll only queues its change: the journal thread writes nothing until
    /// a later poll hands the queue over, and then the whole batch.
    #[test]
    fn a_batch_is_written_once_a_second_poll_hands_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        let now = SystemTime::now();
        let (store, _) =
            EmbeddedStore::with_journal(LeaseTable::new(vec![subnet()], vec![]), &path, false, now)
                .unwrap();
        let subnet = subnet();
        let runtime = runtime();
        let offers: Vec<Ipv4Addr> = (0..50)
            .map(|n| {
                let offer = runtime.block_on(store.offer(&subnet, client(n), None, now));
                offer.unwrap().unwrap().lease.ip
            })
            .collect();
        let before = std::fs::read(&path).unwrap();
        let mut requests: Vec<_> = offers
            .iter()
            .zip(0..)
            .map(|(&ip, n)| store.request(&subnet, client(n), ip, now))
            .collect();
        let mut first_poll = Context::from_waker(std::task::Waker::noop());
        for request in &mut requests {
            assert!(request.as_mut().poll(&mut first_poll).is_pending());
        }
        // Nothing has woken the thread: the file is as it was.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        for request in requests {
            runtime.block_on(request).unwrap().unwrap();
        }
        let on_disk = read_journal(&std::fs::read(&path).unwrap()).changes;
        for n in 0..50 {
            assert!(on_disk
                .iter()
                .any(|change| matches!(change, LeaseChange::Bind(lease) if lease.mac == mac(n))));
        }
    }

    /// Look-ups by MAC, client identifier and address, release and decline through the trait.
    #[test]
    fn lookups_release_and_decline() {
        let store = EmbeddedStore::in_memory(LeaseTable::new(
            vec![subnet()],
            vec![Reservation::by_mac(mac(9), Ipv4Addr::new(192, 0, 2, 5))
                .host_name("fixed")
                .unwrap()],
        ));
        let now = SystemTime::now();
        let subnet = subnet();
        runtime().block_on(async {
            let with_id = LeaseClient {
                mac: mac(1),
                client_id: Some(&[1, 2, 3]),
            };
            let offer = store.offer(&subnet, with_id, None, now).await.unwrap();
            let ip = offer.unwrap().lease.ip;
            let lease = store
                .request(&subnet, with_id, ip, now)
                .await
                .unwrap()
                .unwrap()
                .lease;
            assert_eq!(store.lease_by_mac(mac(1), now).await.unwrap(), Some(lease));
            assert_eq!(
                store.lease_by_client_id(&[1, 2, 3], now).await.unwrap(),
                Some(lease)
            );
            assert_eq!(store.lease_by_address(ip, now).await.unwrap(), Some(lease));
            store.release(mac(1), ip, now).await.unwrap();
            assert_eq!(store.lease_by_address(ip, now).await.unwrap(), None);
            // The reservation and its host name come with the offer.
            let fixed = store.offer(&subnet, client(9), None, now).await.unwrap();
            let fixed = fixed.unwrap();
            assert_eq!(fixed.lease.ip, Ipv4Addr::new(192, 0, 2, 5));
            assert_eq!(fixed.host_name.as_deref(), Some("fixed"));
            // A declined address is not offered again for a while.
            let later = now + Duration::from_secs(1);
            let ip = store.offer(&subnet, client(2), None, later).await.unwrap();
            let ip = ip.unwrap().lease.ip;
            store
                .request(&subnet, client(2), ip, later)
                .await
                .unwrap()
                .unwrap();
            store.decline(mac(2), ip, later).await.unwrap();
            let again = store
                .offer(&subnet, client(2), Some(ip), later)
                .await
                .unwrap();
            assert_ne!(again.unwrap().lease.ip, ip);
        });
    }
}
