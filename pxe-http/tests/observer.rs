//! The HTTP observer hears what the service answered: each response's route and status, and
//! the body bytes as the connection takes them (a range is its slice, a HEAD nothing).

// Drives the service: built only with the `server` feature.
#![cfg(feature = "server")]

use std::sync::{Arc, Mutex};

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use pxe_http::{BootService, HttpObserver, Route};
use pxe_policy::{BootEveryone, LinuxBoot};

#[derive(Debug, Default)]
struct Heard {
    responses: Mutex<Vec<(Route, u16)>>,
    bytes: Mutex<Vec<(Route, u64)>>,
}

impl HttpObserver for Heard {
    fn response(&self, route: Route, status: u16) {
        self.responses.lock().unwrap().push((route, status));
    }

    fn body_sent(&self, route: Route, bytes: u64) {
        self.bytes.lock().unwrap().push((route, bytes));
    }
}

impl Heard {
    fn bytes_on(&self, route: Route) -> u64 {
        let bytes = self.bytes.lock().unwrap();
        bytes
            .iter()
            .filter(|(r, _)| *r == route)
            .map(|(_, n)| n)
            .sum()
    }
}

async fn get(service: &BootService, request: Request<()>) -> (StatusCode, usize) {
    let response = service.handle(request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.len())
}

#[tokio::test]
async fn routes_statuses_and_the_bytes_that_went() {
    let root = tempfile::tempdir().unwrap();
    // Larger than what is read whole, so the body streams in chunks.
    let kernel = vec![7u8; 300_000];
    std::fs::write(root.path().join("vmlinuz"), &kernel).unwrap();
    let heard = Arc::new(Heard::default());
    let service = BootService::builder()
        .root(root.path())
        .policy(BootEveryone(LinuxBoot::new("/vmlinuz")))
        .observer(heard.clone())
        .build()
        .unwrap();

    let (status, len) = get(&service, Request::get("/vmlinuz").body(()).unwrap()).await;
    assert_eq!((status, len), (StatusCode::OK, kernel.len()));
    let ranged = Request::get("/vmlinuz")
        .header(http::header::RANGE, "bytes=0-99")
        .body(())
        .unwrap();
    assert_eq!(
        get(&service, ranged).await,
        (StatusCode::PARTIAL_CONTENT, 100)
    );
    let head = Request::head("/vmlinuz").body(()).unwrap();
    assert_eq!(get(&service, head).await, (StatusCode::OK, 0));
    let (status, _) = get(&service, Request::get("/missing").body(()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, script_len) = get(
        &service,
        Request::get("/boot.ipxe?mac=52:54:00:00:00:01")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let post = Request::post("/vmlinuz").body(()).unwrap();
    assert_eq!(get(&service, post).await.0, StatusCode::METHOD_NOT_ALLOWED);

    assert_eq!(
        *heard.responses.lock().unwrap(),
        vec![
            (Route::File, 200),
            (Route::File, 206),
            (Route::File, 200),
            (Route::File, 404),
            (Route::Script, 200),
            (Route::Other, 405),
        ]
    );
    let not_found_len = "not found\n".len() as u64;
    assert_eq!(
        heard.bytes_on(Route::File),
        kernel.len() as u64 + 100 + not_found_len
    );
    assert_eq!(heard.bytes_on(Route::Script), script_len as u64);
}
