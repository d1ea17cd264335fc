//! `mcptt-token`: JWS/JWT access- and ID-token validation and signing for MCPTT (ring).
//!
//! This crate is a skeleton: its API is being built (see the project's issues).
