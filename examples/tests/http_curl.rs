//! `netboot http` against curl (a real peer) on loopback: HEAD, Range edge cases, traversal
//! attempts in many spellings, malformed requests, keep-alive and scripts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pxe_testkit::{prerequisites, ChildGuard};

/// A `netboot http` process serving a temporary root with known files, and a secret file
/// beside the root that no request may read. Its log goes to a file beside the root.
struct Server {
    child: ChildGuard,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

const SECRET: &str = "outside-the-root-secret";

impl Server {
    fn start(extra: &[&str]) -> Self {
        Self::start_under(&[], "info", extra)
    }

    /// Starts `netboot http` (under `wrapper`, a command such as `prlimit …`, if given) with
    /// `RUST_LOG=log` and the flags `extra`.
    fn start_under(wrapper: &[&str], log: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
        std::fs::write(root.join("ten.bin"), b"0123456789").unwrap();
        std::fs::write(root.join("sub/a file.txt"), b"spaced").unwrap();
        std::fs::write(root.join("empty.bin"), b"").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("ten.bin"), root.join("inside")).unwrap();
        // Sparse: 5 GiB on the file system's word, no disk used; offsets above 4 GiB.
        let big = std::fs::File::create(root.join("big.img")).unwrap();
        big.set_len(5 << 30).unwrap();

