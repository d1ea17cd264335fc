//! Integration tests of the example actors (one binary, one module per actor).

mod flow;
mod idms;
mod instances;
mod interop;
mod store;
mod support;
