//! Typed decoders (and, for the options a server writes, encoders) of single options.
//!
//! Each decoder takes an option's data — all its instances already joined, as
//! [`Packet::option`](super::Packet::option) returns it — and checks it against its
//! definition. Decoded values are small owned types, so they outlive the packet buffer.

use std::net::Ipv4Addr;

use pxe_policy::{Arch, ClientGuid, IpxeBusId, IpxeFeature, IpxeFeatures, IpxeVersion, MacAddr};

use super::{DecodeError, MessageType, OptionCode};

/// Option 53 (RFC 2132 §9.6): one byte.
pub fn decode_message_type(data: &[u8]) -> Result<MessageType, DecodeError> {
    match data {
        [code] => Ok(MessageType::from_code(*code)),
        _ => Err(bad_length(OptionCode::MESSAGE_TYPE, data, "1")),
    }
}

/// A four-byte address option (50, 54, 1, 28, …).
pub fn decode_ipv4(code: OptionCode, data: &[u8]) -> Result<Ipv4Addr, DecodeError> {
    let octets: [u8; 4] = data.try_into().map_err(|_| bad_length(code, data, "4"))?;
    Ok(Ipv4Addr::from(octets))
}

/// A list of four-byte addresses (3, 6, 42, …): a non-empty multiple of 4.
pub fn decode_ipv4_list(code: OptionCode, data: &[u8]) -> Result<Vec<Ipv4Addr>, DecodeError> {
    if data.is_empty() || !data.len().is_multiple_of(4) {
        return Err(bad_length(code, data, "a multiple of 4, at least 4"));
    }
    Ok(data
        .chunks_exact(4)
        .map(|octets| Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
        .collect())
}

/// A two-byte big-endian option (57).
pub fn decode_u16(code: OptionCode, data: &[u8]) -> Result<u16, DecodeError> {
    let bytes: [u8; 2] = data.try_into().map_err(|_| bad_length(code, data, "2"))?;
    Ok(u16::from_be_bytes(bytes))
}

/// A four-byte big-endian option (51, 58, 59).
pub fn decode_u32(code: OptionCode, data: &[u8]) -> Result<u32, DecodeError> {
    let bytes: [u8; 4] = data.try_into().map_err(|_| bad_length(code, data, "4"))?;
    Ok(u32::from_be_bytes(bytes))
}

/// Option 55 (RFC 2132 §9.8): at least one code, in the client's order of preference.
pub fn decode_parameter_request_list(data: &[u8]) -> Result<Vec<OptionCode>, DecodeError> {
    if data.is_empty() {
        return Err(bad_length(
            OptionCode::PARAMETER_REQUEST_LIST,
            data,
            "at least 1",
        ));
    }
    Ok(data.iter().copied().map(OptionCode).collect())
}

/// Option 93 (RFC 4578 §2.1): a non-empty list of 16-bit architecture types, most preferred
/// first.
pub fn decode_client_arch(data: &[u8]) -> Result<Vec<Arch>, DecodeError> {
    if data.is_empty() || !data.len().is_multiple_of(2) {
        return Err(bad_length(
            OptionCode::CLIENT_SYSTEM_ARCHITECTURE,
            data,
            "a multiple of 2, at least 2",
        ));
    }
    Ok(data
        .chunks_exact(2)
        .map(|pair| Arch(u16::from_be_bytes([pair[0], pair[1]])))
        .collect())
}

/// Encodes option 93 from a list of architectures.
pub fn encode_client_arch(arches: &[Arch]) -> Vec<u8> {
    arches
        .iter()
        .flat_map(|arch| arch.0.to_be_bytes())
        .collect()
}

/// Option 97 (RFC 4578 §2.3): type 0 followed by 16 bytes of GUID in EFI byte order.
pub fn decode_client_guid(data: &[u8]) -> Result<ClientGuid, DecodeError> {
    let code = OptionCode::CLIENT_MACHINE_ID;
    let [kind, guid @ ..] = data else {
        return Err(bad_length(code, data, "17"));
    };
    let wire: [u8; 16] = guid.try_into().map_err(|_| bad_length(code, data, "17"))?;
    if *kind != 0 {
        return Err(DecodeError::BadOptionValue {
            code,
            reason: "machine identifier type is not 0 (GUID)",
        });
    }
    Ok(ClientGuid::from_wire(wire))
}

/// Encodes option 97: type 0 and the GUID in EFI byte order, as a proxy reply echoes it.
pub fn encode_client_guid(guid: ClientGuid) -> [u8; 17] {
    let mut data = [0u8; 17];
    data[1..].copy_from_slice(&guid.to_wire());
    data
}

/// Option 175 (iPXE): feature flags (tags 0x10–0x7f), version (0xeb: three bytes) and bus id
/// (0xb1: type, vendor, device, big-endian). Unknown sub-options are skipped; a sub-option
/// that runs past the data, or a version or bus id of the wrong length, is an error.
pub fn decode_ipxe_features(data: &[u8]) -> Result<IpxeFeatures, DecodeError> {
    let code = OptionCode::IPXE_ENCAPSULATED;
    let mut features = IpxeFeatures::new();
    for sub in SubOptions::new(data) {
        let (tag, value) = sub.map_err(|_| DecodeError::BadOptionValue {
            code,
            reason: "a sub-option runs past the option",
        })?;
        match tag {
            IPXE_VERSION => {
                let [major, minor, patch] = value else {
                    return Err(DecodeError::BadOptionValue {
                        code,
                        reason: "version sub-option 0xeb is not 3 bytes",
                    });
                };
                features.version = Some(IpxeVersion {
                    major: *major,
                    minor: *minor,
                    patch: *patch,
                });
            }
            IPXE_BUS_ID => {
                let [bus_type, v0, v1, d0, d1] = value else {
                    return Err(DecodeError::BadOptionValue {
                        code,
                        reason: "bus id sub-option 0xb1 is not 5 bytes",
                    });
                };
                features.bus_id = Some(IpxeBusId {
                    bus_type: *bus_type,
                    vendor: u16::from_be_bytes([*v0, *v1]),
                    device: u16::from_be_bytes([*d0, *d1]),
                });
            }
            tag if IpxeFeature::is_feature_tag(tag) => features.insert(IpxeFeature(tag)),
            _ => {}
        }
    }
    Ok(features)
}

/// Option 175 sub-option 0xeb: the iPXE version.
pub const IPXE_VERSION: u8 = 0xeb;
/// Option 175 sub-option 0xb1: the iPXE network device's bus id.
pub const IPXE_BUS_ID: u8 = 0xb1;
/// Option 175 sub-option 0xb0 in a server's reply: with value 1, iPXE stops waiting for
/// ProxyDHCP offers and requests at once.
pub const IPXE_NO_PXEDHCP: u8 = 0xb0;

/// Encodes encapsulated sub-options (43, 175): each as tag, length, data, then End (255).
/// Data longer than 255 bytes is split into several instances of the tag.
pub fn encode_encapsulated<'a>(sub_options: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, data) in sub_options {
        for_each_instance(tag, data, |header, chunk| {
            out.extend_from_slice(&header);
            out.extend_from_slice(chunk);
        });
    }
    out.push(255);
    out
}