        let netboot = env!("CARGO_BIN_EXE_netboot");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(netboot);
                command
            }
            None => Command::new(netboot),
        };
        let log_file = std::fs::File::create(dir.path().join("netboot.log")).unwrap();
        // Port 0: the kernel picks a free port, which netboot logs.
        let child = ChildGuard::spawn(
            command
                .args(["http", "--root"])
                .arg(&root)
                .args(["--listen", "127.0.0.1:0"])
                .args(extra)
                .env("RUST_LOG", log)
                .stdout(log_file)
                .stderr(Stdio::null()),
        );
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let started = server.wait_for_line(&["serving boot files over http"]);
        server.addr = started
            .split_whitespace()
            .find_map(|word| word.strip_prefix("listen=")?.parse().ok())
            .unwrap_or_else(|| panic!("no listen=ADDR in {started:?}"));
        server
    }

    /// What the server logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("netboot.log")).unwrap_or_default()
    }

    /// Waits (up to 30 s) until the log has a line containing every one of `needles`, and
    /// returns that line.
    fn wait_for_line(&self, needles: &[&str]) -> String {
        let started = std::time::Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|needle| line.contains(needle)))
            {
                return line.to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no line with {needles:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn files(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `curl -s -D - ARGS URL`: headers then body, as text.
    fn curl(&self, args: &[&str], path: &str) -> (u16, String, Vec<u8>) {
        // With -I, curl would print the headers twice (as -D and as the "body").
        let sink: &[&str] = if args.contains(&"-I") {
            &["-o", "/dev/null"]
        } else {
            &[]
        };
        let output = curl(&[args, sink, &["--path-as-is", "-D", "-", &self.url(path)]].concat());
        split_response(&output.stdout)
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl")
}

/// Splits curl's `-D -` output into status, lower-cased headers and body.
fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[end + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn http_head_get_and_ranges() {
    if !prerequisites("http_head_get_and_ranges", false, &["curl"]) {
        return;
    }
    let server = Server::start(&[]);

    let (status, head, body) = server.curl(&["-I"], "/ten.bin");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-length"), Some("10"));
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"));
    assert!(header(&head, "etag").is_some() && header(&head, "last-modified").is_some());
    assert!(body.is_empty());
    // On the wire: headers with the length, and not one byte of body after them.
    let answer = raw_exchange(
        server.addr,
        b"HEAD /ten.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("content-length: 10\r\n"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer:?}");

    let (status, head, body) = server.curl(&[], "/ten.bin");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
    assert_eq!(header(&head, "content-length"), Some("10"));

    // (Range header, status, body, Content-Range)
    let cases: &[(&str, u16, &[u8], Option<&str>)] = &[
        ("bytes=0-0", 206, b"0", Some("bytes 0-0/10")),
        ("bytes=9-9", 206, b"9", Some("bytes 9-9/10")),
        ("bytes=-1", 206, b"9", Some("bytes 9-9/10")),
        ("bytes=-3", 206, b"789", Some("bytes 7-9/10")),
        ("bytes=-100", 206, b"0123456789", Some("bytes 0-9/10")),
        ("bytes=3-", 206, b"3456789", Some("bytes 3-9/10")),
        ("bytes=8-100", 206, b"89", Some("bytes 8-9/10")),
        ("bytes=10-", 416, b"", Some("bytes */10")),
        ("bytes=10-20", 416, b"", Some("bytes */10")),
        ("bytes=-0", 416, b"", Some("bytes */10")),
        ("bytes=5-2", 200, b"0123456789", None),
        ("bytes=0-1,4-5", 200, b"0123456789", None),
        ("bytes=x-y", 200, b"0123456789", None),
        ("lines=1-2", 200, b"0123456789", None),
    ];
    for &(range, want_status, want_body, want_range) in cases {
        let (status, head, body) = server.curl(&["-H", &format!("Range: {range}")], "/ten.bin");
        assert_eq!(status, want_status, "{range}");
        assert_eq!(body, want_body, "{range}");
        assert_eq!(header(&head, "content-range"), want_range, "{range}");
        assert_eq!(
            header(&head, "content-length"),
            Some(want_body.len().to_string().as_str()),
            "{range}"
        );
    }

    // HEAD with a Range: the 206 headers, no body.
    let (status, head, body) = server.curl(&["-I", "-H", "Range: bytes=2-5"], "/ten.bin");
    assert_eq!((status, body.len()), (206, 0));
    assert_eq!(header(&head, "content-length"), Some("4"));

    // If-Range with a stale validator: the whole file; with the current one: the range.
    let (_, head, _) = server.curl(&["-I"], "/ten.bin");
    let etag = header(&head, "etag").unwrap().to_string();
    let (status, _, body) = server.curl(
        &["-H", "Range: bytes=0-1", "-H", "If-Range: \"stale\""],
        "/ten.bin",
    );
    assert_eq!((status, body.len()), (200, 10));
    let (status, _, body) = server.curl(
        &["-H", "Range: bytes=0-1", "-H", &format!("If-Range: {etag}")],
        "/ten.bin",
    );
    assert_eq!((status, body.as_slice()), (206, &b"01"[..]));
    let (status, _, body) = server.curl(&["-H", &format!("If-None-Match: {etag}")], "/ten.bin");
    assert_eq!((status, body.len()), (304, 0));

    // Empty files: 200 with length 0; any range is unsatisfiable.
    let (status, head, _) = server.curl(&[], "/empty.bin");
    assert_eq!((status, header(&head, "content-length")), (200, Some("0")));
    let (status, _, _) = server.curl(&["-H", "Range: bytes=0-"], "/empty.bin");
    assert_eq!(status, 416);

    // Offsets past 4 GiB in a 5 GiB (sparse) file, as sanboot reads a large image.
    let (status, head, _) = server.curl(&["-I"], "/big.img");
    assert_eq!(
        (status, header(&head, "content-length")),
        (200, Some("5368709120"))
    );
    let (status, head, body) = server.curl(&["-H", "Range: bytes=5368709000-"], "/big.img");
    assert_eq!(status, 206);
    assert_eq!(
        header(&head, "content-range"),
        Some("bytes 5368709000-5368709119/5368709120")
    );
    assert_eq!(body, vec![0u8; 120]);

    // Encoded names and symbolic links that stay inside the root work.
    let (status, _, body) = server.curl(&[], "/sub/a%20file.txt");
    assert_eq!((status, body.as_slice()), (200, &b"spaced"[..]));
    let (status, _, body) = server.curl(&[], "/inside");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
    let (status, _, _) = server.curl(&[], "/sub");
    assert_eq!(status, 404, "directories are not served");
}

#[test]
fn http_traversal_is_refused() {
    if !prerequisites("http_traversal_is_refused", false, &["curl"]) {
        return;
    }
    let server = Server::start(&[]);
    let secret = server.root().join("secret.txt");
    assert!(secret.exists());
    let attempts = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "//../secret.txt",
        "/./../secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/escape",
        "/%00/../secret.txt",
        "/ten.bin%00.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%252e%252e/secret.txt",
        &format!("/{}", secret.display()),
        "/etc/passwd",
    ];
    for path in attempts {
        let (status, _, body) = server.curl(&[], path);
        assert!(status == 400 || status == 404, "{path}: status {status}");
        assert!(
            !String::from_utf8_lossy(&body).contains(SECRET),
            "{path} read the secret"
        );
    }
}

/// Sends raw bytes and returns what the server answers before closing (or a timeout).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn http_malformed_requests_get_errors_and_the_server_keeps_serving() {
    if !prerequisites("http_malformed_requests", false, &["curl"]) {
        return;
    }
    let server = Server::start(&[]);
    let bad: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /ten.bin HTTP/9.9\r\n\r\n",
        b"GET /ten.bin HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /ten.bin HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /ten.bin HTTP/1.1\r\nHost: \x00\x01\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for request in bad {
        let answer = raw_exchange(server.addr, request);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(request)
        );
    }
    let long_header = format!(
        "GET /ten.bin HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw_exchange(server.addr, long_header.as_bytes());
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer:?}"
    );

    let answer = raw_exchange(
        server.addr,
        b"POST /ten.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer:?}");
    assert!(answer.to_lowercase().contains("allow: get, head"));

    // HTTP/1.0 without a Host header still gets its file.
    let answer = raw_exchange(server.addr, b"GET /ten.bin HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"));
    assert!(answer.ends_with("0123456789"));

    let (status, _, body) = server.curl(&[], "/ten.bin");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
}

