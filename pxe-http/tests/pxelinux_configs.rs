//! PXELINUX configs over HTTP: `lpxelinux.0` names itself in a `_Syslinux_BOOTIF` cookie on
//! every request; the config it asks for first (`pxelinux.cfg/01-<mac>`) is the policy's
//! decision for that client, with its files as URLs on the host it asked. Other names, and
//! requests without the cookie, are not found. (The lab test `loaders_netboot` boots a real
//! lpxelinux.0 through this.)

// Drives the service: built only with the `server` feature.
#![cfg(feature = "server")]

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use pxe_http::BootService;
use pxe_policy::{BootEveryone, LinuxBoot};

async fn get(service: &BootService, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(path).header("host", "192.0.2.1:8080");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = service.handle(request.body(()).unwrap()).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_client_named_by_its_cookie_gets_its_config() {
    let policy = BootEveryone(
        LinuxBoot::new("boot/vmlinuz")
            .initrd("boot/initrd.img")
            .cmdline("console=ttyS0 pxe.hash=#x"),
    );
    let service = BootService::builder()
        .policy(policy)
        .pxelinux_configs("/pxelinux/")
        .build()
        .unwrap();
    let cookie = "_Syslinux_BOOTIF=01-52-54-00-12-34-56;_Syslinux_IP=192.0.2.100:192.0.2.1;";
    let (status, body) = get(
        &service,
        "/pxelinux/pxelinux.cfg/01-52-54-00-12-34-56",
        Some(cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        "DEFAULT pxe\nLABEL pxe\nLINUX http://192.0.2.1:8080/boot/vmlinuz\n\
         INITRD http://192.0.2.1:8080/boot/initrd.img\nAPPEND console=ttyS0 pxe.hash=#x\n"
    );
    // Another machine's name, the address prefixes and `default`: not this client's.
    for path in [
        "/pxelinux/pxelinux.cfg/01-52-54-00-12-34-57",
        "/pxelinux/pxelinux.cfg/C0000264",
        "/pxelinux/pxelinux.cfg/default",
    ] {
        assert_eq!(
            get(&service, path, Some(cookie)).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Without the cookie nobody is named.
    let (status, _) = get(
        &service,
        "/pxelinux/pxelinux.cfg/01-52-54-00-12-34-56",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
