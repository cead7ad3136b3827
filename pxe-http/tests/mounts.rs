//! Mounts: the root, directories under a prefix, and single files, most specific first.

// Drives the service: built only with the `server` feature.
#![cfg(feature = "server")]

use http::{Request, StatusCode};
use pxe_http::BootService;

fn write(dir: &std::path::Path, name: &str, len: usize) {
    std::fs::write(dir.join(name), vec![b'x'; len]).unwrap();
}

async fn status_and_len(service: &BootService, path: &str) -> (StatusCode, Option<u64>) {
    let response = service.handle(Request::head(path).body(()).unwrap()).await;
    let len = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (response.status(), len)
}

#[tokio::test]
async fn most_specific_mount_serves() {
    let root = tempfile::tempdir().unwrap();
    let ipxe = tempfile::tempdir().unwrap();
    let kernels = tempfile::tempdir().unwrap();
    write(root.path(), "index.txt", 1);
    std::fs::create_dir(root.path().join("ipxe")).unwrap();
    write(&root.path().join("ipxe"), "snponly.efi", 2);
    write(ipxe.path(), "snponly.efi", 3);
    write(kernels.path(), "vmlinuz", 4);
    write(kernels.path(), "secret", 5);

    let service = BootService::builder()
        .root(root.path())
        .mount("/ipxe/", ipxe.path())
        .file("/boot/0/vmlinuz", kernels.path().join("vmlinuz"))
        .build()
        .unwrap();

    let ok = StatusCode::OK;
    assert_eq!(status_and_len(&service, "/index.txt").await, (ok, Some(1)));
    // The /ipxe/ mount shadows the root's ipxe directory.
    assert_eq!(
        status_and_len(&service, "/ipxe/snponly.efi").await,
        (ok, Some(3))
    );
    assert_eq!(
        status_and_len(&service, "/boot/0/vmlinuz").await,
        (ok, Some(4))
    );
    // A single-file mount exposes nothing else of its directory.
    for path in ["/boot/0/secret", "/boot/0/", "/boot/0/vmlinuz/x"] {
        assert_eq!(
            status_and_len(&service, path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        status_and_len(&service, "/ipxe/../boot/0/secret").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn bad_mounts_are_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f", 1);
    assert!(BootService::builder()
        .file("/f", dir.path())
        .build()
        .is_err());
    assert!(BootService::builder()
        .mount("/d/", dir.path().join("f"))
        .build()
        .is_err());
    assert!(BootService::builder()
        .mount("/../x/", dir.path())
        .build()
        .is_err());
    assert!(BootService::builder()
        .mount("/d/", dir.path().join("missing"))
        .build()
        .is_err());
}
