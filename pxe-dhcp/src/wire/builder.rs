use std::net::Ipv4Addr;

use pxe_policy::{ClientGuid, MacAddr};

use super::options::{encode_client_guid, for_each_instance, PxeVendorOptions};
use super::packet::{field, HEADER_LEN, MAGIC_COOKIE};
use super::{ClientRequest, EmitError, Flags, MessageType, Op, OptionCode, Packet};

/// The smallest message every DHCP client must accept (RFC 2131 §2: "a DHCP client must be
/// prepared to receive DHCP messages with an 'options' field of at least length 312 octets"):
/// 236 + 312 = 548 bytes of DHCP, 576 with the IP and UDP headers.
pub const MIN_MAX_LEN: usize = 548;

/// The IP and UDP header bytes that option 57's count includes (RFC 2132 §9.10 counts the
/// whole datagram: its minimum of 576 is RFC 791's minimum IP datagram).
pub const IP_UDP_HEADER_LEN: usize = 28;

/// BOOTP relay agents may drop shorter messages (RFC 1542 §2.1): pad replies to 300 bytes.
pub const BOOTP_MIN_LEN: usize = 300;

const SNAME_LEN: usize = 64;
const FILE_LEN: usize = 128;

/// An owned DHCP message to send: fixed fields and an ordered set of options.
///
/// [`PacketBuilder::buffer_len`] and [`PacketBuilder::emit`] lay it out:
///
/// - option 53 first and option 82 last (RFC 3046 §2.1 puts relay information last), the
///   rest in the order they were first set;
/// - data longer than 255 bytes split into consecutive instances of the same code
///   (RFC 3396 §5: "the option MUST be split");
/// - options ended by End (255) and the message zero-padded to 300 bytes
///   ([`BOOTP_MIN_LEN`]);
/// - at most [`max_len`](PacketBuilder::max_len) bytes, the size the client accepts (548
///   unless its option 57 said more). When the options do not fit and overload is allowed,
///   they continue in `file` and then `sname` if those are empty, with option 52 saying so
///   (RFC 2131 §4.1). Overload is off by default: some PXE ROMs are confused by it.
///
/// Option 52 (overload), Pad and End are the builder's to write; `set_option` ignores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketBuilder {
    op: Op,
    htype: u8,
    hlen: u8,
    hops: u8,
    xid: u32,
    secs: u16,
    flags: Flags,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 16],
    sname: Vec<u8>,
    file: Vec<u8>,
    options: Vec<(OptionCode, Vec<u8>)>,
    max_len: usize,
    overload_allowed: bool,
}

impl PacketBuilder {
    /// An empty message with the given op: Ethernet (`htype` 1, `hlen` 6), all fields zero,
    /// no options, [`MIN_MAX_LEN`] as the size limit.
    pub fn new(op: Op) -> Self {
        Self {
            op,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: Flags::default(),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
            max_len: MIN_MAX_LEN,
            overload_allowed: false,
        }
    }

    /// A client message (BOOTREQUEST) of `message_type` from `mac` with transaction `xid`:
    /// what tests and tools use to play a client.
    pub fn request(message_type: MessageType, xid: u32, mac: MacAddr) -> Self {
        let mut builder = Self::new(Op::BootRequest);
        builder
            .set_xid(xid)
            .set_mac(mac)
            .set_message_type(message_type);
        builder
    }

    /// A server reply to `request`, with the fields RFC 2131 §4.3.1 table 3 fixes: `op`
    /// BOOTREPLY; `htype`, `hlen`, `xid`, `flags`, `giaddr` and `chaddr` from the request;
    /// `ciaddr` from the request in a DHCPACK (zero otherwise); `hops`, `secs`, `yiaddr`,
    /// `siaddr` zero; option 53 set; the request's option 82 echoed (RFC 3046 §2.2); the size
    /// limit from its option 57.
    ///
    /// A DHCPNAK through a relay gets the BROADCAST bit (RFC 2131 §4.3.2: "the server MUST set
    /// the broadcast bit in the DHCPNAK, so that the relay agent will broadcast the DHCPNAK to
    /// the client").
    pub fn reply_to(request: &ClientRequest, message_type: MessageType) -> Self {
        let mut reply = Self::new(Op::BootReply);
        reply.htype = request.htype;
        reply.hlen = request.hlen.min(16);
        reply.xid = request.xid;
        reply.flags = request.flags;
        reply.giaddr = request.giaddr;
        reply.chaddr = request.chaddr_field;
        if message_type == MessageType::Ack {
            reply.ciaddr = request.ciaddr;
        }
        if message_type == MessageType::Nak && !request.giaddr.is_unspecified() {
            reply.flags = reply.flags.with_broadcast(true);
        }
        reply.set_message_type(message_type);
        if let Some(info) = &request.relay_agent_info {
            reply.set_option(OptionCode::RELAY_AGENT_INFORMATION, info.as_bytes());
        }
        reply.set_max_len(request.max_reply_len());
        reply
    }

