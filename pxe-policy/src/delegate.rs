//! A ready policy that asks an external service what each client boots: JSON in, decision out,
//! with a fallback when the service fails, is slow or answers nonsense.
//!
//! The request is one JSON object per question:
//!
//! ```json
//! {"stage": "boot", "mac": "52:54:00:12:34:56", "kind": "firmware-pxe", "arch": 7,
//!  "guid": "9e0c1ab0-0000-4000-8000-000000000001", "serial": null, "asset": null,
//!  "manufacturer": null, "product": null, "hostname": null,
//!  "vendor_class": "PXEClient:Arch:00007:UNDI:003000", "user_class": null, "ip": null,
//!  "ipxe_features": null, "https": false, "relay": null, "extra": {}}
//! ```
//!
//! `stage` is `"boot"` (the DHCP stage) or `"script"` (the HTTP stage). The answer has the
//! shape of a [`TablePolicy`](crate::table::TablePolicy) profile: exactly one of `kernel` (with
//! `initrds`, `cmdline`), `chain`, `sanboot` or `action` (`"exit"`, `"ignore"`), and optionally
//! `ipxe_binary`. At the boot stage only `action = "ignore"` and `ipxe_binary` matter.
//!
//! This crate does no I/O: the exchange itself (HTTP POST with a timeout) is a
//! [`DelegateTransport`]; `pxe-http` provides one over HTTP.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::table::{ProfileError, ProfileTarget};
use crate::{BootDecision, ClientFacts, DelegateError, IpxeBinary, Policy, ScriptDecision};

/// Carries one request to the delegate service and brings back its answer.
pub trait DelegateTransport: Send + Sync + 'static {
    /// Sends `request` (a JSON document) and returns the answer body.
    fn exchange(
        &self,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, DelegateError>> + Send + '_;
}

#[derive(Serialize)]
struct Request<'a> {
    stage: &'static str,
    mac: String,
    kind: &'static str,
    arch: Option<u16>,
    guid: Option<String>,
    serial: Option<&'a str>,
    asset: Option<&'a str>,
    manufacturer: Option<&'a str>,
    product: Option<&'a str>,
    hostname: Option<&'a str>,
    vendor_class: Option<&'a str>,
    user_class: Option<&'a str>,
    ip: Option<String>,
    ipxe_features: Option<Vec<u8>>,
    https: bool,
    relay: Option<RelayJson>,
    extra: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RelayJson {
    giaddr: String,
    circuit_id: Option<String>,
    remote_id: Option<String>,
}

impl<'a> Request<'a> {
    fn new(stage: &'static str, client: &'a ClientFacts) -> Self {
        let hex = |bytes: &Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            stage,
            mac: client.mac.to_string(),
            kind: client.kind.as_str(),
            arch: client.arch.map(|a| a.0),
            guid: client.guid.map(|g| g.to_string()),
            serial: client.serial.as_deref(),
            asset: client.asset.as_deref(),
            manufacturer: client.manufacturer.as_deref(),
            product: client.product.as_deref(),
            hostname: client.hostname.as_deref(),
            vendor_class: client.vendor_class.as_deref(),
            user_class: client.user_class.as_deref(),
            ip: client.ip.map(|ip| ip.to_string()),
            ipxe_features: client.ipxe.map(|f| f.iter().map(|f| f.0).collect()),
            https: client.supports_https(),
            relay: client.relay.as_ref().map(|relay| RelayJson {
                giaddr: relay.giaddr.to_string(),
                circuit_id: relay.circuit_id.as_ref().map(hex),
                remote_id: relay.remote_id.as_ref().map(hex),
            }),
            extra: &client.extra,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    kernel: Option<String>,
    #[serde(default)]
    initrds: Vec<String>,
    #[serde(default)]
    cmdline: String,
    chain: Option<String>,
    sanboot: Option<String>,
    action: Option<String>,
    ipxe_binary: Option<String>,
}

impl Answer {
    fn parse(body: &[u8]) -> Result<Self, DelegateError> {
        serde_json::from_slice(body).map_err(|e| DelegateError::Answer {
            reason: "not the JSON of a profile".to_string(),
            source: Some(e),
        })
    }

    fn target(&self) -> ProfileTarget<'_> {
        ProfileTarget {
            kernel: self.kernel.as_deref(),
            initrds: &self.initrds,
            cmdline: &self.cmdline,
            chain: self.chain.as_deref(),
            sanboot: self.sanboot.as_deref(),
            // The delegate's answer has no iSCSI form in this version.
            iscsi: None,
            action: self.action.as_deref(),
        }
    }

    fn script(&self) -> Result<ScriptDecision, DelegateError> {
        self.target()
            .decision()
            .map(|(script, _)| script)
            .map_err(|e| match e {
                ProfileError::UnknownAction(m) | ProfileError::NotExactlyOne(m) => {
                    DelegateError::Answer {
                        reason: m,
                        source: None,
                    }
                }
            })
    }

    fn boot(&self, client: &ClientFacts) -> BootDecision {
        if self.action.as_deref() == Some("ignore") {
            return BootDecision::Ignore;
        }
        match &self.ipxe_binary {
            Some(binary) => BootDecision::Ipxe(IpxeBinary::named(binary.clone())),
            None => BootDecision::chainload_for(client.arch),
        }
    }
}

