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
//! - **Failures are visible**: while Redis is unreachable every trait method returns
//!   [`StoreError::Unavailable`](mcptt_registration::StoreError::Unavailable) with the
//!   cause (logged at `error` level too); the registrar changes nothing and answers `503`
//!   with `Retry-After`, without retrying. The `try_*` methods return an [`Error`].
//! - **Change feed**: every successful write also publishes
//!   `<version> <instance id> <AoR>` on a pub/sub channel from the same script.
//!   [`ChangeFeed`] listens on a thread of its own and [`ChangeFeed::deliver`] hands the
//!   changes of *other* instances to
//!   [`Registrar::handle_remote_change`](mcptt_registration::Registrar::handle_remote_change):
//!   the instance holding a reg event subscription NOTIFYs it, once. Pub/sub is at most
//!   once; after a reconnect the feed has the registrar resync its subscriptions.
//! - **Round trips**: a REGISTER is one pipelined read and one `EVALSHA`; the registrar's
//!   `poll_timeout` after it is answered from a cache of the earliest expiry
//!   ([`RedisStoreConfig::expiry_cache`]) that this instance's writes keep exact.
//! - **Redis Cluster**: set [`RedisStoreConfig::cluster_nodes`]; keys are hash-tagged per
//!   bucket (`{P:reg:B}`), so every write script touches one slot, and the `due` /
//!   `next_expiry` scans are split per node by the `redis` crate's cluster pipeline.
//!
//! This crate does the I/O (a blocking `redis` connection with connect and response
//! timeouts, one listener thread per feed); `mcptt-registration` itself stays sans-IO.
//!
//! Not covered here: the publication/subscription state of `mcptt-service-state`, reg
//! event subscriptions themselves (they stay in the memory of the instance holding the
//! dialog; when it dies, `mcptt-registration`'s `RegistrationView` re-subscribes after
//! the `481` its next refresh gets from another instance: takeover within the refresh
//! interval, see [`mcptt_registration::store`]), and a hard global `max_bindings` cap
//! (the count is per-bucket and cached, see [`RedisStore`]).
//!
//! A binary that takes `--store memory|redis://…` holds a `Registrar<`[`StoreChoice`]`>`
//! ([`StoreChoice::open`] parses the value).
//!
//! # A local Redis Cluster
//!
//! The tests start one like this (Redis 7; the ports are free loopback ports):
//!
//! ```sh
//! for p in 17001 17002 17003; do mkdir -p /tmp/rc/$p
//!   redis-server --port $p --bind 127.0.0.1 --cluster-enabled yes \
//!     --cluster-config-file nodes.conf --save '' --appendonly no --dir /tmp/rc/$p &
//! done
//! redis-cli --cluster create 127.0.0.1:17001 127.0.0.1:17002 127.0.0.1:17003 \
//!   --cluster-replicas 0 --cluster-yes
//! ```
//!
//! then `RedisStoreConfig { cluster_nodes: vec!["redis://127.0.0.1:17001".into(), …], … }`.
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
//! // Changes other SIP core instances write reach this one's reg event subscribers:
//! let mut feed = registrar.store().subscribe_changes()?;
//! // ... in the driver loop, with `now` from the clock:
//! let now = std::time::Instant::now();
//! feed.deliver(&mut registrar, now, std::time::Duration::from_millis(10), 256)?;
//! while let Some(_notify) = registrar.poll_transmit() { /* send it */ }
//! let _next = registrar.poll_timeout();
//! # Ok::<(), mcptt_store_redis::Error>(())
//! ```
//!
//! A doctest that runs against a real server is in `tests/it` (it starts `redis-server`).

mod choice;
mod codec;
mod conn;
mod error;
mod feed;
mod service_state;
mod ss_codec;
mod ss_feed;
mod store;
mod time;

pub use choice::{ServiceStateChoice, StoreChoice};
pub use error::Error;
pub use feed::{Change, ChangeFeed};
pub use service_state::RedisServiceStateStore;
pub use ss_feed::ServiceStateFeed;
pub use store::{RedisStore, RedisStoreConfig};
pub use time::TimeBase;
