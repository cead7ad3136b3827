//! A read-only TFTP server for network boot (to come).
#![forbid(unsafe_code)]
