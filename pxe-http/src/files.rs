//! Boot files on disk: opening below the root, validators, and a body that streams a file.
//! Request paths ([`crate::relative_path`]) and ranges ([`crate::parse_range`]) are read by
//! the sans-IO modules `path` and `range`.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Frame, SizeHint};

use crate::cache::{FileCache, Kept};
use crate::sendfile::FileSends;

/// The most of a file one read takes, for a client that takes chunks quickly. Each chunk is a
/// trip to the blocking pool: with 64 KiB at most, a 1 GiB download on loopback ran at 0.25×
/// nginx (`scripts/bench-http`); 256 KiB runs 1.6–2× faster. The price is what a reader
/// that stalls after a fast start holds: its last chunk (500 such readers held 173 MB with
/// 256 KiB chunks, 62 MB with 64 KiB; slow readers' chunks shrink toward [`MIN_CHUNK`]).
const CHUNK: usize = 256 * 1024;

/// Responses up to this size are read in one go and sent from memory; larger ones stream.
pub(crate) const SMALL_BODY: u64 = 64 * 1024;

/// The largest body the server's own threads send from memory. Above it, `sendfile` from
/// the page cache costs less than copying the bytes into the socket.
pub(crate) const SENT_FROM_MEMORY_INLINE: u64 = 16 * 1024;

/// Where the file system calls of a request run (opening, `stat`, reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum FileIo {
    /// On tokio's blocking pool: a slow disk never stalls the runtime's other tasks, which
    /// on an embedder's runtime are not ours to stall. Costs two thread hand-offs per call.
    #[default]
    BlockingPool,
    /// On the serving thread itself, as nginx's workers do: only where the thread is the
    /// server's own ([`crate::serve_on_threads`]), so a slow read stalls only its own
    /// connections. With the files in the page cache, the calls take microseconds and the
    /// hand-offs were most of a small file's cost.
    Inline,
}

impl FileIo {
    /// The largest response body read into memory and sent from there; larger ones stream.
    /// On the server's own threads bodies larger than [`SENT_FROM_MEMORY_INLINE`] go by
    /// `sendfile` instead (see `crate::sendfile`).
    pub(crate) fn in_memory_max(self) -> u64 {
        match self {
            FileIo::BlockingPool => SMALL_BODY,
            FileIo::Inline => SENT_FROM_MEMORY_INLINE,
        }
    }

    /// Runs `work` (blocking file system calls) where this mode says.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match self {
            FileIo::Inline => work(),
            FileIo::BlockingPool => tokio::task::spawn_blocking(work)
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join))),
        }
    }
}

/// A file found under the root.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) len: u64,
    pub(crate) validators: Validators,
    pub(crate) contents: Contents,
}

/// Where a found file's bytes are.
#[derive(Debug)]
pub(crate) enum Contents {
    /// The whole file, in memory: kept in the cache, or small and read with the look-up.
    InMemory(Bytes),
    /// Opened (or kept open in the cache), not read.
    OnDisk(Arc<std::fs::File>),
}

/// Finds `relative` under `root` (already canonical): from `cache` if it holds the file
/// that path leads to, else by opening it if, once every symbolic link is resolved, it is a
/// regular file that is still inside the root. With `read_small`, a small file is read
/// whole (and offered to the cache). One trip to the blocking pool for all of it.
///
/// The file is opened without blocking and without following a symbolic link in its last
/// component (the resolved path has none; one that appeared since is refused), then checked
/// on the descriptor: a FIFO, a device or a socket under the root is refused before anything
/// waits on it, so it can neither hold a blocking thread nor stall the request.
pub(crate) async fn find_confined(
    root: &Path,
    relative: &Path,
    read_small: bool,
    cache: Option<&FileCache>,
    io_mode: FileIo,
) -> io::Result<Found> {
    let root = root.to_path_buf();
    let path = root.join(relative);
    let cache = cache.cloned();
    io_mode
        .run(move || {
            if let Some(cached) = cache.as_ref().and_then(|cache| cache.lookup(&path)) {
                return Ok(Found {
                    len: cached.len(),
                    validators: cached.validators.clone(),
                    contents: match &cached.content {
                        Kept::Content(content) => Contents::InMemory(content.clone()),
                        Kept::Open(file) => Contents::OnDisk(Arc::clone(file)),
                    },
                });
            }
            let canonical = std::fs::canonicalize(&path)?;
            if !canonical.starts_with(&root) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "resolves outside the root",
                ));
            }
            let (file, metadata) = open_regular(&canonical)?;
            let len = metadata.len();
            let validators = Validators::of(&metadata);
            // A failed read leaves the file on disk: the caller reads again and reports it.
            let content = (read_small && len <= io_mode.in_memory_max())
                .then(|| read_exact_at(&file, 0, len).ok())
                .flatten();
            let (contents, kept) = match content {
                Some(content) => (Contents::InMemory(content.clone()), Kept::Content(content)),
                None => {
                    let file = Arc::new(file);
                    (Contents::OnDisk(Arc::clone(&file)), Kept::Open(file))
                }
            };
            // Kept open only where it is sent by `sendfile` (read into memory elsewhere, and
            // a file small enough to be sent from memory is worth reading on its next GET).
            let worth_keeping = matches!(kept, Kept::Content(_))
                || (io_mode == FileIo::Inline && len > io_mode.in_memory_max());
            if let Some(cache) = cache.as_ref().filter(|_| worth_keeping) {
                cache.keep(&path, &metadata, kept, &validators, SystemTime::now());
            }
            Ok(Found {
                len,
                validators,
                contents,
            })
        })
        .await
}

