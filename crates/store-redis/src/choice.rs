//! [`StoreChoice`]: the in-memory store or Redis, picked at run time (e.g. from a
//! `--store` command-line option).

use std::time::Instant;

use mcptt_registration::{AorRecord, Binding, MemoryStore, RegistrationStore, StoreError};

use mcptt_service_state::store::{
    DialogRecord, MemoryStore as SsMemoryStore, ServiceStateStore, StoreKey, UeRecord,
};

use crate::error::Error;
use crate::feed::ChangeFeed;
use crate::service_state::RedisServiceStateStore;
use crate::ss_feed::ServiceStateFeed;
use crate::store::{RedisStore, RedisStoreConfig};
use crate::time::TimeBase;

/// The Redis settings a `--store` value names; `None` for the in-memory store.
fn redis_config(spec: &str) -> Result<Option<RedisStoreConfig>, Error> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("memory") {
        return Ok(None);
    }
    let urls: Vec<String> = spec.split(',').map(|u| u.trim().to_owned()).collect();
    if !urls
        .iter()
        .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
    {
        return Err(Error::ApiMisuse(
            "--store takes `memory` or redis:// URL(s)",
        ));
    }
    Ok(Some(match urls.as_slice() {
        [one] => RedisStoreConfig {
            url: one.clone(),
            ..RedisStoreConfig::default()
        },
        _ => RedisStoreConfig {
            cluster_nodes: urls,
            ..RedisStoreConfig::default()
        },
    }))
}

/// The registration store a binary runs with: [`MemoryStore`] (one instance, the default)
/// or a [`RedisStore`] shared by several instances. Lets a binary hold one
/// `Registrar<StoreChoice>` type whatever `--store` says.
#[derive(Debug)]
pub enum StoreChoice {
    /// In this process only.
    Memory(MemoryStore),
    /// Shared through Redis.
    Redis(Box<RedisStore>),
}

impl StoreChoice {
    /// The store named by a `--store` value: `memory` (or empty) for the in-memory store,
    /// a `redis://…` URL for a single Redis node, or several comma-separated `redis://…`
    /// URLs for the seed nodes of a Redis Cluster. A Redis store is checked with a `PING`
    /// so a wrong address fails at start-up, not at the first REGISTER.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for another value, [`Error::Redis`] when Redis does not answer.
    pub fn open(spec: &str, time: TimeBase) -> Result<Self, Error> {
        let Some(config) = redis_config(spec)? else {
            return Ok(Self::Memory(MemoryStore::new()));
        };
        let store = RedisStore::new(config, time)?;
        store.ping()?;
        Ok(Self::Redis(Box::new(store)))
    }

    /// The change feed of a Redis store (other instances' changes, for
    /// [`ChangeFeed::deliver`]); `None` for the in-memory store.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn subscribe_changes(&self) -> Result<Option<ChangeFeed>, Error> {
        match self {
            Self::Memory(_) => Ok(None),
            Self::Redis(r) => r.subscribe_changes().map(Some),
        }
    }
}

impl RegistrationStore for StoreChoice {
    fn load(&self, aor: &str) -> Result<Option<(u64, AorRecord)>, StoreError> {
        match self {
            Self::Memory(s) => s.load(aor),
            Self::Redis(s) => s.load(aor),
        }
    }

    fn write(&mut self, aor: &str, expected: u64, record: AorRecord) -> Result<u64, StoreError> {
        match self {
            Self::Memory(s) => s.write(aor, expected, record),
            Self::Redis(s) => s.write(aor, expected, record),
        }
    }

    fn remove_expired(&mut self, aor: &str, now: Instant) -> Result<Vec<Binding>, StoreError> {
        match self {
            Self::Memory(s) => s.remove_expired(aor, now),
            Self::Redis(s) => s.remove_expired(aor, now),
        }
    }

    fn next_expiry(&self) -> Option<Instant> {
        match self {
            Self::Memory(s) => s.next_expiry(),
            Self::Redis(s) => s.next_expiry(),
        }
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Memory(s) => s.due(now, max),
            Self::Redis(s) => s.due(now, max),
        }
    }

    fn aor_count(&self) -> usize {
        match self {
            Self::Memory(s) => s.aor_count(),
            Self::Redis(s) => s.aor_count(),
        }
    }

    fn binding_count(&self) -> usize {
        match self {
            Self::Memory(s) => s.binding_count(),
            Self::Redis(s) => s.binding_count(),
        }
    }
}

/// The service-state store a binary runs with: the in-memory
/// [`MemoryStore`](mcptt_service_state::store::MemoryStore) (one instance, the default) or
/// a [`RedisServiceStateStore`] shared by several MCPTT server instances. Lets a binary
/// hold one `Server<_, _, ServiceStateChoice>` type whatever `--store` says.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one value per process
pub enum ServiceStateChoice {
    /// In this process only.
    Memory(SsMemoryStore),
    /// Shared through Redis.
    Redis(RedisServiceStateStore),
}

impl ServiceStateChoice {
    /// The store named by a `--store` value, exactly as [`StoreChoice::open`] reads it:
    /// `memory` (or empty), a `redis://…` URL, or comma-separated `redis://…` seed nodes of
    /// a Redis Cluster. A Redis store is checked with a `PING`.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for another value, [`Error::Redis`] when Redis does not answer.
    pub fn open(spec: &str, time: TimeBase) -> Result<Self, Error> {
        match redis_config(spec)? {
            None => Ok(Self::Memory(SsMemoryStore::new())),
            Some(config) => {
                let store = RedisServiceStateStore::new(config, time)?;
                store.ping()?;
                Ok(Self::Redis(store))
            }
        }
    }

    /// The change feed of a Redis store (other instances' changes, for
    /// [`ServiceStateFeed::deliver`]); `None` for the in-memory store.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn subscribe_changes(&self) -> Result<Option<ServiceStateFeed>, Error> {
        match self {
            Self::Memory(_) => Ok(None),
            Self::Redis(r) => r.subscribe_changes().map(Some),
        }
    }
}

impl ServiceStateStore for ServiceStateChoice {
    fn load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, StoreError> {
        match self {
            Self::Memory(s) => s.load_ue(impu),
            Self::Redis(s) => s.load_ue(impu),
        }
    }

    fn load_ue_if_changed(
        &self,
        impu: &str,
        known: u64,
    ) -> Result<Option<(u64, UeRecord)>, StoreError> {
        match self {
            Self::Memory(s) => s.load_ue_if_changed(impu, known),
            Self::Redis(s) => s.load_ue_if_changed(impu, known),
        }
    }

    fn write_ue(&mut self, impu: &str, expected: u64, record: UeRecord) -> Result<u64, StoreError> {
        match self {
            Self::Memory(s) => s.write_ue(impu, expected, record),
            Self::Redis(s) => s.write_ue(impu, expected, record),
        }
    }

    fn load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, StoreError> {
        match self {
            Self::Memory(s) => s.load_dialog(tag),
            Self::Redis(s) => s.load_dialog(tag),
        }
    }

    fn write_dialog(
        &mut self,
        tag: u64,
        expected: u64,
        record: Option<DialogRecord>,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Memory(s) => s.write_dialog(tag, expected, record),
            Self::Redis(s) => s.write_dialog(tag, expected, record),
        }
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, StoreError> {
        match self {
            Self::Memory(s) => s.due(now, max),
            Self::Redis(s) => s.due(now, max),
        }
    }

    fn next_expiry(&self) -> Option<Instant> {
        match self {
            Self::Memory(s) => s.next_expiry(),
            Self::Redis(s) => s.next_expiry(),
        }
    }
}
