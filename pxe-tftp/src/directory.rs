//! [`Directory`]: served files under one root, each mapped read-only (memmap2) and shared.
//! File I/O, so it is part of the `server` feature, beside the sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use memmap2::Mmap;

use crate::error::Error;
use crate::source::{normalize, FileSource};

#[derive(Debug, Clone)]
struct Cached {
    len: u64,
    modified: Option<SystemTime>,
    /// Weak, so that a file nobody downloads any more is unmapped.
    content: Weak<Mmap>,
    /// A strong hold on the map for [`Directory::keep_for`] after the last open, so that a
    /// download right after another (EDK2's size probe, then the download; a boot storm's
    /// stragglers) does not open and map the file again.
    kept: Option<Arc<Mmap>>,
    last_open: Instant,
}

/// The owner of one file's map, shared by every `Bytes` handed out for it.
#[derive(Debug)]
struct SharedFile(Arc<Mmap>);

impl AsRef<[u8]> for SharedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Maps `file`, a regular file the caller has opened read-only and checked, whole.
///
/// Mapping rather than reading keeps memory bounded whatever the root holds: the pages are
/// the kernel's page cache, read on demand, shared with every other reader of the file and
/// reclaimable under memory pressure, and a 1 GiB file costs no heap at all.
#[allow(unsafe_code)]
fn map_read_only(file: &std::fs::File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process, so nothing here writes
    // through it. The one hazard memmap2 documents is another process changing the file
    // while it is mapped: a change of content shows in the blocks still to be sent, and a
    // truncation makes reading a page past the new end raise SIGBUS. Files are to be
    // replaced by rename (a new inode, mapped afresh at the next open, the old map lives on
    // with its transfers), never truncated in place; `Directory`'s documentation says so.
    unsafe { Mmap::map(file) }
}

