//! The server side of one read transfer, sans-IO (quinn-proto style): the driver feeds
//! datagrams ([`Transfer::handle_datagram`]) and timer expiries ([`Transfer::handle_timeout`])
//! in, and takes datagrams ([`Transfer::poll_transmit`]), the next deadline
//! ([`Transfer::poll_timeout`]) and the outcome ([`Transfer::poll_event`]) out. Time is an
//! argument; nothing here reads a clock or touches a socket.
//!
//! Rules enforced here:
//! - windowsize (RFC 7440): up to `windowsize` blocks per ACK; an ACK in mid-window starts
//!   the next window after the acknowledged block.
//! - Sorcerer's Apprentice (RFC 1123 §4.2.3.1): a duplicate ACK is never answered; only a
//!   timeout retransmits, with a bounded number of tries.
//! - A datagram from another port than the client's gets ERROR 5 and the transfer goes on
//!   (RFC 1350 §4).
//! - ERROR 8 answering the OACK is a finished size probe (EDK2), not a failure.
//! - Every DATA block is a slice of the shared file content: [`Transmit::payload`]. In
//!   netascii mode each block is converted from the shared content as it is sent; only the
//!   conversion's position at the start of each block not yet acknowledged is kept.
//! - A transfer without progress is dropped: after [`TransferConfig::first_ack_limit`] if
//!   its client never acknowledged anything, else [`TransferConfig::stall_limit`] after its
//!   last ACK that moved it forward, whatever the retransmission timer would still allow.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, ErrorCode};
use crate::netascii::{encode_block, EncodeCursor};
use crate::options::{Negotiated, Rollover, TransferConfig};
use crate::wire::{self, Mode, Packet, TftpOption, DATA_HEADER_LEN};

/// One datagram to send: a short header followed by a payload.
///
/// For DATA the header is the 4-byte DATA header and the payload a slice of the shared file;
/// for other packets the header is empty and the payload the whole packet. Send both parts
/// with one vectored write; nothing is copied on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    header: [u8; DATA_HEADER_LEN],
    header_len: u8,
    /// The bytes after the header.
    pub payload: Bytes,
}

/// What the shared UDP layer sends: the header and a slice of the shared file as two
/// iovecs, never copied.
#[cfg(feature = "server")]
impl pxe_udp::segments::Datagram for Transmit {
    fn destination(&self) -> SocketAddr {
        self.destination
    }

