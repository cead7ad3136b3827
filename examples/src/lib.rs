//! Building blocks of the `netboot` binary that are tested and fuzzed on their own.
#![forbid(unsafe_code)]

pub mod ndp;