#[test]
fn http_keep_alive_serves_script_kernel_and_initrd_on_one_connection() {
    if !prerequisites("http_keep_alive", false, &["curl"]) {
        return;
    }
    let server = Server::start(&[
        "--kernel",
        "ten.bin",
        "--initrd",
        "sub/a%20file.txt",
        "--cmdline",
        "console=ttyS0  two-spaces # not-a-comment",
    ]);
    let script_url = server.url("/boot.ipxe?mac=52-54-00-00-00-01&platform=pcbios&buildarch=i386");
    let output = curl(&[
        "-w",
        "%{num_connects}\\n",
        "-o",
        "/dev/null",
        &script_url,
        "-o",
        "/dev/null",
        &server.url("/ten.bin"),
        "-o",
        "/dev/null",
        &server.url("/sub/a%20file.txt"),
    ]);
    let connects: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(connects, ["1", "0", "0"], "one connection for all three");

    let (status, head, body) = server.curl(
        &[],
        "/boot.ipxe?mac=52-54-00-00-00-01&platform=pcbios&buildarch=i386",
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let script = String::from_utf8(body).unwrap();
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    // The command line has two spaces and a `#`: it is carried whole, in a setting.
    assert!(
        script.contains("kernel ten.bin ${pxe-v0:string}\n"),
        "{script}"
    );
    assert!(script.contains("initrd --name initrd0"), "{script}");

    // A request without facts gets a script that chains back with them.
    let (status, _, body) = server.curl(&[], "/boot.ipxe");
    assert_eq!(status, 200);
    let bootstrap = String::from_utf8(body).unwrap();
    assert!(
        bootstrap.starts_with("#!ipxe\nchain /boot.ipxe?mac=${mac:hexhyp}&"),
        "{bootstrap}"
    );
    // An empty MAC (iPXE had none to expand) is refused, not answered with another chain.
    let (status, _, body) = server.curl(&[], "/boot.ipxe?mac=&uuid=x");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("missing mac"));
}

#[test]
fn http_expansion_in_a_command_line_is_a_clear_error() {
    if !prerequisites("http_expansion_in_a_command_line", false, &["curl"]) {
        return;
    }
    let server = Server::start(&["--kernel", "vmlinuz", "--cmdline", "root=${root}"]);
    let (status, _, body) = server.curl(&[], "/boot.ipxe?mac=52-54-00-00-00-01");
    assert_eq!(status, 500);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("iPXE always expands"), "{body}");
}

