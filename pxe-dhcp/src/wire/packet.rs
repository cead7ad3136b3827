use std::borrow::Cow;
use std::net::Ipv4Addr;

use pxe_policy::{Arch, ClientGuid, IpxeFeatures, MacAddr};

use super::options::{
    self, ClientId, NetworkInterfaceId, PxeVendorOptions, RelayAgentInfo, UserClass, VendorClass,
};
use super::{DecodeError, Flags, MessageType, Op, OptionCode, Overload};

/// Byte offsets of the fixed BOOTP/DHCP header (RFC 2131 §2, figure 1).
pub mod field {
    use core::ops::Range;

    /// `op`: 1 = BOOTREQUEST, 2 = BOOTREPLY.
    pub const OP: usize = 0;
    /// `htype`: hardware address type (1 = Ethernet).
    pub const HTYPE: usize = 1;
    /// `hlen`: hardware address length.
    pub const HLEN: usize = 2;
    /// `hops`: relay hop count.
    pub const HOPS: usize = 3;
    /// `xid`: transaction id.
    pub const XID: Range<usize> = 4..8;
    /// `secs`: seconds since the client began.
    pub const SECS: Range<usize> = 8..10;
    /// `flags`: the BROADCAST bit.
    pub const FLAGS: Range<usize> = 10..12;
    /// `ciaddr`: client address, when it has one.
    pub const CIADDR: Range<usize> = 12..16;
    /// `yiaddr`: "your" address, assigned by the server.
    pub const YIADDR: Range<usize> = 16..20;
    /// `siaddr`: next server (TFTP) address.
    pub const SIADDR: Range<usize> = 20..24;
    /// `giaddr`: relay agent address.
    pub const GIADDR: Range<usize> = 24..28;
    /// `chaddr`: client hardware address, 16 bytes.
    pub const CHADDR: Range<usize> = 28..44;
    /// `sname`: server host name, 64 bytes.
    pub const SNAME: Range<usize> = 44..108;
    /// `file`: boot file name, 128 bytes.
    pub const FILE: Range<usize> = 108..236;
    /// The magic cookie 99.130.83.99 that marks DHCP options.
    pub const MAGIC_COOKIE: Range<usize> = 236..240;
    /// Where the options field starts.
    pub const OPTIONS: usize = 240;
}

/// The magic cookie (RFC 2131 §3): 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// The length of the fixed header plus the magic cookie: the shortest DHCP message.
pub const HEADER_LEN: usize = field::OPTIONS;

