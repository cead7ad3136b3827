//! The default lease store, [`EmbeddedStore`]: the table in memory and its journal, written
//! on a thread of the store's own (so it needs the `server` feature: tokio's oneshot carries
//! each write's completion back to the waiting request).

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
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
/// thread has written it. Changes queued while a write is under way go out together in the
/// next `write`, so the rate does not fall to one write per request under load. The thread
/// ends when the store is dropped.
#[derive(Debug)]
pub struct EmbeddedStore {
    table: Arc<Mutex<LeaseTable>>,
    journal: Option<JournalQueue>,
}

#[derive(Debug)]
struct JournalQueue {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
}

/// Changes to append, and who waits for them.
struct Job {
    changes: Vec<LeaseChange>,
    done: oneshot::Sender<io::Result<()>>,
}

/// At most this many requests' changes go into one `write`.
const MAX_BATCH: usize = 1024;

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
        let (jobs, queue) = mpsc::channel();
        let writer_table = Arc::clone(&table);
        std::thread::Builder::new()
            .name("pxe-lease-journal".into())
            .spawn(move || write_journal(journal, &writer_table, &queue))?;
        let store = Self {
            table,
            journal: Some(JournalQueue { path, jobs }),
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
            Some(queue) if !changes.is_empty() => {
                let (done, written) = oneshot::channel();
                let sent = queue.jobs.send(Job { changes, done }).is_ok();
                Some((queue, sent.then_some(written)))
            }
            _ => None,
        };
        drop(table);
        async move {
            let Some((queue, written)) = queued else {
                return Ok(());
            };
            let stopped = || Err(io::Error::other("the lease journal writer stopped"));
            let result = match written {
                Some(written) => written.await.unwrap_or_else(|_| stopped()),
                None => stopped(),
            };
            result.map_err(|source| StoreError::Journal {
                path: queue.path.clone(),
                source,
            })
        }
    }
}

impl LeaseStore for EmbeddedStore {
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

/// The journal thread: writes queued changes in batches (one `write` each) and tells each
/// waiter how its write went; compacts the journal when it has grown. Ends when the store
/// (the sending side) is dropped.
fn write_journal(mut journal: LeaseJournal, table: &Mutex<LeaseTable>, jobs: &mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::new();
    let mut records: Vec<LeaseChange> = Vec::new();
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        let written = append_batch(&mut journal, &mut records, &batch);
        finish(&mut batch, &written);
        if written.is_ok() && journal.wants_compaction() {
            // The snapshot is taken under the table's lock together with the changes queued
            // meanwhile (they were queued under that lock, so the snapshot holds them): once
            // the snapshot is durable, so are they.
            let snapshot = {
                let table = lock(table);
                batch.extend(jobs.try_iter());
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