#[test]
fn http_idle_connections_are_closed() {
    if !prerequisites("http_idle_connections_are_closed", false, &["curl"]) {
        return;
    }
    let server = Server::start(&["--header-timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    // Generous: the point is that the server closes, not how fast.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 256];
    let read = stream.read(&mut buf);
    assert!(
        matches!(read, Ok(0)) || matches!(read, Ok(n) if buf[..n].starts_with(b"HTTP/1.1 408")),
        "idle connection still open: {read:?}"
    );

    // A keep-alive connection that goes idle after a response is closed too.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /ten.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("idle keep-alive connection still open: {e}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("0123456789"),
        "{answer:?}"
    );
}

#[test]
fn http_clients_that_stop_reading_are_dropped() {
    if !prerequisites(
        "http_clients_that_stop_reading_are_dropped",
        false,
        &["curl"],
    ) {
        return;
    }
    let server = Server::start(&["--write-timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /big.img HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Read nothing while the server fills the socket buffers and its write stalls.
    std::thread::sleep(Duration::from_secs(3));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => panic!("connection neither closed nor served: {e} after {total} bytes"),
        }
    }
    assert!(
        total < 5 << 30,
        "the whole file arrived: the stall was not noticed"
    );
}

/// Sends `GET path` on a keep-alive connection and returns the status (the body is read and
/// dropped); panics if no whole answer comes within 10 s.
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> u16 {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // One write: with a request in pieces, Nagle's algorithm would hold the last piece until
    // the server's delayed ACK, 40 ms a request.
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("GET {path}: no answer: {e}"));
        assert!(n > 0, "GET {path}: connection closed");
        received.extend_from_slice(&buf[..n]);
        let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
        let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
        if received.len() >= end + 4 + len {
            return head.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
}

/// Whether the server closed `stream` (at once, or within 5 s) rather than keeping it open.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// A connection to `to` from the loopback address `from` (127.0.0.0/8 is all loopback): a
/// second or third client address without leaving the machine.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn http_a_fifo_in_the_root_is_refused_and_files_are_still_served() {
    if !prerequisites("http_a_fifo_in_the_root", false, &["curl", "mkfifo"]) {
        return;
    }
    let server = Server::start_under(&[], "info,pxe_http=debug", &[]);
    let fifo = server.files().join("pipe.img");
    pxe_testkit::run_checked("mkfifo", &[fifo.to_str().unwrap()]);
    // Opening a FIFO for reading waits for a writer: more requests than the blocking pool
    // has threads (512) would leave every file request hanging if one open blocked.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    for n in 0..1200 {
        assert_eq!(keep_alive_get(&mut stream, "/pipe.img"), 404, "request {n}");
        if n % 200 == 0 {
            let (status, _, body) = server.curl(&[], "/ten.bin");
            assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
        }
    }
    assert_eq!(keep_alive_get(&mut stream, "/ten.bin"), 200);
    let (status, _, _) = server.curl(&["-I"], "/pipe.img");
    assert_eq!(status, 404);
    server.wait_for_line(&["DEBUG", "not a regular file", "pipe.img"]);
}

#[test]
fn http_a_second_server_on_the_same_port_fails_to_start() {
    if !prerequisites("http_a_second_server_on_the_same_port", false, &["curl"]) {
        return;
    }
    let server = Server::start(&[]);
    let mut second = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_netboot"))
            .args(["http", "--root"])
            .arg(server.files())
            .args(["--listen", &server.addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = second
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "a second server started on {} (the kernel would split clients between them)",
                server.addr
            )
        });
    let mut stderr = String::new();
    second
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("address in use"), "{stderr}");
    // The first one never noticed.
    let (status, _, body) = server.curl(&[], "/ten.bin");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
}

