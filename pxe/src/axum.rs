//! For applications that serve HTTP with axum and mount pxe's HTTP service in their router.
//!
//! ```no_run
//! # async fn example(server: pxe::Server) {
//! use std::net::SocketAddr;
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .fallback_service(server.http_service())
//!     .layer(axum::middleware::from_fn(pxe::axum::client_addr));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await.unwrap();
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!     .await
//!     .unwrap();
//! # }
//! ```

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use pxe_http::ClientAddr;

/// Middleware (`axum::middleware::from_fn(pxe::axum::client_addr)`) that hands axum's
/// `ConnectInfo<SocketAddr>` to pxe's HTTP service as its [`ClientAddr`], so that scripts know
/// the client's address when iPXE's query does not say it. Without `ConnectInfo` (the app was
/// not served `with_connect_info`) the request passes unchanged.
pub async fn client_addr(mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let addr = *addr;
        request.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(request).await
}
