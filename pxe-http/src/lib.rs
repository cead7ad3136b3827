//! iPXE scripts and boot files over HTTP, as a `tower::Service`.
//!
//! [`BootService`] answers two kinds of request:
//!
//! - **Scripts** at one path (`/boot.ipxe` by default): the query carries what iPXE knows
//!   about itself ([`facts_url`]; a request without one gets a script that chains to the
//!   same path with it, so DHCP can hand out the short URL); it becomes
//!   [`ClientFacts`](pxe_policy::ClientFacts), the [`Policy`](pxe_policy::Policy) decides, and
//!   [`render_decision`] writes the `#!ipxe` script with the injection-safe builder of
//!   [`pxe_policy::Script`]. A value iPXE cannot carry (a `${` in a kernel command line) is a
//!   500 with the reason, never a silently altered script.
//! - **Boot files** everywhere else: streamed from disk in chunks (never loaded whole), or
//!   on the threads of [`serve_on_threads`] sent from the page cache by `sendfile` (above
//!   16 KiB); the small ones (64 KiB or less: GRUB modules, `.c32` modules, configs) kept in
//!   memory, or open where they go by `sendfile`, and checked with one `stat` per request
//!   ([`BootServiceBuilder::file_cache`]); with
//!   Content-Length always, HEAD, one `Range` per request (206, 416), ETag, Last-Modified and
//!   conditional requests, no redirects, and paths confined to the root (`..` in any spelling
//!   is refused; symbolic links that lead outside the root are not followed).
//!
//! [`serve`] runs the service standalone on HTTP/1.1 with keep-alive (iPXE fetches script,
//! kernel and initrd on one connection), a header timeout that also closes idle connections,
//! a write timeout and minimum send rate for clients that stop or crawl, and limits on
//! connections in all and per client address, every refusal counted and reported at `warn`
//! once per interval ([`ServeConfig`]); [`serve_on_threads`] does the same on threads of its
//! own, single-threaded runtimes that share one listening socket.
//!
//! The service, the server and the delegate client are the `server` feature (on by default),
//! the part that needs tokio, hyper, tower and libc. With `default-features = false` the crate
//! is its sans-IO half: [`facts_from_query`], [`render_decision`], [`relative_path`] and
//! [`parse_range`], pure functions of the request's text.
//!
//! What it does not do: TLS (no iPXE build in the field advertises HTTPS), directory
//! listings, multiple ranges in one response, or compression.
//!
//! The script an iPXE client gets when every client boots one kernel:
//!
//! ```
//! use http_body_util::BodyExt as _;
//! use pxe_http::BootService;
//! use pxe_policy::{BootEveryone, LinuxBoot};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let linux = LinuxBoot::new("http://192.0.2.1/vmlinuz").cmdline("console=ttyS0");
//! let service = BootService::builder()
//!     .policy(BootEveryone(linux))
//!     .build()?;
//! let request = http::Request::get("/boot.ipxe?mac=52:54:00:12:34:56&platform=pcbios")
//!     .body(())?;
//! let response = service.handle(request).await;
//! assert_eq!(response.status(), 200);
//! let script = response.into_body().collect().await?.to_bytes();
//! assert!(script.starts_with(b"#!ipxe\n"));
//! assert!(std::str::from_utf8(&script)?.contains("kernel http://192.0.2.1/vmlinuz console=ttyS0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]

#[cfg(feature = "server")]
mod body;
#[cfg(feature = "server")]
mod cache;
#[cfg(feature = "server")]
mod delegate;
mod error;
#[cfg(feature = "server")]
mod files;
#[cfg(feature = "server")]
mod limits;
#[cfg(feature = "server")]
mod observe;
mod path;
mod percent;
mod query;
mod range;
mod script;
#[cfg(feature = "server")]
mod sendfile;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod service;

#[cfg(feature = "server")]
pub use body::Body;
#[cfg(feature = "server")]
pub use delegate::HttpDelegate;
pub use error::{Error, PathError, QueryError};
#[cfg(feature = "server")]
pub use files::FileBody;
#[cfg(feature = "server")]
pub use observe::{HttpObserver, Route};
pub use path::relative_path;
pub use query::{arch_of, facts_from_query, facts_url};
pub use range::{parse_range, RangeAnswer};
pub use script::render_decision;
#[cfg(feature = "server")]
pub use serve::{serve, serve_on_threads, ServeConfig, ServerThreads};
#[cfg(feature = "server")]
pub use service::{BootService, BootServiceBuilder, ClientAddr, DEFAULT_FILE_CACHE};
