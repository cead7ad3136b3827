//! Structured messages through `PacketBuilder::emit` and back through `Packet::new_checked`:
//! whatever the builder accepts, it writes exactly `buffer_len` bytes that parse to the same
//! fields and options (with overload and RFC 3396 splitting in play).
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pxe_dhcp::wire::{EmitError, Op, OptionCode, Packet, PacketBuilder};

#[derive(Debug)]
struct Input {
    op: u8,
    htype: u8,
    chaddr: Vec<u8>,
    hops: u8,
    xid: u32,
    secs: u16,
    flags: u16,
    addrs: [u32; 4],
    sname: Vec<u8>,
    file: Vec<u8>,
    options: Vec<(u8, Vec<u8>)>,
    max_len: u16,
    overload: bool,
    buf_slack: i8,
}

// By hand rather than derived: the fuzz crate's dependencies stay those every area shares.
impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self {
            op: u.arbitrary()?,
            htype: u.arbitrary()?,
            chaddr: u.arbitrary()?,
            hops: u.arbitrary()?,
            xid: u.arbitrary()?,
            secs: u.arbitrary()?,
            flags: u.arbitrary()?,
            addrs: u.arbitrary()?,
            sname: u.arbitrary()?,
            file: u.arbitrary()?,
            max_len: u.arbitrary()?,
            overload: u.arbitrary()?,
            buf_slack: u.arbitrary()?,
            options: u.arbitrary()?,
        })
    }
}

fuzz_target!(|input: Input| {
    let mut b = PacketBuilder::new(Op::from_code(input.op));
    b.set_htype(input.htype)
        .set_hops(input.hops)
        .set_xid(input.xid)
        .set_secs(input.secs)
        .set_flags(pxe_dhcp::wire::Flags(input.flags))
        .set_ciaddr(Ipv4Addr::from(input.addrs[0]))
        .set_yiaddr(Ipv4Addr::from(input.addrs[1]))
        .set_siaddr(Ipv4Addr::from(input.addrs[2]))
        .set_giaddr(Ipv4Addr::from(input.addrs[3]))
        .set_max_len(usize::from(input.max_len))
        .set_overload_allowed(input.overload);
    let _ = b.set_chaddr(&input.chaddr);
    let _ = b.set_sname(&input.sname);
    let _ = b.set_file(&input.file);
    for (code, data) in &input.options {
        b.set_option(OptionCode(*code), data);
    }

    let len = b.buffer_len();
    let size = (len as isize + isize::from(input.buf_slack)).max(0) as usize;
    let mut buf = vec![0xa5; size];
    let written = match b.emit(&mut buf) {
        Ok(written) => written,
        Err(EmitError::BufferTooSmall { needed, got }) => {
            assert_eq!((needed, got), (len, size));
            return;
        }
        Err(EmitError::TooLong { max, .. }) => {
            assert!(len > max);
            return;
        }
        Err(other) => panic!("unexpected {other:?}"),
    };
    assert_eq!(written, len);
    assert!(written <= b.max_len());
    let packet = Packet::new_checked(&buf[..written]).expect("an emitted message parses");
    let mut back = PacketBuilder::from_packet(&packet);
    back.set_max_len(b.max_len()).set_overload_allowed(b.overload_allowed());
    assert_eq!(back, b);
});
