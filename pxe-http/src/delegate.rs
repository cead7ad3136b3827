//! The HTTP transport of [`pxe_policy::delegate::DelegatePolicy`]: each question is a
//! `POST` of JSON to one URL, with a deadline for the whole exchange.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use pxe_policy::delegate::DelegateTransport;
use pxe_policy::Error as PolicyError;

/// The largest answer read: a decision is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// POSTs each question to `http://HOST[:PORT]/PATH` and reads the JSON answer, within a
/// timeout. Plain HTTP only (the service is the operator's own, on a management network).
#[derive(Debug, Clone)]
pub struct HttpDelegate {
    authority: String,
    path: String,
    timeout: Duration,
}

impl HttpDelegate {
    /// A transport to `url` (`http://host:port/path`) that gives up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, PolicyError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| PolicyError::DelegateExchange {
                target: url.to_string(),
                reason: "only http:// URLs are supported".into(),
            })?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(PolicyError::DelegateExchange {
                target: url.to_string(),
                reason: "no host".into(),
            });
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_string(),
            timeout,
        })
    }

    async fn post(&self, request: Vec<u8>) -> Result<Vec<u8>, PolicyError> {
        let transport = |e: &dyn std::fmt::Display| PolicyError::DelegateExchange {
            target: format!("{}{}", self.authority, self.path),
            reason: e.to_string(),
        };
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| transport(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(&e))?;
        // The connection task ends when the exchange does (the sender is dropped).
        tokio::spawn(connection);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(request)))
            .map_err(|e| transport(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(&e))?;
        if response.status() != StatusCode::OK {
            return Err(transport(&format!("status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| transport(&e))?;
        Ok(body.to_bytes().to_vec())
    }
}

impl DelegateTransport for HttpDelegate {
    async fn exchange(&self, request: Vec<u8>) -> Result<Vec<u8>, PolicyError> {
        tokio::time::timeout(self.timeout, self.post(request))
            .await
            .map_err(|_| PolicyError::DelegateTimeout {
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

    #[test]
    fn only_plain_http_urls() {
        assert!(HttpDelegate::new("https://x/y", Duration::from_secs(1)).is_err());
        assert!(HttpDelegate::new("http:///y", Duration::from_secs(1)).is_err());
        let delegate =
            HttpDelegate::new("http://192.0.2.9/decide", Duration::from_secs(1)).unwrap();
        assert_eq!(delegate.authority, "192.0.2.9:80");
        assert_eq!(delegate.path, "/decide");
    }
}