/// A read-only view of a DHCP message in a byte buffer, without copying it.
///
/// [`Packet::new_checked`] validates the header, the magic cookie and the framing of every
/// option (in the `options` field and, under option 52, in `file` and `sname`). After that,
/// every accessor is total. The accessors never panic on an unchecked view either: missing
/// bytes read as zero and malformed options end the iteration.
///
/// Typed option accessors return `None` both when the option is absent and when its data is
/// malformed; the decoders in [`options`](super::options) tell the two apart with a
/// [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Packet::check`] accepted it.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Validates the message: at least 240 bytes, the magic cookie, `hlen` ≤ 16, every option
    /// inside its field, and option 52 (if any) with a value of 1, 2 or 3.
    ///
    /// An End option is not required: some clients end the options with the buffer.
    pub fn check(&self) -> Result<(), DecodeError> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            let field = if buf.len() < field::MAGIC_COOKIE.start {
                "bootp header"
            } else {
                "magic cookie"
            };
            return Err(DecodeError::Truncated {
                field,
                needed: HEADER_LEN,
                got: buf.len(),
            });
        }
        let cookie = self.magic_cookie();
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadMagicCookie { found: cookie });
        }
        if self.hlen() > 16 {
            return Err(DecodeError::BadHardwareLength { hlen: self.hlen() });
        }
        let mut overload = None;
        walk(self.options_field(), "options", |code, data| {
            if code == OptionCode::OPTION_OVERLOAD && overload.is_none() {
                overload = Some(match data {
                    [value] => Overload::from_code(*value).ok_or(DecodeError::BadOptionValue {
                        code,
                        reason: "overload must be 1, 2 or 3",
                    })?,
                    _ => {
                        return Err(DecodeError::BadOptionLength {
                            code,
                            len: data.len(),
                            expected: "1",
                        })
                    }
                });
            }
            Ok(())
        })?;
        if let Some(overload) = overload {
            if overload.file() {
                walk(self.file(), "file", |_, _| Ok(()))?;
            }
            if overload.sname() {
                walk(self.sname(), "sname", |_, _| Ok(()))?;
            }
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.buffer
            .as_ref()
            .get(at..at + N)
            .and_then(|bytes| bytes.try_into().ok())
            .unwrap_or([0; N])
    }

    fn slice(&self, range: core::ops::Range<usize>) -> &[u8] {
        self.buffer.as_ref().get(range).unwrap_or(&[])
    }

    /// `op`: request or reply.
    pub fn op(&self) -> Op {
        Op::from_code(self.byte(field::OP))
    }

    /// `htype`: hardware address type (1 = Ethernet, RFC 1700).
    pub fn htype(&self) -> u8 {
        self.byte(field::HTYPE)
    }

    /// `hlen`: hardware address length.
    pub fn hlen(&self) -> u8 {
        self.byte(field::HLEN)
    }

    /// `hops`: incremented by each relay agent.
    pub fn hops(&self) -> u8 {
        self.byte(field::HOPS)
    }

    /// `xid`: the transaction id the client chose.
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes(self.array(field::XID.start))
    }

    /// `secs`: seconds since the client began acquiring or renewing.
    pub fn secs(&self) -> u16 {
        u16::from_be_bytes(self.array(field::SECS.start))
    }

    /// `flags`.
    pub fn flags(&self) -> Flags {
        Flags(u16::from_be_bytes(self.array(field::FLAGS.start)))
    }

    /// Whether the BROADCAST flag is set (EDK2 and chainloaded `undionly.kpxe` set it).
    pub fn broadcast(&self) -> bool {
        self.flags().broadcast()
    }

    /// `ciaddr`: the client's address, when it is bound, renewing or rebinding.
    pub fn ciaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::CIADDR.start))
    }

    /// `yiaddr`: the address the server assigns.
    pub fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::YIADDR.start))
    }

    /// `siaddr`: the next server in the boot process (the TFTP server).
    pub fn siaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::SIADDR.start))
    }

    /// `giaddr`: the relay agent's address, zero when the message was not relayed.
    pub fn giaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.array::<4>(field::GIADDR.start))
    }

    /// The whole 16-byte `chaddr` field.
    pub fn chaddr_field(&self) -> &[u8] {
        self.slice(field::CHADDR)
    }

    /// `chaddr`: the client hardware address, its first `hlen` bytes (at most 16).
    pub fn chaddr(&self) -> &[u8] {
        let len = usize::from(self.hlen()).min(16);
        self.chaddr_field().get(..len).unwrap_or(&[])
    }

    /// The first six bytes of `chaddr` as a MAC address, whatever `htype` and `hlen` say.
    /// [`Packet::client_mac`] is the checked form.
    pub fn chaddr_mac(&self) -> MacAddr {
        MacAddr(self.array(field::CHADDR.start))
    }

    /// The client's Ethernet address: `Some` when `htype` is 1 and `hlen` is 6.
    pub fn client_mac(&self) -> Option<MacAddr> {
        (self.htype() == 1 && self.hlen() == 6).then(|| self.chaddr_mac())
    }

    /// The raw 64-byte `sname` field (it holds options when option 52 says so).
    pub fn sname(&self) -> &[u8] {
        self.slice(field::SNAME)
    }

    /// The raw 128-byte `file` field (it holds options when option 52 says so).
    pub fn file(&self) -> &[u8] {
        self.slice(field::FILE)
    }

    /// The server host name in `sname`, up to its first NUL; `None` when empty or when the
    /// field carries options.
    pub fn server_name(&self) -> Option<&[u8]> {
        if self.overload().is_some_and(Overload::sname) {
            return None;
        }
        nul_terminated(self.sname())
    }

    /// The boot file name in `file`, up to its first NUL; `None` when empty or when the
    /// field carries options.
    pub fn boot_file(&self) -> Option<&[u8]> {
        if self.overload().is_some_and(Overload::file) {
            return None;
        }
        nul_terminated(self.file())
    }

    /// The four bytes where the magic cookie belongs.
    pub fn magic_cookie(&self) -> [u8; 4] {
        self.array(field::MAGIC_COOKIE.start)
    }

    /// The raw `options` field: everything after the magic cookie.
    pub fn options_field(&self) -> &[u8] {
        self.buffer.as_ref().get(field::OPTIONS..).unwrap_or(&[])
    }

    /// Every option instance in wire order: the `options` field, then `file` and `sname` when
    /// option 52 says they carry options (the order RFC 3396 §7 concatenates in). Pad and End
    /// are not yielded. An option split into several instances (RFC 3396) is yielded once per
    /// instance; [`Packet::option`] joins them.
    pub fn options(&self) -> Options<'_> {
        Options {
            file: self.file(),
            sname: self.sname(),
            current: self.options_field(),
            pos: 0,
            region: Region::Options,
            overload: None,
        }
    }

    /// The data of option `code`, all its instances joined (RFC 3396): borrowed from the
    /// buffer when the option appears once, copied when it was split.
    pub fn option(&self, code: OptionCode) -> Option<Cow<'_, [u8]>> {
        let mut found: Option<Cow<'_, [u8]>> = None;
        for option in self.options().filter(|option| option.code == code) {
            match &mut found {
                None => found = Some(Cow::Borrowed(option.data)),
                Some(data) => data.to_mut().extend_from_slice(option.data),
            }
        }
        found
    }

    /// Every option once, its split instances joined (RFC 3396), in order of first
    /// appearance.
    pub fn merged_options(&self) -> Vec<(OptionCode, Cow<'_, [u8]>)> {
        let mut merged: Vec<(OptionCode, Cow<'_, [u8]>)> = Vec::new();
        // Index of each code in `merged`, so joining stays linear.
        let mut index = [u8::MAX; 256];
        for option in self.options() {
            let slot = &mut index[usize::from(option.code.0)];
            if *slot == u8::MAX {
                // At most 254 distinct codes (Pad and End are never yielded): no overflow.
                *slot = merged.len() as u8;
                merged.push((option.code, Cow::Borrowed(option.data)));
            } else if let Some((_, data)) = merged.get_mut(usize::from(*slot)) {
                data.to_mut().extend_from_slice(option.data);
            }
        }
        merged
    }

    /// Option 52: which header fields carry options. `None` when absent or invalid.
    pub fn overload(&self) -> Option<Overload> {
        let mut pos = 0;
        let data = core::iter::from_fn(|| next_option(self.options_field(), &mut pos).ok()?)
            .find(|(code, _)| *code == OptionCode::OPTION_OVERLOAD)?
            .1;
        match data {
            [value] => Overload::from_code(*value),
            _ => None,
        }
    }

    /// Option 53, the DHCP message type; `None` for a plain BOOTP message or a bad option.
    pub fn message_type(&self) -> Option<MessageType> {
        self.decode(OptionCode::MESSAGE_TYPE, options::decode_message_type)
    }

    /// Option 54, the server identifier.
    pub fn server_identifier(&self) -> Option<Ipv4Addr> {
        self.decode(OptionCode::SERVER_IDENTIFIER, |data| {
            options::decode_ipv4(OptionCode::SERVER_IDENTIFIER, data)
        })
    }

    /// Option 50, the address the client asks for.
    pub fn requested_ip_address(&self) -> Option<Ipv4Addr> {
        self.decode(OptionCode::REQUESTED_IP_ADDRESS, |data| {
            options::decode_ipv4(OptionCode::REQUESTED_IP_ADDRESS, data)
        })
    }

    /// Option 57, the largest DHCP message the client accepts, as sent (RFC 2132 sets 576 as
    /// the smallest legal value; this does not clamp).
    pub fn max_message_size(&self) -> Option<u16> {
        self.decode(OptionCode::MAXIMUM_MESSAGE_SIZE, |data| {
            options::decode_u16(OptionCode::MAXIMUM_MESSAGE_SIZE, data)
        })
    }

    /// Option 55, the options the client asks for, in its order.
    pub fn parameter_request_list(&self) -> Option<Vec<OptionCode>> {
        self.decode(
            OptionCode::PARAMETER_REQUEST_LIST,
            options::decode_parameter_request_list,
        )
    }

    /// Option 60, the vendor class identifier (`PXEClient:Arch:00007:UNDI:003000`).
    pub fn vendor_class(&self) -> Option<VendorClass> {
        self.decode(OptionCode::VENDOR_CLASS_IDENTIFIER, VendorClass::decode)
    }

    /// Option 61, the client identifier (EDK2 sends none).
    pub fn client_identifier(&self) -> Option<ClientId> {
        self.decode(OptionCode::CLIENT_IDENTIFIER, ClientId::decode)
    }

    /// Option 77, the user class (`iPXE` for iPXE).
    pub fn user_class(&self) -> Option<UserClass> {
        self.decode(OptionCode::USER_CLASS, UserClass::decode)
    }

    /// Option 93, the client's architectures, most preferred first (RFC 4578 §2.1).
    pub fn client_arch(&self) -> Option<Vec<Arch>> {
        self.decode(
            OptionCode::CLIENT_SYSTEM_ARCHITECTURE,
            options::decode_client_arch,
        )
    }

    /// Option 94, the client network interface identifier (UNDI version).
    pub fn client_ndi(&self) -> Option<NetworkInterfaceId> {
        self.decode(
            OptionCode::CLIENT_NETWORK_INTERFACE_ID,
            NetworkInterfaceId::decode,
        )
    }

    /// Option 97, the client machine GUID (wire order converted to canonical).
    pub fn client_guid(&self) -> Option<ClientGuid> {
        self.decode(OptionCode::CLIENT_MACHINE_ID, options::decode_client_guid)
    }

    /// Option 175, what an iPXE build says about itself.
    pub fn ipxe_features(&self) -> Option<IpxeFeatures> {
        self.decode(OptionCode::IPXE_ENCAPSULATED, options::decode_ipxe_features)
    }

    /// Option 43 read as PXE vendor options (PXE 2.1 §2.4).
    pub fn pxe_vendor_options(&self) -> Option<PxeVendorOptions> {
        self.decode(OptionCode::VENDOR_SPECIFIC, PxeVendorOptions::decode)
    }

    /// Option 82, the relay agent information (RFC 3046).
    pub fn relay_agent_information(&self) -> Option<RelayAgentInfo> {
        self.decode(OptionCode::RELAY_AGENT_INFORMATION, RelayAgentInfo::decode)
    }

    fn decode<V>(
        &self,
        code: OptionCode,
        decoder: impl FnOnce(&[u8]) -> Result<V, DecodeError>,
    ) -> Option<V> {
        decoder(&self.option(code)?).ok()
    }
}

