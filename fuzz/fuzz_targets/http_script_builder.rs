//! The iPXE script builder with arbitrary values: rendering never panics, and a rendered
//! script never has a line that a value broke (each value is one token, or is carried in a
//! `set pxe-vN:hex` line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_policy::{Command, Script, Word};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{1}');
    let a = parts.next().unwrap_or("").to_string();
    let b = parts.next().unwrap_or("").to_string();
    let c = parts.next().unwrap_or("").to_string();
    let mut script = Script::new();
    script
        .push(
            Command::echo(a.as_str()).or(Command::echo(Word::text(b.clone()).and_text(c.clone()))),
        )
        .push(Command::kernel(b.as_str()).cmdline(&c));
    if let Ok(rendered) = script.render() {
        assert!(rendered.starts_with("#!ipxe\n"));
        // Every line is a builder line: data never adds one.
        for line in rendered.lines().skip(1) {
            assert!(
                line.starts_with("echo ")
                    || line.starts_with("kernel ")
                    || line.starts_with("set pxe-v")
                    || line.starts_with("clear pxe-v"),
                "{line:?}"
            );
        }
        assert_eq!(
            rendered
                .lines()
                .filter(|l| l.starts_with("kernel "))
                .count(),
            1
        );
    }
});
