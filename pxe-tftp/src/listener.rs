//! The listening port's rules, without sockets: what the server does with a datagram from an
//! address that has no transfer, and the acceptance of a read request (its mode and its
//! options). [`Server`](crate::Server) only carries out the answer; the rules are tested here
//! without a network.

use std::net::SocketAddr;

use crate::options::{negotiate, Negotiated, TransferConfig};
use crate::wire::{Mode, Packet, TftpOption};
use crate::{DecodeError, Error, ErrorCode, Transmit};

/// Longest request accepted: twice the 512 octets RFC 2347 sets as a request's limit (a
/// transfer keeps its request for its whole life).
pub const MAX_REQUEST_LEN: usize = 1024;

/// What the listening port does with one datagram.
#[derive(Debug)]
pub enum ListenerAction {
    /// Start a transfer for this read request, if the server's limits allow one more.
    Start(ReadRequest),
    /// Answer with this ERROR, and nothing else.
    Refuse {
        /// The ERROR to send to the datagram's source.
        reply: Transmit,
        /// Why, for the log.
        why: Refused,
    },
    /// Say nothing: the datagram is an ERROR, which is never answered with an ERROR (RFC
    /// 1350 §7).
    Ignore,
}

/// Why the listening port answered a datagram with an ERROR.
#[derive(Debug)]
pub enum Refused {
    /// A read request longer than [`MAX_REQUEST_LEN`]: no real client sends one.
    Oversized {
        /// Its length in bytes.
        len: usize,
    },
    /// A write request: the server is read-only.
    WriteRequest {
        /// The file the client wanted to write.
        filename: String,
    },
    /// DATA, ACK or OACK from an address with no transfer.
    UnknownTransfer,
    /// Not a TFTP packet.
    Malformed(DecodeError),
    /// A read request this server does not serve: an unknown mode, or an option outside
    /// what its RFC allows.
    Request(Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Oversized { len } => write!(f, "request of {len} bytes is too long"),
            Refused::WriteRequest { filename } => write!(f, "write request for {filename:?}"),
            Refused::UnknownTransfer => f.write_str("packet for no transfer"),
            Refused::Malformed(error) => write!(f, "malformed request: {error}"),
            Refused::Request(error) => error.fmt(f),
        }
    }
}

/// A read request the server accepts, parsed once and owned: what a transfer needs of it for
/// its whole life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// The file name as sent (sources normalise it).
    pub filename: String,
    /// The transfer mode.
    pub mode: Mode,
    /// The options as sent, in the client's order (the OACK answers in that order).
    pub options: Vec<(String, String)>,
    /// The transfer's parameters, negotiated from the options.
    pub negotiated: Negotiated,
}

impl ReadRequest {
    /// The options as the wire layer's [`TftpOption`]s.
    pub fn wire_options(&self) -> Vec<TftpOption<'_>> {
        self.options
            .iter()
            .map(|(name, value)| TftpOption { name, value })
            .collect()
    }
}

