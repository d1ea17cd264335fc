//! A Redis-backed [`RegistrationStore`](mcptt_registration::RegistrationStore) for [`mcptt_registration`]: several SIP core
//! instances behind one address share their bindings, so a UE's REGISTER, refresh or
//! de-registration works on whichever instance it lands, and bindings outlive the death
//! of the instance that created them.
//!
//! [`RedisStore`] implements the consistency the registrar assumes (see
//! [`mcptt_registration::store`]):
//!
//! - **One record per address-of-record**, stored as a Redis hash holding a version and the
//!   encoded bindings.
//! - **Versioned writes**: every write is one `EVALSHA` of a Lua script that compares the
//!   version the writer read with the stored one and replaces the record, its expiry index
//!   entry and the counters atomically — one round trip, no `WATCH` retry loop inside the
//!   store. Two instances never overwrite each other's newer state: the loser gets
//!   [`StoreError::Conflict`](mcptt_registration::StoreError::Conflict), reloads and
//!   re-applies the REGISTER.
//! - **Wall-clock expiry**: binding times are [`Instant`](std::time::Instant)s of the
//!   instance that wrote them; the store keeps absolute Unix milliseconds and maps them
//!   through each instance's [`TimeBase`] (expiries rounded up: never early). Each record
//!   key also carries a Redis `PEXPIREAT` of its last binding's expiry plus
//!   [`RedisStoreConfig::ttl_grace`], so no record outlives its expiry by more than that
//!   even when every registrar instance is down, and state survives instance restarts.
//! - **Failures are visible**: while Redis is unreachable the trait methods change nothing,
//!   log at `error` level and make the registrar answer 500; the `try_*` methods return an
//!   [`Error`] whose [`status_code`](Error::status_code) is 503.
//!
//! This crate does the I/O (a blocking `redis` connection with connect and response
//! timeouts); `mcptt-registration` itself stays sans-IO.
//!
//! - **Change feed**: every successful write also publishes `<version> <AoR>` on a pub/sub
//!   channel in the same script; [`ChangeFeed`] reads it, so another instance can learn of
//!   a change (at-most-once delivery: resync after a reconnect).
//!
//! Not covered here: wiring the change feed into the registrar (it has no input for
//! remote changes yet), the publication/subscription state of `mcptt-service-state` (it
//! has no store seam), and Redis Cluster connections (the key layout is cluster-ready:
//! each script touches keys of one hash tag).
//!
//! # Example
//!
//! ```no_run
//! use mcptt_registration::{IdentityMap, Registrar, RegistrarConfig};
//! use mcptt_store_redis::{RedisStore, RedisStoreConfig, TimeBase};
//!
//! let store = RedisStore::new(
//!     RedisStoreConfig { url: "redis://127.0.0.1:6379".into(), ..RedisStoreConfig::default() },
//!     TimeBase::system(),
//! )?;
//! store.ping()?; // fail fast at start-up when Redis is not there
//! let config = RegistrarConfig {
//!     identities: IdentityMap::new().allow("ue1.example.com", "sip:alice@example.com"),
//!     ..RegistrarConfig::default()
//! };
//! let mut registrar = Registrar::with_store(config, store, 7);
//! // Drive it as with the in-memory store; a 500 whose cause was Redis shows in the log
//! // and in `registrar.store().take_error()`.
//! let _next = registrar.poll_timeout();
//! # Ok::<(), mcptt_store_redis::Error>(())
//! ```
//!
//! A doctest that runs against a real server is in `tests/it` (it starts `redis-server`).

mod codec;
mod error;
mod store;
mod time;

pub use error::Error;
pub use store::{Change, ChangeFeed, RedisStore, RedisStoreConfig, UNAVAILABLE_VERSION};
pub use time::TimeBase;
