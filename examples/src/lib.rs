//! Shared glue for the example binaries of the MCPTT flow (one binary per actor in `src/bin/`).

pub mod actors;
pub mod cli;
pub mod cpu;
pub mod demo;
pub mod idm;
pub mod ladder;
pub mod pki;
pub mod runtime;
pub mod scenario;
pub mod stats;
pub mod steps;
pub mod trace;
