//! Criterion benchmarks of the mcptt crates live in `benches/`; this library is empty on purpose.
