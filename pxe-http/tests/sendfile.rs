//! Files sent by `sendfile` on the server's own threads (`serve_on_threads`): every size
//! arrives whole, by range, to a slow reader and pipelined; a file kept open follows changes
//! on disk; a file that shrinks while it is sent ends that connection, not the server.

// Drives the server: built only with the `server` feature.
#![cfg(feature = "server")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use pxe_http::{serve_on_threads, BootService, ServeConfig, ServerThreads};

/// Longer than the time a file must be left unchanged before the cache keeps it (3 s).
const SETTLE: Duration = Duration::from_millis(3200);

/// `len` bytes that differ from one offset to the next and from one `seed` to another.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn server(root: &Path) -> ServerThreads {
    let service = BootService::builder().root(root).build().unwrap();
    let threads = NonZeroUsize::new(1).unwrap();
    serve_on_threads(
        "127.0.0.1:0".parse().unwrap(),
        service,
        ServeConfig::default(),
        threads,
    )
    .unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// A response read off a keep-alive connection: status line, headers (lower case), body.
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (with a Content-Length, or none for HEAD) from `stream`, `pace`
/// bytes per read with `pause` between reads; an error if the connection ends first.
fn read_response(
    stream: &mut TcpStream,
    head_only: bool,
    pace: usize,
    pause: Duration,
) -> std::io::Result<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = response
        .header("content-length")
        .map_or(0, |len| len.parse().unwrap());
    if head_only {
        return Ok(response);
    }
    let mut buf = vec![0u8; pace];
    while response.body.len() < len {
        let want = pace.min(len - response.body.len());
        let n = stream.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        response.body.extend_from_slice(&buf[..n]);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    Ok(response)
}

fn request(stream: &mut TcpStream, method: &str, path: &str, extra: &str) {
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n"
    )
    .unwrap();
}

fn get(stream: &mut TcpStream, path: &str, extra: &str) -> Response {
    request(stream, "GET", path, extra);
    read_response(stream, false, 1 << 16, Duration::ZERO).unwrap()
}

/// Around the sizes where the way a file is sent changes: from memory up to 16 KiB, kept
/// open up to 64 KiB, one placeholder chunk per MiB above.
const SIZES: [usize; 9] = [
    0,
    1,
    16 * 1024,
    16 * 1024 + 1,
    64 * 1024,
    64 * 1024 + 1,
    1024 * 1024,
    1024 * 1024 + 1,
    3 * 1024 * 1024 + 7,
];

#[test]
fn every_size_arrives_whole_whole_by_range_and_after_a_head() {
    let root = tempfile::tempdir().unwrap();
    for (n, size) in SIZES.iter().enumerate() {
        std::fs::write(
            root.path().join(format!("f{size}")),
            pattern(*size, n as u8),
        )
        .unwrap();
    }
    let server = server(root.path());
    let mut stream = connect(server.local_addr());
    // Twice: once opened, once (from 16 to 64 KiB) from the file kept open.
    for round in 0..2 {
        if round == 1 {
            std::thread::sleep(SETTLE);
        }
        for (n, size) in SIZES.iter().enumerate() {
            let path = format!("/f{size}");
            let expected = pattern(*size, n as u8);
            let head = {
                request(&mut stream, "HEAD", &path, "");
                read_response(&mut stream, true, 1, Duration::ZERO).unwrap()
            };
            assert!(head.status.starts_with("HTTP/1.1 200"), "{}", head.status);
            assert_eq!(
                head.header("content-length"),
                Some(size.to_string().as_str())
            );
            let whole = get(&mut stream, &path, "");
            assert!(whole.status.starts_with("HTTP/1.1 200"), "{}", whole.status);
            assert!(whole.body == expected, "{path}: the body differs");
            if *size > 2 {
                // The middle of the file, across the 1 MiB chunk boundary where there is one.
                let (start, end) = if *size > 1024 * 1024 + 10 {
                    (1024 * 1024 - 10, 1024 * 1024 + 9)
                } else {
                    (1, size - 2)
                };
                let part = get(
                    &mut stream,
                    &path,
                    &format!("Range: bytes={start}-{end}\r\n"),
                );
                assert!(part.status.starts_with("HTTP/1.1 206"), "{}", part.status);
                assert!(
                    part.body == expected[start..=end],
                    "{path}: the range differs"
                );
            }
        }
    }
}

