//! Arbitrary bytes as a lease journal (a damaged or foreign file at start-up): reading never
//! panics, every line is either trusted or reported as dropped, and what is trusted writes
//! and reads back as itself with nothing dropped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_dhcp::lease::{journal_text, read_journal};

fuzz_target!(|data: &[u8]| {
    let read = read_journal(data);
    // Trusted records plus dropped lines never outnumber the lines.
    let lines = data.split(|&b| b == b'\n').count();
    assert!(read.changes.len() + read.dropped.len() <= lines);
    for dropped in &read.dropped {
        assert!((1..=lines).contains(&dropped.line));
        assert!(dropped.text.chars().count() <= 80);
    }
    let again = read_journal(journal_text(&read.changes).as_bytes());
    assert_eq!(again.changes, read.changes);
    assert!(again.dropped.is_empty());
});