    /// [`PacketBuilder::reply_to`] straight from a received packet.
    pub fn reply_to_packet<T: AsRef<[u8]>>(request: &Packet<T>, message_type: MessageType) -> Self {
        Self::reply_to(&ClientRequest::from_packet_lenient(request), message_type)
    }

    /// Every field and option of a received message, as a builder (its size limit stays the
    /// default). Split options come back joined, options carried in `file`/`sname` come back
    /// as options (those fields then empty), and option 52 is dropped.
    pub fn from_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Self {
        let overload = packet.overload();
        let mut builder = Self {
            op: packet.op(),
            htype: packet.htype(),
            hlen: packet.hlen().min(16),
            hops: packet.hops(),
            xid: packet.xid(),
            secs: packet.secs(),
            flags: packet.flags(),
            ciaddr: packet.ciaddr(),
            yiaddr: packet.yiaddr(),
            siaddr: packet.siaddr(),
            giaddr: packet.giaddr(),
            chaddr: pad_to(packet.chaddr_field()),
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
            max_len: MIN_MAX_LEN,
            overload_allowed: false,
        };
        if !overload.is_some_and(|o| o.sname()) {
            builder.sname = trim_nuls(packet.sname()).to_vec();
        }
        if !overload.is_some_and(|o| o.file()) {
            builder.file = trim_nuls(packet.file()).to_vec();
        }
        for (code, data) in packet.merged_options() {
            builder.set_option(code, &data);
        }
        builder
    }

