//! Any bytes through pxe's Router Solicitation parser (`--ipv6-ra` reads every ICMPv6
//! message on its interface): nothing may panic, and a MAC it reports is one the message holds
//! in a source link-layer address option.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe::ndp::{parse_router_solicitation, ROUTER_SOLICITATION};

fuzz_target!(|data: &[u8]| {
    let Ok(solicitation) = parse_router_solicitation(data) else {
        return;
    };
    assert_eq!(data[0], ROUTER_SOLICITATION);
    if let Some(mac) = solicitation.mac {
        let found = data[8..]
            .windows(8)
            .any(|option| option[..2] == [1, 1] && option[2..] == mac.octets());
        assert!(found, "reported {mac} is not in the message");
    }
});
