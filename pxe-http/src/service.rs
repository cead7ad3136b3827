use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use pxe_policy::{Policy, SharedPolicy};
use tracing::{debug, warn};

use crate::files::{self, FileBody, RangeAnswer, Validators};
use crate::{query, script, Body, Error};

/// The client's address, which a server puts in a request's extensions so that scripts know
/// the client's IP when the query does not say it. [`crate::serve`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The HTTP stage as a `tower::Service`: iPXE scripts from the policy at the script path,
/// and boot files from the root everywhere else (GET and HEAD).
///
/// Mount it in hyper or axum, or run it with [`crate::serve`]. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct BootService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: Option<PathBuf>,
    policy: Option<SharedPolicy>,
    script_path: String,
}

/// Configures a [`BootService`].
#[derive(Debug)]
pub struct BootServiceBuilder {
    root: Option<PathBuf>,
    policy: Option<SharedPolicy>,
    script_path: String,
}

impl BootServiceBuilder {
    /// Serves the files below `root` (symbolic links that lead outside it are refused).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Answers script requests with this policy's [`Policy::script`].
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policy = Some(SharedPolicy::new(policy));
        self
    }

    /// The path of the script endpoint; `/boot.ipxe` by default.
    pub fn script_path(mut self, path: impl Into<String>) -> Self {
        self.script_path = path.into();
        self
    }

    /// The service; fails if the root is not a readable directory.
    pub fn build(self) -> Result<BootService, Error> {
        let root = match self.root {
            Some(path) => {
                let canonical = std::fs::canonicalize(&path).map_err(|source| Error::Root {
                    path: path.clone(),
                    source,
                })?;
                if !canonical.is_dir() {
                    return Err(Error::Root {
                        path,
                        source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                    });
                }
                Some(canonical)
            }
            None => None,
        };
        Ok(BootService {
            inner: Arc::new(Inner {
                root,
                policy: self.policy,
                script_path: self.script_path,
            }),
        })
    }
}

impl BootService {
    /// A builder with no root and no policy (everything is 404 until one is set).
    pub fn builder() -> BootServiceBuilder {
        BootServiceBuilder {
            root: None,
            policy: None,
            script_path: "/boot.ipxe".to_string(),
        }
    }

    /// Answers one request. The request body is never read.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body> {
        // Only the head matters; dropping the body here keeps the future `Send` for any body.
        let (request, _body) = request.into_parts();
        let head = request.method == Method::HEAD;
        if request.method != Method::GET && !head {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let mut response = if request.uri.path() == self.inner.script_path {
            match &self.inner.policy {
                Some(policy) => self.script(policy, &request).await,
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        } else {
            match &self.inner.root {
                Some(root) => self.file(root, &request).await,
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        };
        if head {
            *response.body_mut() = Body::empty();
        }
        response
    }

    async fn script(&self, policy: &SharedPolicy, request: &Parts) -> Response<Body> {
        let peer = request.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        let query = request.uri.query().unwrap_or("");
        if !query
            .split('&')
            .any(|pair| pair == "mac" || pair.starts_with("mac="))
        {
            // DHCP handed out the bare URL: come back with the facts in the query.
            return match script::bootstrap(&self.inner.script_path) {
                Ok(script) => script_response(&script),
                Err(error) => {
                    warn!(%error, "cannot build the bootstrap script");
                    text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n"))
                }
            };
        }
        let facts = match query::facts_from_query(query, peer) {
            Ok(facts) => facts,
            Err(reason) => {
                debug!(uri = %request.uri, %reason, "refused script query");
                let error = Error::Query { reason };
                return text(StatusCode::BAD_REQUEST, &format!("{error}\n"));
            }
        };
        let decision = policy.script(&facts).await;
        match script::render_decision(&decision, &facts) {
            Ok(script) => {
                debug!(mac = %facts.mac, ?decision, "script");
                let mut response = text(StatusCode::OK, &script);
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(error) => {
                // The policy's values, not the peer's: worth an operator's attention.
                warn!(mac = %facts.mac, %error, "cannot render the policy's script");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot render the boot script: {error}\n"),
                )
            }
        }
    }

    async fn file(&self, root: &std::path::Path, request: &Parts) -> Response<Body> {
        let relative = match files::relative_path(request.uri.path()) {
            Ok(relative) => relative,
            Err(reason) => {
                debug!(uri = %request.uri, %reason, "refused path");
                let error = Error::Path { reason };
                return text(StatusCode::BAD_REQUEST, &format!("{error}\n"));
            }
        };
        let (file, metadata) = match files::open_confined(root, &relative).await {
            Ok(opened) => opened,
            Err(error) => {
                debug!(path = %relative.display(), %error, "no such file");
                return text(StatusCode::NOT_FOUND, "not found\n");
            }
        };
        let len = metadata.len();
        let validators = Validators::of(&metadata);
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
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, &validators.etag)
            .header(header::CONTENT_TYPE, content_type(&relative));
        if let Some(modified) = validators.last_modified {
            builder = builder.header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified));
        }
        if not_modified {
            return finish(builder.status(StatusCode::NOT_MODIFIED), Body::empty());
        }
        let range = match header_str(header::RANGE) {
            Some(range)
                if header_str(header::IF_RANGE).is_none_or(|tag| validators.if_range(tag)) =>
            {
                files::parse_range(range, len)
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
        let body = if count <= files::SMALL_BODY {
            files::read_small(file, start, count).await.map(Body::full)
        } else {
            FileBody::new(file, start, count).await.map(Body::file)
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

fn finish(builder: http::response::Builder, body: Body) -> Response<Body> {
    builder
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "bad response\n"))
}

/// A script: per client and per moment, so never cached.
fn script_response(script: &str) -> Response<Body> {
    let mut response = text(StatusCode::OK, script);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
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
