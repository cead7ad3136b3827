//! The `Range` request header, read with the single-range policy: a pure function.

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
pub fn parse_range(header: &str, len: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            // Longer than u64: larger than any file, which the checks below treat as such.
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        // bytes=A- and bytes=A-B.
        (false, Some(start), last) if last.is_some() || last_is_empty(last, spec) => {
            if let Some(end) = last {
                if end < start {
                    return RangeAnswer::Full;
                }
            }
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            let end = last.map_or(len - 1, |end| end.min(len - 1));
            RangeAnswer::Partial { start, end }
        }
        _ => RangeAnswer::Full,
    }
}

fn last_is_empty(last: Option<u64>, spec: &str) -> bool {
    last.is_none() && spec.trim_end().ends_with('-')
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
