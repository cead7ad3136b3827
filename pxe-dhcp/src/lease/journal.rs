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
//! Line format (`#` starts a comment; unknown or torn lines are skipped):
//!
//! ```text
//! bind 52:54:00:12:34:56 192.0.2.100 1700003600
//! free 52:54:00:12:34:56 192.0.2.100
//! decline 192.0.2.101 1700000600
//! ```

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pxe_policy::MacAddr;

use super::{Lease, LeaseChange, LeaseStore};

const HEADER: &str = "# pxe-dhcp lease journal v1\n";

/// The persistent side of a [`LeaseStore`]: replays at open, appends every change.
#[derive(Debug)]
pub struct LeaseJournal {
    path: PathBuf,
    file: File,
    sync_each_write: bool,
    /// Lines appended since the last compaction.
    appended: usize,
    /// Lines in the last snapshot.
    snapshot_lines: usize,
    line: String,
}

impl LeaseJournal {
    /// Opens (or creates) the journal at `path`, replays it into `store`, and compacts it to
    /// the bindings still in force at `now`. Returns the journal and the number of lines that
    /// could not be read (a torn last line after a crash, or foreign text), which were skipped.
    pub fn open(
        path: impl Into<PathBuf>,
        store: &mut LeaseStore,
        now: SystemTime,
    ) -> io::Result<(Self, usize)> {
        let path = path.into();
        let mut skipped = 0;
        match File::open(&path) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    let line = line?;
                    let Some(change) = std::str::from_utf8(&line).ok().and_then(parse_line) else {
                        if !line.is_empty() && line.first() != Some(&b'#') {
                            skipped += 1;
                        }
                        continue;
                    };
                    store.apply(change);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let snapshot = store.snapshot(now);
        let file = write_snapshot(&path, &snapshot)?;
        let journal = Self {
            path,
            file,
            sync_each_write: false,
            appended: 0,
            snapshot_lines: snapshot.len(),
            line: String::with_capacity(256),
        };
        Ok((journal, skipped))
    }

    /// Also `fdatasync` after every write (survives power loss; much slower).
    pub fn sync_each_write(&mut self, sync: bool) {
        self.sync_each_write = sync;
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `changes` with one `write`. Call before sending the reply that announces them.
    pub fn append(&mut self, changes: &[LeaseChange]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        self.line.clear();
        for change in changes {
            format_line(&mut self.line, change);
        }
        self.file.write_all(self.line.as_bytes())?;
        if self.sync_each_write {
            self.file.sync_data()?;
        }
        self.appended += changes.len();
        Ok(())
    }

    /// Whether the journal has grown enough past the live bindings to be worth compacting.
    pub fn wants_compaction(&self) -> bool {
        self.appended > 4 * self.snapshot_lines.max(16_384)
    }

    /// Rewrites the journal as a snapshot of `store` at `now`.
    pub fn compact(&mut self, store: &LeaseStore, now: SystemTime) -> io::Result<()> {
        let snapshot = store.snapshot(now);
        self.file = write_snapshot(&self.path, &snapshot)?;
        self.snapshot_lines = snapshot.len();
        self.appended = 0;
        Ok(())
    }
}

/// Writes `changes` to a temporary file beside `path`, syncs it, renames it over `path`, and
/// returns `path` opened for appending.
fn write_snapshot(path: &Path, changes: &[LeaseChange]) -> io::Result<File> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut text = String::from(HEADER);
    for change in changes {
        format_line(&mut text, change);
    }
    {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn format_line(out: &mut String, change: &LeaseChange) {
    // Writing to a String cannot fail.
    let _ = match change {
        LeaseChange::Bind(lease) => writeln!(
            out,
            "bind {} {} {}",
            lease.mac,
            lease.ip,
            unix_secs(lease.expires)
        ),
        LeaseChange::Free { mac, ip } => writeln!(out, "free {mac} {ip}"),
        LeaseChange::Decline { ip, until } => writeln!(out, "decline {ip} {}", unix_secs(*until)),
    };
}

fn parse_line(line: &str) -> Option<LeaseChange> {
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

#[cfg(test)]
mod tests {
    use super::super::{LeaseClient, Subnet};
    use super::*;

    fn store() -> LeaseStore {
        LeaseStore::new(
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

    #[test]
    fn lines_round_trip() {
        let lease = Lease {
            mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            ip: Ipv4Addr::new(192, 0, 2, 100),
            expires: t(3600),
        };
        for change in [
            LeaseChange::Bind(lease),
            LeaseChange::Free {
                mac: lease.mac,
                ip: lease.ip,
            },
            LeaseChange::Decline {
                ip: lease.ip,
                until: t(600),
            },
        ] {
            let mut line = String::new();
            format_line(&mut line, &change);
            assert_eq!(parse_line(line.trim_end()), Some(change), "{line}");
        }
        assert_eq!(parse_line("bind 52:54:00:12:34:56 192.0.2.1"), None);
        assert_eq!(parse_line("bind 52:54:00:12:34:56 192.0.2.1 1 extra"), None);
        assert_eq!(parse_line("frobnicate"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_change_round_trips(
            kind in 0u8..3,
            mac in proptest::array::uniform6(proptest::num::u8::ANY),
            ip in proptest::num::u32::ANY,
            secs in 0u64..=u64::from(u32::MAX) * 4,
        ) {
            let (mac, ip) = (MacAddr(mac), Ipv4Addr::from(ip));
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let change = match kind {
                0 => LeaseChange::Bind(Lease { mac, ip, expires: time }),
                1 => LeaseChange::Free { mac, ip },
                _ => LeaseChange::Decline { ip, until: time },
            };
            let mut line = String::new();
            format_line(&mut line, &change);
            proptest::prop_assert!(line.ends_with('\n'));
            proptest::prop_assert_eq!(parse_line(line.trim_end()), Some(change));
        }

        #[test]
        fn any_text_parses_or_is_skipped(text in "\\PC{0,80}") {
            // Foreign or torn text never panics; what it reads as is a change that writes
            // and reads back as itself.
            if let Some(change) = parse_line(&text) {
                let mut line = String::new();
                format_line(&mut line, &change);
                proptest::prop_assert_eq!(parse_line(line.trim_end()), Some(change));
            }
        }
    }

    #[test]
    fn reopen_keeps_bindings_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases");
        let mut first = store();
        let (mut journal, skipped) = LeaseJournal::open(&path, &mut first, t(0)).unwrap();
        assert_eq!(skipped, 0);
        let mut bound = Vec::new();
        for n in 1..=5u8 {
            let client = LeaseClient {
                mac: MacAddr([2, 0, 0, 0, 0, n]),
                client_id: None,
            };
            let ip = first.offer(0, client, None, t(1)).unwrap();
            let (lease, changes) = first.request(0, client, ip, t(1)).unwrap();
            journal.append(&changes).unwrap();
            bound.push(lease);
        }
        drop(journal);
        // A crash mid-line leaves a torn tail.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"bind 02:00:00:00:00:09 192.0").unwrap();
        drop(file);

        let mut second = store();
        let (_journal, skipped) = LeaseJournal::open(&path, &mut second, t(2)).unwrap();
        assert_eq!(skipped, 1);
        for lease in &bound {
            assert_eq!(second.lease_of(lease.mac, t(3)), Some(*lease));
        }
        // The compacted file holds exactly the live bindings.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("bind")).count(), 5);
    }
}
