//! The client side of one read transfer, sans-IO: what [`crate::download()`] drives over a socket
//! and what the simulation tests drive on a fake clock.
//!
//! It sends an RRQ with the options asked for, checks the OACK (only requested options, no
//! larger values than asked), acknowledges each window (RFC 7440: the last block of a
//! window, or the last in-order block on a gap), re-acknowledges a retransmitted block once,
//! and retransmits its last packet on timeout, a bounded number of times. After the last
//! block it lingers ("dallies") for one timeout to re-acknowledge a lost final ACK.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode};
use crate::options::{parse_decimal, Rollover, DEFAULT_BLKSIZE};
use crate::transfer::Transmit;
use crate::wire::{Mode, Packet, Request, TftpOption};

/// What a download asks the server for.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Transfer mode.
    pub mode: Mode,
    /// Block size to ask for (RFC 2348), or `None` for 512 without asking.
    pub blksize: Option<u16>,
    /// Window size to ask for (RFC 7440), or `None` for lock-step without asking.
    pub windowsize: Option<u16>,
    /// Ask for the transfer size (RFC 2349).
    pub tsize: bool,
    /// Timeout to ask for in seconds (RFC 2349); without it `timeout` applies locally.
    pub timeout_secs: Option<u8>,
    /// Retransmission timeout when none is negotiated.
    pub timeout: Duration,
    /// Retransmissions before giving up.
    pub max_retries: u32,
    /// Block numbering after 65535 that the server uses.
    pub rollover: Rollover,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Octet,
            blksize: None,
            windowsize: None,
            tsize: false,
            timeout_secs: None,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            rollover: Rollover::ToZero,
        }
    }
}

/// What the download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The file's bytes (netascii decoded in netascii mode).
    pub data: Vec<u8>,
    /// The size the server announced in its OACK, if it was asked and answered.
    pub tsize: Option<u64>,
    /// The block size in force.
    pub blksize: u16,
    /// The window size in force.
    pub windowsize: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitFirst,
    Receiving,
    Dallying,
    Finished,
}

/// The client side of one read transfer.
#[derive(Debug)]
pub struct Download {
    server: SocketAddr,
    peer: Option<SocketAddr>,
    request: Vec<u8>,
    options: DownloadOptions,
    blksize: usize,
    windowsize: u64,
    data: Vec<u8>,
    tsize: Option<u64>,
    /// Absolute blocks received in order.
    received: u64,
    in_window: u64,
    /// The `received` value last acknowledged because of a duplicate or a gap.
    reacked: Option<u64>,
    state: State,
    outbox: VecDeque<Transmit>,
    deadline: Option<Instant>,
    deadline_armed: bool,
    retries: u32,
    result: Option<Result<Downloaded, Error>>,
}

impl Download {
    /// Starts downloading `filename` from `server`.
    pub fn new(server: SocketAddr, filename: &str, options: DownloadOptions) -> Self {
        let blksize = options.blksize.map(|b| b.to_string());
        let windowsize = options.windowsize.map(|w| w.to_string());
        let timeout = options.timeout_secs.map(|t| t.to_string());
        let mut requested = Vec::new();
        if options.tsize {
            requested.push(TftpOption {
                name: "tsize",
                value: "0",
            });
        }
        for (name, value) in [
            ("blksize", &blksize),
            ("windowsize", &windowsize),
            ("timeout", &timeout),
        ] {
            if let Some(value) = value {
                requested.push(TftpOption { name, value });
            }
        }
        let request = Packet::Rrq(Request {
            filename,
            mode: options.mode.as_str(),
            options: requested,
        })
        .to_vec();
        let mut download = Self {
            server,
            peer: None,
            request,
            blksize: usize::from(DEFAULT_BLKSIZE),
            windowsize: 1,
            options,
            data: Vec::new(),
            tsize: None,
            received: 0,
            in_window: 0,
            reacked: None,
            state: State::AwaitFirst,
            outbox: VecDeque::new(),
            deadline: None,
            deadline_armed: false,
            retries: 0,
            result: None,
        };
        download.send_request();
        download
    }