/// Calls `each([code, len], chunk)` for each instance `data` needs on the wire: one per 255
/// bytes (RFC 3396 §5), one for empty data.
pub(crate) fn for_each_instance(code: u8, data: &[u8], mut each: impl FnMut([u8; 2], &[u8])) {
    if data.is_empty() {
        each([code, 0], data);
    }
    for chunk in data.chunks(255) {
        each([code, chunk.len() as u8], chunk);
    }
}

/// An iterator over encapsulated sub-options (tag, length, data) with Pad (0) skipped and
/// End (255) stopping it: the layout of options 43 and 175. It yields `Err` once, with the
/// offset of a sub-option that runs past the data, and then stops.
#[derive(Debug, Clone)]
pub struct SubOptions<'a> {
    data: &'a [u8],
    pos: usize,
    pad_and_end: bool,
}

impl<'a> SubOptions<'a> {
    /// Sub-options with Pad and End (options 43, 175).
    pub const fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            pad_and_end: true,
        }
    }

    /// Sub-options where 0 and 255 are ordinary tags (option 82, RFC 3046 §2.0).
    pub const fn without_pad_and_end(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            pad_and_end: false,
        }
    }
}

impl<'a> Iterator for SubOptions<'a> {
    type Item = Result<(u8, &'a [u8]), usize>;

    fn next(&mut self) -> Option<Self::Item> {
        match super::packet::next_tlv(self.data, &mut self.pos, self.pad_and_end) {
            Ok(found) => found.map(|(code, data)| Ok((code.0, data))),
            Err((_, offset)) => Some(Err(offset)),
        }
    }
}

/// Option 60 (RFC 2132 §9.13), with the PXE layout read out: `PXEClient:Arch:00007:UNDI:003016`
/// (PXE 2.1 §2.3) or UEFI HTTP Boot's `HTTPClient:Arch:00016:UNDI:003000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VendorClass {
    raw: Vec<u8>,
}

