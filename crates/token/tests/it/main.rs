//! Integration tests of `mcptt-token` (one binary, STYLE.md §6).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod attacks;
mod common;
mod keys;
mod props;
mod signing;
mod vectors;
