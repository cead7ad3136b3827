//! Any bytes through the TFTP packet parser, the listening port's rules, every accessor,
//! option negotiation, path normalisation and netascii: nothing may panic, and what parses
//! re-emits to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_tftp::options::{negotiate, TransferConfig};
use pxe_tftp::listener::{on_datagram, ListenerAction};
use pxe_tftp::wire::{Packet, Request};

fuzz_target!(|data: &[u8]| {
    // The listening port's answer: a started request re-emits to one that starts the same.
    let from = "192.0.2.10:2000".parse().unwrap();
    if let ListenerAction::Start(request) = on_datagram(from, data, &TransferConfig::default()) {
        let again = Packet::Rrq(Request {
            filename: &request.filename,
            mode: request.mode.as_str(),
            options: request.wire_options(),
        })
        .to_vec();
        match on_datagram(from, &again, &TransferConfig::default()) {
            ListenerAction::Start(again) => assert_eq!(again, request),
            other => panic!("re-emitted request not started: {other:?}"),
        }
    }
    let Ok(packet) = Packet::parse(data) else {
        return;
    };
    let bytes = packet.to_vec();
    assert_eq!(bytes.len(), packet.buffer_len());
    let again = Packet::parse(&bytes).expect("emitted packets parse");
    match (&packet, &again) {
        // Parsing drops NUL padding and an ERROR message's invalid tail: compare the fields.
        (Packet::Rrq(a) | Packet::Wrq(a), Packet::Rrq(b) | Packet::Wrq(b)) => {
            assert_eq!(a, b);
            let _ = a.transfer_mode();
            if let Ok(negotiated) = negotiate(&a.options, &TransferConfig::default()) {
                assert!((8..=1468).contains(&negotiated.blksize) || negotiated.blksize == 512);
                let _ = negotiated.oack_options(&a.options, Some(u64::MAX));
            }
            let _ = pxe_tftp::normalize(a.filename);
        }
        _ => assert_eq!(packet, again),
    }
    let decoded = pxe_tftp::netascii::decode(data);
    assert!(decoded.len() <= data.len());
    assert_eq!(pxe_tftp::netascii::decode(&pxe_tftp::netascii::encode(data)), data);
});