impl VendorClass {
    /// `PXEClient`: the prefix PXE firmware sends and a proxy offer must echo.
    pub const PXE_CLIENT: &'static [u8] = b"PXEClient";
    /// `HTTPClient`: the prefix UEFI HTTP Boot sends and an offer to it must echo.
    pub const HTTP_CLIENT: &'static [u8] = b"HTTPClient";

    /// Any non-empty data (RFC 2132: minimum length 1).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        if data.is_empty() {
            return Err(bad_length(
                OptionCode::VENDOR_CLASS_IDENTIFIER,
                data,
                "at least 1",
            ));
        }
        Ok(Self { raw: data.to_vec() })
    }

    /// From bytes, as a reply builder takes it.
    pub fn new(raw: impl Into<Vec<u8>>) -> Self {
        Self { raw: raw.into() }
    }

    /// The bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The text before the first `:` (`PXEClient`, `HTTPClient`, `udhcp 1.36.1`…).
    pub fn prefix(&self) -> &[u8] {
        self.raw.split(|&b| b == b':').next().unwrap_or(&[])
    }

    /// Whether it starts with `PXEClient` (PXE 2.1: the client is PXE firmware).
    pub fn is_pxe_client(&self) -> bool {
        self.prefix() == Self::PXE_CLIENT
    }

    /// Whether it starts with `HTTPClient` (UEFI 2.5+ HTTP Boot).
    pub fn is_http_client(&self) -> bool {
        self.prefix() == Self::HTTP_CLIENT
    }

    fn field(&self, key: &[u8]) -> Option<&[u8]> {
        if !(self.is_pxe_client() || self.is_http_client()) {
            return None;
        }
        let mut parts = self.raw.split(|&b| b == b':').skip(1);
        while let Some(name) = parts.next() {
            let value = parts.next()?;
            if name == key {
                return Some(value);
            }
        }
        None
    }

    /// The `Arch:` field, five decimal digits (`00007` → x64 UEFI).
    pub fn arch(&self) -> Option<Arch> {
        parse_decimal(self.field(b"Arch")?).map(Arch)
    }

    /// The `UNDI:` field, three decimal digits of major then three of minor version
    /// (`003016` → (3, 16)).
    pub fn undi(&self) -> Option<(u16, u16)> {
        let value = self.field(b"UNDI")?;
        if value.len() != 6 {
            return None;
        }
        Some((
            parse_decimal(value.get(..3)?)?,
            parse_decimal(value.get(3..)?)?,
        ))
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    let mut value: u32 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(digit - b'0');
    }
    u16::try_from(value).ok()
}

