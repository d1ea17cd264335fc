//! `mcptt-idm`: MCPTT identity management: users, authentication methods, OAuth 2.0 code + PKCE, token issuing.
//!
//! This crate is a skeleton: its API is being built (see the project's issues).
