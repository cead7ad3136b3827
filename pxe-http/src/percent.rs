//! Percent-decoding of request paths and queries.
//!
//! The `percent-encoding` crate decodes. What this module adds is the refusal of a broken
//! escape: that crate passes a `%` not followed by two hex digits through as a literal `%`
//! (as browsers do), while RFC 3986 §2.1 allows `%` only as the start of an escape. A request
//! with a broken one is malformed (a client bug, or someone probing for a second spelling of
//! a path), so it is refused with the offset where it broke, rather than read as text that
//! the policy, the file system and the logs would then take for the client's word.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Decodes `%XX` escapes; `+` stays `+` (iPXE encodes a space as `%20`). Returns the offset
/// of the first `%` that is not followed by two hex digits. Text without a `%` (most of a
/// script query) is borrowed, not copied.
pub(crate) fn decode(text: &str) -> Result<Cow<'_, [u8]>, usize> {
    if !has_escapes(text)? {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    Ok(percent_decode_str(text).into())
}

/// [`decode`], then text with invalid UTF-8 replaced (SMBIOS strings are not always text).
pub(crate) fn decode_lossy(text: &str) -> Result<Cow<'_, str>, usize> {
    // Without an escape the text is the input, already a `str`: the crate's lossy decoding
    // would scan it twice more (for `%`, then UTF-8), which made a whole script query 1.6x
    // slower to read (`cargo bench --bench http_script`, http_facts_from_query).
    if !has_escapes(text)? {
        return Ok(Cow::Borrowed(text));
    }
    Ok(percent_decode_str(text).decode_utf8_lossy())
}

/// Whether `text` holds escapes, or the offset of the first `%` not followed by two hex
/// digits. (No `%` can be one of an escape's digits, so each is checked on its own.)
fn has_escapes(text: &str) -> Result<bool, usize> {
    let bytes = text.as_bytes();
    let mut any = false;
    for (at, _) in bytes.iter().enumerate().filter(|(_, byte)| **byte == b'%') {
        let digits = bytes.get(at + 1..at + 3).ok_or(at)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(at);
        }
        any = true;
    }
    Ok(any)
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
        assert_eq!(decode("%%41"), Err(0));
        assert_eq!(decode("%25%41").unwrap().as_ref(), b"%A");
    }

    #[test]
    fn lossy_text() {
        assert_eq!(decode_lossy("a%20b").unwrap(), "a b");
        assert_eq!(decode_lossy("x%ffy").unwrap(), "x\u{fffd}y");
        assert!(matches!(
            decode_lossy("web-01").unwrap(),
            Cow::Borrowed("web-01")
        ));
        assert_eq!(decode_lossy("a%2"), Err(1));
    }

    proptest::proptest! {
        /// Whatever the crate decodes, a `%` in the output came from an escape: no broken
        /// escape is passed through.
        #[test]
        fn accepted_text_has_only_whole_escapes(text in "[a%0-9fz]{0,12}") {
            if let Ok(decoded) = decode(&text) {
                let escapes = text.matches('%').count();
                proptest::prop_assert_eq!(decoded.len(), text.len() - 2 * escapes);
            }
        }
    }
}
