use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use pxe_policy::{ClientRecords, Policy, ScriptDecision, ScriptError, SharedPolicy};
use tracing::{debug, info, warn, Level};

use crate::cache::FileCache;
use crate::files::{self, Contents, FileBody, FileIo, Found};
use crate::limits::LineBudget;
use crate::observe::{HttpObserver, Route};
use crate::path::relative_path;
use crate::range::{parse_range, RangeAnswer};
use crate::{query, script, Body, Error};

/// The client's address, which a server puts in a request's extensions so that scripts know
/// the client's IP when the query does not say it. [`crate::serve`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The HTTP stage as a `tower::Service`: iPXE scripts from the policy at the script path,
/// and boot files everywhere else (GET and HEAD): from the root, from directories mounted
/// under a path prefix, and from single files mounted at a path.
///
/// Mount it in hyper or axum, or run it with [`crate::serve`]. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct BootService {
    inner: Arc<Inner>,
    /// Where this copy's file system calls run: the blocking pool, unless the copy serves
    /// on threads of its own ([`crate::serve_on_threads`]).
    file_io: FileIo,
}

#[derive(Debug)]
struct Inner {
    /// Most specific first: files, then directories by decreasing prefix depth.
    mounts: Vec<Mount>,
    policy: Option<SharedPolicy>,
    records: Option<ClientRecords>,
    script_path: String,
    /// Where PXELINUX configs are answered (`{prefix}pxelinux.cfg/…`), if anywhere.
    pxelinux_prefix: Option<String>,
    /// The answer to a script request without facts: the same for every client, so rendered
    /// once.
    bootstrap: Result<Bytes, ScriptError>,
    /// Keeps the per-request lines (`info`, and the policy's errors at `warn`) from flooding
    /// the log when requests do.
    request_lines: LineBudget,
    /// Told of each response and its body's bytes ([`BootServiceBuilder::observer`]).
    observer: Option<Arc<dyn HttpObserver>>,
    /// Small files kept in memory ([`BootServiceBuilder::file_cache`]); none when it is 0.
    file_cache: Option<FileCache>,
}

/// Per-request log lines logged at most per [`REQUEST_LINE_INTERVAL`]: five hundred machines
/// booting at once (a script and two files each, four lines) fit; a flood is summarised.
const REQUEST_LINES: u64 = 2000;
const REQUEST_LINE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a part of the URL space is served from.
#[derive(Debug)]
struct Mount {
    /// The URL path's segments (`/ipxe/` is `["ipxe"]`, the root is empty).
    at: PathBuf,
    /// A directory (canonical) served below `at`, or a single file served at `at` exactly.
    target: MountTarget,
}

#[derive(Debug)]
enum MountTarget {
    Directory(PathBuf),
    /// A file: its canonical directory and its name within it.
    File {
        dir: PathBuf,
        name: PathBuf,
    },
}

impl Mount {
    /// The confined root and the path below it that serve `relative`, if this mount covers it.
    fn resolve(&self, relative: &Path) -> Option<(&Path, PathBuf)> {
        match &self.target {
            MountTarget::Directory(dir) => relative
                .strip_prefix(&self.at)
                .ok()
                .map(|rest| (dir.as_path(), rest.to_path_buf())),
            MountTarget::File { dir, name } => {
                (relative == self.at).then(|| (dir.as_path(), name.clone()))
            }
        }
    }
}

/// Configures a [`BootService`].
#[derive(Debug)]
pub struct BootServiceBuilder {
    /// (URL path, file-system path, is a single file)
    mounts: Vec<(String, PathBuf, bool)>,
    policy: Option<SharedPolicy>,
    records: Option<ClientRecords>,
    script_path: String,
    pxelinux_prefix: Option<String>,
    observer: Option<Arc<dyn HttpObserver>>,
    file_cache: usize,
}

/// How many bytes of small files a [`BootService`] keeps in memory unless told otherwise
/// ([`BootServiceBuilder::file_cache`]): GRUB's modules for one platform, PXELINUX's `.c32`
/// modules and a few dozen configs fit several times over.
pub const DEFAULT_FILE_CACHE: usize = 8 * 1024 * 1024;