/// Option 77. RFC 3004 defines it as a list of length-prefixed class names; iPXE sends the
/// bare text `iPXE` instead. Both forms are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserClass {
    raw: Vec<u8>,
}

impl UserClass {
    /// Any non-empty data.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        if data.is_empty() {
            return Err(bad_length(OptionCode::USER_CLASS, data, "at least 1"));
        }
        Ok(Self { raw: data.to_vec() })
    }

    /// From bytes as they go on the wire.
    pub fn new(raw: impl Into<Vec<u8>>) -> Self {
        Self { raw: raw.into() }
    }

    /// The bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The RFC 3004 class names, if the data parses as that list exactly (every length
    /// non-zero and the lengths adding up to the data).
    pub fn rfc3004_classes(&self) -> Option<Vec<&[u8]>> {
        let mut classes = Vec::new();
        let mut rest = &self.raw[..];
        while let [len, tail @ ..] = rest {
            let len = usize::from(*len);
            if len == 0 || tail.len() < len {
                return None;
            }
            classes.push(&tail[..len]);
            rest = &tail[len..];
        }
        (!classes.is_empty()).then_some(classes)
    }

    /// The class names: the RFC 3004 list when the data parses as one, else the whole data
    /// as one name (iPXE's form).
    pub fn classes(&self) -> Vec<&[u8]> {
        self.rfc3004_classes()
            .unwrap_or_else(|| vec![self.raw.as_slice()])
    }

    /// Whether one of the class names is `name`.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.classes().contains(&name)
    }

    /// Whether the class is `iPXE` (the user class every iPXE build sends by default).
    pub fn is_ipxe(&self) -> bool {
        self.contains(b"iPXE")
    }
}

/// Option 94 (RFC 4578 §2.2): interface type (1 = UNDI) and its major and minor version
/// (`01 03 0a` is UNDI 3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkInterfaceId {
    /// The interface type; 1 is UNDI.
    pub interface_type: u8,
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl NetworkInterfaceId {
    /// Exactly three bytes.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        match data {
            [interface_type, major, minor] => Ok(Self {
                interface_type: *interface_type,
                major: *major,
                minor: *minor,
            }),
            _ => Err(bad_length(
                OptionCode::CLIENT_NETWORK_INTERFACE_ID,
                data,
                "3",
            )),
        }
    }

    /// The three bytes.
    pub const fn encode(&self) -> [u8; 3] {
        [self.interface_type, self.major, self.minor]
    }

    /// Whether the interface is UNDI (type 1).
    pub const fn is_undi(&self) -> bool {
        self.interface_type == 1
    }
}

/// Option 61 (RFC 2132 §9.14): a type byte (1 = Ethernet, followed by the MAC; 0 = other)
/// and the identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId {
    raw: Vec<u8>,
}

impl ClientId {
    /// At least two bytes (RFC 2132: minimum length 2).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        if data.len() < 2 {
            return Err(bad_length(
                OptionCode::CLIENT_IDENTIFIER,
                data,
                "at least 2",
            ));
        }
        Ok(Self { raw: data.to_vec() })
    }

    /// The bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The type byte.
    pub fn id_type(&self) -> u8 {
        self.raw.first().copied().unwrap_or(0)
    }

    /// The MAC address, when the type is 1 and six bytes follow (iPXE's form).
    pub fn mac(&self) -> Option<MacAddr> {
        match &self.raw[..] {
            [1, mac @ ..] if mac.len() == 6 => MacAddr::from_slice(mac),
            _ => None,
        }
    }
}

/// Option 82 (RFC 3046): sub-options a relay agent added, which a server echoes verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayAgentInfo {
    raw: Vec<u8>,
}

impl RelayAgentInfo {
    /// Sub-option 1: Agent Circuit ID.
    pub const CIRCUIT_ID: u8 = 1;
    /// Sub-option 2: Agent Remote ID.
    pub const REMOTE_ID: u8 = 2;

