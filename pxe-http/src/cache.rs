//! Small boot files kept in memory, so that the files loaders fetch by the dozen (GRUB's
//! modules and configs, PXELINUX's `.c32` modules, iPXE scripts on disk) cost one `stat` per
//! request instead of resolving the path, opening, reading and closing the file. Where the
//! server sends files by `sendfile` (its own threads), a file too large to be worth copying
//! from memory is kept open instead: its bytes stay in the page cache, and the open file
//! spares the request the path resolution and `open`.
//!
//! An entry is served only while the file its path leads to is the one that was read: same
//! device and inode, same size, same modification and change times. Any write to the file
//! changes its change time (`ctime`), and replacing it (a rename over it, a new symbolic link)
//! changes the inode, so an edited file is read again on its next request. Because file
//! system timestamps are coarse (a kernel tick, or whole seconds on some file systems), a
//! write landing in the same tick as the read could keep the same times: a file is therefore
//! kept only once it has been left unchanged for [`SETTLED`].
//!
//! The cache is keyed by the path below a mount, before any symbolic link is resolved; a
//! path first goes through the confined look-up (`files::find_confined`), which refuses
//! links that leave the root. A link changed later to lead elsewhere leads to another inode,
//! which misses.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::files::{Validators, SMALL_BODY};

/// The most files kept open, whatever the capacity: each holds a file descriptor (and the
/// space of a file deleted since, until its path is asked for again or it is evicted).
const MAX_OPEN: usize = 128;

/// How long a file must have been left unchanged before it is kept: longer than the
/// coarsest timestamp a Linux file system keeps (one second; two on FAT).
const SETTLED: Duration = Duration::from_secs(3);

/// Small files in memory, shared by every copy of a service. Cloning is cheap.
#[derive(Debug, Clone)]
pub(crate) struct FileCache {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The most bytes of file content kept.
    capacity: usize,
    entries: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Keyed by the path's bytes: hashing a `Path` walks its components, which showed in
    /// a small file's profile.
    by_path: HashMap<OsString, Arc<Cached>>,
    /// Paths in the order they were kept, with the insertion number of the entry each was
    /// kept as (an entry replaced since leaves a stale pair here, skipped on eviction).
    order: VecDeque<(OsString, u64)>,
    /// Bytes of the files kept (in memory or open).
    bytes: usize,
    /// Files kept open.
    open: usize,
    next_insertion: u64,
}

/// A file kept.
#[derive(Debug)]
pub(crate) struct Cached {
    identity: Identity,
    insertion: u64,
    pub(crate) content: Kept,
    pub(crate) validators: Validators,
}

impl Cached {
    /// The file's size.
    pub(crate) fn len(&self) -> u64 {
        self.identity.size
    }
}