impl BootServiceBuilder {
    /// Keeps up to `bytes` of small files (64 KiB or less each) in memory, so that a request
    /// for one costs a single `stat` (which checks the file is still the one read: same
    /// inode, size and times) instead of opening and reading it; the oldest kept go first
    /// when it is full. On the threads of [`crate::serve_on_threads`], which send files
    /// above 16 KiB by `sendfile`, such a file is kept open instead (128 at most). A file is kept once it has been left unchanged for a few seconds
    /// (timestamps are coarse), and read again as soon as it changes. `0` turns it off.
    /// Default [`DEFAULT_FILE_CACHE`].
    pub fn file_cache(mut self, bytes: usize) -> Self {
        self.file_cache = bytes;
        self
    }

    /// Tells `observer` of every response (route and status) and of the body bytes handed
    /// to the connection: the hook `pxe::Metrics` counts through. Without one nothing is done
    /// per request for it.
    pub fn observer(mut self, observer: Arc<dyn HttpObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Serves the files below `root` at `/` (symbolic links that lead outside it are
    /// refused).
    pub fn root(self, root: impl Into<PathBuf>) -> Self {
        self.mount("/", root)
    }

    /// Serves the files below `dir` under the URL path `prefix` (`/ipxe/` serves
    /// `dir/snponly.efi` as `/ipxe/snponly.efi`). The most specific mount wins.
    pub fn mount(mut self, prefix: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.mounts.push((prefix.into(), dir.into(), false));
        self
    }

    /// Serves one file at the URL path `at` (a kernel given on the command line, say),
    /// without exposing the rest of its directory.
    pub fn file(mut self, at: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        self.mounts.push((at.into(), file.into(), true));
        self
    }

    /// Answers script requests with this policy's [`Policy::script`].
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policy = Some(SharedPolicy::new(policy));
        self
    }

    /// Keeps each client's record across stages: a script request's facts are recorded and
    /// completed with what earlier stages told (iPXE's features, which its HTTP requests do
    /// not carry, so that an `https://` URL is refused to an iPXE that cannot fetch it; which
    /// iPXE is asking), and each request's log line names the MAC its address belongs to.
    /// Share the store with the DHCP server's policy through [`ClientRecords::recording`].
    pub fn client_records(mut self, records: ClientRecords) -> Self {
        self.records = Some(records);
        self
    }

    /// Answers PXELINUX config requests under `prefix` (`/pxelinux/` answers
    /// `/pxelinux/pxelinux.cfg/01-<mac>`), the directory `lpxelinux.0` is served from: the
    /// client named by its `_Syslinux_BOOTIF` cookie (which `lpxelinux.0` sends with every
    /// request) gets the policy's decision rendered by [`pxe_policy::pxelinux::render`], its
    /// files as `http://` URLs on the host it asked. Its other names (address prefixes,
    /// `default`) are not found; the first name it asks is its own.
    pub fn pxelinux_configs(mut self, prefix: impl Into<String>) -> Self {
        self.pxelinux_prefix = Some(prefix.into());
        self
    }

    /// The URL path iPXE fetches its script from (default `/boot.ipxe`).
    pub fn script_path(mut self, path: impl Into<String>) -> Self {
        self.script_path = path.into();
        self
    }

    /// The service; fails if a mounted directory or file cannot be read or a mount path is
    /// not a clean absolute URL path.
    pub fn build(self) -> Result<BootService, Error> {
        let mut mounts = Vec::with_capacity(self.mounts.len());
        for (at, path, single_file) in self.mounts {
            let root_error = |source| Error::Root {
                path: path.clone(),
                source,
            };
            let at = relative_path(&at).map_err(|reason| {
                root_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("mount path {at:?}: {reason}"),
                ))
            })?;
            let canonical = std::fs::canonicalize(&path).map_err(root_error)?;
            let target = if single_file {
                match (canonical.parent(), canonical.file_name()) {
                    (Some(dir), Some(name)) if canonical.is_file() => MountTarget::File {
                        dir: dir.to_path_buf(),
                        name: PathBuf::from(name),
                    },
                    _ => {
                        return Err(root_error(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "not a regular file",
                        )))
                    }
                }
            } else if canonical.is_dir() {
                MountTarget::Directory(canonical)
            } else {
                return Err(root_error(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "not a directory",
                )));
            };
            mounts.push(Mount { at, target });
        }
        mounts.sort_by_key(|mount| {
            let is_dir = matches!(mount.target, MountTarget::Directory(_));
            (is_dir, std::cmp::Reverse(mount.at.components().count()))
        });
        Ok(BootService {
            inner: Arc::new(Inner {
                mounts,
                policy: self.policy,
                bootstrap: script::bootstrap(&self.script_path).map(Bytes::from),
                records: self.records,
                script_path: self.script_path,
                pxelinux_prefix: self.pxelinux_prefix,
                request_lines: LineBudget::new(REQUEST_LINES, REQUEST_LINE_INTERVAL),
                observer: self.observer,
                file_cache: (self.file_cache > 0).then(|| FileCache::new(self.file_cache)),
            }),
            file_io: FileIo::BlockingPool,
        })
    }
}