fn nul_terminated(field: &[u8]) -> Option<&[u8]> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let name = field.get(..end).unwrap_or(&[]);
    (!name.is_empty()).then_some(name)
}

/// One option instance as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    /// The option code.
    pub code: OptionCode,
    /// The data after the length byte.
    pub data: &'a [u8],
}

/// Which part of the message an option iterator is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Options,
    File,
    Sname,
    Done,
}

/// The iterator of [`Packet::options`].
#[derive(Debug, Clone)]
pub struct Options<'a> {
    file: &'a [u8],
    sname: &'a [u8],
    current: &'a [u8],
    pos: usize,
    region: Region,
    overload: Option<Overload>,
}

impl<'a> Iterator for Options<'a> {
    type Item = DhcpOption<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.region == Region::Done {
                return None;
            }
            match next_option(self.current, &mut self.pos) {
                Ok(Some((code, data))) => {
                    if self.region == Region::Options
                        && code == OptionCode::OPTION_OVERLOAD
                        && self.overload.is_none()
                    {
                        self.overload = match data {
                            [value] => Overload::from_code(*value),
                            _ => None,
                        };
                    }
                    return Some(DhcpOption { code, data });
                }
                // End of this field (End option, end of bytes, or bad framing): move on.
                Ok(None) | Err(_) => {
                    let overload = self.overload;
                    let (region, field) = match self.region {
                        Region::Options if overload.is_some_and(Overload::file) => {
                            (Region::File, self.file)
                        }
                        Region::Options | Region::File if overload.is_some_and(Overload::sname) => {
                            (Region::Sname, self.sname)
                        }
                        _ => (Region::Done, &[][..]),
                    };
                    self.region = region;
                    self.current = field;
                    self.pos = 0;
                }
            }
        }
    }
}

