//! Netascii (RFC 1350 mode "netascii", line ends of RFC 764): LF travels as CR LF and a bare
//! CR as CR NUL. The server encodes block by block from the shared file ([`encode_block`]:
//! no per-transfer copy of the file); the client decodes.

/// Where the encoding of a block starts in the host text: an offset, and the second byte of
/// a line end whose first byte ended the previous block (an expansion split in two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeCursor {
    /// Offset in the host text of the next byte to encode.
    pub offset: usize,
    /// The byte owed before that one (`\n` after a CR of `\r\n`, NUL after one of `\r\0`).
    pub owed: Option<u8>,
}

impl EncodeCursor {
    /// Whether nothing is left to encode from `text`.
    pub fn at_end(&self, text: &[u8]) -> bool {
        self.owed.is_none() && self.offset >= text.len()
    }
}

/// Encodes up to `max` wire bytes of `text` from `cursor`: the bytes, and where the next
/// block starts. Fewer than `max` bytes means the text is done.
pub fn encode_block(text: &[u8], cursor: EncodeCursor, max: usize) -> (Vec<u8>, EncodeCursor) {
    let mut out = Vec::with_capacity(max.min(text.len().saturating_mul(2) + 1));
    let mut cursor = cursor;
    if let (Some(owed), true) = (cursor.owed, max > 0) {
        out.push(owed);
        cursor.owed = None;
    }
    while out.len() < max {
        let Some(&byte) = text.get(cursor.offset) else {
            break;
        };
        cursor.offset += 1;
        let (first, second) = match byte {
            b'\n' => (b'\r', Some(b'\n')),
            b'\r' => (b'\r', Some(0)),
            other => (other, None),
        };
        out.push(first);
        if let Some(second) = second {
            if out.len() < max {
                out.push(second);
            } else {
                cursor.owed = Some(second);
            }
        }
    }
    (out, cursor)
}

/// Encodes host text for the wire: `\n` → `\r\n`, `\r` → `\r\0`.
pub fn encode(text: &[u8]) -> Vec<u8> {
    encode_block(text, EncodeCursor::default(), usize::MAX).0
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

        #[test]
        fn blocks_concatenate_to_the_whole_encoding(
            text in prop::collection::vec(prop::sample::select(vec![b'a', b'\n', b'\r', 0]), 0..300),
            max in 1usize..9,
        ) {
            let mut wire = Vec::new();
            let mut cursor = EncodeCursor::default();
            loop {
                let (block, next) = encode_block(&text, cursor, max);
                prop_assert!(block.len() <= max);
                wire.extend_from_slice(&block);
                cursor = next;
                if block.len() < max {
                    prop_assert!(cursor.at_end(&text));
                    break;
                }
            }
            prop_assert_eq!(wire, encode(&text));
        }
    }
}
