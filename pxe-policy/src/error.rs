use thiserror::Error;

/// Why a text form (MAC address, GUID, …) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text has the wrong number of characters or groups for the type.
    #[error("invalid {kind} length: expected {expected}, got {got}")]
    Length {
        /// What was being parsed (`"mac address"`, `"guid"`).
        kind: &'static str,
        /// The expected count (characters or groups).
        expected: usize,
        /// The count found.
        got: usize,
    },
    /// A character that is not a hexadecimal digit or an allowed separator.
    #[error("invalid character {found:?} at offset {offset} in {kind}")]
    Character {
        /// What was being parsed.
        kind: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset in the input.
        offset: usize,
    },
}
