//! Where served files come from: the [`FileSource`] trait and an in-memory [`MemoryFiles`]
//! map (the `server` feature adds [`Directory`](crate::Directory), files under a root).
//!
//! Content is [`Bytes`]: a source hands out clones of one buffer (a `Directory`'s is a
//! read-only map of the file), so a file served to a thousand clients is in memory once and
//! every DATA block is a slice of it.
//!
//! Request paths are normalised the same way by both sources ([`normalize`]): `\` is read as
//! `/`, leading `/` name the root (as tftpd-hpa's `--secure` does), empty and `.` components
//! are skipped, and `..`, NUL bytes and drive prefixes (`C:`) are refused outright.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::error::Error;

/// A provider of files by request path.
pub trait FileSource: Send + Sync + 'static {
    /// Opens `path` (as the client sent it) for `client`: the whole content, shared.
    ///
    /// May block (file I/O); the server calls it off its event loop.
    fn open(&self, path: &str, client: SocketAddr) -> Result<Bytes, Error>;
}

impl<S: FileSource + ?Sized> FileSource for std::sync::Arc<S> {
    fn open(&self, path: &str, client: SocketAddr) -> Result<Bytes, Error> {
        (**self).open(path, client)
    }
}

/// Splits a request path into safe components, or refuses it.
pub fn normalize(path: &str) -> Result<Vec<&str>, Error> {
    let denied = |reason| Error::AccessDenied {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(denied("nul byte in path"));
    }
    let mut components = Vec::new();
    for component in path.split(['/', '\\']) {
        match component {
            "" | "." => {}
            ".." => return Err(denied("parent directory component")),
            c if c.len() >= 2 && c.as_bytes()[1] == b':' && components.is_empty() => {
                return Err(denied("drive prefix"));
            }
            c => components.push(c),
        }
    }
    if components.is_empty() {
        return Err(Error::NotFound {
            path: path.to_string(),
        });
    }
    Ok(components)
}

/// Files held in memory by name.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    files: HashMap<String, Bytes>,
    case_insensitive: bool,
}

impl MemoryFiles {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file `path`; its name is normalised like a request.
    pub fn insert(&mut self, path: &str, content: impl Into<Bytes>) -> &mut Self {
        self.files
            .insert(Self::key(path, self.case_insensitive), content.into());
        self
    }

    /// Matches names case-insensitively. Set it before inserting.
    pub fn case_insensitive(mut self, yes: bool) -> Self {
        self.case_insensitive = yes;
        self
    }

    fn key(path: &str, case_insensitive: bool) -> String {
        let joined = normalize(path).map(|c| c.join("/")).unwrap_or_default();
        if case_insensitive {
            joined.to_ascii_lowercase()
        } else {
            joined
        }
    }
}

impl FileSource for MemoryFiles {
    fn open(&self, path: &str, _client: SocketAddr) -> Result<Bytes, Error> {
        normalize(path)?;
        self.files
            .get(&Self::key(path, self.case_insensitive))
            .cloned()
            .ok_or_else(|| Error::NotFound {
                path: path.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn memory_files_normalise_names() {
        let mut files = MemoryFiles::new().case_insensitive(true);
        files.insert("/Boot/undionly.kpxe", Bytes::from_static(b"x"));
        assert_eq!(
            &files.open("boot\\UNDIONLY.kpxe", client()).unwrap()[..],
            b"x"
        );
        assert!(files.open("../boot/undionly.kpxe", client()).is_err());
        assert!(files.open("nope", client()).is_err());
    }
}