    /// Whether the download is over (including its dally) with nothing left to send.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished && self.outbox.is_empty()
    }

    /// The result once it is known: right after the last block, before the dally ends.
    pub fn result(&self) -> Option<&Result<Downloaded, Error>> {
        self.result.as_ref()
    }

    /// Takes the result once it is known.
    pub fn take_result(&mut self) -> Option<Result<Downloaded, Error>> {
        self.result.take()
    }

    /// Feeds one datagram received from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.state == State::Finished {
            return;
        }
        match self.peer {
            // The server answers from a new port (its transfer ID) on the same host.
            None if from.ip() == self.server.ip() => self.peer = Some(from),
            Some(peer) if peer == from => {}
            _ => {
                self.outbox.extend(Transmit::stranger_reply(from, bytes));
                return;
            }
        }
        match Packet::parse(bytes) {
            Ok(Packet::Oack { options }) if self.state == State::AwaitFirst => {
                match self.accept_oack(&options) {
                    Ok(()) => {
                        self.state = State::Receiving;
                        self.retries = 0;
                        self.send_ack(now, 0);
                    }
                    Err(error) => self.fail_with(error, ErrorCode::OPTION_NEGOTIATION),
                }
            }
            Ok(Packet::Data { block, data }) => {
                if self.state == State::AwaitFirst {
                    // No OACK: the server ignored every option (RFC 2347 allows it).
                    self.state = State::Receiving;
                }
                self.on_data(now, block, data);
            }
            Ok(Packet::Error { code, message }) => {
                self.state = State::Finished;
                self.deadline = None;
                if self.result.is_none() {
                    self.result = Some(Err(Error::Peer {
                        code,
                        message: message.to_string(),
                    }));
                }
            }
            // A repeated OACK: our ACK 0 was lost. Answer it again (once per repeat is safe:
            // the server never answers a duplicate ACK).
            Ok(Packet::Oack { .. }) => {
                if self.state == State::Receiving && self.received == 0 {
                    self.send_ack(now, 0);
                }
            }
            Ok(_) => self.fail_with(
                Error::Protocol {
                    reason: "unexpected packet in a read transfer",
                },
                ErrorCode::ILLEGAL_OPERATION,
            ),
            Err(error) => self.fail_with(Error::Decode(error), ErrorCode::ILLEGAL_OPERATION),
        }
    }

    /// Feeds the passing of time.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        self.deadline = None;
        match self.state {
            State::Dallying => self.state = State::Finished,
            State::Finished => {}
            _ if self.retries >= self.options.max_retries => {
                self.state = State::Finished;
                self.result = Some(Err(Error::TimedOut {
                    retries: self.retries,
                }));
            }
            State::AwaitFirst => {
                self.retries += 1;
                self.send_request();
            }
            State::Receiving => {
                self.retries += 1;
                self.in_window = 0;
                let block = self.options.rollover.wire_block(self.received);
                self.send_ack(now, block);
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let transmit = self.outbox.pop_front()?;
        if self.deadline_armed {
            self.deadline_armed = false;
            self.deadline = Some(now + self.timeout());
        }
        Some(transmit)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn timeout(&self) -> Duration {
        match self.options.timeout_secs {
            Some(secs) if self.state != State::AwaitFirst => Duration::from_secs(u64::from(secs)),
            _ => self.options.timeout,
        }
    }

    fn destination(&self) -> SocketAddr {
        self.peer.unwrap_or(self.server)
    }

    fn send_request(&mut self) {
        self.outbox.push_back(Transmit::packet(
            self.server,
            &Packet::parse(&self.request).expect("own request parses"),
        ));
        self.deadline_armed = true;
    }

    fn send_ack(&mut self, now: Instant, block: u16) {
        self.outbox
            .push_back(Transmit::packet(self.destination(), &Packet::Ack { block }));
        self.deadline = Some(now + self.timeout());
    }

    fn accept_oack(&mut self, options: &[TftpOption<'_>]) -> Result<(), Error> {
        let refuse = |reason| Error::Protocol { reason };
        for option in options {
            let value = parse_decimal(option.value).ok_or(refuse("oack value is not a number"))?;
            let name = option.name;
            if name.eq_ignore_ascii_case("blksize") {
                let asked = self
                    .options
                    .blksize
                    .ok_or(refuse("oack has blksize not asked for"))?;
                if value < 8 || value > u64::from(asked) {
                    return Err(refuse("oack blksize out of range"));
                }
                self.blksize = value as usize;
            } else if name.eq_ignore_ascii_case("windowsize") {
                let asked = self
                    .options
                    .windowsize
                    .ok_or(refuse("oack has windowsize not asked for"))?;
                if value < 1 || value > u64::from(asked) {
                    return Err(refuse("oack windowsize out of range"));
                }
                self.windowsize = value;
            } else if name.eq_ignore_ascii_case("tsize") {
                if !self.options.tsize {
                    return Err(refuse("oack has tsize not asked for"));
                }
                self.tsize = Some(value);
            } else if name.eq_ignore_ascii_case("timeout") {
                if self.options.timeout_secs.map(u64::from) != Some(value) {
                    return Err(refuse("oack timeout differs from the request"));
                }
            } else {
                return Err(refuse("oack has an option not asked for"));
            }
        }
        Ok(())
    }

    fn on_data(&mut self, now: Instant, block: u16, data: &[u8]) {
        if data.len() > self.blksize {
            return self.fail_with(
                Error::Protocol {
                    reason: "data block larger than blksize",
                },
                ErrorCode::ILLEGAL_OPERATION,
            );
        }
        let rollover = self.options.rollover;
        let distance = rollover.distance(self.received, block);
        if self.state == State::Receiving && distance == 1 {
            self.received += 1;
            self.in_window += 1;
            self.retries = 0;
            self.reacked = None;
            self.data.extend_from_slice(data);
            if data.len() < self.blksize {
                self.send_ack(now, block);
                self.complete();
                self.state = State::Dallying;
                self.deadline = Some(now + self.timeout());
            } else if self.in_window >= self.windowsize {
                self.in_window = 0;
                self.send_ack(now, block);
            } else {
                self.deadline = Some(now + self.timeout());
            }
        } else if self.reacked != Some(self.received) {
            // A gap (RFC 7440: acknowledge the last block received in order) or a retransmit
            // of what we already have (our ACK was lost): acknowledge once per position.
            self.reacked = Some(self.received);
            self.in_window = 0;
            self.send_ack(now, rollover.wire_block(self.received));
        }
    }

    fn complete(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        if self.options.mode == Mode::Netascii {
            data = crate::netascii::decode(&data);
        }
        self.result = Some(Ok(Downloaded {
            data,
            tsize: self.tsize,
            blksize: self.blksize as u16,
            windowsize: self.windowsize as u16,
        }));
    }

    fn fail_with(&mut self, error: Error, code: ErrorCode) {
        let message = error.wire_message();
        self.outbox
            .push_back(Transmit::error(self.destination(), code, message));
        self.state = State::Finished;
        self.deadline = None;
        self.result = Some(Err(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SocketAddr {
        "192.0.2.1:69".parse().unwrap()
    }

    fn tid() -> SocketAddr {
        "192.0.2.1:50000".parse().unwrap()
    }

    fn sent(download: &mut Download, now: Instant) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| download.poll_transmit(now).map(|t| t.to_vec())).collect()
    }

    fn windowed() -> DownloadOptions {
        DownloadOptions {
            blksize: Some(8),
            windowsize: Some(4),
            ..DownloadOptions::default()
        }
    }

    #[test]
    fn a_repeated_oack_is_acknowledged_again() {
        let now = Instant::now();
        let mut download = Download::new(server(), "f", windowed());
        assert_eq!(
            sent(&mut download, now),
            vec![b"\x00\x01f\x00octet\x00blksize\x008\x00windowsize\x004\x00".to_vec()]
        );
        let oack = b"\x00\x06blksize\x008\x00windowsize\x004\x00";
        download.handle_datagram(now, tid(), oack);
        assert_eq!(sent(&mut download, now), vec![b"\x00\x04\x00\x00".to_vec()]);
        download.handle_datagram(now, tid(), oack);
        assert_eq!(sent(&mut download, now), vec![b"\x00\x04\x00\x00".to_vec()]);
    }

    #[test]
    fn a_gap_is_acknowledged_once_at_the_last_block_in_order() {
        let now = Instant::now();
        let mut download = Download::new(server(), "f", windowed());
        sent(&mut download, now);
        download.handle_datagram(now, tid(), b"\x00\x06blksize\x008\x00windowsize\x004\x00");
        sent(&mut download, now);
        download.handle_datagram(now, tid(), b"\x00\x03\x00\x01AAAAAAAA");
        // Block 2 is lost: 3 and 4 each reveal the gap; only the first is answered.
        download.handle_datagram(now, tid(), b"\x00\x03\x00\x03CCCCCCCC");
        download.handle_datagram(now, tid(), b"\x00\x03\x00\x04DDDDDDDD");
        assert_eq!(sent(&mut download, now), vec![b"\x00\x04\x00\x01".to_vec()]);
        for (block, data) in [
            (2u8, b"BBBBBBBB"),
            (3, b"CCCCCCCC"),
            (4, b"DDDDDDDD"),
            (5, b"EEEEEEEE"),
        ] {
            let mut packet = vec![0, 3, 0, block];
            packet.extend_from_slice(data);
            download.handle_datagram(now, tid(), &packet);
        }
        assert_eq!(sent(&mut download, now), vec![b"\x00\x04\x00\x05".to_vec()]);
        download.handle_datagram(now, tid(), b"\x00\x03\x00\x06F");
        assert_eq!(sent(&mut download, now), vec![b"\x00\x04\x00\x06".to_vec()]);
        let result = download.take_result().unwrap().unwrap();
        assert_eq!(result.data, b"AAAAAAAABBBBBBBBCCCCCCCCDDDDDDDDEEEEEEEEF");
    }

    #[test]
    fn an_oack_with_an_option_not_asked_for_is_refused() {
        let now = Instant::now();
        let mut download = Download::new(server(), "f", DownloadOptions::default());
        sent(&mut download, now);
        download.handle_datagram(now, tid(), b"\x00\x06blksize\x001468\x00");
        assert_eq!(&sent(&mut download, now)[0][..4], b"\x00\x05\x00\x08");
        assert!(matches!(
            download.take_result(),
            Some(Err(Error::Protocol { .. }))
        ));
    }
}
