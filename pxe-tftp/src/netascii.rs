//! Netascii (RFC 1350 mode "netascii", line ends of RFC 764): LF travels as CR LF and a bare
//! CR as CR NUL. The server encodes once per request; the client decodes.

/// Encodes host text for the wire: `\n` → `\r\n`, `\r` → `\r\0`.
pub fn encode(text: &[u8]) -> Vec<u8> {
    let extra = text.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    let mut out = Vec::with_capacity(text.len() + extra);
    for &byte in text {
        match byte {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            other => out.push(other),
        }
    }
    out
}

/// Decodes wire text: `\r\n` → `\n`, `\r\0` → `\r`; any other byte after CR is kept as sent.
pub fn decode(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut bytes = wire.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        if byte == b'\r' {
            match bytes.peek() {
                Some(b'\n') => {
                    bytes.next();
                    out.push(b'\n');
                }
                Some(0) => {
                    bytes.next();
                    out.push(b'\r');
                }
                _ => out.push(b'\r'),
            }
        } else {
            out.push(byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_line_ends() {
        assert_eq!(encode(b"a\nb\rc\r\n"), b"a\r\nb\r\0c\r\0\r\n");
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(text in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(decode(&encode(&text)), text);
        }
    }
}
