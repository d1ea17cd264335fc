//! Binding storage: the [`RegistrationStore`] trait and the default [`MemoryStore`].
//!
//! # Consistency the registrar assumes
//!
//! - **Unit of consistency = one address-of-record.** All bindings of an AoR are read and
//!   written together as one [`AorRecord`]; nothing spans two AoRs.
//! - **Optimistic concurrency.** Every record carries a version (`0` = absent). The
//!   registrar reads `(version, record)`, applies RFC 3261 §10.3 to the copy and writes it
//!   back with [`RegistrationStore::write`] naming the version it read. A store shared by
//!   several SIP core instances must make that a linearizable compare-and-swap per AoR
//!   (e.g. a Redis `WATCH`/`MULTI`, an SQL row version, an etcd revision); on
//!   [`StoreError::Conflict`] the registrar reloads and re-applies the request, a bounded
//!   number of times, then answers 500.
//! - **Time.** `expires_at` is an [`Instant`] of the instance that wrote it. Instances that
//!   share a store must translate to and from a common clock at the store boundary (a
//!   shared implementation stores wall-clock or epoch-relative expiry and maps it).
//! - **Expiry.** [`RegistrationStore::due`] lists AoRs holding an expired binding; the
//!   registrar removes those bindings with the same versioned write, so two instances
//!   racing to expire the same binding produce one removal (the loser sees a conflict,
//!   reloads and finds nothing left to expire). Which instance emits the expiry event is
//!   whichever wins the write.
//! - **Events** are produced by the instance that made the change; other instances
//!   learn about changes through the reg event package, not through the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::binding::AorRecord;

/// Why a store refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record's version is not the one the writer read.
    #[error("version conflict: current version is {current}")]
    Conflict {
        /// The version now stored (`0` = absent).
        current: u64,
    },
}

/// Storage of bindings keyed by address-of-record, with versioned writes.
///
/// See the [module documentation](self) for the consistency the registrar assumes.
pub trait RegistrationStore {
    /// The record of `aor` and its version, or `None` when the AoR has no binding.
    fn load(&self, aor: &str) -> Option<(u64, AorRecord)>;

    /// Replaces the record of `aor` if its current version is `expected` (`0` = absent).
    /// Writing a record without bindings deletes the AoR. Returns the new version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the current version differs.
    fn write(&mut self, aor: &str, expected: u64, record: AorRecord) -> Result<u64, StoreError>;

    /// The earliest binding expiry in the store.
    fn next_expiry(&self) -> Option<Instant>;

    /// Up to `max` AoRs that hold a binding expired at `now` (`expires_at <= now`).
    fn due(&self, now: Instant, max: usize) -> Vec<String>;

    /// Number of AoRs with at least one binding.
    fn aor_count(&self) -> usize;

    /// Number of bindings in total.
    fn binding_count(&self) -> usize;
}

#[derive(Debug)]
struct Entry {
    version: u64,
    record: AorRecord,
    next_expiry: Option<Instant>,
}

/// The default in-memory store: a hash map of records plus an expiry index ordered by
/// each AoR's earliest expiry. `load` clones the record, as a remote store would.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: HashMap<Arc<str>, Entry>,
    expiry: BTreeSet<(Instant, Arc<str>)>,
    bindings: usize,
    next_version: u64,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Borrows the record of `aor` without cloning (for inspection and tests).
    #[must_use]
    pub fn get(&self, aor: &str) -> Option<&AorRecord> {
        self.map.get(aor).map(|e| &e.record)
    }

    /// Iterates over all AoRs and their records (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AorRecord)> {
        self.map.iter().map(|(k, e)| (&**k, &e.record))
    }
}

impl RegistrationStore for MemoryStore {
    fn load(&self, aor: &str) -> Option<(u64, AorRecord)> {
        self.map.get(aor).map(|e| (e.version, e.record.clone()))
    }

    fn write(&mut self, aor: &str, expected: u64, record: AorRecord) -> Result<u64, StoreError> {
        let current = self.map.get(aor).map_or(0, |e| e.version);
        if current != expected {
            return Err(StoreError::Conflict { current });
        }
        // Versions are unique across the store's life so a deleted-then-recreated AoR never
        // reuses a version a writer may still hold.
        self.next_version += 1;
        let version = self.next_version;
        let key: Arc<str> = match self.map.remove_entry(aor) {
            Some((k, old)) => {
                self.bindings -= old.record.bindings.len();
                if let Some(t) = old.next_expiry {
                    self.expiry.remove(&(t, Arc::clone(&k)));
                }
                k
            }
            None => Arc::from(aor),
        };
        if record.bindings.is_empty() {
            return Ok(version);
        }
        let next_expiry = record.next_expiry();
        if let Some(t) = next_expiry {
            self.expiry.insert((t, Arc::clone(&key)));
        }
        self.bindings += record.bindings.len();
        self.map.insert(
            key,
            Entry {
                version,
                record,
                next_expiry,
            },
        );
        Ok(version)
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    fn due(&self, now: Instant, max: usize) -> Vec<String> {
        self.expiry
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(max)
            .map(|(_, a)| a.to_string())
            .collect()
    }

    fn aor_count(&self) -> usize {
        self.map.len()
    }

    fn binding_count(&self) -> usize {
        self.bindings
    }
}