/// What the listening port does with `datagram` from `from`, an address with no transfer:
/// start a transfer for a read request it accepts, answer anything else it must with an
/// ERROR, and ignore an ERROR.
pub fn on_datagram(from: SocketAddr, datagram: &[u8], config: &TransferConfig) -> ListenerAction {
    let refuse = |code: ErrorCode, message: &str, why: Refused| ListenerAction::Refuse {
        reply: Transmit::error(from, code, message),
        why,
    };
    match Packet::parse(datagram) {
        Ok(Packet::Rrq(_)) if datagram.len() > MAX_REQUEST_LEN => refuse(
            ErrorCode::ILLEGAL_OPERATION,
            "request too long",
            Refused::Oversized {
                len: datagram.len(),
            },
        ),
        Ok(Packet::Rrq(request)) => {
            let accepted = request
                .transfer_mode()
                .ok_or_else(|| Error::UnsupportedMode {
                    mode: request.mode.to_string(),
                })
                .and_then(|mode| Ok((mode, negotiate(&request.options, config)?)));
            match accepted {
                Ok((mode, negotiated)) => ListenerAction::Start(ReadRequest {
                    filename: request.filename.to_string(),
                    mode,
                    options: request
                        .options
                        .iter()
                        .map(|o| (o.name.to_string(), o.value.to_string()))
                        .collect(),
                    negotiated,
                }),
                Err(error) => refuse(error.code(), error.wire_message(), Refused::Request(error)),
            }
        }
        Ok(Packet::Wrq(request)) => refuse(
            ErrorCode::ACCESS_VIOLATION,
            "server is read-only",
            Refused::WriteRequest {
                filename: request.filename.to_string(),
            },
        ),
        // Never answer an error with an error (RFC 1350 §7).
        Ok(Packet::Error { .. }) => ListenerAction::Ignore,
        Ok(Packet::Data { .. } | Packet::Ack { .. } | Packet::Oack { .. }) => refuse(
            ErrorCode::UNKNOWN_TRANSFER_ID,
            "unknown transfer id",
            Refused::UnknownTransfer,
        ),
        Err(error) => refuse(
            ErrorCode::ILLEGAL_OPERATION,
            "malformed request",
            Refused::Malformed(error),
        ),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn client() -> SocketAddr {
        "192.0.2.10:2000".parse().unwrap()
    }

    fn on(datagram: &[u8]) -> ListenerAction {
        on_datagram(client(), datagram, &TransferConfig::default())
    }

    /// The ERROR a refusal sends: its code and message.
    fn error_of(action: &ListenerAction) -> (ErrorCode, String) {
        let ListenerAction::Refuse { reply, .. } = action else {
            panic!("not a refusal: {action:?}");
        };
        assert_eq!(reply.destination, client(), "the reply goes to the sender");
        match Packet::parse(&reply.payload) {
            Ok(Packet::Error { code, message }) => (code, message.to_string()),
            other => panic!("not an ERROR: {other:?}"),
        }
    }

    #[test]
    fn a_read_request_starts_a_transfer_with_its_options_negotiated() {
        let action = on(b"\x00\x01pxelinux.0\x00OCTET\x00blksize\x001468\x00tsize\x000\x00");
        let ListenerAction::Start(request) = action else {
            panic!("not started: {action:?}");
        };
        assert_eq!(request.filename, "pxelinux.0");
        assert_eq!(request.mode, Mode::Octet);
        assert_eq!(request.negotiated.blksize, 1468);
        assert!(request.negotiated.tsize);
        let names: Vec<_> = request.wire_options().iter().map(|o| o.name).collect();
        assert_eq!(names, ["blksize", "tsize"], "the client's order is kept");
    }

    #[test]
    fn write_requests_are_refused_as_access_violations() {
        let action = on(b"\x00\x02upload.bin\x00octet\x00");
        assert_eq!(
            error_of(&action),
            (ErrorCode::ACCESS_VIOLATION, "server is read-only".into())
        );
    }

    #[test]
    fn errors_are_never_answered() {
        assert!(matches!(
            on(b"\x00\x05\x00\x01gone\x00"),
            ListenerAction::Ignore
        ));
    }

    #[test]
    fn data_and_acks_for_no_transfer_get_unknown_transfer_id() {
        for datagram in [&b"\x00\x04\x00\x01"[..], b"\x00\x03\x00\x01abc"] {
            assert_eq!(error_of(&on(datagram)).0, ErrorCode::UNKNOWN_TRANSFER_ID);
        }
    }

    #[test]
    fn malformed_and_oversized_requests_are_illegal_operations() {
        assert_eq!(
            error_of(&on(b"\x00\x09junk")).0,
            ErrorCode::ILLEGAL_OPERATION
        );
        let mut long = b"\x00\x01".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_REQUEST_LEN));
        long.extend(b"\x00octet\x00");
        let action = on(&long);
        assert_eq!(error_of(&action).0, ErrorCode::ILLEGAL_OPERATION);
        assert!(matches!(
            action,
            ListenerAction::Refuse {
                why: Refused::Oversized { .. },
                ..
            }
        ));
    }

    #[test]
    fn unknown_modes_and_bad_options_are_refused_before_any_transfer() {
        assert_eq!(
            error_of(&on(b"\x00\x01f\x00mail\x00")),
            (
                ErrorCode::ILLEGAL_OPERATION,
                "unsupported transfer mode".into()
            )
        );
        assert_eq!(
            error_of(&on(b"\x00\x01f\x00octet\x00blksize\x004\x00")).0,
            ErrorCode::OPTION_NEGOTIATION
        );
    }

    proptest! {
        /// Any bytes get exactly one of the three answers, never a panic; a refusal's ERROR
        /// goes to the sender; a started request re-emits to a datagram that starts the same.
        #[test]
        fn any_datagram_gets_one_answer(datagram in proptest::collection::vec(any::<u8>(), 0..1200)) {
            match on(&datagram) {
                ListenerAction::Start(request) => {
                    let again = Packet::Rrq(crate::wire::Request {
                        filename: &request.filename,
                        mode: request.mode.as_str(),
                        options: request.wire_options(),
                    })
                    .to_vec();
                    let ListenerAction::Start(again) = on(&again) else {
                        return Err(TestCaseError::fail("the re-emitted request was not started"));
                    };
                    prop_assert_eq!(again, request);
                }
                ListenerAction::Refuse { reply, .. } => {
                    prop_assert_eq!(reply.destination, client());
                    let is_error = matches!(Packet::parse(&reply.payload), Ok(Packet::Error { .. }));
                    prop_assert!(is_error);
                }
                ListenerAction::Ignore => {
                    let is_error = matches!(Packet::parse(&datagram), Ok(Packet::Error { .. }));
                    prop_assert!(is_error);
                }
            }
        }

        /// Read requests built from any name, mode and options: accepted exactly when the
        /// mode is known and negotiation succeeds.
        #[test]
        fn requests_start_exactly_when_mode_and_options_are_acceptable(
            filename in "[a-zA-Z0-9/._-]{1,40}",
            mode in prop_oneof![Just("octet"), Just("NetASCII"), Just("mail"), Just("x")],
            options in proptest::collection::vec(
                (prop_oneof![Just("blksize"), Just("tsize"), Just("windowsize"), Just("timeout"), Just("other")],
                 prop_oneof![Just("0"), Just("4"), Just("1468"), Just("65536"), Just("x")]),
                0..4),
        ) {
            let wire: Vec<TftpOption<'_>> =
                options.iter().map(|(name, value)| TftpOption { name, value }).collect();
            let datagram = Packet::Rrq(crate::wire::Request {
                filename: &filename,
                mode,
                options: wire.clone(),
            })
            .to_vec();
            let acceptable = Mode::parse(mode).is_some()
                && negotiate(&wire, &TransferConfig::default()).is_ok();
            prop_assert_eq!(matches!(on(&datagram), ListenerAction::Start(_)), acceptable);
        }
    }
}