/// An option found in a field: its code and data.
type Found<'a> = Option<(OptionCode, &'a [u8])>;

/// Reads the option at `*pos` in `field`, skipping Pad; `Ok(None)` at End or at the end of
/// the field; the code and offset of an option whose length runs past the field.
#[inline]
pub(crate) fn next_option<'a>(
    field: &'a [u8],
    pos: &mut usize,
) -> Result<Found<'a>, (OptionCode, usize)> {
    next_tlv(field, pos, true)
}

/// Reads the tag-length-value at `*pos`. With `pad_and_end`, tag 0 is a one-byte Pad that is
/// skipped and tag 255 ends the field (DHCP options, options 43 and 175); without, both are
/// ordinary tags (option 82's sub-options). `Ok(None)` at the end; an error, after which the
/// field reads as finished, when a length runs past the field.
#[inline]
pub(crate) fn next_tlv<'a>(
    field: &'a [u8],
    pos: &mut usize,
    pad_and_end: bool,
) -> Result<Found<'a>, (OptionCode, usize)> {
    loop {
        let Some(&code) = field.get(*pos) else {
            return Ok(None);
        };
        match code {
            0 if pad_and_end => *pos += 1,
            255 if pad_and_end => {
                // Nothing after End is read again.
                *pos = field.len();
                return Ok(None);
            }
            _ => {
                let start = *pos;
                let data = field
                    .get(start + 1)
                    .and_then(|&len| field.get(start + 2..start + 2 + usize::from(len)));
                let Some(data) = data else {
                    *pos = field.len();
                    return Err((OptionCode(code), start));
                };
                *pos = start + 2 + data.len();
                return Ok(Some((OptionCode(code), data)));
            }
        }
    }
}

