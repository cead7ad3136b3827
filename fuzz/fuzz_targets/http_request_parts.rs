//! pxe-http's parsers of peer input: the script query (into client facts), the request path
//! (confined to the root), and the Range header. None may panic; every accepted path has only
//! normal components, and every accepted range lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(facts) = pxe_http::facts_from_query(text, None) {
        // Accessors on the result are total.
        let _ = (facts.mac.to_string(), facts.is_uefi(), facts.extra.len());
    }
    if let Ok(relative) = pxe_http::relative_path(text) {
        assert!(relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))));
    }
    let len = data.len() as u64;
    if let pxe_http::RangeAnswer::Partial { start, end } = pxe_http::parse_range(text, len) {
        assert!(start <= end && end < len);
    }
});
