//! iPXE scripts and boot files over HTTP (to come).
#![forbid(unsafe_code)]
