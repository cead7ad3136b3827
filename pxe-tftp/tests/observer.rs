//! The TFTP observer hears each transfer once it starts and once it ends (with the bytes a
//! completed one delivered), and each refused request with its reason, over loopback with
//! the real client.

// Drives the server: built only with the `server` feature.
#![cfg(feature = "server")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pxe_tftp::{Directory, DownloadOptions, Outcome, Server, ServerConfig, TftpObserver};

#[derive(Debug, Default)]
struct Heard(Mutex<Vec<String>>);

impl TftpObserver for Heard {
    fn transfer_started(&self, _peer: SocketAddr, file: &str) {
        self.0.lock().unwrap().push(format!("started {file}"));
    }

    fn transfer_finished(&self, _peer: SocketAddr, file: &str, outcome: &Outcome) {
        let outcome = match outcome {
            Outcome::Completed { bytes, .. } => format!("completed {bytes}"),
            Outcome::SizeProbe => "size probe".to_string(),
            _ => "failed".to_string(),
        };
        self.0
            .lock()
            .unwrap()
            .push(format!("finished {file}: {outcome}"));
    }

    fn request_refused(&self, _peer: SocketAddr, reason: &'static str) {
        self.0.lock().unwrap().push(format!("refused: {reason}"));
    }
}

#[tokio::test]
async fn transfers_and_refusals_are_told_once_each() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ipxe.efi"), vec![7u8; 100_000]).unwrap();
    let heard = Arc::new(Heard::default());
    let config = ServerConfig {
        observer: Some(heard.clone()),
        ..ServerConfig::default()
    };
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Directory::new(dir.path()).unwrap(),
        config,
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());
    let options = DownloadOptions {
        blksize: Some(1468),
        tsize: true,
        timeout: Duration::from_millis(200),
        ..DownloadOptions::default()
    };
    let got = pxe_tftp::download(addr, "ipxe.efi", options.clone())
        .await
        .unwrap();
    assert_eq!(got.data.len(), 100_000);
    assert!(pxe_tftp::download(addr, "missing", options).await.is_err());
    // The last event of a transfer is told as its task ends: give it a moment.
    for _ in 0..100 {
        if heard.0.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    serving.abort();
    let mut heard = heard.0.lock().unwrap().clone();
    heard.sort();
    assert_eq!(
        heard,
        vec![
            "finished ipxe.efi: completed 100000",
            "refused: not_found",
            "started ipxe.efi",
        ]
    );
}
