//! A small tokio TFTP client over [`Download`], for tests, benchmarks and tools.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::download::{Download, DownloadOptions, Downloaded};
use crate::error::Error;

/// Downloads `filename` from `server` with `options`.
///
/// Returns as soon as the last block is acknowledged (it does not dally).
pub async fn download(
    server: SocketAddr,
    filename: &str,
    options: DownloadOptions,
) -> Result<Downloaded, Error> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|source| Error::Io {
        action: "binding the client socket",
        source,
    })?;
    let mut download = Download::new(server, filename, options);
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        while let Some(transmit) = download.poll_transmit(now) {
            pxe_udp::segments::send_one_async(&socket, &transmit)
                .await
                .map_err(|source| Error::Io {
                    action: "sending",
                    source,
                })?;
        }
        if let Some(result) = download.take_result() {
            return result;
        }
        let Some(deadline) = download.poll_timeout() else {
            return Err(Error::Protocol {
                reason: "download stopped without a result",
            });
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => download.handle_datagram(Instant::now(), from, &buf[..len]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(source) => return Err(Error::Io { action: "receiving", source }),
            },
            () = tokio::time::sleep_until(deadline.into()) => download.handle_timeout(Instant::now()),
        }
    }
}
