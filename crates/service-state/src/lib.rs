//! `mcptt-service-state`: Sans-IO MCPTT service authorisation: PUBLISH, SUBSCRIBE/NOTIFY and service-state bodies.
//!
//! This crate is a skeleton: its API is being built (see the project's issues).
