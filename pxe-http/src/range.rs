//! The `Range` request header, read with the single-range policy: a pure function.

use std::num::NonZeroUsize;

/// The answer to a `Range` header for a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Serve the whole file (no Range, a Range we do not serve, or one that is malformed).
    Full,
    /// Serve bytes `start..=end` with 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// Reads a `Range` header. One range is served; several ranges, units other than bytes and
/// malformed values are ignored (RFC 9110 §14.2: a server may ignore Range), so the client
/// gets the whole file.
///
/// The grammar and the arithmetic (suffix ranges, an end past the file, numbers longer than
/// u64) are `http-range-header`'s. The single-range policy is this crate's: the parser is
/// told to stop at one range, so a header listing many costs no more than one, and a
/// multipart/byteranges answer (which no boot client asks for) is never built.
pub fn parse_range(header: &str, len: u64) -> RangeAnswer {
    /// One range, and no more is parsed.
    const ONE: NonZeroUsize = NonZeroUsize::MIN;
    // Whitespace around the value is not part of it (the crate refuses a trailing blank).
    let Ok(parsed) = http_range_header::parse_range_header_with_max_ranges(header.trim(), ONE)
    else {
        return RangeAnswer::Full;
    };
    match parsed.validate(len).as_deref() {
        Ok([range]) => RangeAnswer::Partial {
            start: *range.start(),
            end: *range.end(),
        },
        // Nothing inside the file: for an empty file even a suffix range selects no byte.
        Ok(_) | Err(_) => RangeAnswer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-0", 10), Partial { start: 0, end: 0 });
        assert_eq!(parse_range("bytes=2-", 10), Partial { start: 2, end: 9 });
        assert_eq!(parse_range("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=5-100", 10), Partial { start: 5, end: 9 });
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 10),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=5-2", 10), Full);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Full);
        assert_eq!(parse_range("items=0-1", 10), Full);
        assert_eq!(parse_range("bytes=a-b", 10), Full);
        assert_eq!(parse_range("bytes=-", 10), Full);
        assert_eq!(parse_range("bytes=1", 10), Full);
        // Whitespace around the value is not part of it.
        assert_eq!(parse_range(" bytes=1-2 ", 10), Partial { start: 1, end: 2 });
        // A header listing many ranges is read only as far as the second.
        let many = format!("bytes=0-0{}", ",1-1".repeat(1000));
        assert_eq!(parse_range(&many, 10), Full);
    }

    proptest::proptest! {
        #[test]
        fn ranges_stay_inside_the_file(header in "bytes=[0-9-]{0,8}", len in 0u64..20) {
            if let RangeAnswer::Partial { start, end } = parse_range(&header, len) {
                proptest::prop_assert!(start <= end && end < len);
            }
        }
    }
}