/// Files under one directory, and nothing outside it.
///
/// Each regular file is mapped read-only (not read into the heap) and the map is shared by
/// every transfer of it until the file's size or modification time changes: a file served to
/// a thousand clients is one map, its pages the kernel's reclaimable page cache, so memory
/// stays bounded whatever the root holds. The map is dropped when its last transfer has
/// ended and it has not been opened for [`keep_for`](Self::keep_for) (default 10 s; checked
/// at each open). A resolved path that leaves the root through a symlink is refused, and so
/// is anything but a regular file (devices, FIFOs, directories).
///
/// Replace files in the root by renaming a new file over the old one (as `install`, package
/// managers and `mv` do): transfers running then finish with the old content, new ones get
/// the new. A file truncated in place while it is served makes the process fault (SIGBUS)
/// when a transfer reaches a page past the new end; one rewritten in place without a change
/// of size can mix old and new content in a download.
#[derive(Debug)]
pub struct Directory {
    root: PathBuf,
    case_insensitive: bool,
    keep_for: Duration,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

/// How long a file stays in memory after its last open by default.
const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(10);

impl Directory {
    /// Serves the files under `root` (which must exist).
    pub fn new(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().canonicalize().map_err(|source| Error::Io {
            action: "resolving the root directory",
            source,
        })?;
        Ok(Self {
            root,
            case_insensitive: false,
            keep_for: DEFAULT_KEEP_FOR,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps a file in memory for `duration` after it was last opened, even with no transfer
    /// running (default 10 s): reading a large file again costs more than serving it. Zero
    /// frees it as soon as its last transfer ends.
    pub fn keep_for(mut self, duration: Duration) -> Self {
        self.keep_for = duration;
        self
    }

    /// Matches names case-insensitively when no exact match exists (Windows-style clients).
    pub fn case_insensitive(mut self, yes: bool) -> Self {
        self.case_insensitive = yes;
        self
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str, components: &[&str]) -> Result<PathBuf, Error> {
        let not_found = || Error::NotFound {
            path: path.to_string(),
        };
        let mut candidate = self.root.clone();
        for component in components {
            let exact = candidate.join(component);
            if !self.case_insensitive || exact.symlink_metadata().is_ok() {
                candidate = exact;
                continue;
            }
            let entries = std::fs::read_dir(&candidate).map_err(|_| not_found())?;
            let found = entries
                .filter_map(Result::ok)
                .find(|entry| {
                    entry
                        .file_name()
                        .to_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(component))
                })
                .ok_or_else(not_found)?;
            candidate = found.path();
        }
        let canonical = candidate.canonicalize().map_err(|_| not_found())?;
        // Symlinks are followed only while they stay inside the root.
        if !canonical.starts_with(&self.root) {
            return Err(Error::AccessDenied {
                path: path.to_string(),
                reason: "resolves outside the root",
            });
        }
        Ok(canonical)
    }
}

impl FileSource for Directory {
    fn open(&self, path: &str, _client: SocketAddr) -> Result<Bytes, Error> {
        let components = normalize(path)?;
        let resolved = self.resolve(path, &components)?;
        let not_found = || Error::NotFound {
            path: path.to_string(),
        };
        // Opened first and checked through the descriptor, so that what is mapped is the
        // regular file that was checked, not whatever the path names a moment later.
        let file = std::fs::File::open(&resolved).map_err(|_| not_found())?;
        let metadata = file.metadata().map_err(|_| not_found())?;
        if !metadata.is_file() {
            return Err(not_found());
        }
        if metadata.len() == 0 {
            return Ok(Bytes::new());
        }
        let modified = metadata.modified().ok();
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let keep_for = self.keep_for;
        let keep = |content: &Arc<Mmap>| (!keep_for.is_zero()).then(|| content.clone());
        cache.retain(|_, cached| {
            if now.duration_since(cached.last_open) >= keep_for {
                cached.kept = None;
            }
            cached.content.strong_count() > 0
        });
        if let Some(hit) = cache.get_mut(&resolved) {
            if hit.len == metadata.len() && hit.modified == modified {
                if let Some(content) = hit.content.upgrade() {
                    hit.last_open = now;
                    hit.kept = keep(&content);
                    return Ok(Bytes::from_owner(SharedFile(content)));
                }
            }
        }
        let content = Arc::new(map_read_only(&file).map_err(|source| Error::Io {
            action: "mapping a file",
            source,
        })?);
        cache.insert(
            resolved,
            Cached {
                len: content.len() as u64,
                modified,
                content: Arc::downgrade(&content),
                kept: keep(&content),
                last_open: now,
            },
        );
        Ok(Bytes::from_owner(SharedFile(content)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn directory_serves_inside_and_refuses_escapes() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("EFI/Boot")).unwrap();
        std::fs::write(root.join("EFI/Boot/bootx64.efi"), b"efi").unwrap();
        std::fs::write(outer.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink("EFI/Boot/bootx64.efi", root.join("inside")).unwrap();
        let dir = Directory::new(&root).unwrap();
        assert_eq!(
            &dir.open("EFI/Boot/bootx64.efi", client()).unwrap()[..],
            b"efi"
        );
        assert_eq!(
            &dir.open("\\EFI\\Boot\\bootx64.efi", client()).unwrap()[..],
            b"efi"
        );
        assert_eq!(
            &dir.open("/EFI//./Boot/bootx64.efi", client()).unwrap()[..],
            b"efi"
        );
        assert_eq!(&dir.open("inside", client()).unwrap()[..], b"efi");
        assert!(matches!(
            dir.open("efi/boot/BOOTX64.EFI", client()),
            Err(Error::NotFound { .. })
        ));
        for evil in [
            "../secret",
            "..\\secret",
            "EFI/../../secret",
            "EFI\\..\\..\\secret",
            "C:\\secret",
            "escape",
            "a\0b",
        ] {
            let err = dir.open(evil, client()).unwrap_err();
            assert_eq!(
                err.code(),
                crate::ErrorCode::ACCESS_VIOLATION,
                "{evil:?}: {err}"
            );
        }
        assert!(matches!(
            dir.open("EFI", client()),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            dir.open("", client()),
            Err(Error::NotFound { .. })
        ));
        let insensitive = Directory::new(&root).unwrap().case_insensitive(true);
        assert_eq!(
            &insensitive
                .open("efi\\boot\\BOOTX64.EFI", client())
                .unwrap()[..],
            b"efi"
        );
    }

    #[test]
    fn directory_shares_one_buffer_until_the_file_changes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), b"one").unwrap();
        let dir = Directory::new(root.path())
            .unwrap()
            .keep_for(Duration::ZERO);
        let a = dir.open("f", client()).unwrap();
        let b = dir.open("f", client()).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr());
        drop((a, b));
        // Nobody holds it: a new read, and the stale entry is gone.
        let c = dir.open("f", client()).unwrap();
        assert_eq!(&c[..], b"one");
        assert_eq!(dir.cache.lock().unwrap().len(), 1);
        std::fs::write(root.path().join("f"), b"three").unwrap();
        assert_eq!(&dir.open("f", client()).unwrap()[..], b"three");
    }

    #[test]
    fn directory_keeps_a_file_for_a_while_after_its_last_open() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), b"one").unwrap();
        std::fs::write(root.path().join("g"), b"two").unwrap();
        let dir = Directory::new(root.path())
            .unwrap()
            .keep_for(Duration::from_millis(200));
        let first = dir.open("f", client()).unwrap().as_ptr();
        // No transfer holds it, yet the next open shares the same buffer.
        assert_eq!(dir.open("f", client()).unwrap().as_ptr(), first);
        std::thread::sleep(Duration::from_millis(250));
        // Past its time, the next open of anything lets it go.
        dir.open("g", client()).unwrap();
        let cache = dir.cache.lock().unwrap();
        assert!(cache.get(&dir.root.join("f")).is_none());
        assert!(cache.get(&dir.root.join("g")).unwrap().kept.is_some());
    }
}
