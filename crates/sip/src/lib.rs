//! `mcptt-sip`: SIP message model, zero-copy parser, encoder, stream framer and bodies.
//!
//! This crate is a skeleton: its API is being built (see the project's issues).