/// How a kept file is held.
#[derive(Debug, Clone)]
pub(crate) enum Kept {
    /// The whole file, in memory.
    Content(Bytes),
    /// The file, open.
    Open(Arc<File>),
}

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Identity {
    fn of(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether the file has been left unchanged for [`SETTLED`] by `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let (secs, nanos) = self.changed;
        let changed = u64::try_from(secs)
            .ok()
            .zip(u32::try_from(nanos).ok())
            .map(|(secs, nanos)| Duration::new(secs, nanos));
        changed.is_some_and(|changed| now.saturating_sub(changed) >= SETTLED)
    }
}

impl FileCache {
    /// A cache holding at most `capacity` bytes of content.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity,
                entries: RwLock::new(Entries::default()),
            }),
        }
    }

    /// The content kept for `path`, if the file the path leads to is still the one that
    /// was read. Blocking: one `stat` when an entry exists, nothing otherwise.
    pub(crate) fn lookup(&self, path: &Path) -> Option<Arc<Cached>> {
        let cached = self.read().by_path.get(path.as_os_str()).cloned()?;
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_file() && Identity::of(&metadata) == cached.identity => {
                Some(cached)
            }
            _ => {
                self.forget(path, cached.insertion);
                None
            }
        }
    }

    /// Keeps the file at `path` (`metadata` taken of it before it was read or opened) as
    /// `content`, if it is small enough and has been left unchanged long enough by `now`.
    pub(crate) fn keep(
        &self,
        path: &Path,
        metadata: &Metadata,
        content: Kept,
        validators: &Validators,
        now: SystemTime,
    ) {
        let identity = Identity::of(metadata);
        let Ok(len) = usize::try_from(identity.size) else {
            return;
        };
        let opens = usize::from(matches!(content, Kept::Open(_)));
        if matches!(&content, Kept::Content(bytes) if bytes.len() != len)
            || len as u64 > SMALL_BODY
            || len > self.shared.capacity
            || !identity.settled(now)
        {
            return;
        }
        let mut entries = self.write();
        if entries
            .by_path
            .get(path.as_os_str())
            .is_some_and(|kept| kept.identity == identity)
        {
            return; // another request kept it meanwhile
        }
        let insertion = entries.next_insertion;
        entries.next_insertion += 1;
        let cached = Arc::new(Cached {
            identity,
            insertion,
            content,
            validators: validators.clone(),
        });
        let key = path.as_os_str().to_owned();
        if let Some(replaced) = entries.by_path.insert(key.clone(), cached) {
            entries.uncount(&replaced);
        }
        entries.bytes += len;
        entries.open += opens;
        entries.order.push_back((key, insertion));
        while entries.bytes > self.shared.capacity || entries.open > MAX_OPEN {
            entries.evict_oldest();
        }
        // Replacements leave stale pairs behind; drop them before they outnumber entries.
        if entries.order.len() > 2 * entries.by_path.len() + 64 {
            let mut order = std::mem::take(&mut entries.order);
            order.retain(|(path, insertion)| entries.is_current(path, *insertion));
            entries.order = order;
        }
    }

    /// Drops the entry for `path` if it is still the one numbered `insertion`.
    fn forget(&self, path: &Path, insertion: u64) {
        self.write().remove_current(path.as_os_str(), insertion);
    }

    /// Bytes of the files held (for tests).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.read().bytes
    }

    // Nothing panics while holding the lock, so a poisoned one holds consistent entries.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.shared
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    /// Whether the entry for `path` is still the one kept as number `insertion`.
    fn is_current(&self, path: &OsStr, insertion: u64) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|kept| kept.insertion == insertion)
    }

    /// Drops the entry for `path` if it is still the one numbered `insertion`; whether it did.
    fn remove_current(&mut self, path: &OsStr, insertion: u64) -> bool {
        if !self.is_current(path, insertion) {
            return false;
        }
        if let Some(gone) = self.by_path.remove(path) {
            self.uncount(&gone);
        }
        true
    }

    /// Takes an entry no longer held off the counts.
    fn uncount(&mut self, gone: &Cached) {
        self.bytes -= gone.len() as usize;
        self.open -= usize::from(matches!(gone.content, Kept::Open(_)));
    }

    /// Drops the entry kept longest ago.
    fn evict_oldest(&mut self) {
        while let Some((path, insertion)) = self.order.pop_front() {
            if self.remove_current(&path, insertion) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::UNIX_EPOCH;

    fn file(dir: &Path, name: &str, content: &[u8]) -> (PathBuf, Metadata, Bytes) {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        (path, metadata, Bytes::copy_from_slice(content))
    }

    /// `keep`, as if the file had been left unchanged since it was written.
    fn keep_settled(cache: &FileCache, path: &Path, metadata: &Metadata, content: &Bytes) {
        let later = SystemTime::now() + SETTLED;
        let content = Kept::Content(content.clone());
        cache.keep(path, metadata, content, &Validators::of(metadata), later);
    }

    #[test]
    fn a_file_just_written_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (path, metadata, content) = file(dir.path(), "grub.cfg", b"set timeout=0\n");
        let cache = FileCache::new(1 << 20);
        let now = SystemTime::now();
        let content = Kept::Content(content);
        cache.keep(&path, &metadata, content, &Validators::of(&metadata), now);
        assert!(cache.lookup(&path).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn settled_means_unchanged_for_the_settling_time() {
        let changed = Identity {
            dev: 1,
            ino: 2,
            size: 3,
            modified: (100, 0),
            changed: (100, 500),
        };
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert!(!changed.settled(at(100)));
        assert!(!changed.settled(at(102)));
        assert!(changed.settled(at(104)));
        assert!(!changed.settled(UNIX_EPOCH));
    }

    #[test]
    fn a_kept_file_is_served_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, metadata, content) = file(dir.path(), "ldlinux.c32", b"first version");
        let cache = FileCache::new(1 << 20);
        keep_settled(&cache, &path, &metadata, &content);
        let hit = cache.lookup(&path).expect("kept");
        assert!(matches!(&hit.content, Kept::Content(kept) if *kept == content));

        // Same size, rewritten in place a kernel tick later (the race within one tick is
        // what `SETTLED` is for): the change time moves, the entry goes.
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&path, b"later version").unwrap();
        assert!(cache.lookup(&path).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_replaced_or_removed_file_misses() {
        let dir = tempfile::tempdir().unwrap();
        let (path, metadata, content) = file(dir.path(), "menu.c32", b"old");
        let cache = FileCache::new(1 << 20);
        keep_settled(&cache, &path, &metadata, &content);
        file(dir.path(), "new.c32", b"new");
        std::fs::rename(dir.path().join("new.c32"), &path).unwrap();
        assert!(
            cache.lookup(&path).is_none(),
            "a rename over it is a new inode"
        );

        let (path, metadata, content) = file(dir.path(), "gone.c32", b"gone");
        keep_settled(&cache, &path, &metadata, &content);
        std::fs::remove_file(&path).unwrap();
        assert!(cache.lookup(&path).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn the_oldest_entries_go_when_the_capacity_is_reached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(10);
        let (a, meta_a, content_a) = file(dir.path(), "a", b"aaaa");
        let (b, meta_b, content_b) = file(dir.path(), "b", b"bbbb");
        let (c, meta_c, content_c) = file(dir.path(), "c", b"cccc");
        keep_settled(&cache, &a, &meta_a, &content_a);
        keep_settled(&cache, &b, &meta_b, &content_b);
        keep_settled(&cache, &a, &meta_a, &content_a); // already kept: counted once
        assert_eq!(cache.bytes(), 8);
        keep_settled(&cache, &c, &meta_c, &content_c);
        assert_eq!(cache.bytes(), 8);
        assert!(cache.lookup(&a).is_none(), "a was kept longest ago");
        assert!(cache.lookup(&b).is_some());
        assert!(cache.lookup(&c).is_some());
    }

    #[test]
    fn files_larger_than_a_small_body_or_the_capacity_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(4);
        let (path, metadata, content) = file(dir.path(), "big", b"too big");
        keep_settled(&cache, &path, &metadata, &content);
        assert_eq!(cache.bytes(), 0);
    }
}
