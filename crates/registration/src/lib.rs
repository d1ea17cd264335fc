//! `mcptt-registration`: Sans-IO SIP registrar, third-party registration and reg event for MCPTT.
//!
//! This crate is a skeleton: its API is being built (see the project's issues).
