//! Prometheus metrics for a running server: [`Metrics`], a handle the embedder creates and
//! owns (no global registry), given to [`ServerBuilder::metrics`](crate::ServerBuilder::metrics)
//! and rendered with [`Metrics::render`] (mount it in an application's own router) or served
//! with [`Metrics::serve`].
//!
//! The protocol crates know nothing of Prometheus: each reports its events through a small
//! observer trait ([`DhcpObserver`], [`TftpObserver`], [`HttpObserver`]) that this module
//! implements with `prometheus-client` counters; the policy's decision time is measured by a
//! decorator around the policy ([`Metrics::timed`]); leases per pool are asked of the lease
//! store when the metrics are scraped ([`LeaseStore::pool_usage`]), never while serving.
//! Without a `Metrics` none of this is built: no observer is set, and the servers' hooks are
//! one `None` check each.
//!
//! The metrics (Prometheus text format 0.0.4):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `pxe_dhcp_requests_total` | counter | `type` (discover, request, …, `unknown` when unreadable), `outcome` (the reply: offer, ack, nak; or why none: malformed, not_network_boot, policy_ignores, pool_exhausted, lease_store_failed, …) |
//! | `pxe_clients_seen_total` | counter | `kind` (firmware-pxe, firmware-ipxe, chainloaded-ipxe, uefi-http-boot): distinct MACs per boot stage |
//! | `pxe_dhcp_leases_in_use` | gauge | `subnet` (`192.0.2.0/24`): addresses bound |
//! | `pxe_dhcp_leases_free` | gauge | `subnet`: pool addresses a new client could be offered |
//! | `pxe_tftp_transfers_started_total` | counter | |
//! | `pxe_tftp_transfers_finished_total` | counter | `outcome` (completed, size_probe, failed, evicted) |
//! | `pxe_tftp_requests_refused_total` | counter | `reason` (bad_request, busy, evicted, not_found, access_denied, no_socket, error) |
//! | `pxe_tftp_sent_bytes_total` | counter | file bytes delivered by completed transfers |
//! | `pxe_http_requests_total` | counter | `route` (script, pxelinux_config, file, other), `status` |
//! | `pxe_http_sent_bytes_total` | counter | `route`: body bytes handed to connections |
//! | `pxe_policy_decision_duration_seconds` | histogram | `stage` (boot: DHCP, script: HTTP and loader configs) |

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use pxe_dhcp::lease::{LeaseStore, Subnet};
use pxe_dhcp::server::{message_type_label, DhcpObserver, ObservedRequest};
use pxe_http::{HttpObserver, Route};
use pxe_policy::{BootDecision, ClientFacts, ClientKind, MacAddr, Policy, ScriptDecision};
use pxe_tftp::{Outcome, TftpObserver};

/// The `Content-Type` of [`Metrics::render`]'s text: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How many distinct (MAC, boot stage) pairs `pxe_clients_seen_total` remembers; past it the
/// memory is cleared (and a client seen again is counted again), so a flood of made-up MACs
/// costs a bounded amount of memory.
const SEEN_CAPACITY: usize = 65_536;

/// How long one scrape waits for a lease store's answer about its pools: a database that is
/// down must not hold the scrape (the gauges are then left out).
const POOL_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The metrics of one server (or of several parts run separately): counters the servers
/// update as they serve, and gauges read at scrape time. Cheap to clone; clones share the
/// counts. The registry belongs to this handle: two handles count separately.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    dhcp_requests: Family<DhcpLabels, Counter>,
    clients_seen: Family<KindLabels, Counter>,
    seen: Mutex<HashSet<(MacAddr, ClientKind)>>,
    leases_in_use: Family<SubnetLabels, Gauge>,
    leases_free: Family<SubnetLabels, Gauge>,
    lease_pools: Mutex<Vec<LeasePools>>,
    tftp_started: Counter,
    tftp_finished: Family<OutcomeLabels, Counter>,
    tftp_refused: Family<ReasonLabels, Counter>,
    tftp_bytes: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_bytes: Family<RouteLabels, Counter>,
    policy_seconds: Family<StageLabels, Histogram>,
}

