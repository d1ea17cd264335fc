//! Integration tests of `mcptt-registration` (one binary, STYLE.md §6).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod props;
mod regevent;
mod registrar;
mod shared;
mod support;
mod third_party;
