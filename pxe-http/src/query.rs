//! iPXE's facts from a script request's query string.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use pxe_policy::{
    Arch, ClientFacts, ClientGuid, ClientKind, MacAddr, ScriptError, Setting, SettingType, Url,
};

use crate::error::QueryError;
use crate::percent;

/// The client settings a script URL carries, as (query key, setting, how iPXE formats it).
const FACT_SETTINGS: [(&str, SettingType); 10] = [
    ("mac", SettingType::Hexhyp),
    ("uuid", SettingType::Uuid),
    ("serial", SettingType::Uristring),
    ("asset", SettingType::Uristring),
    ("manufacturer", SettingType::Uristring),
    ("product", SettingType::Uristring),
    ("buildarch", SettingType::Uristring),
    ("platform", SettingType::Uristring),
    ("hostname", SettingType::Uristring),
    ("ip", SettingType::Ipv4),
];

/// `base` with the query that tells [`facts_from_query`] who the client is: iPXE fills each
/// `${…}` in when it fetches the URL (`/boot.ipxe?mac=${mac:hexhyp}&uuid=${uuid}&…`).
///
/// A URL this long (about 280 bytes) does not fit in one DHCP option, so the service hands it
/// out itself: a script request with no `mac` gets a script that chains to this URL.
pub fn facts_url(base: &str) -> Result<Url, ScriptError> {
    let mut url = Url::new(base)?;
    for (key, ty) in FACT_SETTINGS {
        url = url.query_setting(key, Setting::new(key, ty)?)?;
    }
    Ok(url)
}

/// Turns the query of a script request (`mac=…&uuid=…&buildarch=…`) into client facts.
///
/// Known names fill their fields (`mac` is required; empty values, which iPXE sends for unset
/// settings, count as absent; `uuid` placeholders are dropped); `buildarch` and `platform`
/// give the architecture; every other pair goes to [`ClientFacts::extra`]. `peer` is the
/// connection's address, used when the query has no `ip`. Values are percent-decoded (`+` is
/// not a space) and invalid UTF-8 is replaced, since SMBIOS strings are not always text.
pub fn facts_from_query(query: &str, peer: Option<IpAddr>) -> Result<ClientFacts, QueryError> {
    // One pass, on the script endpoint's hot path: values without escapes stay borrowed from
    // the query, and only the facts kept become `String`s.
    let mut known: [Option<Cow<'_, str>>; KNOWN.len()] = Default::default();
    let mut extra = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let offset = pair.as_ptr() as usize - query.as_ptr() as usize;
        let key = percent::decode_lossy(raw_key).map_err(|at| QueryError::Encoding {
            offset: offset + at,
        })?;
        let value = percent::decode_lossy(raw_value).map_err(|at| QueryError::Encoding {
            offset: offset + raw_key.len() + 1 + at,
        })?;
        match KNOWN.iter().position(|name| *name == key) {
            // The last non-empty value wins; iPXE sends unset settings as empty values.
            Some(slot) if !value.is_empty() => known[slot] = Some(value),
            Some(_) => {}
            None => extra.push((key, value)),
        }
    }
    let [mac, kind, uuid, buildarch, platform, serial, asset, manufacturer, product, hostname, ip, _] =
        known;
    let mac = mac.ok_or(QueryError::MissingMac)?;
    let mac: MacAddr = mac.parse().map_err(|_| QueryError::Invalid {
        name: "mac",
        value: mac.into_owned(),
    })?;
    let kind = match kind.as_deref() {
        Some("firmware-ipxe") => ClientKind::FirmwareIpxe,
        _ => ClientKind::ChainloadedIpxe,
    };
    let mut facts = ClientFacts::new(mac, kind);
    if let Some(uuid) = uuid {
        let guid: ClientGuid = uuid.parse().map_err(|_| QueryError::Invalid {
            name: "uuid",
            value: uuid.into_owned(),
        })?;
        facts.guid = guid.meaningful();
    }
    facts.arch = arch_of(buildarch.as_deref(), platform.as_deref());
    facts.serial = serial.map(Cow::into_owned);
    facts.asset = asset.map(Cow::into_owned);
    facts.manufacturer = manufacturer.map(Cow::into_owned);
    facts.product = product.map(Cow::into_owned);
    facts.hostname = hostname.map(Cow::into_owned);
    facts.ip = match ip {
        Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| QueryError::Invalid {
            name: "ip",
            value: ip.into_owned(),
        })?),
        None => match peer {
            Some(IpAddr::V4(v4)) => Some(v4),
            Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped(),
            None => None,
        },
    };
    // In query order, so a repeated name keeps its last value.
    for (key, value) in extra {
        facts.extra.insert(key.into_owned(), value.into_owned());
    }
    Ok(facts)
}