/// A lease store and the subnets whose pools it is asked about at each scrape.
type LeasePools = (Arc<dyn LeaseStore>, Vec<Subnet>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DhcpLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubnetLabels {
    subnet: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// Decision-time buckets: 10 µs (a table look-up) to about 40 s (a delegate that times
/// out), each four times the last.
fn decision_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A new set of metrics, all at zero, in a registry of its own.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let dhcp_requests = Family::<DhcpLabels, Counter>::default();
        registry.register(
            "pxe_dhcp_requests",
            "DHCP requests received, by message type and outcome (the reply sent, or why none was)",
            dhcp_requests.clone(),
        );
        let clients_seen = Family::<KindLabels, Counter>::default();
        registry.register(
            "pxe_clients_seen",
            "Distinct clients (MACs) seen in DHCP per boot stage",
            clients_seen.clone(),
        );
        let leases_in_use = Family::<SubnetLabels, Gauge>::default();
        registry.register(
            "pxe_dhcp_leases_in_use",
            "Addresses of the subnet bound to a client, asked of the lease store at scrape time",
            leases_in_use.clone(),
        );
        let leases_free = Family::<SubnetLabels, Gauge>::default();
        registry.register(
            "pxe_dhcp_leases_free",
            "Pool addresses a new client could be offered, asked of the lease store at scrape time",
            leases_free.clone(),
        );
        let tftp_started = Counter::default();
        registry.register(
            "pxe_tftp_transfers_started",
            "TFTP transfers begun (request accepted, file opened)",
            tftp_started.clone(),
        );
        let tftp_finished = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "pxe_tftp_transfers_finished",
            "TFTP transfers ended, by outcome (completed, size_probe, failed, evicted)",
            tftp_finished.clone(),
        );
        let tftp_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "pxe_tftp_requests_refused",
            "TFTP requests that got no transfer, by reason",
            tftp_refused.clone(),
        );
        let tftp_bytes = Counter::default();
        registry.register_with_unit(
            "pxe_tftp_sent",
            "File bytes delivered by completed TFTP transfers",
            Unit::Bytes,
            tftp_bytes.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "pxe_http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        let http_bytes = Family::<RouteLabels, Counter>::default();
        registry.register_with_unit(
            "pxe_http_sent",
            "HTTP response body bytes handed to connections, by route",
            Unit::Bytes,
            http_bytes.clone(),
        );
        let policy_seconds =
            Family::<StageLabels, Histogram>::new_with_constructor(decision_histogram as fn() -> _);
        registry.register_with_unit(
            "pxe_policy_decision_duration",
            "Time the policy took to decide, by stage (boot: DHCP; script: HTTP and loader configs)",
            Unit::Seconds,
            policy_seconds.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                dhcp_requests,
                clients_seen,
                seen: Mutex::new(HashSet::new()),
                leases_in_use,
                leases_free,
                lease_pools: Mutex::new(Vec::new()),
                tftp_started,
                tftp_finished,
                tftp_refused,
                tftp_bytes,
                http_requests,
                http_bytes,
                policy_seconds,
            }),
        }
    }

    /// The metrics in Prometheus text format ([`CONTENT_TYPE`]), after asking each lease
    /// store watched ([`Self::watch_leases`]) how its pools are used (at most 2 s each; a
    /// store that does not answer in time has its pool gauges left out).
    ///
    /// For an application's own HTTP server: answer its `/metrics` with this text and
    /// [`CONTENT_TYPE`] (with axum, the `axum` feature's `pxe::axum::metrics_route` does).
    ///
    /// ```
    /// # async fn example() {
    /// let metrics = pxe::Metrics::new();
    /// let text = metrics.render().await;
    /// assert!(text.contains("# TYPE pxe_tftp_transfers_started_total counter"));
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(example());
    /// ```
    pub async fn render(&self) -> String {
        self.refresh_pools().await;
        self.render_now()
    }

    /// The metrics as they are, without asking the lease stores (their gauges as of the last
    /// [`Self::render`]).
    pub fn render_now(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, and the registry's metrics encode infallibly.
        if prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry)
            .is_err()
        {
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }

    /// Reports the use of `subnets`' pools, asked of `store` at each [`Self::render`]
    /// (`pxe_dhcp_leases_in_use`, `pxe_dhcp_leases_free`). [`ServerBuilder::start`] calls it
    /// for the DHCP server it starts; call it for one started otherwise
    /// (`DhcpServer::lease_store`, `DhcpServer::subnets`).
    ///
    /// [`ServerBuilder::start`]: crate::ServerBuilder::start
    pub fn watch_leases(&self, store: Arc<dyn LeaseStore>, subnets: &[Subnet]) {
        lock(&self.inner.lease_pools).push((store, subnets.to_vec()));
    }

    async fn refresh_pools(&self) {
        let pools = lock(&self.inner.lease_pools).clone();
        let now = SystemTime::now();
        for (store, subnets) in pools {
            for subnet in &subnets {
                let labels = SubnetLabels {
                    subnet: format!("{}/{}", subnet.network, subnet.prefix_len),
                };
                let asked =
                    tokio::time::timeout(POOL_QUERY_TIMEOUT, store.pool_usage(subnet, now)).await;
                match asked {
                    Ok(Ok(Some(usage))) => {
                        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                        self.inner
                            .leases_in_use
                            .get_or_create(&labels)
                            .set(gauge(usage.in_use));
                        self.inner
                            .leases_free
                            .get_or_create(&labels)
                            .set(gauge(usage.free));
                    }
                    // The store does not say, failed, or took too long: no number rather
                    // than a stale one.
                    other => {
                        if let Ok(Err(error)) = other {
                            tracing::debug!(%error, subnet = labels.subnet, "pool usage not known");
                        }
                        self.inner.leases_in_use.remove(&labels);
                        self.inner.leases_free.remove(&labels);
                    }
                }
            }
        }
    }

    /// The DHCP server's observer ([`pxe_dhcp::server::DhcpServerBuilder::observer`]), for
    /// a DHCP server built without [`ServerBuilder`](crate::ServerBuilder).
    pub fn dhcp_observer(&self) -> Arc<dyn DhcpObserver> {
        Arc::new(self.clone())
    }

    /// The TFTP server's observer ([`pxe_tftp::ServerConfig::observer`]).
    pub fn tftp_observer(&self) -> Arc<dyn TftpObserver> {
        Arc::new(self.clone())
    }

    /// The HTTP service's observer ([`pxe_http::BootServiceBuilder::observer`]).
    pub fn http_observer(&self) -> Arc<dyn HttpObserver> {
        Arc::new(self.clone())
    }

    /// `policy`, with the time each of its decisions takes recorded in
    /// `pxe_policy_decision_duration_seconds`.
    pub fn timed<P: Policy>(&self, policy: P) -> Timed<P> {
        Timed {
            policy,
            metrics: self.clone(),
        }
    }

    /// Serves the metrics over HTTP on `listener` (GET `/metrics`; anything else is 404),
    /// on the caller's runtime, until the returned future is dropped or accepting fails.
    /// It is a scrape endpoint, not a public server: beyond a 30 s limit on a request's
    /// head it has no connection limits, so bind it to an address only the monitoring
    /// network reaches (or mount [`Self::render`] behind the application's own limits).
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // A connection reset before it was accepted, or descriptors running out:
                // the endpoint stays up and tries again.
                Err(error) if is_transient(&error) => {
                    tracing::debug!(%error, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let metrics = self.clone();
            tokio::spawn(async move { serve_connection(metrics, stream, peer).await });
        }
    }

    fn count_client(&self, mac: MacAddr, kind: ClientKind) {
        let first = {
            let mut seen = lock(&self.inner.seen);
            if seen.len() >= SEEN_CAPACITY && !seen.contains(&(mac, kind)) {
                seen.clear();
            }
            seen.insert((mac, kind))
        };
        if first {
            self.inner
                .clients_seen
                .get_or_create(&KindLabels {
                    kind: kind.as_str(),
                })
                .inc();
        }
    }

    fn observe_decision(&self, stage: &'static str, started: Instant) {
        self.inner
            .policy_seconds
            .get_or_create(&StageLabels { stage })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// An `accept` failure worth retrying: a connection gone before it was taken, or
/// descriptors or memory short for a moment (EMFILE, ENFILE, ENOMEM).
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(libc_code) if [24, 23, 12].contains(&libc_code))
}

