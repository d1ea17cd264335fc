//! Integration tests against a real `redis-server` started by each test (no mocks).
#![allow(clippy::unwrap_used)]
mod cluster;
mod registrar;
mod service_state;
mod store;
mod support;
