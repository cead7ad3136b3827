//! Small files kept in memory: served from memory while unchanged, read again as soon as the
//! file is rewritten, replaced or removed, and never a way around the root's confinement.

// Drives the service: built only with the `server` feature.
#![cfg(feature = "server")]

use std::time::Duration;

use http::{header, Request, StatusCode};
use http_body_util::BodyExt as _;
use pxe_http::BootService;

/// Longer than the time a file must be left unchanged before it is kept (3 s).
const SETTLE: Duration = Duration::from_millis(3200);

async fn get(
    service: &BootService,
    path: &str,
    headers: &[(header::HeaderName, &str)],
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = service.handle(request.body(()).unwrap()).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

fn content(tag: u8) -> Vec<u8> {
    vec![tag; 600]
}

#[tokio::test]
async fn kept_files_follow_every_change_on_disk() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let write = |name: &str, tag: u8| std::fs::write(root_path.join(name), content(tag)).unwrap();
    write("grub.cfg", b'a');
    write("menu.c32", b'm');
    write("inside.cfg", b'i');
    std::fs::write(outside.path().join("secret"), content(b's')).unwrap();
    std::os::unix::fs::symlink("inside.cfg", root_path.join("link.cfg")).unwrap();
    let service = BootService::builder().root(root.path()).build().unwrap();
    std::thread::sleep(SETTLE);

    // Read and kept; asked again, the same bytes, whole, by range and by validator.
    assert_eq!(
        get(&service, "/grub.cfg", &[]).await,
        (StatusCode::OK, content(b'a'))
    );
    assert_eq!(
        get(&service, "/grub.cfg", &[]).await,
        (StatusCode::OK, content(b'a'))
    );
    let (status, part) = get(&service, "/grub.cfg", &[(header::RANGE, "bytes=10-19")]).await;
    assert_eq!(
        (status, part),
        (StatusCode::PARTIAL_CONTENT, vec![b'a'; 10])
    );
    let head = service
        .handle(Request::head("/grub.cfg").body(()).unwrap())
        .await;
    let etag = head.headers()[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "600");
    let (status, _) = get(&service, "/grub.cfg", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Rewritten in place, same size: served fresh at once.
    write("grub.cfg", b'b');
    assert_eq!(
        get(&service, "/grub.cfg", &[]).await,
        (StatusCode::OK, content(b'b'))
    );

    // Replaced by a rename, then removed.
    assert_eq!(
        get(&service, "/menu.c32", &[]).await,
        (StatusCode::OK, content(b'm'))
    );
    write("menu.new", b'n');
    std::fs::rename(root_path.join("menu.new"), root_path.join("menu.c32")).unwrap();
    assert_eq!(
        get(&service, "/menu.c32", &[]).await,
        (StatusCode::OK, content(b'n'))
    );
    std::fs::remove_file(root_path.join("menu.c32")).unwrap();
    assert_eq!(
        get(&service, "/menu.c32", &[]).await.0,
        StatusCode::NOT_FOUND
    );

    // A link kept while it led inside the root, then pointed out of it: refused.
    assert_eq!(
        get(&service, "/link.cfg", &[]).await,
        (StatusCode::OK, content(b'i'))
    );
    assert_eq!(
        get(&service, "/link.cfg", &[]).await,
        (StatusCode::OK, content(b'i'))
    );
    std::fs::remove_file(root_path.join("link.cfg")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root_path.join("link.cfg")).unwrap();
    assert_eq!(
        get(&service, "/link.cfg", &[]).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn without_a_cache_files_are_served_the_same() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("ldlinux.c32"), content(b'l')).unwrap();
    let service = BootService::builder()
        .root(root.path())
        .file_cache(0)
        .build()
        .unwrap();
    for _ in 0..2 {
        let served = get(&service, "/ldlinux.c32", &[]).await;
        assert_eq!(served, (StatusCode::OK, content(b'l')));
    }
}