/// One connection to the metrics endpoint: HTTP/1.1 with keep-alive, through hyper.
async fn serve_connection(metrics: Metrics, stream: tokio::net::TcpStream, peer: SocketAddr) {
    use http_body_util::Full;
    use hyper::{Method, Request, Response, StatusCode};
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let metrics = metrics.clone();
        async move {
            let response = match (request.method(), request.uri().path()) {
                (&Method::GET, "/metrics") => Response::builder()
                    .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(Full::new(bytes::Bytes::from(metrics.render().await))),
                _ => Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::new(bytes::Bytes::from_static(
                        b"not found: try /metrics\n",
                    ))),
            };
            Ok::<_, std::convert::Infallible>(response.unwrap_or_default())
        }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let served = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "metrics connection ended");
    }
}

impl DhcpObserver for Metrics {
    fn request(&self, request: &ObservedRequest<'_>) {
        let r#type = request.message_type.map_or("unknown", message_type_label);
        self.inner
            .dhcp_requests
            .get_or_create(&DhcpLabels {
                r#type,
                outcome: request.outcome.label(),
            })
            .inc();
        if let (Some(mac), Some(kind)) = (request.mac, request.kind) {
            self.count_client(mac, kind);
        }
    }
}

impl TftpObserver for Metrics {
    fn transfer_started(&self, _peer: SocketAddr, _file: &str) {
        self.inner.tftp_started.inc();
    }

