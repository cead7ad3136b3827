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
//! - **Boot files** everywhere else: streamed from disk in chunks (never loaded whole), with
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
//! What it does not do: TLS (no iPXE build in the field advertises HTTPS), directory
//! listings, multiple ranges in one response, or compression.
#![forbid(unsafe_code)]

mod body;
mod delegate;
mod error;
mod files;
mod limits;
mod percent;
mod query;
mod script;
mod serve;
mod service;

pub use body::Body;
pub use delegate::HttpDelegate;
pub use error::{Error, PathError, QueryError};
pub use files::{parse_range, relative_path, FileBody, RangeAnswer};
pub use query::{arch_of, facts_from_query, facts_url};
pub use script::render_decision;
pub use serve::{serve, serve_on_threads, ServeConfig, ServerThreads};
pub use service::{BootService, BootServiceBuilder, ClientAddr};
