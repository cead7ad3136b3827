//! What PXELINUX's requests name (`pxelinux.cfg/…` paths, lpxelinux's `_Syslinux_BOOTIF`
//! cookie), from network input: never panics, and a name read as a MAC or an address prefix
//! writes back as PXELINUX would have sent it and reads the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_policy::pxelinux::{bootif_cookie, ConfigName};

fuzz_target!(|data: &[u8]| {
    if let Some(mac) = bootif_cookie(data) {
        let cookie = format!("_Syslinux_BOOTIF=01-{}", mac.to_hyphenated());
        assert_eq!(bootif_cookie(cookie.as_bytes()), Some(mac));
    }
    let path = String::from_utf8_lossy(data);
    match ConfigName::parse(&path) {
        Some(ConfigName::Mac(mac)) => {
            let name = format!("pxelinux.cfg/01-{}", mac.to_hyphenated());
            assert_eq!(ConfigName::parse(&name), Some(ConfigName::Mac(mac)));
        }
        Some(ConfigName::AddressPrefix { prefix, digits }) => {
            assert!((1..=8).contains(&digits));
            let name = format!("pxelinux.cfg/{:0width$X}", prefix, width = usize::from(digits));
            assert_eq!(
                ConfigName::parse(&name),
                Some(ConfigName::AddressPrefix { prefix, digits })
            );
        }
        _ => {}
    }
});