#[test]
fn a_slow_reader_and_pipelined_requests_get_every_byte_in_order() {
    let root = tempfile::tempdir().unwrap();
    let big = pattern(3 * 1024 * 1024 + 7, 1);
    let middle = pattern(40 * 1024, 2);
    std::fs::write(root.path().join("big"), &big).unwrap();
    std::fs::write(root.path().join("middle"), &middle).unwrap();
    std::fs::write(root.path().join("small"), b"small file\n").unwrap();
    let server = server(root.path());
    let mut stream = connect(server.local_addr());
    // Three requests at once: the server answers them in order, the first two by sendfile,
    // into a connection the client drains slowly, so sends stop short and wait.
    write!(
        stream,
        "GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /small HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /middle HTTP/1.1\r\nHost: t\r\n\r\nGET /big HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    .unwrap();
    let slow = |stream: &mut TcpStream| {
        read_response(stream, false, 64 * 1024, Duration::from_millis(2)).unwrap()
    };
    assert!(slow(&mut stream).body == big);
    assert_eq!(slow(&mut stream).body, b"small file\n");
    assert!(slow(&mut stream).body == middle);
    assert!(slow(&mut stream).body == big);
}

#[test]
fn a_file_kept_open_follows_every_change_on_disk() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("grubx64.mod");
    let first = pattern(32 * 1024, 1);
    std::fs::write(&path, &first).unwrap();
    let server = server(root.path());
    let mut stream = connect(server.local_addr());
    std::thread::sleep(SETTLE);
    assert!(get(&mut stream, "/grubx64.mod", "").body == first);
    assert!(get(&mut stream, "/grubx64.mod", "").body == first);

    // Rewritten in place, same size: the change time moves, the open file is let go.
    std::thread::sleep(Duration::from_millis(50));
    let second = pattern(32 * 1024, 2);
    std::fs::write(&path, &second).unwrap();
    assert!(get(&mut stream, "/grubx64.mod", "").body == second);

    // Replaced by a rename (a new inode), kept again once settled, then shorter.
    let third = pattern(48 * 1024, 3);
    std::fs::write(root.path().join("new"), &third).unwrap();
    std::fs::rename(root.path().join("new"), &path).unwrap();
    assert!(get(&mut stream, "/grubx64.mod", "").body == third);
    std::thread::sleep(SETTLE);
    assert!(get(&mut stream, "/grubx64.mod", "").body == third);
    let fourth = pattern(20 * 1024, 4);
    std::fs::write(&path, &fourth).unwrap();
    let shorter = get(&mut stream, "/grubx64.mod", "");
    assert_eq!(shorter.header("content-length"), Some("20480"));
    assert!(shorter.body == fourth);

    // Removed: gone, not served from the descriptor still open.
    std::fs::remove_file(&path).unwrap();
    assert!(get(&mut stream, "/grubx64.mod", "")
        .status
        .starts_with("HTTP/1.1 404"));
}

#[test]
fn a_file_that_shrinks_while_it_is_sent_ends_that_connection_only() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("initrd.img");
    std::fs::write(&path, pattern(32 * 1024 * 1024, 5)).unwrap();
    let server = server(root.path());
    let mut stream = connect(server.local_addr());
    request(&mut stream, "GET", "/initrd.img", "");
    // Take the head and a little of the body, then cut the file short.
    let mut first = [0u8; 4096];
    stream.read_exact(&mut first).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1024 * 1024)
        .unwrap();
    let mut rest = Vec::new();
    let ended = stream.read_to_end(&mut rest);
    assert!(
        ended.is_err() || rest.len() + first.len() < 32 * 1024 * 1024,
        "the connection ended before the promised length"
    );
    // The server goes on serving, the shorter file now.
    let mut again = connect(server.local_addr());
    let response = get(&mut again, "/initrd.img", "");
    assert!(response.body == pattern(1024 * 1024, 5));
}