    fn transfer_finished(&self, _peer: SocketAddr, _file: &str, outcome: &Outcome) {
        let outcome = match outcome {
            Outcome::Completed { bytes, .. } => {
                self.inner.tftp_bytes.inc_by(*bytes);
                "completed"
            }
            Outcome::SizeProbe => "size_probe",
            _ => "failed",
        };
        self.inner
            .tftp_finished
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn transfer_evicted(&self, _peer: SocketAddr, _file: &str) {
        self.inner
            .tftp_finished
            .get_or_create(&OutcomeLabels { outcome: "evicted" })
            .inc();
    }

    fn request_refused(&self, _peer: SocketAddr, reason: &'static str) {
        self.inner
            .tftp_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

impl HttpObserver for Metrics {
    fn response(&self, route: Route, status: u16) {
        self.inner
            .http_requests
            .get_or_create(&HttpLabels {
                route: route.label(),
                status,
            })
            .inc();
    }

    fn body_sent(&self, route: Route, bytes: u64) {
        self.inner
            .http_bytes
            .get_or_create(&RouteLabels {
                route: route.label(),
            })
            .inc_by(bytes);
    }
}

/// A policy whose decisions are timed into [`Metrics`] ([`Metrics::timed`]).
#[derive(Debug)]
pub struct Timed<P> {
    policy: P,
    metrics: Metrics,
}

impl<P: Policy> Policy for Timed<P> {
    async fn boot(&self, client: &ClientFacts) -> BootDecision {
        let started = Instant::now();
        let decision = self.policy.boot(client).await;
        self.metrics.observe_decision("boot", started);
        decision
    }

    async fn script(&self, client: &ClientFacts) -> ScriptDecision {
        let started = Instant::now();
        let decision = self.policy.script(client).await;
        self.metrics.observe_decision("script", started);
        decision
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pxe_dhcp::lease::{EmbeddedStore, LeaseClient, LeaseTable};
    use pxe_dhcp::proto::NoReply;
    use pxe_dhcp::server::RequestOutcome;
    use pxe_dhcp::wire::MessageType;
    use pxe_policy::{BootEveryone, LinuxBoot};
    use std::net::Ipv4Addr;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    /// The value of the sample `series` (name and labels exactly as rendered).
    /// Checks that each series in `expected` has its value in `text` (the rendered page).
    fn assert_samples(text: &str, expected: &[(&str, f64)]) {
        for &(series, value) in expected {
            assert_eq!(sample(text, series), Some(value), "{series} in:\n{text}");
        }
    }

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn dhcp_requests_by_type_and_outcome_and_clients_by_kind() {
        let metrics = Metrics::new();
        let dhcp = metrics.dhcp_observer();
        let ack = RequestOutcome::Replied(MessageType::Ack);
        let offer = RequestOutcome::Replied(MessageType::Offer);
        let pxe = Some(ClientKind::FirmwarePxe);
        let ipxe = Some(ClientKind::ChainloadedIpxe);
        let d = Some(MessageType::Discover);
        let r = Some(MessageType::Request);
        for (message_type, kind, outcome) in [
            (d, pxe, offer),
            (d, pxe, offer), // a retransmission: the same client, not a new one
            (r, pxe, ack),
            (d, ipxe, offer),
            (r, ipxe, ack),
        ] {
            dhcp.request(&ObservedRequest::new(
                message_type,
                kind,
                Some(mac(1)),
                outcome,
            ));
        }
        dhcp.request(&ObservedRequest::new(
            d,
            None,
            Some(mac(2)),
            RequestOutcome::NoReply(&NoReply::NotNetworkBoot),
        ));
        dhcp.request(&ObservedRequest::new(
            None,
            None,
            None,
            RequestOutcome::NoReply(&NoReply::NoMessageType),
        ));
        let text = metrics.render_now();
        assert_samples(
            &text,
            &[
                (
                    r#"pxe_dhcp_requests_total{type="discover",outcome="offer"}"#,
                    3.0,
                ),
                (
                    r#"pxe_dhcp_requests_total{type="request",outcome="ack"}"#,
                    2.0,
                ),
                (
                    r#"pxe_dhcp_requests_total{type="discover",outcome="not_network_boot"}"#,
                    1.0,
                ),
                (
                    r#"pxe_dhcp_requests_total{type="unknown",outcome="no_message_type"}"#,
                    1.0,
                ),
                (r#"pxe_clients_seen_total{kind="firmware-pxe"}"#, 1.0),
                (r#"pxe_clients_seen_total{kind="chainloaded-ipxe"}"#, 1.0),
            ],
        );
        assert!(
            text.contains("# TYPE pxe_dhcp_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP pxe_dhcp_requests_total DHCP requests received"));
    }

    #[test]
    fn tftp_transfers_and_bytes() {
        let metrics = Metrics::new();
        let tftp = metrics.tftp_observer();
        let peer: SocketAddr = "192.0.2.10:2000".parse().unwrap();
        tftp.transfer_started(peer, "undionly.kpxe");
        tftp.transfer_finished(peer, "undionly.kpxe", &Outcome::SizeProbe);
        tftp.transfer_started(peer, "undionly.kpxe");
        tftp.transfer_finished(
            peer,
            "undionly.kpxe",
            &Outcome::Completed {
                bytes: 70_000,
                retransmitted: 1,
            },
        );
        tftp.transfer_started(peer, "big");
        tftp.transfer_evicted(peer, "big");
        tftp.request_refused(peer, "not_found");
        let text = metrics.render_now();
        assert_samples(
            &text,
            &[
                ("pxe_tftp_transfers_started_total", 3.0),
                (
                    r#"pxe_tftp_transfers_finished_total{outcome="completed"}"#,
                    1.0,
                ),
                (
                    r#"pxe_tftp_transfers_finished_total{outcome="size_probe"}"#,
                    1.0,
                ),
                (
                    r#"pxe_tftp_transfers_finished_total{outcome="evicted"}"#,
                    1.0,
                ),
                (
                    r#"pxe_tftp_requests_refused_total{reason="not_found"}"#,
                    1.0,
                ),
                ("pxe_tftp_sent_bytes_total", 70_000.0),
            ],
        );
    }

    #[test]
    fn http_requests_by_route_and_status_and_bytes() {
        let metrics = Metrics::new();
        let http = metrics.http_observer();
        http.response(Route::Script, 200);
        http.body_sent(Route::Script, 120);
        http.response(Route::File, 200);
        http.body_sent(Route::File, 1000);
        http.body_sent(Route::File, 24);
        http.response(Route::File, 404);
        let text = metrics.render_now();
        assert_samples(
            &text,
            &[
                (r#"pxe_http_requests_total{route="file",status="200"}"#, 1.0),
                (r#"pxe_http_requests_total{route="file",status="404"}"#, 1.0),
                (r#"pxe_http_sent_bytes_total{route="file"}"#, 1024.0),
                (r#"pxe_http_sent_bytes_total{route="script"}"#, 120.0),
            ],
        );
    }

    #[tokio::test]
    async fn decision_time_is_a_histogram_per_stage() {
        let metrics = Metrics::new();
        let policy = metrics.timed(BootEveryone(LinuxBoot::new("/vmlinuz")));
        let facts = ClientFacts::new(mac(1), ClientKind::ChainloadedIpxe);
        policy.script(&facts).await;
        policy.boot(&facts).await;
        policy.boot(&facts).await;
        let text = metrics.render_now();
        assert!(
            text.contains("# TYPE pxe_policy_decision_duration_seconds histogram\n"),
            "{text}"
        );
        assert_samples(
            &text,
            &[
                (
                    r#"pxe_policy_decision_duration_seconds_count{stage="boot"}"#,
                    2.0,
                ),
                (
                    r#"pxe_policy_decision_duration_seconds_count{stage="script"}"#,
                    1.0,
                ),
            ],
        );
        // A decision that answers at once lands in the last bucket at the latest.
        assert_samples(
            &text,
            &[(
                r#"pxe_policy_decision_duration_seconds_bucket{stage="boot",le="+Inf"}"#,
                2.0,
            )],
        );
    }

    #[tokio::test]
    async fn leases_per_pool_are_asked_of_the_store_at_render() {
        let subnet = Subnet::new(
            Ipv4Addr::new(192, 0, 2, 0),
            24,
            Ipv4Addr::new(192, 0, 2, 100),
            Ipv4Addr::new(192, 0, 2, 109),
        );
        let store = Arc::new(EmbeddedStore::in_memory(LeaseTable::new(
            vec![subnet.clone()],
            Vec::new(),
        )));
        let metrics = Metrics::new();
        metrics.watch_leases(store.clone(), std::slice::from_ref(&subnet));
        let client = LeaseClient {
            mac: mac(1),
            client_id: None,
        };
        let now = SystemTime::now();
        let offered = store
            .offer(&subnet, client, None, now)
            .await
            .unwrap()
            .unwrap();
        let text = metrics.render().await;
        assert_samples(
            &text,
            &[(r#"pxe_dhcp_leases_in_use{subnet="192.0.2.0/24"}"#, 0.0)],
        );
        // An address under offer is not free for a new client.
        assert_samples(
            &text,
            &[(r#"pxe_dhcp_leases_free{subnet="192.0.2.0/24"}"#, 9.0)],
        );
        store
            .request(&subnet, client, offered.lease.ip, now)
            .await
            .unwrap()
            .unwrap();
        let text = metrics.render().await;
        assert_samples(
            &text,
            &[
                (r#"pxe_dhcp_leases_in_use{subnet="192.0.2.0/24"}"#, 1.0),
                (r#"pxe_dhcp_leases_free{subnet="192.0.2.0/24"}"#, 9.0),
            ],
        );
    }

    #[test]
    fn separate_handles_count_separately() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.tftp_observer()
            .transfer_started("192.0.2.1:1".parse().unwrap(), "f");
        assert_eq!(
            sample(&a.render_now(), "pxe_tftp_transfers_started_total"),
            Some(1.0)
        );
        assert_eq!(
            sample(&b.render_now(), "pxe_tftp_transfers_started_total"),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_text_at_metrics_only() {
        let metrics = Metrics::new();
        metrics.http_observer().response(Route::Script, 200);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(metrics.clone().serve(listener));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        };
        let answer = get("/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("content-type: text/plain; version=0.0.4"),
            "{answer}"
        );
        assert!(answer.contains("pxe_http_requests_total{route=\"script\",status=\"200\"} 1"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        served.abort();
    }
}
