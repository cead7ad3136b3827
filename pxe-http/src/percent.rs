//! Percent-decoding of request paths and queries.

use std::borrow::Cow;

/// Decodes `%XX` escapes; `+` stays `+` (iPXE encodes a space as `%20`). Returns the offset
/// of the first `%` that is not followed by two hex digits. Text without a `%` (most of a
/// script query) is borrowed, not copied.
pub(crate) fn decode(text: &str) -> Result<Cow<'_, [u8]>, usize> {
    let bytes = text.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b'%') else {
        return Ok(Cow::Borrowed(bytes));
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
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
    Ok(Cow::Owned(out))
}

/// [`decode`], then text with invalid UTF-8 replaced (SMBIOS strings are not always text).
pub(crate) fn decode_lossy(text: &str) -> Result<Cow<'_, str>, usize> {
    Ok(match decode(text)? {
        // Borrowed means no escape: the input itself, already a `str`.
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        }),
    })
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_rejects_broken_ones() {
        assert_eq!(decode("a%20b+c%2f").unwrap().as_ref(), b"a b+c/");
        assert!(matches!(
            decode("plain+text").unwrap(),
            Cow::Borrowed(b"plain+text")
        ));
        assert_eq!(decode("%"), Err(0));
        assert_eq!(decode("ab%2"), Err(2));
        assert_eq!(decode("%zz"), Err(0));
        assert_eq!(decode("ok%41%zz"), Err(5));
    }

    #[test]
    fn lossy_text() {
        assert_eq!(decode_lossy("a%20b").unwrap(), "a b");
        assert_eq!(decode_lossy("x%ffy").unwrap(), "x\u{fffd}y");
        assert!(matches!(
            decode_lossy("web-01").unwrap(),
            Cow::Borrowed("web-01")
        ));
    }
}
