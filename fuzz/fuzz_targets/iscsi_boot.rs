//! iSCSI decisions from arbitrary names: building never panics, and a decision that is built
//! has a root path that iPXE splits (five `:`-separated fields, `[…]` kept whole, the target
//! last with its own `:`s) back into the server, port, LUN and target given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_policy::IscsiBoot;

fuzz_target!(|data: &[u8]| {
    let (lun, port, text) = match data {
        [lun, p0, p1, rest @ ..] => (*lun, u16::from_le_bytes([*p0, *p1]), rest),
        _ => return,
    };
    let text = String::from_utf8_lossy(text);
    let mut parts = text.splitn(3, '\u{1}');
    let server = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let initiator = parts.next().unwrap_or("");
    let Ok(disk) = IscsiBoot::new(server, target) else {
        return;
    };
    let disk = disk.lun(lun).port(port);
    let _ = disk.clone().initiator(initiator);
    let path = disk.root_path();
    let mut rest = path.strip_prefix("iscsi:").expect("iscsi: prefix");
    let mut fields = Vec::new();
    for _ in 0..4 {
        let mut inside = false;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            match c {
                '[' => inside = true,
                ']' => inside = false,
                ':' if !inside => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.expect("five fields");
        fields.push(&rest[..end]);
        rest = &rest[end + 1..];
    }
    assert_eq!(fields[0].trim_start_matches('[').trim_end_matches(']'), server);
    assert_eq!(fields[1], "");
    let read_port = fields[2].parse::<u16>().unwrap_or(3260);
    assert_eq!(read_port, if port == 0 { 3260 } else { port });
    assert_eq!(u16::from_str_radix(fields[3], 16).unwrap(), u16::from(lun));
    assert_eq!(rest, target);
});
