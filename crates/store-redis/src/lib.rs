//! Redis-backed stores for [`mcptt_registration`] and [`mcptt_service_state`]: several SIP
//! core instances and several MCPTT server instances behind one address share their state,
//! so a UE's REGISTER, PUBLISH or SUBSCRIBE (and their refreshes) work on whichever instance
//! they land, and the state outlives the death of the instance that created it.
//!
//! - [`RedisStore`] is the [`RegistrationStore`](mcptt_registration::RegistrationStore)
//!   (bindings per address-of-record), with its [`ChangeFeed`] and [`StoreChoice`].
//! - [`RedisServiceStateStore`] is the
//!   [`ServiceStateStore`](mcptt_service_state::store::ServiceStateStore) (UE records with
//!   registered instances and per-user authorisation and publication, subscription dialogs
//!   with their holder's lease), with its [`ServiceStateFeed`] and [`ServiceStateChoice`].
//!   Same principles as below: one Lua compare-and-set per write, records as compact binary
//!   strings with times through [`TimeBase`], a sorted-set deadline index for expiry and
//!   dialog take-over, `PEXPIREAT` as a safety net, [`StoreError::Unavailable`] on any Redis
//!   failure, a pub/sub feed handing other instances' changes to
//!   [`Server::handle_remote_change`](mcptt_service_state::server::Server::handle_remote_change)
//!   so each change is NOTIFYed once, by the dialog's holder.
//!
//! [`StoreError::Unavailable`]: mcptt_registration::StoreError::Unavailable
//!
//! [`RedisStore`] implements the consistency the registrar assumes (see
//! [`mcptt_registration::store`]):
//!
//! - **One record per address-of-record**, stored as a Redis string holding a version and
//!   the encoded bindings.
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
//! Not covered here: reg event subscriptions themselves (they stay in the memory of the instance holding the
//! dialog; when it dies, `mcptt-registration`'s `RegistrationView` re-subscribes after
//! the `481` its next refresh gets from another instance: takeover within the refresh
//! interval, see [`mcptt_registration::store`]), and a hard global `max_bindings` cap
//! (the count is per-bucket and cached, see [`RedisStore`]).
//!
//! A binary that takes `--store memory|redis://…` holds a `Registrar<`[`StoreChoice`]`>`
//! ([`StoreChoice::open`] parses the value) or a `Server<_, _,`[`ServiceStateChoice`]`>`
//! ([`ServiceStateChoice::open`], same values).
//!
//! # Service state across MCPTT server instances
//!
//! Each instance has its own [`ServerConfig::instance_id`](mcptt_service_state::server::ServerConfig::instance_id)
//! and its own store value and feed:
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use mcptt_service_state::server::{Server, ServerConfig};
//! use mcptt_service_state::{RegistrationChange, SplitMix64, TokenGrant, TokenValidator};
//! use mcptt_store_redis::{ServiceStateChoice, TimeBase};
//!
//! # struct Tokens;
//! # impl TokenValidator for Tokens {
//! #     fn validate(&self, _: &str, _: u64)
//! #         -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> { Err("".into()) }
//! # }
//! let store = ServiceStateChoice::open("redis://127.0.0.1:6379", TimeBase::system())?;
//! let mut feed = store.subscribe_changes()?; // `None` for `memory`
//! let mut config = ServerConfig::new("mcptt.example.org", "sip:mcptt-server@mcptt.example.org");
//! config.instance_id = 2;
//! let mut server = Server::with_store(config, Tokens, SplitMix64(7), store);
//! // ... in the driver loop, with `now` from the clock:
//! let now = Instant::now();
//! if let Some(feed) = feed.as_mut() {
//!     // Changes other instances wrote: NOTIFYs of the dialogs held here.
//!     feed.deliver(&mut server, now, Duration::from_millis(10), 256)?;
//! }
//! while let Some(_notify) = server.poll_transmit() { /* send it */ }
//! let _next = server.poll_timeout(); // the store's earliest deadline included (cached)
//! # Ok::<(), mcptt_store_redis::Error>(())
//! ```
//!
//! Take-over: a dialog's holder renews its lease every
//! [`dialog_lease`](mcptt_service_state::server::ServerConfig::dialog_lease)` / 2`; when an
//! instance dies, another takes its dialogs over once their lease ran out (the deadline
//! index lists them), i.e. within `dialog_lease` (default 60 s) plus that instance's
//! `poll_timeout` latency, and at once when the UE's next SUBSCRIBE refresh lands on it.
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
//! Tests that run against a real server are in `tests/it` (they start `redis-server`).

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