#[test]
fn http_connections_over_the_limits_are_closed_at_once_and_reported() {
    if !prerequisites("http_connections_over_the_limits", false, &["curl"]) {
        return;
    }
    let server = Server::start(&[
        "--threads",
        "2",
        "--max-connections",
        "5",
        "--max-connections-per-client",
        "3",
    ]);
    // Each held connection is served before the next one connects, so the server has
    // counted it: which one is over a limit does not depend on thread timing.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from([127, 0, 0, 1], server.addr);
        assert_eq!(keep_alive_get(&mut stream, "/ten.bin"), 200);
        held.push(stream);
    }
    let mut over_per_client = connect_from([127, 0, 0, 1], server.addr);
    assert!(closed_by_server(&mut over_per_client));
    let line = server.wait_for_line(&["WARN", "over the per-client limit", "count=1"]);
    assert!(
        line.contains("limit=3") && line.contains("latest=127.0.0.1"),
        "{line}"
    );

    for _ in 0..2 {
        let mut stream = connect_from([127, 0, 0, 2], server.addr);
        assert_eq!(keep_alive_get(&mut stream, "/ten.bin"), 200);
        held.push(stream);
    }
    let mut over_total = connect_from([127, 0, 0, 3], server.addr);
    assert!(closed_by_server(&mut over_total));
    let line = server.wait_for_line(&["WARN", "over the server's limit", "count=1"]);
    assert!(line.contains("limit=5"), "{line}");

    // The connections it holds are served throughout; freed slots are taken again.
    for stream in &mut held {
        assert_eq!(keep_alive_get(stream, "/sub/a%20file.txt"), 200);
    }
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, body) = server.curl(&["--interface", "127.0.0.3"], "/ten.bin");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
}

#[test]
fn http_slow_readers_are_dropped_and_reported_while_others_are_served() {
    if !prerequisites("http_slow_readers_are_dropped", false, &["curl"]) {
        return;
    }
    // At least 1 MB/s, checked every second spent waiting on the client.
    let server = Server::start(&["--write-timeout", "1", "--min-send-rate", "1000000"]);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /big.img HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // About 80 KB/s until the server reports the drop, for at most 60 s. (The client only
    // sees the end after reading what its socket buffers still hold.)
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 8192];
    let mut total = 0u64;
    let mut reads = 0u32;
    const DROPPED: &str = "reading their responses too slowly";
    while !server.log().contains(DROPPED) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a reader at 80 KB/s was kept for 60 s ({total} bytes)"
        );
        total += slow.read(&mut buf).unwrap() as u64;
        reads += 1;
        if reads.is_multiple_of(20) {
            // Others are served while it crawls.
            let (status, _, _) = server.curl(&[], "/ten.bin");
            assert_eq!(status, 200);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Dropped: what is left is what the socket buffers held, then the end.
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reported as dropped but still open: {e} after {total} bytes"),
        }
    }
    assert!(
        total < 1 << 30,
        "{total} bytes reached a client reading at 80 KB/s"
    );
    let line = server.wait_for_line(&["WARN", "reading their responses too slowly"]);
    assert!(
        line.contains("count=1") && line.contains("latest=127.0.0.1"),
        "{line}"
    );
    let (status, _, body) = server.curl(&[], "/ten.bin");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
}

#[test]
fn http_out_of_file_descriptors_backs_off_and_serves_again() {
    if !prerequisites("http_out_of_file_descriptors", false, &["curl", "prlimit"]) {
        return;
    }
    // 64 descriptors: a few dozen connections exhaust them, well under the connection limits.
    let server = Server::start_under(
        &["prlimit", "--nofile=64", "--"],
        "info",
        &["--threads", "2", "--header-timeout", "2"],
    );
    // Slow clients: connect and never send a request, more than the descriptors allow.
    let slow: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    server.wait_for_line(&["WARN", "accepting connections failed", "count="]);
    // While out of descriptors, the server backs off rather than spinning on accept.
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - before;
    assert!(
        used < 30,
        "{used} ticks of CPU in 1 s while out of descriptors"
    );
    // The header timeout drops the slow clients (in waves, as descriptors free up), and a
    // legitimate request is served once they are gone; curl waits in the backlog meanwhile.
    let (status, _, body) = server.curl(&[], "/ten.bin");
    assert_eq!((status, body.as_slice()), (200, &b"0123456789"[..]));
    let line = server.wait_for_line(&["WARN", "sent no request within the header timeout"]);
    assert!(line.contains("count="), "{line}");
    drop(slow);
}