impl BootService {
    /// A builder with no root and no policy (everything is 404 until one is set).
    pub fn builder() -> BootServiceBuilder {
        BootServiceBuilder {
            mounts: Vec::new(),
            policy: None,
            records: None,
            script_path: "/boot.ipxe".to_string(),
            pxelinux_prefix: None,
            observer: None,
            file_cache: DEFAULT_FILE_CACHE,
        }
    }

    /// This service for a thread that is the server's own: its file system calls run on the
    /// thread itself rather than on the blocking pool (see [`crate::serve_on_threads`]).
    pub(crate) fn on_own_thread(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            file_io: FileIo::Inline,
        }
    }

    /// Answers one request. The request body is never read. The client's address, if the
    /// server knows it, comes from the request's [`ClientAddr`] extension.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body> {
        let peer = request.extensions().get::<ClientAddr>().map(|addr| addr.0);
        self.answer(request, peer).await
    }

    /// [`BootService::handle`] with the client's address given directly: [`crate::serve`]
    /// knows it per connection, and an extension would cost allocations on every request.
    pub(crate) async fn answer<B>(
        &self,
        request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Body> {
        // Only the head matters; dropping the body here keeps the future `Send` for any body.
        let (request, _body) = request.into_parts();
        let head = request.method == Method::HEAD;
        if request.method != Method::GET && !head {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            self.observe(Route::Other, &mut response);
            return response;
        }
        let pxelinux_config = self.inner.pxelinux_prefix.as_deref().and_then(|prefix| {
            pxe_policy::pxelinux::ConfigName::parse(request.uri.path().strip_prefix(prefix)?)
        });
        let route = if request.uri.path() == self.inner.script_path {
            Route::Script
        } else if pxelinux_config.is_some() && self.inner.policy.is_some() {
            Route::PxelinuxConfig
        } else {
            Route::File
        };
        let mut response = if request.uri.path() == self.inner.script_path {
            match &self.inner.policy {
                Some(policy) => self.script(policy, &request, peer).await,
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        } else if let (Some(name), Some(policy)) = (pxelinux_config, &self.inner.policy) {
            self.pxelinux_config(policy, &request, name).await
        } else {
            self.file(&request).await
        };
        if head {
            *response.body_mut() = Body::empty();
        }
        self.observe(route, &mut response);
        // The HTTP chapter of a client's boot story, one line per request, with the MAC the
        // client's address belongs to (from its record), so one grep follows a machine.
        // Nothing is built or counted per request when the line is off.
        if !(tracing::enabled!(Level::INFO) && self.inner.request_lines.allow()) {
            return response;
        }
        info!(
            mac = %self.mac_of(peer),
            client = peer.map(|peer| tracing::field::display(peer.ip())),
            method = %request.method,
            path = request.uri.path(),
            status = response.status().as_u16(),
            bytes = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            "http"
        );
        response
    }

    /// Tells the observer, if any, of `response` and has its body report its bytes.
    fn observe(&self, route: Route, response: &mut Response<Body>) {
        if let Some(observer) = &self.inner.observer {
            observer.response(route, response.status().as_u16());
            response.body_mut().count_with(Arc::clone(observer), route);
        }
    }

    /// The MAC recorded for `peer`'s address, or `-`.
    fn mac_of(&self, peer: Option<SocketAddr>) -> String {
        let mac = match (peer.map(|peer| peer.ip()), &self.inner.records) {
            (Some(std::net::IpAddr::V4(ip)), Some(records)) => records.mac_of(ip),
            _ => None,
        };
        mac.map_or_else(|| "-".to_string(), |mac| mac.to_string())
    }

    /// A PXELINUX config for the client its cookie names (see
    /// [`BootServiceBuilder::pxelinux_configs`]).
    async fn pxelinux_config(
        &self,
        policy: &SharedPolicy,
        request: &Parts,
        name: pxe_policy::pxelinux::ConfigName,
    ) -> Response<Body> {
        use pxe_policy::pxelinux::{self, ConfigName, Files};
        let not_found = || text(StatusCode::NOT_FOUND, "not found\n");
        let mac = request
            .headers
            .get_all(header::COOKIE)
            .iter()
            .find_map(|cookie| pxelinux::bootif_cookie(cookie.as_bytes()));
        let host = request
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()));
        let (Some(mac), Some(host)) = (mac, host) else {
            debug!(
                path = request.uri.path(),
                "pxelinux config without a BOOTIF cookie or Host"
            );
            return not_found();
        };
        let mut facts = self
            .inner
            .records
            .as_ref()
            .and_then(|records| records.get(mac))
            .unwrap_or_else(|| {
                pxe_policy::ClientFacts::new(mac, pxe_policy::ClientKind::ChainloadedIpxe)
            });
        facts.mac = mac;
        if !matches!(name, ConfigName::Mac(_) | ConfigName::Uuid(_))
            || !name.names(mac, None, facts.guid)
        {
            return not_found();
        }
        let decision = policy.script(&facts).await;
        let files = Files::Http {
            base: format!("http://{host}"),
        };
        match pxelinux::render(&decision, &files) {
            Ok(config) => {
                info!(mac = %mac, path = request.uri.path(), "pxelinux config rendered for this client");
                // Per client, and the decision may change: never cached (Content-Length set).
                script_response(config)
            }
            Err(error) => {
                if self.inner.request_lines.allow() {
                    warn!(mac = %mac, %error, "cannot render the policy's pxelinux config");
                }
                text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"))
            }
        }
    }

    async fn script(
        &self,
        policy: &SharedPolicy,
        request: &Parts,
        peer: Option<SocketAddr>,
    ) -> Response<Body> {
        let query = request.uri.query().unwrap_or("");
        if !query
            .split('&')
            .any(|pair| pair == "mac" || pair.starts_with("mac="))
        {
            // DHCP handed out the bare URL: come back with the facts in the query.
            return match &self.inner.bootstrap {
                Ok(script) => script_response(script.clone()),
                Err(error) => {
                    if self.inner.request_lines.allow() {
                        warn!(%error, "cannot build the bootstrap script");
                    }
                    text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"))
                }
            };
        }
        let mut facts = match query::facts_from_query(query, peer.map(|peer| peer.ip())) {
            Ok(facts) => facts,
            Err(reason) => {
                debug!(uri = %request.uri, %reason, "refused script query");
                let error = Error::Query { reason };
                return text(StatusCode::BAD_REQUEST, format!("{error}\n"));
            }
        };
        if let Some(records) = &self.inner.records {
            records.record(&facts);
            records.fill(&mut facts);
        }
        let decision = policy.script(&facts).await;
        match script::render_shared(&decision, &facts) {
            Ok(script) => {
                if tracing::enabled!(Level::INFO) && self.inner.request_lines.allow() {
                    info!(
                        mac = %facts.mac,
                        client = %facts.kind,
                        arch = %facts.arch.map_or_else(|| "-".to_string(), |a| a.code().to_string()),
                        decision = decision_name(&decision),
                        "http script"
                    );
                }
                debug!(mac = %facts.mac, ?decision, "script decision");
                script_response(script)
            }
            Err(error) => {
                // The policy's values, not the peer's: worth an operator's attention.
                if self.inner.request_lines.allow() {
                    warn!(mac = %facts.mac, %error, "cannot render the policy's script");
                }
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot render the boot script: {error}\n"),
                )
            }
        }
    }

    async fn file(&self, request: &Parts) -> Response<Body> {
        let requested = match relative_path(request.uri.path()) {
            Ok(relative) => relative,
            Err(reason) => {
                debug!(uri = %request.uri, %reason, "refused path");
                let error = Error::Path { reason };
                return text(StatusCode::BAD_REQUEST, format!("{error}\n"));
            }
        };
        let Some((root, relative)) = self
            .inner
            .mounts
            .iter()
            .find_map(|mount| mount.resolve(&requested))
        else {
            debug!(path = %requested.display(), "no mount serves this path");
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        // A small file is read with the look-up (one trip to the blocking pool, not two).
        let read_small = request.method == Method::GET;
        let cache = self.inner.file_cache.as_ref();
        let found = files::find_confined(root, &relative, read_small, cache, self.file_io);
        let Found {
            len,
            validators,
            contents,
        } = match found.await {
            Ok(found) => found,
            Err(error) => {
                debug!(path = %relative.display(), %error, "file not served");
                return text(StatusCode::NOT_FOUND, "not found\n");
            }
        };
        let headers = &request.headers;
        let header_str = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let not_modified = match header_str(header::IF_NONE_MATCH) {
            Some(tags) => validators.none_match(tags),
            None => header_str(header::IF_MODIFIED_SINCE)
                .is_some_and(|date| validators.not_modified_since(date)),
        };
        let mut builder = Response::builder()
            .header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"))
            .header(header::ETAG, validators.etag.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&relative)),
            );
        if let Some(modified) = &validators.last_modified {
            builder = builder.header(header::LAST_MODIFIED, modified.clone());
        }
        if not_modified {
            return finish(builder.status(StatusCode::NOT_MODIFIED), Body::empty());
        }
        let range = match header_str(header::RANGE) {
            Some(range)
                if header_str(header::IF_RANGE).is_none_or(|tag| validators.if_range(tag)) =>
            {
                parse_range(range, len)
            }
            _ => RangeAnswer::Full,
        };
        let (status, start, count) = match range {
            RangeAnswer::Full => (StatusCode::OK, 0, len),
            RangeAnswer::Partial { start, end } => {
                builder =
                    builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            RangeAnswer::Unsatisfiable => {
                debug!(path = %relative.display(), len, "unsatisfiable range");
                let builder = builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .header(header::CONTENT_LENGTH, 0);
                return finish(builder, Body::empty());
            }
        };
        let builder = builder.status(status).header(header::CONTENT_LENGTH, count);
        if request.method == Method::HEAD {
            return finish(builder, Body::empty());
        }
        let body = match contents {
            // The whole file (`len` bytes), and `start + count <= len`: the range was checked.
            Contents::InMemory(content) => {
                let start = start as usize;
                Ok(Body::full(content.slice(start..start + count as usize)))
            }
            Contents::OnDisk(file) if count <= self.file_io.in_memory_max() => {
                files::read_small(file, start, count, self.file_io)
                    .await
                    .map(Body::full)
            }
            Contents::OnDisk(file) => {
                Ok(Body::file(FileBody::new(file, start, count, self.file_io)))
            }
        };
        match body {
            Ok(body) => finish(builder, body),
            Err(error) => {
                debug!(path = %relative.display(), %error, "cannot read file");
                text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n")
            }
        }
    }
}

/// A short name of a decision for the log line (the whole decision is at `debug`).
fn decision_name(decision: &ScriptDecision) -> &'static str {
    match decision {
        ScriptDecision::Linux(_) => "boot linux",
        ScriptDecision::Chain(_) => "chain",
        ScriptDecision::Sanboot(_) => "sanboot",
        ScriptDecision::Iscsi(_) => "sanboot iscsi",
        ScriptDecision::ExitToDisk => "exit to disk",
        ScriptDecision::Custom(_) => "custom script",
        _ => "nothing to boot",
    }
}

fn finish(builder: http::response::Builder, body: Body) -> Response<Body> {
    builder
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "bad response\n"))
}

/// A script: per client and per moment, so never cached.
fn script_response(script: impl Into<Bytes>) -> Response<Body> {
    let mut response = text(StatusCode::OK, script);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `text/plain` response; the body is moved in (a rendered script is not copied).
fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let body = body.into();
    let len = body.len();
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("ipxe" | "txt" | "cfg") => "text/plain; charset=utf-8",
        Some("iso") => "application/x-iso9660-image",
        _ => "application/octet-stream",
    }
}

impl<B: Send + 'static> tower::Service<Request<B>> for BootService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}
