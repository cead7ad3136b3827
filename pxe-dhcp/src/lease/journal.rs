//! The lease file: an append-only journal of [`LeaseChange`]s, one text line each, compacted
//! into a snapshot at start-up and whenever it has grown well past the live bindings.
//!
//! Durability: every change is handed to the kernel with one `write` before the reply that
//! announces it is sent, so a kill -9 of the server loses nothing (the page cache survives the
//! process). This is what Kea's memfile backend gives. [`LeaseJournal::sync_each_write`] adds
//! an `fdatasync` per write for power-loss safety, at a large cost in rate. Compaction writes a
//! new file, syncs it and renames it over the old one, so a crash mid-compaction leaves either
//! the old journal or the new snapshot, never a mix.
//!
//! A failed write (a full disk) may leave part of a line behind. The journal remembers the
//! length of the file after its last good write and cuts the file back to it before the next
//! write, so a record is never appended onto a torn one. Each record carries the CRC-32 of its
//! text; a line whose checksum does not match (torn, merged, edited, bit rot) is never
//! trusted: [`read_journal`] drops it and says which, and the server logs that at `warn`.
//!
//! Line format (the first line is a comment naming the version; a `v1` journal could hold
//! other `#` comments):
//!
//! ```text
//! # pxe-dhcp lease journal v2
//! bind 52:54:00:12:34:56 192.0.2.100 1700003600 crc32=6f9b1c2a
//! free 52:54:00:12:34:56 192.0.2.100 crc32=0d3e4f5a
//! decline 192.0.2.101 1700000600 crc32=a1b2c3d4
//! ```
//!
//! Journals written before checksums (header `v1`, records without `crc32=`) are still read,
//! line by line as then, and rewritten as `v2` at the next start: their records had no
//! checksum to verify, and dropping every lease in the field on upgrade would be worse. In any
//! other file a record without a valid checksum is dropped.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pxe_policy::MacAddr;

use super::{Lease, LeaseChange, LeaseTable};

const HEADER: &str = "# pxe-dhcp lease journal v2\n";
/// The first line of a journal written before records carried checksums.
const HEADER_V1: &str = "# pxe-dhcp lease journal v1";
/// What separates a record from its checksum.
const CHECKSUM: &str = " crc32=";

/// The persistent side of a [`LeaseTable`]: replays at open, appends every change.
#[derive(Debug)]
pub struct LeaseJournal {
    path: PathBuf,
    file: File,
    sync_each_write: bool,
    /// Lines appended since the last compaction.
    appended: usize,
    /// Lines in the last snapshot.
    snapshot_lines: usize,
    /// The file's length after the last write that succeeded: what a failed write is cut
    /// back to.
    good_len: u64,
    /// A write failed since: the file may end in a torn record.
    torn: bool,
    line: String,
}

/// A line of a journal that was not trusted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedRecord {
    /// The line number (from 1).
    pub line: usize,
    /// Why it was dropped.
    pub reason: DropReason,
    /// The start of the line, as text (at most 80 characters, lossy UTF-8).
    pub text: String,
}

/// Why a journal line was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The last line has no end of line: a write that did not complete.
    Torn,
    /// The record carries no checksum, or one that does not match its text.
    BadChecksum,
    /// The checksum matches but the record does not read as a lease change.
    Unreadable,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Torn => "torn last line (a write that did not complete)",
            Self::BadChecksum => "missing or wrong checksum",
            Self::Unreadable => "not a lease record",
        })
    }
}

/// What [`read_journal`] found: the trusted changes in order, and the lines dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalRead {
    /// The changes to replay, in file order.
    pub changes: Vec<LeaseChange>,
    /// The lines not trusted.
    pub dropped: Vec<DroppedRecord>,
}