    fn header(&self) -> &[u8] {
        Transmit::header(self)
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

impl Transmit {
    /// A DATA block.
    pub fn data(destination: SocketAddr, block: u16, payload: Bytes) -> Self {
        Self {
            destination,
            header: wire::data_header(block),
            header_len: DATA_HEADER_LEN as u8,
            payload,
        }
    }

    /// A control packet (RRQ, ACK, ERROR, OACK) already encoded.
    pub fn packet(destination: SocketAddr, packet: &Packet<'_>) -> Self {
        Self {
            destination,
            header: [0; DATA_HEADER_LEN],
            header_len: 0,
            payload: Bytes::from(packet.to_vec()),
        }
    }

    /// An ERROR packet.
    pub fn error(destination: SocketAddr, code: ErrorCode, message: &str) -> Self {
        Self::packet(destination, &Packet::Error { code, message })
    }

    /// The answer to a datagram from `from`, a port that is not the transfer's peer: ERROR 5,
    /// unless the datagram is itself an ERROR (never answer an error with an error).
    pub fn stranger_reply(from: SocketAddr, bytes: &[u8]) -> Option<Self> {
        let is_error = matches!(Packet::parse(bytes), Ok(Packet::Error { .. }));
        (!is_error)
            .then(|| Self::error(from, ErrorCode::UNKNOWN_TRANSFER_ID, "unknown transfer id"))
    }

    /// The header bytes (empty unless this is DATA).
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The datagram's length.
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// Whether the datagram is empty (never, for a valid packet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole datagram in one vector (a copy: for tests and simple drivers).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(self.header());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// How a transfer ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Every block was acknowledged.
    Completed {
        /// Bytes delivered (after netascii conversion).
        bytes: u64,
        /// Blocks retransmitted along the way.
        retransmitted: u64,
    },
    /// The client read the OACK and ended with ERROR 8: a size probe, done.
    SizeProbe,
    /// The transfer failed.
    Failed(Error),
}

/// Something the driver should know.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The transfer is over; after this, [`Transfer::is_finished`] becomes true once the
    /// last queued datagrams are taken.
    Finished(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// OACK sent, waiting for ACK 0.
    AwaitOackAck,
    /// Sending DATA windows.
    Sending,
    Finished,
}

/// What a transfer sends: the shared content as it is, or converted block by block.
#[derive(Debug)]
enum Body {
    Octet(Bytes),
    Netascii {
        text: Bytes,
        /// Where the conversion of each block from the first unacknowledged one to the one
        /// after the highest sent starts: at most a window and one more.
        starts: VecDeque<EncodeCursor>,
        /// The last block's length, once it has been sent.
        last_len: Option<usize>,
    },
}

/// The server side of one read transfer.
#[derive(Debug)]
pub struct Transfer {
    peer: SocketAddr,
    body: Body,
    blksize: usize,
    windowsize: u64,
    rollover: Rollover,
    base_timeout: Duration,
    /// A timeout the client negotiated is kept exactly (RFC 2349); ours backs off.
    fixed_timeout: bool,
    max_retries: u32,
    first_ack_limit: Duration,
    stall_limit: Duration,
    /// When the transfer is dropped unless an ACK moves it forward first.
    progress_deadline: Option<Instant>,
    /// Whether the client has acknowledged anything yet (the OACK or a DATA block).
    progressed: bool,
    /// Blocks in the transfer; `u64::MAX` while unknown (netascii, until its last block).
    total_blocks: u64,
    state: State,
    /// Highest absolute block acknowledged (0 before any DATA is acknowledged).
    acked: u64,
    /// Next absolute block to send.
    next_send: u64,
    /// Last absolute block of the window being sent.
    window_end: u64,
    /// Highest absolute block sent so far.
    highest_sent: u64,
    oack: Option<Bytes>,
    oack_due: bool,
    control: VecDeque<Transmit>,
    deadline: Option<Instant>,
    retries: u32,
    retransmitted: u64,
    events: VecDeque<Event>,
}

impl Transfer {
    /// Starts serving `content` to `peer` in octet mode with the negotiated parameters.
    ///
    /// `requested` are the request's options, so that the OACK answers exactly those granted
    /// (RFC 2347). With none granted, DATA block 1 goes out first.
    pub fn new(
        peer: SocketAddr,
        content: Bytes,
        requested: &[TftpOption<'_>],
        negotiated: &Negotiated,
        config: &TransferConfig,
    ) -> Self {
        Self::with_mode(peer, content, Mode::Octet, requested, negotiated, config)
    }

    /// Like [`new`](Self::new), in `mode`. In netascii mode `content` is the host text,
    /// converted block by block as it is sent, and tsize is left out of the OACK (the size
    /// on the wire is known only at the end; RFC 2347 lets a server leave out any option).
    pub fn with_mode(
        peer: SocketAddr,
        content: Bytes,
        mode: Mode,
        requested: &[TftpOption<'_>],
        negotiated: &Negotiated,
        config: &TransferConfig,
    ) -> Self {
        let blksize = usize::from(negotiated.blksize.max(1));
        let (body, total_blocks, tsize) = match mode {
            Mode::Octet => {
                let len = content.len() as u64;
                (Body::Octet(content), len / blksize as u64 + 1, Some(len))
            }
            Mode::Netascii => {
                let body = Body::Netascii {
                    text: content,
                    starts: VecDeque::from([EncodeCursor::default()]),
                    last_len: None,
                };
                (body, u64::MAX, None)
            }
        };
        let oack_options = negotiated.oack_options(requested, tsize);
        let oack = (!oack_options.is_empty()).then(|| {
            let options: Vec<TftpOption<'_>> = oack_options
                .iter()
                .map(|(name, value)| TftpOption { name, value })
                .collect();
            Bytes::from(Packet::Oack { options }.to_vec())
        });
        let (base_timeout, fixed_timeout) = match negotiated.timeout_secs {
            Some(secs) => (Duration::from_secs(u64::from(secs)), true),
            None => (config.timeout, false),
        };
        let mut transfer = Self {
            peer,
            body,
            blksize,
            windowsize: u64::from(negotiated.windowsize.max(1)),
            rollover: config.rollover,
            base_timeout,
            fixed_timeout,
            max_retries: config.max_retries,
            first_ack_limit: config.first_ack_limit,
            stall_limit: config.stall_limit,
            progress_deadline: None,
            progressed: false,
            total_blocks,
            state: State::Sending,
            acked: 0,
            next_send: 1,
            window_end: 0,
            highest_sent: 0,
            oack_due: oack.is_some(),
            oack,
            control: VecDeque::new(),
            deadline: None,
            retries: 0,
            retransmitted: 0,
            events: VecDeque::new(),
        };
        if transfer.oack.is_some() {
            transfer.state = State::AwaitOackAck;
        } else {
            transfer.open_window();
        }
        transfer
    }

    /// The client's address (its transfer ID).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Bytes of content on the wire (after any netascii conversion): known from the start in
    /// octet mode, in netascii mode once the last block has been sent.
    pub fn content_len(&self) -> Option<u64> {
        match &self.body {
            Body::Octet(content) => Some(content.len() as u64),
            Body::Netascii { last_len, .. } => {
                last_len.map(|last| (self.total_blocks - 1) * self.blksize as u64 + last as u64)
            }
        }
    }

    /// Whether the client has acknowledged anything yet (the OACK or a DATA block): a
    /// transfer that has not is the first a server under load may let go.
    pub fn has_progressed(&self) -> bool {
        self.progressed
    }

    /// Whether the transfer is over and has nothing left to send.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished && self.control.is_empty()
    }

    /// Feeds one datagram received from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.state == State::Finished {
            return;
        }
        if from != self.peer {
            // RFC 1350 §4: "the source port of the packet is incorrect ... an error packet
            // should be sent to the source of the incorrect packet, while not disturbing the
            // transfer."
            self.control.extend(Transmit::stranger_reply(from, bytes));
            return;
        }
        match Packet::parse(bytes) {
            Ok(Packet::Ack { block }) => self.on_ack(now, block),
            Ok(Packet::Error { code, message }) => {
                if self.state == State::AwaitOackAck && code == ErrorCode::OPTION_NEGOTIATION {
                    self.finish(Outcome::SizeProbe);
                } else {
                    self.finish(Outcome::Failed(Error::Peer {
                        code,
                        message: message.to_string(),
                    }));
                }
            }
            // A client that repeats its request on our port (single-port mode) is waiting for
            // what our timer will resend anyway.
            Ok(Packet::Rrq(_)) => {}
            Ok(_) => self.fail_with_error(Error::Protocol {
                reason: "unexpected packet in a read transfer",
            }),
            Err(error) => self.fail_with_error(Error::Decode(error)),
        }
    }

    /// Feeds the passing of time; retransmits or gives up when the deadline is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Finished {
            return;
        }
        if self.progress_deadline.is_some_and(|limit| now >= limit) {
            // Retransmitting longer would only hold the slot for a client that is not there.
            self.finish(Outcome::Failed(Error::TimedOut {
                retries: self.retries,
            }));
            return;
        }
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline || self.state == State::Finished {
            return;
        }
        self.deadline = None;
        if self.retries >= self.max_retries {
            // The client went away; it gets no packet, only its transfer freed.
            self.finish(Outcome::Failed(Error::TimedOut {
                retries: self.retries,
            }));
            return;
        }
        self.retries += 1;
        match self.state {
            State::AwaitOackAck => self.oack_due = true,
            State::Sending => {
                self.retransmitted += self.highest_sent - self.acked;
                self.open_window();
            }
            State::Finished => {}
        }
    }

    /// The next datagram to send, if any. `now` starts the retransmission timer once a
    /// window is out.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(transmit) = self.control.pop_front() {
            return Some(transmit);
        }
        if self.state != State::Finished && self.progress_deadline.is_none() {
            self.progress_deadline = Some(now + self.first_ack_limit);
        }
        match self.state {
            State::AwaitOackAck if self.oack_due => {
                self.oack_due = false;
                self.deadline = Some(now + self.current_timeout());
                let payload = self.oack.clone().unwrap_or_default();
                Some(Transmit {
                    destination: self.peer,
                    header: [0; DATA_HEADER_LEN],
                    header_len: 0,
                    payload,
                })
            }
            State::Sending if self.next_send <= self.window_end => {
                let block = self.next_send;
                let Some(payload) = self.block_payload(block) else {
                    self.fail_with_error(Error::Protocol {
                        reason: "netascii block out of order",
                    });
                    return self.control.pop_front();
                };
                self.next_send += 1;
                self.highest_sent = self.highest_sent.max(block);
                if self.next_send > self.window_end {
                    self.deadline = Some(now + self.current_timeout());
                }
                Some(Transmit::data(
                    self.peer,
                    self.rollover.wire_block(block),
                    payload,
                ))
            }
            _ => None,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Finished {
            return None;
        }
        match (self.deadline, self.progress_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Absolute block `block`'s payload: a slice of the content, or its netascii conversion
    /// (`None` only if asked out of order, which the window logic never does). Finding the
    /// last netascii block fixes the transfer's length and ends the window there.
    fn block_payload(&mut self, block: u64) -> Option<Bytes> {
        let blksize = self.blksize;
        match &mut self.body {
            Body::Octet(content) => {
                let start = ((block - 1) * blksize as u64).min(content.len() as u64) as usize;
                let end = (start + blksize).min(content.len());
                Some(content.slice(start..end))
            }
            Body::Netascii {
                text,
                starts,
                last_len,
            } => {
                let index = usize::try_from(block.checked_sub(self.acked + 1)?).ok()?;
                let cursor = *starts.get(index)?;
                let (converted, next) = encode_block(text, cursor, blksize);
                if index + 1 == starts.len() {
                    starts.push_back(next);
                }
                if converted.len() < blksize {
                    *last_len = Some(converted.len());
                    self.total_blocks = block;
                    self.window_end = self.window_end.min(block);
                }
                Some(Bytes::from(converted))
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn current_timeout(&self) -> Duration {
        if self.fixed_timeout {
            // The negotiated interval is kept for the first retransmission (RFC 2349). Later
            // ones wait half as long again: a client whose own timer restarts on every packet
            // it ignores (atftp) and runs at the same interval would otherwise never fire it,
            // and a lost ACK would stall the transfer until both sides give up.
            if self.retries == 0 {
                self.base_timeout
            } else {
                self.base_timeout * 3 / 2
            }
        } else {
            self.base_timeout * (1u32 << self.retries.min(3))
        }
    }

    fn open_window(&mut self) {
        self.next_send = self.acked + 1;
        self.window_end = (self.acked + self.windowsize).min(self.total_blocks);
        self.deadline = None;
    }

    /// An ACK moved the transfer forward at `now`.
    fn progress(&mut self, now: Instant) {
        self.progressed = true;
        self.retries = 0;
        self.progress_deadline = Some(now + self.stall_limit);
    }

    fn on_ack(&mut self, now: Instant, block: u16) {
        match self.state {
            State::AwaitOackAck => {
                if block == 0 {
                    self.state = State::Sending;
                    self.progress(now);
                    self.open_window();
                }
            }
            State::Sending => {
                let distance = self.rollover.distance(self.acked, block);
                // 0: a duplicate ACK, never answered (Sorcerer's Apprentice). Beyond what was
                // sent: a stale or bogus number, ignored.
                if distance == 0 || distance > self.highest_sent - self.acked {
                    return;
                }
                self.acked += distance;
                if let Body::Netascii { starts, .. } = &mut self.body {
                    starts.drain(..(distance as usize).min(starts.len() - 1));
                }
                self.progress(now);
                if self.acked == self.total_blocks {
                    self.finish(Outcome::Completed {
                        bytes: self.content_len().unwrap_or_default(),
                        retransmitted: self.retransmitted,
                    });
                } else {
                    self.open_window();
                }
            }
            State::Finished => {}
        }
    }

    fn fail_with_error(&mut self, error: Error) {
        self.control.push_back(Transmit::error(
            self.peer,
            error.code(),
            error.wire_message(),
        ));
        self.finish(Outcome::Failed(error));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.state = State::Finished;
        self.deadline = None;
        self.events.push_back(Event::Finished(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::negotiate;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn start(content: &'static [u8], options: &[(&str, &str)]) -> (Transfer, Instant) {
        start_with(&TransferConfig::default(), Mode::Octet, content, options)
    }

    fn start_with(
        config: &TransferConfig,
        mode: Mode,
        content: &'static [u8],
        options: &[(&str, &str)],
    ) -> (Transfer, Instant) {
        let requested: Vec<TftpOption<'_>> = options
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect();
        let negotiated = negotiate(&requested, config).unwrap();
        let t = Transfer::with_mode(
            peer(),
            Bytes::from_static(content),
            mode,
            &requested,
            &negotiated,
            config,
        );
        (t, Instant::now())
    }

    fn drain(t: &mut Transfer, now: Instant) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| t.poll_transmit(now).map(|x| x.to_vec())).collect()
    }

    fn ack(block: u16) -> Vec<u8> {
        Packet::Ack { block }.to_vec()
    }

    #[test]
    fn lock_step_without_options() {
        let (mut t, now) = start(&[7; 600], &[]);
        let sent = drain(&mut t, now);
        assert_eq!(sent.len(), 1);
        assert_eq!(&sent[0][..4], &[0, 3, 0, 1]);
        assert_eq!(sent[0].len(), 4 + 512);
        t.handle_datagram(now, peer(), &ack(1));
        let sent = drain(&mut t, now);
        assert_eq!(sent, vec![[&[0, 3, 0, 2][..], &[7; 88]].concat()]);
        t.handle_datagram(now, peer(), &ack(2));
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::Completed { bytes: 600, .. }))
        ));
        assert!(t.is_finished());
    }

    #[test]
    fn duplicate_ack_is_never_answered() {
        let (mut t, now) = start(&[1; 2000], &[]);
        drain(&mut t, now);
        t.handle_datagram(now, peer(), &ack(1));
        assert_eq!(drain(&mut t, now).len(), 1);
        t.handle_datagram(now, peer(), &ack(1));
        assert!(drain(&mut t, now).is_empty());
        // Only the timer retransmits.
        let later = now + Duration::from_secs(1);
        t.handle_timeout(later);
        let again = drain(&mut t, later);
        assert_eq!(&again[0][..4], &[0, 3, 0, 2]);
    }

    #[test]
    fn windows_and_mid_window_ack() {
        let (mut t, now) = start(&[0; 512 * 10], &[("windowsize", "4")]);
        let oack = drain(&mut t, now);
        assert_eq!(oack, vec![b"\x00\x06windowsize\x004\x00".to_vec()]);
        t.handle_datagram(now, peer(), &ack(0));
        assert_eq!(drain(&mut t, now).len(), 4);
        // The client lost block 3: it acknowledges 2; the window restarts at 3.
        t.handle_datagram(now, peer(), &ack(2));
        let sent = drain(&mut t, now);
        let blocks: Vec<u8> = sent.iter().map(|d| d[3]).collect();
        assert_eq!(blocks, [3, 4, 5, 6]);
        t.handle_datagram(now, peer(), &ack(6));
        let blocks: Vec<u8> = drain(&mut t, now).iter().map(|d| d[3]).collect();
        assert_eq!(blocks, [7, 8, 9, 10]);
        // An ACK beyond what was sent is ignored.
        t.handle_datagram(now, peer(), &ack(40));
        assert!(t.poll_event().is_none());
        t.handle_datagram(now, peer(), &ack(10));
        assert!(
            drain(&mut t, now).len() == 1,
            "block 11 is the empty last block"
        );
        t.handle_datagram(now, peer(), &ack(11));
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::Completed { .. }))
        ));
    }

    #[test]
    fn error_8_after_oack_is_a_size_probe() {
        let (mut t, now) = start(b"abc", &[("tsize", "0"), ("blksize", "1468")]);
        assert_eq!(
            drain(&mut t, now),
            vec![b"\x00\x06tsize\x003\x00blksize\x001468\x00".to_vec()]
        );
        t.handle_datagram(
            now,
            peer(),
            b"\x00\x05\x00\x08User aborted the transfer\x00",
        );
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::SizeProbe))
        ));
        assert!(t.is_finished());
        assert!(
            drain(&mut t, now).is_empty(),
            "no retransmit, no error sent back"
        );
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn stranger_gets_error_5_and_transfer_goes_on() {
        let (mut t, now) = start(&[1; 10], &[]);
        drain(&mut t, now);
        let stranger: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        t.handle_datagram(now, stranger, &ack(1));
        let sent = t.poll_transmit(now).unwrap();
        assert_eq!(sent.destination, stranger);
        assert_eq!(&sent.to_vec()[..4], &[0, 5, 0, 5]);
        t.handle_datagram(now, peer(), &ack(1));
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::Completed { .. }))
        ));
    }

    #[test]
    fn silent_client_is_dropped_after_bounded_retries() {
        let patient = TransferConfig {
            first_ack_limit: Duration::from_secs(60),
            ..TransferConfig::default()
        };
        let (mut t, mut now) = start_with(&patient, Mode::Octet, &[1; 10], &[("timeout", "2")]);
        let mut sends = drain(&mut t, now).len();
        while !t.is_finished() {
            let deadline = t.poll_timeout().expect("a timer while running");
            // The first wait is the negotiated one; later ones are 1.5× so that they drift
            // out of phase with a client's timer of the same length.
            let expected = if sends == 1 {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(3)
            };
            assert_eq!(deadline - now, expected, "wait before send {}", sends + 1);
            now = deadline;
            t.handle_timeout(now);
            sends += drain(&mut t, now).len();
        }
        assert_eq!(sends, 1 + TransferConfig::default().max_retries as usize);
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::Failed(Error::TimedOut {
                retries: 5
            })))
        ));
    }

    #[test]
    fn no_first_ack_and_no_progress_end_the_transfer_at_their_limits() {
        let config = TransferConfig {
            max_negotiated_timeout: Duration::from_secs(255),
            ..TransferConfig::default()
        };
        // The client asks for the longest timeout and never answers: it is let go after
        // the first-ACK limit, not after 255 s times the retries.
        let (mut t, started) = start_with(&config, Mode::Octet, &[1; 3000], &[("timeout", "255")]);
        drain(&mut t, started);
        assert_eq!(t.poll_timeout(), Some(started + config.first_ack_limit));
        t.handle_timeout(started + config.first_ack_limit);
        assert!(!t.has_progressed());
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::Failed(Error::TimedOut {
                retries: 0
            })))
        ));
        assert!(t.is_finished());

        // A client that acknowledged once and then keeps the transfer waiting is let go
        // `stall_limit` after its last progress, though a retransmission would still be due.
        let (mut t, started) = start_with(&config, Mode::Octet, &[1; 3000], &[("timeout", "255")]);
        drain(&mut t, started);
        let acked_at = started + Duration::from_secs(1);
        t.handle_datagram(acked_at, peer(), &ack(0));
        assert!(t.has_progressed());
        drain(&mut t, acked_at);
        assert_eq!(t.poll_timeout(), Some(acked_at + config.stall_limit));
        t.handle_timeout(acked_at + config.stall_limit);
        assert!(matches!(
            t.poll_event(),
            Some(Event::Finished(Outcome::Failed(Error::TimedOut { .. })))
        ));
    }

    #[test]
    fn netascii_is_converted_per_block_and_survives_retransmission() {
        // 5 host bytes per line become 6 on the wire: block boundaries fall inside CR LF.
        let text: &'static [u8] = b"abcd\nabcd\nab\rd\nabcd\n";
        let wire = crate::netascii::encode(text);
        let (mut t, now) = start_with(
            &TransferConfig::default(),
            Mode::Netascii,
            text,
            &[("blksize", "8"), ("windowsize", "2"), ("tsize", "0")],
        );
        let oack = drain(&mut t, now);
        assert_eq!(
            Packet::parse(&oack[0]).unwrap(),
            Packet::Oack {
                options: vec![
                    TftpOption {
                        name: "blksize",
                        value: "8"
                    },
                    TftpOption {
                        name: "windowsize",
                        value: "2"
                    },
                ]
            },
            "no tsize in netascii"
        );
        assert_eq!(t.content_len(), None, "unknown until the end");
        t.handle_datagram(now, peer(), &ack(0));
        let mut received = Vec::new();
        let mut block = 0u16;
        loop {
            let sent = drain(&mut t, now);
            // Lose the window once, then take it from the retransmission.
            t.handle_timeout(t.poll_timeout().unwrap());
            let again = drain(&mut t, now);
            assert_eq!(sent, again, "a retransmitted window is the same bytes");
            for datagram in &sent {
                block += 1;
                assert_eq!(&datagram[..4], &[0, 3, 0, block as u8]);
                received.extend_from_slice(&datagram[4..]);
            }
            t.handle_datagram(now, peer(), &ack(block));
            if let Some(Event::Finished(outcome)) = t.poll_event() {
                assert!(
                    matches!(outcome, Outcome::Completed { bytes, .. } if bytes == wire.len() as u64),
                    "{outcome:?}"
                );
                break;
            }
        }
        assert_eq!(received, wire);
        assert_eq!(t.content_len(), Some(wire.len() as u64));
    }

    #[test]
    fn garbage_from_the_client_ends_with_error_4() {
        let (mut t, now) = start(&[1; 10], &[]);
        drain(&mut t, now);
        t.handle_datagram(now, peer(), b"\x00");
        assert_eq!(&drain(&mut t, now)[0][..4], &[0, 5, 0, 4]);
        assert!(t.is_finished());
    }

    #[test]
    fn data_blocks_share_the_content() {
        let content = Bytes::from(vec![9u8; 4096]);
        let config = TransferConfig::default();
        let negotiated = negotiate(&[], &config).unwrap();
        let mut t = Transfer::new(peer(), content.clone(), &[], &negotiated, &config);
        let transmit = t.poll_transmit(Instant::now()).unwrap();
        assert_eq!(
            transmit.payload.as_ptr(),
            content.as_ptr(),
            "a slice, not a copy"
        );
    }
}
