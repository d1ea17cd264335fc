//! Integration tests of `mcptt-sip`, checking the parser from outside: RFC 4475 and RFC 5118
//! torture vectors (table-driven from `tests/data/*.expect`), realistic MCPTT messages,
//! property tests (round trip, mutation, stream framing, limits) and the `sip-lint` example.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;
mod edits;
mod generate;
mod lint;
mod mcptt;
mod props;
mod rfc4475;
mod rfc4475_typed;
mod rfc5118;
mod storage;
mod tags;