/// Opens `path` for reading if it is a regular file, without waiting on anything else
/// (`O_NONBLOCK`: opening a FIFO for reading would otherwise wait for a writer) and without
/// following a symbolic link it may have become (`O_NOFOLLOW`). `O_NONBLOCK` changes nothing
/// for reads of a regular file.
fn open_regular(path: &Path) -> io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    Ok((file, metadata))
}

/// Reads `count` (at most [`SMALL_BODY`]) bytes at `start`.
pub(crate) async fn read_small(
    file: Arc<std::fs::File>,
    start: u64,
    count: u64,
    io_mode: FileIo,
) -> io::Result<Bytes> {
    io_mode
        .run(move || read_exact_at(&file, start, count))
        .await
}

/// Reads `count` (at most [`SMALL_BODY`]) bytes at `start`, blocking.
fn read_exact_at(file: &std::fs::File, start: u64, count: u64) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; usize::try_from(count.min(SMALL_BODY)).unwrap_or(0)];
    file.read_exact_at(&mut buf, start)?;
    Ok(Bytes::from(buf))
}

/// A file's validators: a strong ETag from size and modification time, and Last-Modified.
/// Both are kept as the header values they are sent as, made once per file version (a kept
/// file's request then formats neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    pub(crate) etag: HeaderValue,
    modified: Option<SystemTime>,
    pub(crate) last_modified: Option<HeaderValue>,
}

impl Validators {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> Self {
        let modified = metadata.modified().ok();
        let stamp = modified
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        let etag = format!(
            "\"{:x}-{:x}.{:x}\"",
            metadata.len(),
            stamp.as_secs(),
            stamp.subsec_nanos()
        );
        Self {
            // Quotes, hex digits, '-' and '.': always a valid header value.
            etag: HeaderValue::try_from(etag).unwrap_or(HeaderValue::from_static("\"\"")),
            modified,
            last_modified: modified
                .and_then(|m| HeaderValue::try_from(httpdate::fmt_http_date(m)).ok()),
        }
    }

    /// Whether an `If-None-Match` value matches (weak comparison, as RFC 9110 §13.1.2 asks).
    pub(crate) fn none_match(&self, header: &str) -> bool {
        header
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
    }

    /// Whether the file is unchanged since an `If-Modified-Since` / `If-Range` date.
    pub(crate) fn not_modified_since(&self, header: &str) -> bool {
        match (self.modified, httpdate::parse_http_date(header)) {
            (Some(modified), Ok(since)) => truncate(modified) <= since,
            _ => false,
        }
    }

    /// Whether an `If-Range` value (an ETag or a date) still names this version.
    pub(crate) fn if_range(&self, header: &str) -> bool {
        if header.starts_with('"') {
            header == self.etag
        } else {
            self.modified.is_some_and(|m| {
                httpdate::parse_http_date(header).is_ok_and(|date| truncate(m) == date)
            })
        }
    }
}

/// HTTP dates have whole seconds.
fn truncate(time: SystemTime) -> SystemTime {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs())
}

