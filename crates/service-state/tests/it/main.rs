//! Integration tests of `mcptt-service-state`: scripted scenarios on a virtual clock and
//! property tests over random event sequences.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_docs
)]

mod grant;
mod harness;
mod multi;
mod props;
mod scenarios;