/// The delegate policy: asks a [`DelegateTransport`] at each stage and falls back to fixed
/// decisions when it fails.
#[derive(Debug, Clone)]
pub struct DelegatePolicy<T> {
    transport: T,
    fallback_boot: Option<BootDecision>,
    fallback_script: ScriptDecision,
}

impl<T: DelegateTransport> DelegatePolicy<T> {
    /// Asks `transport`; on failure chainloads iPXE by architecture at the DHCP stage and
    /// answers `fallback` at the HTTP stage.
    pub fn new(transport: T, fallback: ScriptDecision) -> Self {
        Self {
            transport,
            fallback_boot: None,
            fallback_script: fallback,
        }
    }

    /// Uses `decision` at the DHCP stage when the delegate fails (default: chainload iPXE by
    /// architecture).
    #[must_use]
    pub fn with_boot_fallback(mut self, decision: BootDecision) -> Self {
        self.fallback_boot = Some(decision);
        self
    }

    async fn ask(
        &self,
        stage: &'static str,
        client: &ClientFacts,
    ) -> Result<Answer, DelegateError> {
        let request = serde_json::to_vec(&Request::new(stage, client)).map_err(|e| {
            DelegateError::Answer {
                reason: "cannot encode the question".to_string(),
                source: Some(e),
            }
        })?;
        let body = self.transport.exchange(request).await?;
        Answer::parse(&body)
    }
}

impl<T: DelegateTransport> Policy for DelegatePolicy<T> {
    async fn boot(&self, client: &ClientFacts) -> BootDecision {
        match self.ask("boot", client).await {
            Ok(answer) => answer.boot(client),
            Err(error) => {
                tracing::warn!(mac = %client.mac, %error, "delegate failed at the boot stage; using the fallback");
                self.fallback_boot
                    .clone()
                    .unwrap_or_else(|| BootDecision::chainload_for(client.arch))
            }
        }
    }

    async fn script(&self, client: &ClientFacts) -> ScriptDecision {
        match self.ask("script", client).await.and_then(|a| a.script()) {
            Ok(script) => script,
            Err(error) => {
                tracing::warn!(mac = %client.mac, %error, "delegate failed at the script stage; using the fallback");
                self.fallback_script.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arch, ClientKind, LinuxBoot, MacAddr};
    use std::sync::Mutex;

    /// A transport that records requests and replays a fixed answer.
    struct Canned {
        answer: Result<&'static str, ()>,
        seen: Mutex<Vec<serde_json::Value>>,
    }

    impl DelegateTransport for Canned {
        fn exchange(
            &self,
            request: Vec<u8>,
        ) -> impl Future<Output = Result<Vec<u8>, DelegateError>> + Send + '_ {
            self.seen
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&request).unwrap());
            let answer =
                self.answer
                    .map(|a| a.as_bytes().to_vec())
                    .map_err(|()| DelegateError::Timeout {
                        after: std::time::Duration::from_secs(2),
                    });
            std::future::ready(answer)
        }
    }

    fn run<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("canned futures are always ready"),
        }
    }

    fn policy(answer: Result<&'static str, ()>) -> DelegatePolicy<Canned> {
        DelegatePolicy::new(
            Canned {
                answer,
                seen: Mutex::new(Vec::new()),
            },
            ScriptDecision::ExitToDisk,
        )
    }

    fn client() -> ClientFacts {
        let mut client = ClientFacts::new(
            MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            ClientKind::FirmwarePxe,
        );
        client.arch = Some(Arch::X64_UEFI);
        client.serial = Some("SN1".into());
        client
    }

    #[test]
    fn answers_become_decisions_and_facts_are_sent() {
        let p = policy(Ok(
            r#"{"kernel":"k","initrds":["i"],"cmdline":"c","ipxe_binary":"ipxe.efi"}"#,
        ));
        assert_eq!(
            run(p.script(&client())),
            ScriptDecision::Linux(LinuxBoot::new("k").initrd("i").cmdline("c"))
        );
        assert_eq!(
            run(p.boot(&client())),
            BootDecision::Ipxe(IpxeBinary::named("ipxe.efi"))
        );
        let seen = p.transport.seen.lock().unwrap();
        assert_eq!(seen[0]["stage"], "script");
        assert_eq!(seen[1]["stage"], "boot");
        assert_eq!(seen[0]["mac"], "52:54:00:12:34:56");
        assert_eq!(seen[0]["arch"], 7);
        assert_eq!(seen[0]["serial"], "SN1");
        assert_eq!(seen[0]["kind"], "firmware-pxe");
    }

    #[test]
    fn ignore_is_silence_at_both_stages() {
        let p = policy(Ok(r#"{"action":"ignore"}"#));
        assert_eq!(run(p.boot(&client())), BootDecision::Ignore);
        assert_eq!(run(p.script(&client())), ScriptDecision::Ignore);
    }

    #[test]
    fn failures_fall_back() {
        for answer in [
            Err(()),
            Ok("not json"),
            Ok(r#"{"action":"reboot"}"#),
            Ok("{}"),
        ] {
            let p = policy(answer);
            assert_eq!(run(p.script(&client())), ScriptDecision::ExitToDisk);
        }
        let p = policy(Err(()));
        assert_eq!(
            run(p.boot(&client())),
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );
        let p = policy(Err(())).with_boot_fallback(BootDecision::Ignore);
        assert_eq!(run(p.boot(&client())), BootDecision::Ignore);
    }
}