    /// At least one sub-option, each inside the data.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let code = OptionCode::RELAY_AGENT_INFORMATION;
        if data.len() < 2 {
            return Err(bad_length(code, data, "at least 2"));
        }
        if SubOptions::without_pad_and_end(data).any(|sub| sub.is_err()) {
            return Err(DecodeError::BadOptionValue {
                code,
                reason: "a sub-option runs past the option",
            });
        }
        Ok(Self { raw: data.to_vec() })
    }

    /// The bytes as received, to echo in the reply.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The sub-options, in order.
    pub fn sub_options(&self) -> impl Iterator<Item = (u8, &[u8])> {
        SubOptions::without_pad_and_end(&self.raw).filter_map(Result::ok)
    }

    /// The data of sub-option `tag`.
    pub fn get(&self, tag: u8) -> Option<&[u8]> {
        self.sub_options().find(|(t, _)| *t == tag).map(|(_, d)| d)
    }

    /// Sub-option 1, the agent circuit id.
    pub fn circuit_id(&self) -> Option<&[u8]> {
        self.get(Self::CIRCUIT_ID)
    }

    /// Sub-option 2, the agent remote id.
    pub fn remote_id(&self) -> Option<&[u8]> {
        self.get(Self::REMOTE_ID)
    }
}

/// PXE's sub-options of option 43 (PXE 2.1 §2.4). A client sends 71 (boot item) when it asks
/// a boot server on port 4011; a server sends 6 (discovery control), 8–10 (boot servers,
/// menu, prompt) and 71.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct PxeVendorOptions {
    /// 6, PXE_DISCOVERY_CONTROL: bit 0 no broadcast discovery, bit 1 no multicast, bit 2
    /// only listed servers, bit 3 (value 8) use the boot file name in the offer directly.
    pub discovery_control: Option<u8>,
    /// 7, DISCOVERY_MCAST_ADDR.
    pub discovery_mcast_addr: Option<Ipv4Addr>,
    /// 8, PXE_BOOT_SERVERS, raw.
    pub boot_servers: Option<Vec<u8>>,
    /// 9, PXE_BOOT_MENU, raw.
    pub boot_menu: Option<Vec<u8>>,
    /// 10, PXE_MENU_PROMPT, raw.
    pub menu_prompt: Option<Vec<u8>>,
    /// 71, PXE_BOOT_ITEM: boot server type and layer.
    pub boot_item: Option<(u16, u16)>,
    /// Every other sub-option, in order.
    pub other: Vec<(u8, Vec<u8>)>,
}

impl PxeVendorOptions {
    /// Discovery control value 8: skip discovery, boot the file named in the offer.
    pub const USE_BOOT_FILE: u8 = 8;

    /// No sub-options; set fields on it (the struct is `#[non_exhaustive]`, so it is built
    /// from this or [`Default`] and then assigned to).
    pub fn new() -> Self {
        Self::default()
    }

    /// Just discovery control 8: "boot the file named in this offer, skip discovery", the
    /// option 43 that BIOS PXE ROMs need in a proxy offer (docs/FIRMWARE.md).
    pub fn use_boot_file() -> Self {
        Self {
            discovery_control: Some(Self::USE_BOOT_FILE),
            ..Self::default()
        }
    }

