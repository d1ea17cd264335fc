//! `mcptt-tls`: SIP over mutual TLS and TCP (rustls, tokio) for MCPTT.
//!
//! This crate is a skeleton: its API is being built (see the project's issues).