    /// `op`.
    pub fn op(&self) -> Op {
        self.op
    }
    /// Sets `op`.
    pub fn set_op(&mut self, op: Op) -> &mut Self {
        self.op = op;
        self
    }
    /// `htype`.
    pub fn htype(&self) -> u8 {
        self.htype
    }
    /// Sets `htype`.
    pub fn set_htype(&mut self, htype: u8) -> &mut Self {
        self.htype = htype;
        self
    }
    /// `hlen`.
    pub fn hlen(&self) -> u8 {
        self.hlen
    }
    /// `hops`.
    pub fn hops(&self) -> u8 {
        self.hops
    }
    /// Sets `hops`.
    pub fn set_hops(&mut self, hops: u8) -> &mut Self {
        self.hops = hops;
        self
    }
    /// `xid`.
    pub fn xid(&self) -> u32 {
        self.xid
    }
    /// Sets `xid`.
    pub fn set_xid(&mut self, xid: u32) -> &mut Self {
        self.xid = xid;
        self
    }
    /// `secs`.
    pub fn secs(&self) -> u16 {
        self.secs
    }
    /// Sets `secs`.
    pub fn set_secs(&mut self, secs: u16) -> &mut Self {
        self.secs = secs;
        self
    }
    /// `flags`.
    pub fn flags(&self) -> Flags {
        self.flags
    }
    /// Sets `flags`.
    pub fn set_flags(&mut self, flags: Flags) -> &mut Self {
        self.flags = flags;
        self
    }
    /// Sets or clears the BROADCAST flag.
    pub fn set_broadcast(&mut self, broadcast: bool) -> &mut Self {
        self.flags = self.flags.with_broadcast(broadcast);
        self
    }
    /// `ciaddr`.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ciaddr
    }
    /// Sets `ciaddr`.
    pub fn set_ciaddr(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.ciaddr = addr;
        self
    }
    /// `yiaddr`.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.yiaddr
    }
    /// Sets `yiaddr`, the address offered or assigned (zero in a proxy offer).
    pub fn set_yiaddr(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.yiaddr = addr;
        self
    }
    /// `siaddr`.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.siaddr
    }
    /// Sets `siaddr`, the next (TFTP) server.
    pub fn set_siaddr(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.siaddr = addr;
        self
    }
    /// `giaddr`.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.giaddr
    }
    /// Sets `giaddr`.
    pub fn set_giaddr(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.giaddr = addr;
        self
    }
    /// `chaddr`, its first `hlen` bytes.
    pub fn chaddr(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen.min(16))]
    }
    /// Sets `chaddr` and `hlen` to `addr` (at most 16 bytes).
    pub fn set_chaddr(&mut self, addr: &[u8]) -> Result<&mut Self, EmitError> {
        if addr.len() > 16 {
            return Err(EmitError::FieldTooLong {
                field: "chaddr",
                len: addr.len(),
                max: 16,
            });
        }
        self.chaddr = pad_to::<16>(addr);
        self.hlen = addr.len() as u8;
        Ok(self)
    }
    /// Sets an Ethernet `chaddr`: `htype` 1, `hlen` 6.
    pub fn set_mac(&mut self, mac: MacAddr) -> &mut Self {
        self.chaddr = pad_to::<16>(&mac.octets());
        self.htype = 1;
        self.hlen = 6;
        self
    }
    /// `sname`, without its NUL padding.
    pub fn sname(&self) -> &[u8] {
        &self.sname
    }
    /// Sets `sname`, the server host name: at most 63 bytes, so that a NUL ends it (some
    /// clients need one). Trailing NULs are dropped.
    pub fn set_sname(&mut self, name: &[u8]) -> Result<&mut Self, EmitError> {
        self.sname = checked_name("sname", name, SNAME_LEN)?;
        Ok(self)
    }
    /// `file`, without its NUL padding.
    pub fn file(&self) -> &[u8] {
        &self.file
    }
    /// Sets `file`, the boot file name: at most 127 bytes, so that a NUL ends it. Longer
    /// names (URLs) go in option 67 ([`PacketBuilder::set_bootfile_name`]).
    pub fn set_file(&mut self, name: &[u8]) -> Result<&mut Self, EmitError> {
        self.file = checked_name("file", name, FILE_LEN)?;
        Ok(self)
    }

    /// The most bytes [`emit`](PacketBuilder::emit) may write.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// Sets the size limit, at least [`MIN_MAX_LEN`] (smaller values are raised to it).
    pub fn set_max_len(&mut self, max_len: usize) -> &mut Self {
        self.max_len = max_len.max(MIN_MAX_LEN);
        self
    }
    /// Whether options may continue in empty `file`/`sname` fields.
    pub fn overload_allowed(&self) -> bool {
        self.overload_allowed
    }
    /// Allows or forbids option overload (off by default).
    pub fn set_overload_allowed(&mut self, allowed: bool) -> &mut Self {
        self.overload_allowed = allowed;
        self
    }

    /// The data of option `code`, if set.
    pub fn option(&self, code: OptionCode) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, data)| data.as_slice())
    }

    /// The options in the order they will be written.
    pub fn options(&self) -> impl Iterator<Item = (OptionCode, &[u8])> {
        self.options
            .iter()
            .map(|(code, data)| (*code, data.as_slice()))
    }

    /// Sets option `code` to `data` (any length; long data is split when written), replacing
    /// an earlier value in place. Pad, End and Option Overload are ignored.
    pub fn set_option(&mut self, code: OptionCode, data: &[u8]) -> &mut Self {
        if matches!(code.0, 0 | 52 | 255) {
            return self;
        }
        if let Some((_, old)) = self.options.iter_mut().find(|(c, _)| *c == code) {
            old.clear();
            old.extend_from_slice(data);
            return self;
        }
        let relay_last = self
            .options
            .last()
            .is_some_and(|(c, _)| *c == OptionCode::RELAY_AGENT_INFORMATION);
        let at = match code {
            OptionCode::MESSAGE_TYPE => 0,
            OptionCode::RELAY_AGENT_INFORMATION => self.options.len(),
            _ if relay_last => self.options.len() - 1,
            _ => self.options.len(),
        };
        self.options.insert(at, (code, data.to_vec()));
        self
    }

    /// Removes option `code`, returning its data.
    pub fn remove_option(&mut self, code: OptionCode) -> Option<Vec<u8>> {
        let at = self.options.iter().position(|(c, _)| *c == code)?;
        Some(self.options.remove(at).1)
    }

    /// Honours a client's parameter request list (option 55): keeps option 53, the options in
    /// `requested` and those for which `always_sent` is true, drops the rest, and orders them
    /// option 53 first, then the requested ones in the client's order (RFC 2132 §9.8: the
    /// server "MUST try to insert the requested options in the order requested by the
    /// client"), then the kept unrequested ones in their earlier order, option 82 last.
    pub fn retain_requested(
        &mut self,
        requested: &[OptionCode],
        always_sent: impl Fn(OptionCode) -> bool,
    ) -> &mut Self {
        let mut rest = std::mem::take(&mut self.options);
        let mut ordered = Vec::with_capacity(rest.len());
        let mut take = |code: OptionCode, rest: &mut Vec<(OptionCode, Vec<u8>)>| {
            if let Some(at) = rest.iter().position(|(c, _)| *c == code) {
                ordered.push(rest.remove(at));
            }
        };
        take(OptionCode::MESSAGE_TYPE, &mut rest);
        for &code in requested {
            if code != OptionCode::RELAY_AGENT_INFORMATION {
                take(code, &mut rest);
            }
        }
        let relay = rest
            .iter()
            .position(|(c, _)| *c == OptionCode::RELAY_AGENT_INFORMATION)
            .map(|at| rest.remove(at));
        ordered.extend(rest.into_iter().filter(|(code, _)| always_sent(*code)));
        ordered.extend(relay.filter(|(code, _)| always_sent(*code)));
        self.options = ordered;
        self
    }

    /// Option 53.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(OptionCode::MESSAGE_TYPE)? {
            [code] => Some(MessageType::from_code(*code)),
            _ => None,
        }
    }
    /// Sets option 53.
    pub fn set_message_type(&mut self, message_type: MessageType) -> &mut Self {
        self.set_option(OptionCode::MESSAGE_TYPE, &[message_type.code()])
    }
    /// Sets option 54, the server identifier.
    pub fn set_server_identifier(&mut self, addr: Ipv4Addr) -> &mut Self {
        self.set_option(OptionCode::SERVER_IDENTIFIER, &addr.octets())
    }
    /// Sets option 1.
    pub fn set_subnet_mask(&mut self, mask: Ipv4Addr) -> &mut Self {
        self.set_option(OptionCode::SUBNET_MASK, &mask.octets())
    }
    /// Sets option 3.
    pub fn set_routers(&mut self, routers: &[Ipv4Addr]) -> &mut Self {
        let data: Vec<u8> = routers.iter().flat_map(|a| a.octets()).collect();
        self.set_option(OptionCode::ROUTER, &data)
    }
    /// Sets option 6.
    pub fn set_domain_name_servers(&mut self, servers: &[Ipv4Addr]) -> &mut Self {
        let data: Vec<u8> = servers.iter().flat_map(|a| a.octets()).collect();
        self.set_option(OptionCode::DOMAIN_NAME_SERVER, &data)
    }
    /// Sets option 51, the lease time in seconds.
    pub fn set_lease_time(&mut self, seconds: u32) -> &mut Self {
        self.set_option(OptionCode::IP_ADDRESS_LEASE_TIME, &seconds.to_be_bytes())
    }
    /// Sets option 58, T1.
    pub fn set_renewal_time(&mut self, seconds: u32) -> &mut Self {
        self.set_option(OptionCode::RENEWAL_TIME, &seconds.to_be_bytes())
    }
    /// Sets option 59, T2.
    pub fn set_rebinding_time(&mut self, seconds: u32) -> &mut Self {
        self.set_option(OptionCode::REBINDING_TIME, &seconds.to_be_bytes())
    }
    /// Sets option 60 (`PXEClient` or `HTTPClient` in replies to those clients).
    pub fn set_vendor_class(&mut self, class: &[u8]) -> &mut Self {
        self.set_option(OptionCode::VENDOR_CLASS_IDENTIFIER, class)
    }
    /// Sets option 43 from PXE sub-options.
    pub fn set_pxe_vendor_options(&mut self, options: &PxeVendorOptions) -> &mut Self {
        self.set_option(OptionCode::VENDOR_SPECIFIC, &options.encode())
    }
    /// Sets option 97: type 0 and the GUID in EFI byte order (proxy replies echo it).
    pub fn set_client_guid(&mut self, guid: ClientGuid) -> &mut Self {
        self.set_option(OptionCode::CLIENT_MACHINE_ID, &encode_client_guid(guid))
    }
    /// Sets option 66, the TFTP server name.
    pub fn set_tftp_server_name(&mut self, name: &[u8]) -> &mut Self {
        self.set_option(OptionCode::TFTP_SERVER_NAME, name)
    }
    /// Sets option 67, the boot file name (any length, so URLs fit).
    pub fn set_bootfile_name(&mut self, name: &[u8]) -> &mut Self {
        self.set_option(OptionCode::BOOTFILE_NAME, name)
    }
    /// Sets option 77 to raw bytes (`iPXE-chained` marks a chainloaded iPXE, see
    /// docs/FIRMWARE.md).
    pub fn set_user_class(&mut self, class: &[u8]) -> &mut Self {
        self.set_option(OptionCode::USER_CLASS, class)
    }

    /// The bytes [`emit`](PacketBuilder::emit) writes. When the options cannot fit the size
    /// limit (emit then fails with [`EmitError::TooLong`]), the length without the limit.
    pub fn buffer_len(&self) -> usize {
        match self.lay_out(|_, _, _| {}) {
            Ok(len) => len,
            Err(_) => self.unlimited_len(),
        }
    }

    /// Writes the message at the start of `buf`, returning the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.lay_out(|_, _, _| {})?;
        let Some(out) = buf.get_mut(..len) else {
            return Err(EmitError::BufferTooSmall {
                needed: len,
                got: buf.len(),
            });
        };
        out.fill(0);
        out[field::OP] = self.op.code();
        out[field::HTYPE] = self.htype;
        out[field::HLEN] = self.hlen;
        out[field::HOPS] = self.hops;
        out[field::XID].copy_from_slice(&self.xid.to_be_bytes());
        out[field::SECS].copy_from_slice(&self.secs.to_be_bytes());
        out[field::FLAGS].copy_from_slice(&self.flags.0.to_be_bytes());
        out[field::CIADDR].copy_from_slice(&self.ciaddr.octets());
        out[field::YIADDR].copy_from_slice(&self.yiaddr.octets());
        out[field::SIADDR].copy_from_slice(&self.siaddr.octets());
        out[field::GIADDR].copy_from_slice(&self.giaddr.octets());
        out[field::CHADDR].copy_from_slice(&self.chaddr);
        out[field::SNAME][..self.sname.len()].copy_from_slice(&self.sname);
        out[field::FILE][..self.file.len()].copy_from_slice(&self.file);
        out[field::MAGIC_COOKIE].copy_from_slice(&MAGIC_COOKIE);
        self.lay_out(|region, at, bytes| {
            let base = match region {
                Area::Options => field::OPTIONS,
                Area::File => field::FILE.start,
                Area::Sname => field::SNAME.start,
            };
            out[base + at..base + at + bytes.len()].copy_from_slice(bytes);
        })?;
        Ok(len)
    }

    /// The message as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, EmitError> {
        let mut buf = vec![0; self.buffer_len()];
        let len = self.emit(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// The length with every option in the options field and no limit.
    fn unlimited_len(&self) -> usize {
        let options: usize = self.options.iter().map(|(_, data)| encoded_len(data)).sum();
        (HEADER_LEN + options + 1).max(BOOTP_MIN_LEN)
    }

    /// Places every option and End, calling `put(area, offset, bytes)` for each piece, and
    /// returns the message length. The same walk sizes the message and writes it.
    fn lay_out(&self, mut put: impl FnMut(Area, usize, &[u8])) -> Result<usize, EmitError> {
        let options: usize = self.options.iter().map(|(_, data)| encoded_len(data)).sum();
        let plain_len = HEADER_LEN + options + 1;
        if plain_len <= self.max_len {
            let mut at = 0;
            for (code, data) in &self.options {
                for_each_instance(code.0, data, |header, chunk| {
                    put(Area::Options, at, &header);
                    put(Area::Options, at + 2, chunk);
                    at += 2 + chunk.len();
                });
            }
            put(Area::Options, at, &[255]);
            return Ok(plain_len.max(BOOTP_MIN_LEN));
        }
        let too_long = EmitError::TooLong {
            needed: plain_len,
            max: self.max_len,
        };
        if !self.overload_allowed {
            return Err(too_long);
        }
        // Room in each area for options, keeping one byte for End and, in the options field,
        // three for option 52.
        let mut areas = vec![(Area::Options, self.max_len - HEADER_LEN - 3 - 1)];
        if self.file.is_empty() {
            areas.push((Area::File, FILE_LEN - 1));
        }
        if self.sname.is_empty() {
            areas.push((Area::Sname, SNAME_LEN - 1));
        }
        let mut filler = Filler {
            areas: &areas,
            index: 0,
            at: 0,
            used: [0; 3],
        };
        for (code, data) in &self.options {
            if !filler.place(code.0, data, &mut put) {
                return Err(too_long);
            }
        }
        let used = filler.used;
        // The options field alone could not hold every option, so `file` or `sname` holds
        // some: file alone is 1, sname alone 2, both 3.
        let overload = match (used[1] > 0, used[2] > 0) {
            (true, true) => 3,
            (false, true) => 2,
            _ => 1,
        };
        put(Area::Options, used[0], &[52, 1, overload, 255]);
        if used[1] > 0 {
            put(Area::File, used[1], &[255]);
        }
        if used[2] > 0 {
            put(Area::Sname, used[2], &[255]);
        }
        Ok((HEADER_LEN + used[0] + 4).max(BOOTP_MIN_LEN))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Options,
    File,
    Sname,
}

impl Area {
    fn index(self) -> usize {
        match self {
            Area::Options => 0,
            Area::File => 1,
            Area::Sname => 2,
        }
    }
}

/// Fills the areas in order, splitting options at area boundaries (RFC 3396 allows a split
/// anywhere; the receiver joins the pieces in options, file, sname order).
struct Filler<'a> {
    areas: &'a [(Area, usize)],
    index: usize,
    at: usize,
    used: [usize; 3],
}

