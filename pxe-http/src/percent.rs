//! Percent-decoding of request paths and queries.

/// Decodes `%XX` escapes; `+` stays `+` (iPXE encodes a space as `%20`). Returns the offset
/// of the first `%` that is not followed by two hex digits.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(i)?;
            let high = hex_value(hex[0]).ok_or(i)?;
            let low = hex_value(hex[1]).ok_or(i)?;
            out.push((high << 4) | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_rejects_broken_ones() {
        assert_eq!(decode("a%20b+c%2f").unwrap(), b"a b+c/");
        assert_eq!(decode("%"), Err(0));
        assert_eq!(decode("ab%2"), Err(2));
        assert_eq!(decode("%zz"), Err(0));
    }
}