/// A response body that reads `len` bytes of a file from an offset, one chunk at a time as
/// the connection asks for it: nothing is read ahead, and the chunk follows the client's
/// pace, so a slow reader holds little memory and a fast one gets large reads.
///
/// The chunk doubles (up to 256 KiB) while the connection asks for the next one quickly, and
/// shrinks to about 20 ms worth of the rate it was taken at (down to 16 KiB) when the
/// connection took long to send the last one.
#[derive(Debug)]
pub struct FileBody {
    file: Arc<std::fs::File>,
    /// Offset of the next read.
    offset: u64,
    /// Bytes not yet handed out.
    remaining: u64,
    /// Size of the next read.
    chunk: usize,
    /// Where the reads run.
    io_mode: FileIo,
    /// The read under way on the blocking pool.
    reading: Option<tokio::task::JoinHandle<io::Result<Bytes>>>,
    /// When the last chunk was handed out, and its size.
    handed: Option<(Instant, usize)>,
    /// Where the connection sends file ranges by `sendfile`, if it does: chunks are then
    /// placeholders, and nothing is read here.
    by_reference: Option<FileSends>,
}

/// The smallest chunk a slow reader gets.
const MIN_CHUNK: usize = 16 * 1024;

/// How long a chunk should last at the rate the client takes them.
const CHUNK_PACE: Duration = Duration::from_millis(20);

impl FileBody {
    pub(crate) fn new(file: Arc<std::fs::File>, start: u64, len: u64, io_mode: FileIo) -> Self {
        Self {
            file,
            io_mode,
            offset: start,
            remaining: len,
            chunk: MIN_CHUNK * 4,
            reading: None,
            handed: None,
            by_reference: None,
        }
    }

    /// Hands out placeholders for `sends` to send by `sendfile` instead of reading chunks,
    /// where reads run on the serving thread itself (the mode that also sends only small
    /// bodies from memory, [`FileIo::in_memory_max`]); on the blocking pool it keeps reading.
    pub(crate) fn send_by_reference(&mut self, sends: FileSends) {
        if self.io_mode == FileIo::Inline {
            self.by_reference = Some(sends);
        }
    }

    /// The size of the next read, from how fast the connection sent the last chunk.
    fn next_chunk(&mut self) -> usize {
        if let Some((at, len)) = self.handed {
            let took = at.elapsed();
            self.chunk = if took <= CHUNK_PACE {
                (self.chunk * 2).min(CHUNK)
            } else {
                // len / took bytes per second, for CHUNK_PACE.
                let paced = len as u128 * CHUNK_PACE.as_micros() / took.as_micros().max(1);
                usize::try_from(paced)
                    .unwrap_or(CHUNK)
                    .clamp(MIN_CHUNK, CHUNK)
            };
        }
        usize::try_from(self.remaining).map_or(self.chunk, |left| left.min(self.chunk))
    }

    /// Hands out a chunk just read: an empty read before the end means the file shrank.
    fn hand_out(&mut self, read: io::Result<Bytes>) -> Result<Frame<Bytes>, io::Error> {
        let chunk = match read {
            Ok(chunk) if chunk.is_empty() => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was served",
            )),
            other => other,
        }?;
        self.offset += chunk.len() as u64;
        self.remaining -= chunk.len() as u64;
        self.handed = Some((Instant::now(), chunk.len()));
        Ok(Frame::data(chunk))
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        if let Some(sends) = &this.by_reference {
            let chunk = sends.placeholder(&this.file, this.offset, this.remaining);
            this.offset += chunk.len() as u64;
            this.remaining -= chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        let reading = match &mut this.reading {
            Some(reading) => reading,
            None => {
                let len = this.next_chunk();
                if this.io_mode == FileIo::Inline {
                    let read = read_at_most(&this.file, this.offset, len);
                    return Poll::Ready(Some(this.hand_out(read)));
                }
                let (file, offset) = (Arc::clone(&this.file), this.offset);
                this.reading.insert(tokio::task::spawn_blocking(move || {
                    read_at_most(&file, offset, len)
                }))
            }
        };
        let read = match Pin::new(reading).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(read) => read.unwrap_or_else(|join| Err(io::Error::other(join))),
        };
        this.reading = None;
        Poll::Ready(Some(this.hand_out(read)))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads up to `len` bytes at `offset` (fewer only at the end of the file), blocking.
fn read_at_most(file: &std::fs::File, offset: u64, len: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}