/// The query names [`facts_from_query`] reads into fields, in the order it destructures them;
/// an empty name is dropped. Every other name goes to [`ClientFacts::extra`].
const KNOWN: [&str; 12] = [
    "mac",
    "kind",
    "uuid",
    "buildarch",
    "platform",
    "serial",
    "asset",
    "manufacturer",
    "product",
    "hostname",
    "ip",
    "",
];

/// The architecture code of an iPXE build, from `${buildarch}` and `${platform}`.
pub fn arch_of(buildarch: Option<&str>, platform: Option<&str>) -> Option<Arch> {
    let arch = match (buildarch?, platform?) {
        ("i386" | "x86_64", "pcbios") => Arch::X86_BIOS,
        ("x86_64", "efi") => Arch::X64_UEFI,
        ("i386", "efi") => Arch::X86_UEFI,
        ("arm64", "efi") => Arch::ARM64_UEFI,
        ("arm32", "efi") => Arch::ARM32_UEFI,
        ("riscv64", "efi") => Arch::RISCV64_UEFI,
        ("riscv32", "efi") => Arch::RISCV32_UEFI,
        ("loong64", "efi") => Arch::LOONGARCH64_UEFI,
        _ => return None,
    };
    Some(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipxe_query_becomes_facts() {
        let facts = facts_from_query(
            "mac=52-54-00-12-34-56&uuid=9e0c1ab0-0000-4000-8000-000000000001\
             &serial=SN%20%231&asset=&buildarch=x86_64&platform=efi&hostname=web%2601\
             &ip=192.0.2.10&rack=r%2B1",
            None,
        )
        .unwrap();
        assert_eq!(facts.mac, MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(facts.arch, Some(Arch::X64_UEFI));
        assert!(facts.guid.is_some());
        assert_eq!(facts.serial.as_deref(), Some("SN #1"));
        assert_eq!(facts.asset, None);
        assert_eq!(facts.hostname.as_deref(), Some("web&01"));
        assert_eq!(facts.ip, Some(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(facts.extra.get("rack").map(String::as_str), Some("r+1"));
        assert_eq!(facts.kind, ClientKind::ChainloadedIpxe);
    }

    #[test]
    fn repeated_names_keep_the_last_value() {
        let facts = facts_from_query(
            "mac=02-00-00-00-00-01&serial=a&serial=&rack=1&rack=2&kind=firmware-ipxe&=x&mac=",
            None,
        )
        .unwrap();
        // An empty value (an unset iPXE setting) does not replace a known fact…
        assert_eq!(facts.mac, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(facts.serial.as_deref(), Some("a"));
        // …while other names keep exactly what came last; an empty name is dropped.
        assert_eq!(facts.extra.len(), 1);
        assert_eq!(facts.extra.get("rack").map(String::as_str), Some("2"));
        assert_eq!(facts.kind, ClientKind::FirmwareIpxe);
    }

    #[test]
    fn placeholders_and_peer_address() {
        let facts = facts_from_query(
            "mac=52:54:00:12:34:56&uuid=ffffffff-ffff-ffff-ffff-ffffffffffff&ip=",
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        )
        .unwrap();
        assert_eq!(facts.guid, None);
        assert_eq!(facts.ip, Some(Ipv4Addr::new(192, 0, 2, 7)));
    }

    #[test]
    fn bad_queries_are_errors() {
        assert_eq!(
            facts_from_query("uuid=x", None),
            Err(QueryError::MissingMac)
        );
        assert!(matches!(
            facts_from_query("mac=zz", None),
            Err(QueryError::Invalid { name: "mac", .. })
        ));
        assert_eq!(
            facts_from_query("mac=52:54:00:12:34:56&x=%4", None),
            Err(QueryError::Encoding { offset: 24 })
        );
        // Offsets count the raw query, escapes in the name included.
        assert_eq!(
            facts_from_query("mac=52:54:00:12:34:56&%41b=%4", None),
            Err(QueryError::Encoding { offset: 27 })
        );
    }

    #[test]
    fn facts_url_names_every_fact() {
        assert_eq!(
            facts_url("/boot.ipxe").unwrap().to_string(),
            "/boot.ipxe?mac=${mac:hexhyp}&uuid=${uuid:uuid}&serial=${serial:uristring}\
             &asset=${asset:uristring}&manufacturer=${manufacturer:uristring}\
             &product=${product:uristring}&buildarch=${buildarch:uristring}\
             &platform=${platform:uristring}&hostname=${hostname:uristring}&ip=${ip:ipv4}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_query_is_handled(query in "[ -~]{0,80}") {
            let _ = facts_from_query(&query, None);
        }

        #[test]
        fn encoded_values_arrive_intact(value in "\\PC{1,20}") {
            let mut encoded = String::new();
            for byte in value.bytes() {
                encoded.push_str(&format!("%{byte:02x}"));
            }
            let facts = facts_from_query(&format!("mac=020000000001&serial={encoded}"), None)
                .unwrap();
            proptest::prop_assert_eq!(facts.serial, Some(value));
        }
    }
}