    /// Reads sub-options up to End; fixed-size ones must have their size.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let code = OptionCode::VENDOR_SPECIFIC;
        let bad = |reason| DecodeError::BadOptionValue { code, reason };
        let mut out = Self::default();
        for sub in SubOptions::new(data) {
            let (tag, value) = sub.map_err(|_| bad("a sub-option runs past the option"))?;
            match (tag, value) {
                (6, [control]) => out.discovery_control = Some(*control),
                (6, _) => return Err(bad("discovery control is not 1 byte")),
                (7, [a, b, c, d]) => out.discovery_mcast_addr = Some(Ipv4Addr::new(*a, *b, *c, *d)),
                (7, _) => return Err(bad("multicast discovery address is not 4 bytes")),
                (8, _) => out.boot_servers = Some(value.to_vec()),
                (9, _) => out.boot_menu = Some(value.to_vec()),
                (10, _) => out.menu_prompt = Some(value.to_vec()),
                (71, [t0, t1, l0, l1]) => {
                    out.boot_item = Some((
                        u16::from_be_bytes([*t0, *t1]),
                        u16::from_be_bytes([*l0, *l1]),
                    ));
                }
                (71, _) => return Err(bad("boot item is not 4 bytes")),
                _ => out.other.push((tag, value.to_vec())),
            }
        }
        Ok(out)
    }

    /// The option 43 data: the sub-options that are set, in tag order, then End.
    pub fn encode(&self) -> Vec<u8> {
        let control = self.discovery_control.map(|c| [c]);
        let mcast = self.discovery_mcast_addr.map(|a| a.octets());
        let item = self.boot_item.map(|(kind, layer)| {
            let [k0, k1] = kind.to_be_bytes();
            let [l0, l1] = layer.to_be_bytes();
            [k0, k1, l0, l1]
        });
        let fixed = [
            (6u8, control.as_ref().map(|c| &c[..])),
            (7, mcast.as_ref().map(|a| &a[..])),
            (8, self.boot_servers.as_deref()),
            (9, self.boot_menu.as_deref()),
            (10, self.menu_prompt.as_deref()),
            (71, item.as_ref().map(|i| &i[..])),
        ];
        encode_encapsulated(
            fixed
                .into_iter()
                .filter_map(|(tag, data)| Some((tag, data?)))
                .chain(self.other.iter().map(|(tag, data)| (*tag, data.as_slice()))),
        )
    }
}

