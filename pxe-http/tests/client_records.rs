//! One client record across stages: the DHCP stage's knowledge of a client's iPXE reaches
//! its script request (an iPXE that said in option 175 it has no HTTPS is never sent to an
//! `https://` URL, although its HTTP request does not say so itself), the ROM's iPXE is told
//! from a chainloaded one, and what the script request told is there for the next DHCP
//! request.

// Drives the service: built only with the `server` feature.
#![cfg(feature = "server")]

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use pxe_http::BootService;
use pxe_policy::{
    BootEveryone, ClientFacts, ClientKind, ClientRecords, IpxeFeature, IpxeFeatures, LinuxBoot,
    MacAddr, Policy,
};

const MAC_WITHOUT_HTTPS: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const MAC_WITH_HTTPS: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
const MAC_UNSEEN: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);

async fn dhcp_stage(policy: &impl Policy, mac: MacAddr, https: bool) {
    let mut features = IpxeFeatures::default();
    features.insert(IpxeFeature::HTTP);
    if https {
        features.insert(IpxeFeature::HTTPS);
    }
    let mut facts = ClientFacts::new(mac, ClientKind::ChainloadedIpxe);
    facts.ipxe = Some(features);
    policy.boot(&facts).await;
}

async fn script(service: &BootService, mac: MacAddr) -> (StatusCode, String) {
    let uri = format!("/boot.ipxe?mac={mac}&buildarch=x86_64&platform=pcbios");
    let response = service.handle(Request::get(uri).body(()).unwrap()).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn https_is_refused_to_an_ipxe_whose_dhcp_request_lacked_it() {
    let records = ClientRecords::default();
    let policy = records.recording(BootEveryone(
        LinuxBoot::new("https://192.0.2.1/vmlinuz").cmdline("console=ttyS0"),
    ));
    dhcp_stage(&policy, MAC_WITHOUT_HTTPS, false).await;
    dhcp_stage(&policy, MAC_WITH_HTTPS, true).await;
    let service = BootService::builder()
        .policy(policy)
        .client_records(records)
        .build()
        .unwrap();

    let (status, body) = script(&service, MAC_WITHOUT_HTTPS).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("no HTTPS support"), "{body}");

    let (status, body) = script(&service, MAC_WITH_HTTPS).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("kernel https://192.0.2.1/vmlinuz"), "{body}");

    // A client the DHCP stage never saw: its features are unknown and the policy's URL is
    // trusted.
    let (status, body) = script(&service, MAC_UNSEEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A policy that answers with what it was told: the kind and serial, as a command line.
struct Echo;

impl Policy for Echo {
    async fn script(&self, facts: &ClientFacts) -> pxe_policy::ScriptDecision {
        pxe_policy::ScriptDecision::Linux(LinuxBoot::new("/k").cmdline(format!(
            "kind={} serial={}",
            facts.kind,
            facts.serial.as_deref().unwrap_or("-")
        )))
    }
}

#[tokio::test]
async fn the_roms_ipxe_is_told_from_a_chainloaded_one_and_facts_carry_over() {
    let records = ClientRecords::default();
    let dhcp = records.recording(Echo);
    let service = BootService::builder()
        .policy(Echo)
        .client_records(records.clone())
        .build()
        .unwrap();
    // The ROM's iPXE asks DHCP, then fetches its script.
    let mut rom = ClientFacts::new(MAC_WITH_HTTPS, ClientKind::FirmwareIpxe);
    rom.ipxe = Some(IpxeFeatures::default());
    dhcp.boot(&rom).await;
    let uri = format!("/boot.ipxe?mac={MAC_WITH_HTTPS}&platform=pcbios&serial=SN-9");
    let response = service.handle(Request::get(uri).body(()).unwrap()).await;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(&format!("kind={} serial=SN-9", ClientKind::FirmwareIpxe)),
        "{body}"
    );
    // The next DHCP request of the same machine is told its serial.
    let record = records.get(MAC_WITH_HTTPS).unwrap();
    assert_eq!(record.serial.as_deref(), Some("SN-9"));
}