/// Reads a journal's bytes: every record whose checksum matches (or, in a `v1` journal, every
/// record that reads), in order; every other non-comment line is reported as dropped. Never
/// fails and never panics, whatever the bytes.
pub fn read_journal(bytes: &[u8]) -> JournalRead {
    let mut read = JournalRead::default();
    let checksummed = bytes.split(|&b| b == b'\n').next() != Some(HEADER_V1.as_bytes());
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        // The piece after the last newline: empty when the file ends with one.
        let last = lines.peek().is_none();
        // Only the header may be a comment in a checksummed journal (its writer writes no
        // other), so a record whose first byte rotted into `#` is reported, not ignored.
        let comment = line.first() == Some(&b'#') && (index == 0 || !checksummed);
        if line.is_empty() || (comment && !last) {
            continue;
        }
        let verdict = if last {
            Err(DropReason::Torn)
        } else {
            std::str::from_utf8(line)
                .map_err(|_| {
                    if checksummed {
                        DropReason::BadChecksum
                    } else {
                        DropReason::Unreadable
                    }
                })
                .and_then(|text| parse_record(text, checksummed))
        };
        match verdict {
            Ok(change) => read.changes.push(change),
            Err(reason) => read.dropped.push(DroppedRecord {
                line: index + 1,
                reason,
                text: String::from_utf8_lossy(line).chars().take(80).collect(),
            }),
        }
    }
    read
}

/// The text of a journal holding `changes`: the header, then one checksummed record per
/// change. [`read_journal`] reads it back as exactly `changes`.
pub fn journal_text(changes: &[LeaseChange]) -> String {
    let mut text = String::from(HEADER);
    for change in changes {
        format_record(&mut text, change);
    }
    text
}

impl LeaseJournal {
    /// Opens (or creates) the journal at `path`, replays it into `store`, and compacts it to
    /// the bindings still in force at `now`. Returns the journal and the lines that were not
    /// trusted (a torn last line after a crash, a record failing its checksum, foreign
    /// text), which were dropped; the caller logs them.
    pub fn open(
        path: impl Into<PathBuf>,
        store: &mut LeaseTable,
        now: SystemTime,
    ) -> io::Result<(Self, Vec<DroppedRecord>)> {
        let path = path.into();
        let read = match std::fs::read(&path) {
            Ok(bytes) => read_journal(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => JournalRead::default(),
            Err(e) => return Err(e),
        };
        for change in read.changes {
            store.apply(change);
        }
        let snapshot = store.snapshot(now);
        let (file, good_len) = write_snapshot(&path, &snapshot)?;
        let journal = Self {
            path,
            file,
            sync_each_write: false,
            appended: 0,
            snapshot_lines: snapshot.len(),
            good_len,
            torn: false,
            line: String::with_capacity(256),
        };
        Ok((journal, read.dropped))
    }

    /// Also `fdatasync` after every write (survives power loss; much slower).
    pub fn sync_each_write(&mut self, sync: bool) {
        self.sync_each_write = sync;
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `changes` with one `write`. Call before sending the reply that announces them;
    /// on error, do not send it.
    ///
    /// After a failed write the file is first cut back to its last good record (a failed
    /// write may have left part of a line), so a record is never appended onto a torn one.
    pub fn append(&mut self, changes: &[LeaseChange]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.file.set_len(self.good_len)?;
            self.torn = false;
        }
        self.line.clear();
        for change in changes {
            format_record(&mut self.line, change);
        }
        let written = self.file.write_all(self.line.as_bytes()).and_then(|()| {
            if self.sync_each_write {
                self.file.sync_data()?;
            }
            Ok(())
        });
        if let Err(e) = written {
            // Cut the torn tail now if the file system lets us; otherwise before the next
            // write.
            self.torn = self.file.set_len(self.good_len).is_err();
            return Err(e);
        }
        self.good_len += self.line.len() as u64;
        self.appended += changes.len();
        Ok(())
    }

    /// Whether the journal has grown enough past the live bindings to be worth compacting.
    pub fn wants_compaction(&self) -> bool {
        self.appended > 4 * self.snapshot_lines.max(16_384)
    }

    /// Rewrites the journal as a snapshot of `store` at `now`. On failure the journal is
    /// left as it was, and [`Self::wants_compaction`] waits as long again before asking for
    /// another try (a full disk must not cost a snapshot per request).
    pub fn compact(&mut self, store: &LeaseTable, now: SystemTime) -> io::Result<()> {
        self.compact_to(&store.snapshot(now))
    }

    /// Rewrites the journal as `snapshot` (a [`LeaseTable::snapshot`] taken after every
    /// change appended so far), as [`Self::compact`] does.
    pub fn compact_to(&mut self, snapshot: &[LeaseChange]) -> io::Result<()> {
        let written = write_snapshot(&self.path, snapshot);
        let (file, good_len) = written.inspect_err(|_| self.appended = 0)?;
        (self.file, self.good_len) = (file, good_len);
        self.torn = false;
        self.snapshot_lines = snapshot.len();
        self.appended = 0;
        Ok(())
    }
}

/// Writes `changes` to a temporary file beside `path`, syncs it, renames it over `path`, and
/// returns `path` opened for appending, with its length. A temporary file that could not be
/// completed is removed.
fn write_snapshot(path: &Path, changes: &[LeaseChange]) -> io::Result<(File, u64)> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let text = journal_text(changes);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()?;
    }
    let file = OpenOptions::new().append(true).open(path)?;
    Ok((file, text.len() as u64))
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Appends the record of `change` and its checksum, with the end of line.
fn format_record(out: &mut String, change: &LeaseChange) {
    let start = out.len();
    // Writing to a String cannot fail.
    let _ = match change {
        LeaseChange::Bind(lease) => write!(
            out,
            "bind {} {} {}",
            lease.mac,
            lease.ip,
            unix_secs(lease.expires)
        ),
        LeaseChange::Free { mac, ip } => write!(out, "free {mac} {ip}"),
        LeaseChange::Decline { ip, until } => write!(out, "decline {ip} {}", unix_secs(*until)),
    };
    let checksum = crc32(&out.as_bytes()[start..]);
    let _ = writeln!(out, "{CHECKSUM}{checksum:08x}");
}

