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
//!
//! Metrics ([`crate::Metrics`]) mount as one more route:
//! `.route("/metrics", pxe::axum::metrics_route(metrics.clone()))`.

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

/// A `GET` route that answers with `metrics` in the Prometheus text format (asking the lease
/// stores first, see [`crate::Metrics::render`]): mount it at `/metrics` in the application's
/// router.
///
/// ```no_run
/// # fn example(metrics: pxe::Metrics) -> axum::Router {
/// axum::Router::new().route("/metrics", pxe::axum::metrics_route(metrics))
/// # }
/// ```
pub fn metrics_route<S: Clone + Send + Sync + 'static>(
    metrics: crate::Metrics,
) -> axum::routing::MethodRouter<S> {
    axum::routing::get(move || {
        let metrics = metrics.clone();
        async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    crate::metrics::CONTENT_TYPE,
                )],
                metrics.render().await,
            )
        }
    })
}
