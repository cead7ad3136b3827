//! The HTTP transport of [`pxe_policy::delegate::DelegatePolicy`]: each question is a
//! `POST` of JSON to one URL, with a deadline for the whole exchange.
//!
//! hyper-util's pooled client keeps the connection to the service open between questions (a
//! rack booting at once asks hundreds), and `http::Uri` parses the URL.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pxe_policy::delegate::DelegateTransport;
use pxe_policy::DelegateError;

/// The largest answer read: a decision is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// POSTs each question to `http://HOST[:PORT]/PATH` and reads the JSON answer, within a
/// timeout. Plain HTTP only (the service is the operator's own, on a management network).
#[derive(Debug, Clone)]
pub struct HttpDelegate {
    uri: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl HttpDelegate {
    /// A transport to `url` (`http://host[:port]/path`) that gives up after `timeout`. Must
    /// be used inside a tokio runtime (its connections are tasks there).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, DelegateError> {
        let target = |reason| DelegateError::Target {
            target: url.to_string(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| target("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(target("only http:// URLs are supported"));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(target("no host"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            uri,
            client,
            timeout,
        })
    }

    async fn post(&self, request: Vec<u8>) -> Result<Vec<u8>, DelegateError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| DelegateError::Exchange {
            target: self.uri.to_string(),
            source,
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(request)))
            .map_err(|e| failed(e.into()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| failed(e.into()))?;
        if response.status() != StatusCode::OK {
            return Err(failed(format!("status {}", response.status()).into()));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(failed)?;
        Ok(body.to_bytes().to_vec())
    }
}

impl DelegateTransport for HttpDelegate {
    async fn exchange(&self, request: Vec<u8>) -> Result<Vec<u8>, DelegateError> {
        tokio::time::timeout(self.timeout, self.post(request))
            .await
            .map_err(|_| DelegateError::Timeout {
                after: self.timeout,
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pxe_policy::delegate::DelegatePolicy;
    use pxe_policy::{ClientFacts, ClientKind, LinuxBoot, MacAddr, Policy, ScriptDecision};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP service on loopback that answers `reply` after `delay`, and hands back
    /// what it was sent.
    async fn service(
        reply: &'static str,
        delay: Duration,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/decide", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Read until the JSON body is complete (it ends with the closing brace).
            while !seen.ends_with(b"}") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            tokio::time::sleep(delay).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            String::from_utf8_lossy(&seen).into_owned()
        });
        (url, task)
    }

    fn client() -> ClientFacts {
        ClientFacts::new(
            MacAddr([0x52, 0x54, 0, 0, 0, 7]),
            ClientKind::ChainloadedIpxe,
        )
    }

    #[tokio::test]
    async fn posts_facts_and_reads_the_decision() {
        let (url, seen) = service(r#"{"kernel":"k","cmdline":"quiet"}"#, Duration::ZERO).await;
        let policy = DelegatePolicy::new(
            HttpDelegate::new(&url, Duration::from_secs(5)).unwrap(),
            ScriptDecision::ExitToDisk,
        );
        assert_eq!(
            policy.script(&client()).await,
            ScriptDecision::Linux(LinuxBoot::new("k").cmdline("quiet"))
        );
        let request = seen.await.unwrap();
        assert!(
            request.starts_with("POST /decide HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\"mac\":\"52:54:00:00:00:07\""),
            "{request}"
        );
        assert!(request.contains("\"stage\":\"script\""), "{request}");
    }

    #[tokio::test]
    async fn slow_or_absent_service_falls_back() {
        let (url, _seen) = service(r#"{"action":"exit"}"#, Duration::from_secs(5)).await;
        let policy = DelegatePolicy::new(
            HttpDelegate::new(&url, Duration::from_millis(200)).unwrap(),
            ScriptDecision::Ignore,
        );
        assert_eq!(policy.script(&client()).await, ScriptDecision::Ignore);

        // Nothing listens on port 1 of loopback: connection refused, fallback.
        let policy = DelegatePolicy::new(
            HttpDelegate::new("http://127.0.0.1:1/x", Duration::from_secs(2)).unwrap(),
            ScriptDecision::Ignore,
        );
        assert_eq!(policy.script(&client()).await, ScriptDecision::Ignore);
    }

    #[tokio::test]
    async fn only_plain_http_urls() {
        assert!(HttpDelegate::new("https://x/y", Duration::from_secs(1)).is_err());
        assert!(HttpDelegate::new("http:///y", Duration::from_secs(1)).is_err());
        assert!(HttpDelegate::new("not a url", Duration::from_secs(1)).is_err());
        let delegate =
            HttpDelegate::new("http://192.0.2.9/decide", Duration::from_secs(1)).unwrap();
        assert_eq!(delegate.uri.host(), Some("192.0.2.9"));
        assert_eq!(delegate.uri.path(), "/decide");
    }

    #[tokio::test]
    async fn questions_share_one_pooled_connection() {
        // A service that answers two questions on one keep-alive connection, and accepts
        // no second connection.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/decide", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let reply = r#"{"action":"exit"}"#;
            for _ in 0..2 {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.ends_with(b"}") {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the client closed the connection");
                    seen.extend_from_slice(&buf[..n]);
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{reply}",
                    reply.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
            }
        });
        let policy = DelegatePolicy::new(
            HttpDelegate::new(&url, Duration::from_secs(5)).unwrap(),
            ScriptDecision::Ignore,
        );
        for _ in 0..2 {
            assert_eq!(policy.script(&client()).await, ScriptDecision::ExitToDisk);
        }
        task.await.unwrap();
    }
}