/// Runs `each` over the options of one field, turning bad framing into a [`DecodeError`].
fn walk(
    field: &[u8],
    name: &'static str,
    mut each: impl FnMut(OptionCode, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut pos = 0;
    loop {
        match next_option(field, &mut pos) {
            Ok(Some((code, data))) => each(code, data)?,
            Ok(None) => return Ok(()),
            Err((code, offset)) => {
                let after_len = (offset + 2).min(field.len());
                return Err(DecodeError::OptionOverrun {
                    code,
                    field: name,
                    offset,
                    len: field.get(offset + 1).map_or(0, |&len| usize::from(len)),
                    available: field.len() - after_len,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid message: header, cookie, then `options` as given.
    fn message(options: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[field::OP] = 1;
        bytes[field::HTYPE] = 1;
        bytes[field::HLEN] = 6;
        bytes[field::MAGIC_COOKIE].copy_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(options);
        bytes
    }

    #[test]
    fn check_rejects_what_it_must() {
        assert_eq!(
            Packet::new_checked(&[0u8; 100][..]),
            Err(DecodeError::Truncated {
                field: "bootp header",
                needed: 240,
                got: 100
            })
        );
        assert!(matches!(
            Packet::new_checked(&[0u8; 238][..]),
            Err(DecodeError::Truncated {
                field: "magic cookie",
                ..
            })
        ));
        let mut bytes = message(&[255]);
        bytes[236] = 98;
        assert!(matches!(
            Packet::new_checked(&bytes[..]),
            Err(DecodeError::BadMagicCookie { .. })
        ));
        let mut bytes = message(&[255]);
        bytes[field::HLEN] = 17;
        assert_eq!(
            Packet::new_checked(&bytes[..]),
            Err(DecodeError::BadHardwareLength { hlen: 17 })
        );
        assert_eq!(
            Packet::new_checked(&message(&[53, 1, 1, 60, 9, b'P'])[..]),
            Err(DecodeError::OptionOverrun {
                code: OptionCode(60),
                field: "options",
                offset: 3,
                len: 9,
                available: 1
            })
        );
        // A code with no length byte at the very end.
        assert!(matches!(
            Packet::new_checked(&message(&[53, 1, 1, 60])[..]),
            Err(DecodeError::OptionOverrun {
                len: 0,
                available: 0,
                ..
            })
        ));
        assert!(matches!(
            Packet::new_checked(&message(&[52, 2, 1, 1])[..]),
            Err(DecodeError::BadOptionLength { .. })
        ));
    }

    #[test]
    fn end_is_optional_and_pad_is_skipped() {
        let bytes = message(&[0, 0, 53, 1, 3, 0, 61, 2, 0, 7]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let codes: Vec<_> = packet.options().map(|o| o.code.0).collect();
        assert_eq!(codes, [53, 61]);
        assert_eq!(packet.message_type(), Some(MessageType::Request));
        // Nothing after End is read, not even garbage.
        let bytes = message(&[53, 1, 1, 255, 60, 200]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options().count(), 1);
    }

    #[test]
    fn overload_order_is_options_file_sname() {
        let mut bytes = message(&[53, 1, 2, 52, 1, 3, 77, 1, b'a', 255]);
        bytes[field::FILE][..4].copy_from_slice(&[77, 1, b'b', 255]);
        bytes[field::SNAME][..5].copy_from_slice(&[77, 1, b'c', 12, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.overload(), Some(Overload::Both));
        let codes: Vec<_> = packet.options().map(|o| o.code.0).collect();
        assert_eq!(codes, [53, 52, 77, 77, 77, 12]);
        assert_eq!(
            packet.option(OptionCode::USER_CLASS).as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!((packet.server_name(), packet.boot_file()), (None, None));
        // Only option 52 in the options field counts.
        let mut bytes = message(&[53, 1, 2, 255]);
        bytes[field::FILE][..3].copy_from_slice(&[52, 1, 3]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.overload(), None);
        assert_eq!(packet.options().count(), 1);
    }

    #[test]
    fn names_stop_at_nul() {
        let mut bytes = message(&[255]);
        bytes[field::FILE][..6].copy_from_slice(b"a.efi\0");
        bytes[field::SNAME][..3].copy_from_slice(b"srv");
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.boot_file(), Some(&b"a.efi"[..]));
        assert_eq!(packet.server_name(), Some(&b"srv"[..]));
    }

    #[test]
    fn unchecked_views_are_total() {
        for len in 0..260 {
            let bytes = vec![0xffu8; len];
            let packet = Packet::new_unchecked(&bytes[..]);
            let _ = (
                packet.xid(),
                packet.chaddr(),
                packet.file(),
                packet.client_mac(),
            );
            let _ = (
                packet.options().count(),
                packet.merged_options(),
                packet.overload(),
            );
            assert_eq!(packet.chaddr().len(), if len >= 44 { 16 } else { 0 });
        }
    }

    #[test]
    fn chaddr_follows_hlen_and_htype() {
        let mut bytes = message(&[255]);
        bytes[field::CHADDR][..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.chaddr(), &[2, 0, 0, 0, 0, 9]);
        assert_eq!(packet.client_mac(), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        bytes[field::HTYPE] = 32; // InfiniBand
        bytes[field::HLEN] = 0;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.client_mac(), None);
        assert_eq!(packet.chaddr(), &[] as &[u8]);
        assert_eq!(packet.chaddr_mac(), MacAddr([2, 0, 0, 0, 0, 9]));
    }
}