impl Filler<'_> {
    fn place(&mut self, code: u8, data: &[u8], put: &mut impl FnMut(Area, usize, &[u8])) -> bool {
        let mut rest = data;
        let mut first = true;
        while first || !rest.is_empty() {
            let Some(&(area, room)) = self.areas.get(self.index) else {
                return false;
            };
            let free = room - self.at;
            // A piece needs its two header bytes and, unless the option is empty, one byte.
            let min = if data.is_empty() { 2 } else { 3 };
            if free < min {
                self.index += 1;
                self.at = 0;
                continue;
            }
            let take = rest.len().min(255).min(free - 2);
            put(area, self.at, &[code, take as u8]);
            put(area, self.at + 2, &rest[..take]);
            self.at += 2 + take;
            self.used[area.index()] = self.at;
            rest = &rest[take..];
            first = false;
        }
        true
    }
}

/// The bytes an option takes on the wire, split instances included.
fn encoded_len(data: &[u8]) -> usize {
    let instances = data.len().div_ceil(255).max(1);
    data.len() + 2 * instances
}

fn pad_to<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let len = bytes.len().min(N);
    out[..len].copy_from_slice(&bytes[..len]);
    out
}

fn trim_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

fn checked_name(field: &'static str, name: &[u8], size: usize) -> Result<Vec<u8>, EmitError> {
    let name = trim_nuls(name);
    if name.len() >= size {
        return Err(EmitError::FieldTooLong {
            field,
            len: name.len(),
            max: size - 1,
        });
    }
    Ok(name.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_are_padded_to_300() {
        let b = PacketBuilder::request(MessageType::Discover, 1, MacAddr([2, 0, 0, 0, 0, 1]));
        let bytes = b.to_vec().unwrap();
        assert_eq!(bytes.len(), BOOTP_MIN_LEN);
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 4], &[53, 1, 1, 255]);
        assert!(bytes[HEADER_LEN + 4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn message_type_first_relay_info_last() {
        let mut b = PacketBuilder::new(Op::BootReply);
        b.set_option(OptionCode::RELAY_AGENT_INFORMATION, &[1, 1, 9])
            .set_server_identifier(Ipv4Addr::new(192, 0, 2, 1))
            .set_message_type(MessageType::Offer)
            .set_vendor_class(b"PXEClient");
        let codes: Vec<u8> = b.options().map(|(code, _)| code.0).collect();
        assert_eq!(codes, [53, 54, 60, 82]);
        // Replacing keeps the position.
        b.set_server_identifier(Ipv4Addr::new(192, 0, 2, 2));
        let codes: Vec<u8> = b.options().map(|(code, _)| code.0).collect();
        assert_eq!(codes, [53, 54, 60, 82]);
        assert_eq!(
            b.option(OptionCode::SERVER_IDENTIFIER),
            Some(&[192, 0, 2, 2][..])
        );
        assert_eq!(
            b.remove_option(OptionCode::VENDOR_CLASS_IDENTIFIER),
            Some(b"PXEClient".to_vec())
        );
        assert_eq!(b.message_type(), Some(MessageType::Offer));
    }

    #[test]
    fn requested_options_in_the_clients_order_and_required_ones_kept() {
        let mut b = PacketBuilder::new(Op::BootReply);
        b.set_message_type(MessageType::Ack)
            .set_option(OptionCode::RELAY_AGENT_INFORMATION, &[1, 1, 9])
            .set_server_identifier(Ipv4Addr::new(192, 0, 2, 1))
            .set_subnet_mask(Ipv4Addr::new(255, 255, 255, 0))
            .set_routers(&[Ipv4Addr::new(192, 0, 2, 1)])
            .set_option(OptionCode::BROADCAST_ADDRESS, &[192, 0, 2, 255])
            .set_lease_time(60)
            .set_vendor_class(b"PXEClient");
        let requested = [OptionCode(3), OptionCode(99), OptionCode(1), OptionCode(82)];
        let required = |code: OptionCode| matches!(code.0, 53 | 54 | 51 | 60 | 82);
        b.retain_requested(&requested, required);
        let codes: Vec<u8> = b.options().map(|(code, _)| code.0).collect();
        // 28 was neither asked for nor required; 99 is not set, so not invented.
        assert_eq!(codes, [53, 3, 1, 54, 51, 60, 82]);
        // Nothing required and nothing asked: only what the list names survives.
        b.retain_requested(&[OptionCode(1)], |_| false);
        let codes: Vec<u8> = b.options().map(|(code, _)| code.0).collect();
        assert_eq!(codes, [53, 1]);
    }

    #[test]
    fn fixed_fields_are_bounded() {
        let mut b = PacketBuilder::new(Op::BootReply);
        assert_eq!(
            b.set_file(&[b'a'; 128]).map(|_| ()),
            Err(EmitError::FieldTooLong {
                field: "file",
                len: 128,
                max: 127
            })
        );
        assert!(b.set_file(&[b'a'; 127]).is_ok());
        assert!(b.set_sname(&[b'a'; 64]).is_err());
        assert!(b.set_sname(b"name\0\0").is_ok());
        assert_eq!(b.sname(), b"name");
        assert!(b.set_chaddr(&[1; 17]).is_err());
        b.set_chaddr(&[1; 16]).unwrap();
        assert_eq!((b.hlen(), b.chaddr().len()), (16, 16));
        b.set_max_len(10);
        assert_eq!(b.max_len(), MIN_MAX_LEN);
    }

    #[test]
    fn emit_reports_short_buffers() {
        let b = PacketBuilder::new(Op::BootRequest);
        let mut buf = [0u8; 299];
        assert_eq!(
            b.emit(&mut buf),
            Err(EmitError::BufferTooSmall {
                needed: 300,
                got: 299
            })
        );
        let mut buf = [0xffu8; 400];
        assert_eq!(b.emit(&mut buf), Ok(300));
        assert_eq!(buf[300], 0xff, "nothing past the message is touched");
    }

    #[test]
    fn empty_options_are_written_once() {
        let mut b = PacketBuilder::new(Op::BootRequest);
        b.set_option(OptionCode::RAPID_COMMIT, &[]);
        let bytes = b.to_vec().unwrap();
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 3], &[80, 0, 255]);
        assert_eq!(encoded_len(&[]), 2);
        assert_eq!(encoded_len(&[0; 255]), 257);
        assert_eq!(encoded_len(&[0; 256]), 260);
    }
}
