//! The DHCP stage's knowledge of a client's iPXE reaches its script request: an iPXE that
//! said (option 175) it has no HTTPS is never sent to an `https://` URL, although its HTTP
//! request does not say so itself.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use pxe_http::BootService;
use pxe_policy::{
    BootEveryone, ClientFacts, ClientKind, ClientMemory, IpxeFeature, IpxeFeatures, LinuxBoot,
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
    let memory = ClientMemory::default();
    let policy = memory.remembering(BootEveryone(
        LinuxBoot::new("https://192.0.2.1/vmlinuz").cmdline("console=ttyS0"),
    ));
    dhcp_stage(&policy, MAC_WITHOUT_HTTPS, false).await;
    dhcp_stage(&policy, MAC_WITH_HTTPS, true).await;
    let service = BootService::builder()
        .policy(policy)
        .client_memory(memory)
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