/// One line (without its end of line): a record followed by its checksum, or in a `v1`
/// journal (`checksummed` false) a bare record.
fn parse_record(line: &str, checksummed: bool) -> Result<LeaseChange, DropReason> {
    let record = if checksummed {
        let (record, checksum) = line.rsplit_once(CHECKSUM).ok_or(DropReason::BadChecksum)?;
        let valid = checksum.len() == 8
            && u32::from_str_radix(checksum, 16).is_ok_and(|sum| sum == crc32(record.as_bytes()));
        if !valid {
            return Err(DropReason::BadChecksum);
        }
        record
    } else {
        line
    };
    parse_change(record).ok_or(DropReason::Unreadable)
}

fn parse_change(line: &str) -> Option<LeaseChange> {
    let mut words = line.split_ascii_whitespace();
    let time = |word: Option<&str>| -> Option<SystemTime> {
        let secs: u64 = word?.parse().ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    };
    let change = match words.next()? {
        "bind" => {
            let mac: MacAddr = words.next()?.parse().ok()?;
            let ip: Ipv4Addr = words.next()?.parse().ok()?;
            let expires = time(words.next())?;
            LeaseChange::Bind(Lease { mac, ip, expires })
        }
        "free" => LeaseChange::Free {
            mac: words.next()?.parse().ok()?,
            ip: words.next()?.parse().ok()?,
        },
        "decline" => LeaseChange::Decline {
            ip: words.next()?.parse().ok()?,
            until: time(words.next())?,
        },
        _ => return None,
    };
    words.next().is_none().then_some(change)
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib and Ethernet compute it).
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| {
        CRC32_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8)
    })
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[n] = crc;
        n += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::super::{LeaseClient, Subnet};
    use super::*;

    fn store() -> LeaseTable {
        LeaseTable::new(
            vec![Subnet::new(
                Ipv4Addr::new(192, 0, 2, 0),
                24,
                Ipv4Addr::new(192, 0, 2, 10),
                Ipv4Addr::new(192, 0, 2, 200),
            )],
            vec![],
        )
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn lease() -> Lease {
        Lease {
            mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            ip: Ipv4Addr::new(192, 0, 2, 100),
            expires: t(3600),
        }
    }

    fn change_strategy() -> impl proptest::strategy::Strategy<Value = LeaseChange> {
        use proptest::prelude::*;
        (
            0u8..3,
            proptest::array::uniform6(any::<u8>()),
            any::<u32>(),
            0u64..=u64::from(u32::MAX) * 4,
        )
            .prop_map(|(kind, mac, ip, secs)| {
                let (mac, ip) = (MacAddr(mac), Ipv4Addr::from(ip));
                let time = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                match kind {
                    0 => LeaseChange::Bind(Lease {
                        mac,
                        ip,
                        expires: time,
                    }),
                    1 => LeaseChange::Free { mac, ip },
                    _ => LeaseChange::Decline { ip, until: time },
                }
            })
    }

    #[test]
    fn records_round_trip_with_their_checksum() {
        let lease = lease();
        let changes = [
            LeaseChange::Bind(lease),
            LeaseChange::Free {
                mac: lease.mac,
                ip: lease.ip,
            },
            LeaseChange::Decline {
                ip: lease.ip,
                until: t(600),
            },
        ];
        let text = journal_text(&changes);
        assert!(text.starts_with(HEADER));
        assert!(text.contains("bind 52:54:00:12:34:56 192.0.2.100 1700003600 crc32="));
        let read = read_journal(text.as_bytes());
        assert_eq!(read.changes, changes);
        assert!(read.dropped.is_empty());
        // The checksum is CRC-32 as zlib computes it.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn records_failing_their_checksum_are_dropped() {
        let lease = lease();
        let good = journal_text(&[LeaseChange::Bind(lease)]);
        let record = good.lines().nth(1).unwrap();
        let cases = [
            // One digit changed: another address, same checksum.
            (
                record.replace("192.0.2.100", "192.0.2.101"),
                DropReason::BadChecksum,
            ),
            // No checksum.
            (
                "bind 52:54:00:12:34:56 192.0.2.100 1700003600".to_string(),
                DropReason::BadChecksum,
            ),
            // A torn record with the next one appended onto it.
            (
                format!(
                    "bind 52:54:00:12:34:56 192.0{}",
                    record.replace("192.0.2.100", "192.0.2.101")
                ),
                DropReason::BadChecksum,
            ),
            // A checksum over text that is no record.
            (
                format!("frobnicate{CHECKSUM}{:08x}", crc32(b"frobnicate")),
                DropReason::Unreadable,
            ),
        ];
        for (line, reason) in cases {
            let text = format!("{HEADER}{line}\n{record}\n");
            let read = read_journal(text.as_bytes());
            assert_eq!(read.changes, vec![LeaseChange::Bind(lease)], "{line}");
            assert_eq!(read.dropped.len(), 1, "{line}");
            assert_eq!(read.dropped[0].line, 2);
            assert_eq!(read.dropped[0].reason, reason, "{line}");
        }
        // A last line without its end of line is torn, even with a valid checksum.
        let torn = good.trim_end();
        let read = read_journal(torn.as_bytes());
        assert!(read.changes.is_empty());
        assert_eq!(read.dropped[0].reason, DropReason::Torn);
    }

    #[test]
    fn version_1_journals_are_still_read() {
        let text = format!(
            "{HEADER_V1}\nbind 52:54:00:12:34:56 192.0.2.100 1700003600\nfree 52:54:00:12:34:56 192.0.2.100\nbind 52:54:00:12:34:57 192.0\n"
        );
        let read = read_journal(text.as_bytes());
        let lease = lease();
        assert_eq!(
            read.changes,
            vec![
                LeaseChange::Bind(lease),
                LeaseChange::Free {
                    mac: lease.mac,
                    ip: lease.ip
                }
            ]
        );
        assert_eq!(read.dropped.len(), 1);
        assert_eq!(read.dropped[0].reason, DropReason::Unreadable);
    }

    proptest::proptest! {
        #[test]
        fn any_changes_round_trip(changes in proptest::collection::vec(change_strategy(), 0..20)) {
            let read = read_journal(journal_text(&changes).as_bytes());
            proptest::prop_assert_eq!(read.changes, changes);
            proptest::prop_assert!(read.dropped.is_empty());
        }

        #[test]
        fn any_corruption_of_a_record_is_dropped(
            change in change_strategy(),
            at in proptest::num::usize::ANY,
            byte in proptest::num::u8::ANY,
        ) {
            // One byte of a record changed (not the end of line): either the record reads
            // back unchanged (the byte was the same) or it is dropped, never misread.
            let text = journal_text(&[change]);
            let record_start = HEADER.len();
            let at = record_start + at % (text.len() - record_start - 1);
            let mut bytes = text.into_bytes();
            let same = bytes[at] == byte;
            bytes[at] = byte;
            let read = read_journal(&bytes);
            if same {
                proptest::prop_assert_eq!(read.changes, vec![change]);
            } else {
                proptest::prop_assert!(read.changes.is_empty(), "{:?}", read.changes);
                // A new end of line splits it in two pieces, one possibly empty.
                let pieces = if byte == b'\n' { 1..=2 } else { 1..=1 };
                proptest::prop_assert!(pieces.contains(&read.dropped.len()), "{:?}", read.dropped);
            }
        }

        #[test]
        fn any_bytes_read_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            // Whatever is trusted writes and reads back as itself.
            let read = read_journal(&bytes);
            let again = read_journal(journal_text(&read.changes).as_bytes());
            proptest::prop_assert_eq!(again.changes, read.changes);
        }
    }

    fn bind_clients(
        store: &mut LeaseTable,
        journal: &mut LeaseJournal,
        clients: std::ops::RangeInclusive<u8>,
    ) -> Vec<Lease> {
        clients
            .map(|n| {
                let client = LeaseClient {
                    mac: MacAddr([2, 0, 0, 0, 0, n]),
                    client_id: None,
                };
                let ip = store.offer(0, client, None, t(1)).unwrap();
                let (lease, changes) = store.request(0, client, ip, t(1)).unwrap();
                journal.append(&changes).unwrap();
                lease
            })
            .collect()
    }

    #[test]
    fn reopen_keeps_bindings_and_drops_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        let mut first = store();
        let (mut journal, dropped) = LeaseJournal::open(&path, &mut first, t(0)).unwrap();
        assert!(dropped.is_empty());
        let bound = bind_clients(&mut first, &mut journal, 1..=5);
        drop(journal);
        // A crash mid-line leaves a torn tail.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"bind 02:00:00:00:00:09 192.0").unwrap();
        drop(file);

        let mut second = store();
        let (_journal, dropped) = LeaseJournal::open(&path, &mut second, t(2)).unwrap();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].reason, DropReason::Torn);
        assert_eq!(dropped[0].text, "bind 02:00:00:00:00:09 192.0");
        for lease in &bound {
            assert_eq!(second.lease_of(lease.mac, t(3)), Some(*lease));
        }
        // The compacted file holds exactly the live bindings.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("bind")).count(), 5);
    }

    #[test]
    fn a_failed_write_is_cut_back_before_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        let mut table = store();
        let (mut journal, _) = LeaseJournal::open(&path, &mut table, t(0)).unwrap();
        let mut bound = bind_clients(&mut table, &mut journal, 1..=2);
        // What a full disk leaves: part of a record written, the write failed.
        let good = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"bind 02:00:00:00:00:03 192.0.2")
            .unwrap();
        journal.torn = true;
        bound.extend(bind_clients(&mut table, &mut journal, 4..=4));
        let text = std::fs::read(&path).unwrap();
        assert!(text.len() as u64 > good);
        let read = read_journal(&text);
        assert!(read.dropped.is_empty(), "{:?}", read.dropped);
        assert_eq!(read.changes.len(), 3);
        let mut reopened = store();
        LeaseJournal::open(&path, &mut reopened, t(2)).unwrap();
        for lease in &bound {
            assert_eq!(reopened.lease_of(lease.mac, t(3)), Some(*lease));
        }
    }

    #[test]
    fn a_failed_compaction_leaves_the_journal_and_waits_before_the_next_try() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        let mut table = store();
        let (mut journal, _) = LeaseJournal::open(&path, &mut table, t(0)).unwrap();
        let bound = bind_clients(&mut table, &mut journal, 1..=2);
        // The snapshot cannot be written (its temporary name is taken by a directory).
        std::fs::create_dir(dir.path().join("leases.tmp")).unwrap();
        journal.appended = 1_000_000;
        assert!(journal.wants_compaction());
        assert!(journal.compact(&table, t(1)).is_err());
        assert!(!journal.wants_compaction());
        // The journal still takes records, and they are all there at the next start.
        let more = bind_clients(&mut table, &mut journal, 3..=3);
        std::fs::remove_dir(dir.path().join("leases.tmp")).unwrap();
        let mut reopened = store();
        let (_, dropped) = LeaseJournal::open(&path, &mut reopened, t(2)).unwrap();
        assert!(dropped.is_empty());
        for lease in bound.iter().chain(&more) {
            assert_eq!(reopened.lease_of(lease.mac, t(3)), Some(*lease));
        }
    }
}
