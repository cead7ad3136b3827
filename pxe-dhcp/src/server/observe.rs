//! What the server reports of each request to an observer of the embedder's
//! ([`DhcpServerBuilder::observer`](super::DhcpServerBuilder::observer)): the hook metrics are
//! built on, without a metrics library in this crate (`pxe::Metrics` implements it with
//! Prometheus counters; an embedder may plug in its own).

use pxe_policy::{ClientKind, MacAddr};

use crate::proto::NoReply;
use crate::wire::MessageType;

/// Told the fate of every request the server receives, exactly once per request, on the
/// serving path: implementations must be quick and must not block (count, do not log).
pub trait DhcpObserver: Send + Sync + std::fmt::Debug + 'static {
    /// `request` was answered, or why not. The default does nothing.
    fn request(&self, request: &ObservedRequest<'_>) {
        let _ = request;
    }
}

/// One request as the observer sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ObservedRequest<'a> {
    /// Option 53, when the message has one that could be read.
    pub message_type: Option<MessageType>,
    /// Which boot stage asked, when the request was accepted and is a network-boot client's.
    pub kind: Option<ClientKind>,
    /// The client's hardware address, when the request was accepted.
    pub mac: Option<MacAddr>,
    /// What became of it.
    pub outcome: RequestOutcome<'a>,
}

impl<'a> ObservedRequest<'a> {
    /// A request of `message_type` from `mac`, at boot stage `kind`, and what became of it
    /// (for observers' tests; the server builds its own).
    pub fn new(
        message_type: Option<MessageType>,
        kind: Option<ClientKind>,
        mac: Option<MacAddr>,
        outcome: RequestOutcome<'a>,
    ) -> Self {
        Self {
            message_type,
            kind,
            mac,
            outcome,
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RequestOutcome<'a> {
    /// A reply of this message type left (DHCPOFFER, DHCPACK, DHCPNAK).
    Replied(MessageType),
    /// No reply, by the protocol's rules.
    NoReply(&'a NoReply),
    /// The lease store could not decide (a lease file write failed, a database is away).
    StoreFailed,
    /// The lease store was saturated: the request waited too long for it and was dropped.
    StoreBusy,
    /// Too many requests were waiting on the policy: dropped.
    Overloaded,
    /// The reply was dropped: an earlier reply to its destination still waits for ARP.
    ArpPending,
    /// The reply could not be encoded.
    NotEmitted,
    /// The reply was built but could not be sent (socket buffer full, send error).
    NotSent,
}

impl RequestOutcome<'_> {
    /// A short stable name in snake case, for metric labels: the reply's type (`offer`,
    /// `ack`, `nak`), a [`NoReply::label`], or `lease_store_failed`, `overloaded`,
    /// `arp_pending`, `not_emitted`, `not_sent`.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Replied(message_type) => message_type_label(*message_type),
            Self::NoReply(reason) => reason.label(),
            Self::StoreFailed => "lease_store_failed",
            Self::StoreBusy => "lease_store_busy",
            Self::Overloaded => "overloaded",
            Self::ArpPending => "arp_pending",
            Self::NotEmitted => "not_emitted",
            Self::NotSent => "not_sent",
        }
    }
}

/// A DHCP message type in lower case (`discover`, `ack`…), `unknown` for values past RFC
/// 4388's: a fixed set of names for metric labels.
pub const fn message_type_label(message_type: MessageType) -> &'static str {
    match message_type {
        MessageType::Discover => "discover",
        MessageType::Offer => "offer",
        MessageType::Request => "request",
        MessageType::Decline => "decline",
        MessageType::Ack => "ack",
        MessageType::Nak => "nak",
        MessageType::Release => "release",
        MessageType::Inform => "inform",
        MessageType::ForceRenew => "forcerenew",
        MessageType::LeaseQuery => "leasequery",
        MessageType::LeaseUnassigned => "leaseunassigned",
        MessageType::LeaseUnknown => "leaseunknown",
        MessageType::LeaseActive => "leaseactive",
        MessageType::Unknown(_) => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_snake_case_and_name_the_reply_or_the_reason() {
        assert_eq!(RequestOutcome::Replied(MessageType::Ack).label(), "ack");
        let reason = NoReply::PoolExhausted {
            network: std::net::Ipv4Addr::new(192, 0, 2, 0),
            prefix_len: 24,
        };
        assert_eq!(RequestOutcome::NoReply(&reason).label(), "pool_exhausted");
        assert_eq!(RequestOutcome::StoreFailed.label(), "lease_store_failed");
        assert_eq!(RequestOutcome::StoreBusy.label(), "lease_store_busy");
        assert_eq!(message_type_label(MessageType::Unknown(200)), "unknown");
        for label in [
            NoReply::NotNetworkBoot.label(),
            NoReply::NoMessageType.label(),
            RequestOutcome::ArpPending.label(),
        ] {
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
        }
    }
}