fn bad_length(code: OptionCode, data: &[u8], expected: &'static str) -> DecodeError {
    DecodeError::BadOptionLength {
        code,
        len: data.len(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_class_pxe_layout() {
        let class = VendorClass::decode(b"PXEClient:Arch:00007:UNDI:003016").unwrap();
        assert!(class.is_pxe_client() && !class.is_http_client());
        assert_eq!(class.arch(), Some(Arch::X64_UEFI));
        assert_eq!(class.undi(), Some((3, 16)));
        let http = VendorClass::decode(b"HTTPClient:Arch:00016:UNDI:003000").unwrap();
        assert!(http.is_http_client());
        assert_eq!(http.arch(), Some(Arch::X64_UEFI_HTTP));
        let plain = VendorClass::decode(b"PXEClient").unwrap();
        assert_eq!((plain.arch(), plain.undi()), (None, None));
        let other = VendorClass::decode(b"udhcp 1.36.1").unwrap();
        assert_eq!(other.prefix(), b"udhcp 1.36.1");
        assert_eq!(
            VendorClass::decode(b"PXEClient:Arch:9x:UNDI:1")
                .unwrap()
                .arch(),
            None
        );
        assert!(VendorClass::decode(b"").is_err());
    }

    #[test]
    fn user_class_both_forms() {
        let ipxe = UserClass::decode(b"iPXE").unwrap();
        assert!(ipxe.is_ipxe());
        assert_eq!(ipxe.rfc3004_classes(), None);
        let rfc = UserClass::decode(b"\x04iPXE\x03foo").unwrap();
        assert_eq!(rfc.classes(), vec![&b"iPXE"[..], b"foo"]);
        assert!(rfc.is_ipxe() && rfc.contains(b"foo"));
    }

    #[test]
    fn fixed_size_options() {
        assert_eq!(
            decode_client_arch(&[0, 7, 0, 9]).unwrap(),
            [Arch::X64_UEFI, Arch::EBC]
        );
        assert!(decode_client_arch(&[0, 7, 0]).is_err());
        assert!(decode_client_arch(&[]).is_err());
        assert_eq!(encode_client_arch(&[Arch(16)]), [0, 16]);
        let ndi = NetworkInterfaceId::decode(&[1, 3, 10]).unwrap();
        assert!(ndi.is_undi());
        assert_eq!((ndi.major, ndi.minor), (3, 10));
        assert!(NetworkInterfaceId::decode(&[1, 3]).is_err());
        let mut guid = [0u8; 17];
        guid[1] = 0xb0;
        assert!(decode_client_guid(&guid).is_ok());
        guid[0] = 1;
        assert!(matches!(
            decode_client_guid(&guid),
            Err(DecodeError::BadOptionValue { .. })
        ));
        assert!(decode_client_guid(&guid[..16]).is_err());
        let g = ClientGuid::from_canonical([3; 16]);
        assert_eq!(decode_client_guid(&encode_client_guid(g)), Ok(g));
        let id = ClientId::decode(&[1, 0x52, 0x54, 0, 1, 2, 3]).unwrap();
        assert_eq!(id.mac(), Some(MacAddr([0x52, 0x54, 0, 1, 2, 3])));
        assert!(ClientId::decode(&[1]).is_err());
        assert_eq!(decode_u16(OptionCode(57), &[5, 0xc0]), Ok(1472));
    }

    #[test]
    fn ipxe_features_from_real_bytes() {
        // docs/FIRMWARE.md: bus id 01 1a f4 10 00, version 1.0.0, HTTP and EFI flags.
        let data = [
            0xb1, 5, 1, 0x1a, 0xf4, 0x10, 0x00, 0xeb, 3, 1, 0, 0, 0x13, 1, 1, 0x24, 1, 1,
        ];
        let features = decode_ipxe_features(&data).unwrap();
        assert!(features.has_http() && features.is_efi() && !features.has_https());
        assert_eq!(
            features.bus_id,
            Some(IpxeBusId {
                bus_type: 1,
                vendor: 0x1af4,
                device: 0x1000
            })
        );
        assert_eq!(features.version.unwrap().to_string(), "1.0.0");
        assert!(decode_ipxe_features(&[0xeb, 2, 1, 0]).is_err());
        assert!(decode_ipxe_features(&[0x13, 5, 1]).is_err());
    }

    #[test]
    fn pxe_vendor_options_round_trip() {
        let options = PxeVendorOptions {
            discovery_control: Some(PxeVendorOptions::USE_BOOT_FILE),
            boot_item: Some((0x8000, 0)),
            other: vec![(200, vec![1, 2])],
            ..Default::default()
        };
        let encoded = options.encode();
        assert_eq!(&encoded[..3], &[6, 1, 8]);
        assert_eq!(PxeVendorOptions::use_boot_file().encode(), [6, 1, 8, 255]);
        assert_eq!(encoded.last(), Some(&255));
        assert_eq!(PxeVendorOptions::decode(&encoded), Ok(options));
        assert!(PxeVendorOptions::decode(&[71, 3, 0, 0, 0]).is_err());
    }

    #[test]
    fn relay_agent_info_sub_options() {
        let info = RelayAgentInfo::decode(&[1, 2, 0xaa, 0xbb, 2, 1, 0xcc]).unwrap();
        assert_eq!(info.circuit_id(), Some(&[0xaa, 0xbb][..]));
        assert_eq!(info.remote_id(), Some(&[0xcc][..]));
        assert!(RelayAgentInfo::decode(&[1, 5, 0]).is_err());
    }

    #[test]
    fn encapsulated_splits_long_data() {
        let long = vec![7u8; 300];
        let encoded = encode_encapsulated([(1u8, &long[..]), (2, &[][..])]);
        assert_eq!(encoded.len(), 2 + 255 + 2 + 45 + 2 + 1);
        let subs: Vec<_> = SubOptions::new(&encoded).map(Result::unwrap).collect();
        assert_eq!(subs.len(), 3);
        assert_eq!(subs[2], (2, &[][..]));
    }
}
