//! Benchmarks of the pxe crates live in `benches/`; run them with `cargo bench -p pxe-benches`.
