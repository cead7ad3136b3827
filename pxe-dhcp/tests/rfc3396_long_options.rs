//! RFC 3396 (long options split into instances and joined on receipt) and RFC 2131 §4.1 /
//! RFC 2132 §9.3 (option overload into `file` and `sname`).

use pxe_dhcp::wire::{
    DecodeError, EmitError, MessageType, Op, OptionCode, Overload, Packet, PacketBuilder,
    BOOTP_MIN_LEN, HEADER_LEN, MIN_MAX_LEN,
};
use pxe_policy::MacAddr;

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn long(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn builder() -> PacketBuilder {
    let mut b = PacketBuilder::new(Op::BootReply);
    b.set_mac(MAC).set_xid(7).set_message_type(MessageType::Ack);
    b
}

/// §5: "If the length of the option data exceeds 255 octets, the option MUST be split into
/// multiple instances". Each instance but the last is full, and they are consecutive.
#[test]
fn long_option_is_split_into_full_instances() {
    let url = long(600);
    let mut b = builder();
    b.set_max_len(1500).set_bootfile_name(&url);
    let wire = b.to_vec().unwrap();
    let packet = Packet::new_checked(&wire[..]).unwrap();
    let pieces: Vec<_> = packet
        .options()
        .filter(|o| o.code == OptionCode::BOOTFILE_NAME)
        .map(|o| o.data.len())
        .collect();
    assert_eq!(pieces, [255, 255, 90]);
    // §7: "the contents of all the instances of the option are concatenated together".
    assert_eq!(
        packet.option(OptionCode::BOOTFILE_NAME).as_deref(),
        Some(&url[..])
    );
    assert_eq!(wire.len(), b.buffer_len());
    assert_eq!(wire.len(), HEADER_LEN + 3 + (600 + 6) + 1);
}

/// Instances need not be adjacent: a receiver joins them in the order they appear.
#[test]
fn non_adjacent_instances_are_joined_in_order() {
    let mut wire = vec![0u8; HEADER_LEN];
    wire[0] = 1;
    wire[236..240].copy_from_slice(&[99, 130, 83, 99]);
    wire.extend_from_slice(&[53, 1, 1, 77, 2, b'a', b'b', 60, 1, b'x', 77, 1, b'c', 255]);
    let packet = Packet::new_checked(&wire[..]).unwrap();
    assert_eq!(
        packet.option(OptionCode::USER_CLASS).as_deref(),
        Some(&b"abc"[..])
    );
    let merged = packet.merged_options();
    assert_eq!(merged.len(), 3);
    assert_eq!(merged[1].0, OptionCode::USER_CLASS);
    assert_eq!(&merged[1].1[..], b"abc");
    assert!(matches!(merged[0].1, std::borrow::Cow::Borrowed(_)));
}

/// Without overload, options that do not fit the client's limit are an error, not a
/// silently oversized reply.
#[test]
fn too_long_without_overload_is_an_error() {
    let mut b = builder();
    b.set_bootfile_name(&long(400));
    let needed = b.buffer_len();
    assert!(needed > MIN_MAX_LEN);
    assert_eq!(
        b.to_vec(),
        Err(EmitError::TooLong {
            needed,
            max: MIN_MAX_LEN
        })
    );
    b.set_max_len(needed);
    assert_eq!(b.to_vec().unwrap().len(), needed);
}

/// RFC 2131 §4.1: options may continue in `file`, then `sname`, announced by option 52; the
/// receiver reads options, file, sname in that order (RFC 3396 §7).
#[test]
fn overload_spills_into_file_then_sname() {
    // 548 bytes: 304 of options field (less 53 and 52) carry 297 bytes of 67 in two
    // instances, `file` 125 more, `sname` the rest.
    let data = long(480);
    let mut b = builder();
    b.set_overload_allowed(true).set_bootfile_name(&data);
    let wire = b.to_vec().unwrap();
    assert_eq!(
        wire.len(),
        MIN_MAX_LEN,
        "the options field is filled to the limit"
    );
    assert_eq!(wire.len(), b.buffer_len());
    let packet = Packet::new_checked(&wire[..]).unwrap();
    assert_eq!(packet.overload(), Some(Overload::Both));
    assert_eq!(
        packet.option(OptionCode::BOOTFILE_NAME).as_deref(),
        Some(&data[..])
    );
    assert_eq!((packet.boot_file(), packet.server_name()), (None, None));
    assert_eq!(
        PacketBuilder::from_packet(&packet).option(OptionCode::BOOTFILE_NAME),
        Some(&data[..])
    );

    let smaller = long(320);
    let mut b = builder();
    b.set_overload_allowed(true).set_bootfile_name(&smaller);
    let wire = b.to_vec().unwrap();
    let packet = Packet::new_checked(&wire[..]).unwrap();
    assert_eq!(packet.overload(), Some(Overload::File));
    assert_eq!(
        packet.option(OptionCode::BOOTFILE_NAME).as_deref(),
        Some(&smaller[..])
    );
}

/// A used `file` or `sname` is never overwritten by options.
#[test]
fn overload_never_takes_used_fields() {
    let mut b = builder();
    b.set_overload_allowed(true)
        .set_bootfile_name(&long(340))
        .set_file(b"undionly.kpxe")
        .unwrap();
    let wire = b.to_vec().unwrap();
    let packet = Packet::new_checked(&wire[..]).unwrap();
    assert_eq!(packet.overload(), Some(Overload::Sname));
    assert_eq!(packet.boot_file(), Some(&b"undionly.kpxe"[..]));
    b.set_sname(b"pxelab").unwrap();
    assert!(matches!(b.to_vec(), Err(EmitError::TooLong { .. })));
}

/// Option 52 itself is the builder's: setting it is ignored.
#[test]
fn overload_option_cannot_be_set_by_hand() {
    let mut b = builder();
    b.set_option(OptionCode::OPTION_OVERLOAD, &[3]);
    b.set_option(OptionCode::PAD, &[]);
    b.set_option(OptionCode::END, &[]);
    assert_eq!(b.options().count(), 1);
    assert_eq!(b.to_vec().unwrap().len(), BOOTP_MIN_LEN);
}

/// A received overload value other than 1–3 is refused; options in the overloaded fields
/// are framed-checked too.
#[test]
fn bad_overload_is_rejected() {
    let mut wire = vec![0u8; HEADER_LEN];
    wire[236..240].copy_from_slice(&[99, 130, 83, 99]);
    wire.extend_from_slice(&[52, 1, 4, 255]);
    assert!(matches!(
        Packet::new_checked(&wire[..]),
        Err(DecodeError::BadOptionValue { .. })
    ));
    wire[HEADER_LEN + 2] = 1;
    wire[108] = 67;
    wire[109] = 200; // runs past the 128-byte file field
    assert!(matches!(
        Packet::new_checked(&wire[..]),
        Err(DecodeError::OptionOverrun { field: "file", .. })
    ));
    wire[109] = 3;
    let packet = Packet::new_checked(&wire[..]).unwrap();
    assert_eq!(
        packet.option(OptionCode::BOOTFILE_NAME).as_deref(),
        Some(&[0, 0, 0][..])
    );
}
