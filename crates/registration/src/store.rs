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
//! - **Events** are produced by the instance that made the change. Other instances learn
//!   of it through a change feed of the shared store, handed to
//!   [`Registrar::handle_remote_change`](crate::Registrar::handle_remote_change): the
//!   instance holding a reg event subscription re-reads the record and NOTIFYs it, so each
//!   change is NOTIFYed once, by the holder of the subscriber's dialog.
//! - **Instance death.** Bindings live in the store, so the UE's next REGISTER works on any
//!   instance. Reg event subscriptions (dialogs) stay in the memory of the instance that
//!   accepted them: when it dies, the subscriber's next in-dialog refresh lands on another
//!   instance, is answered `481`, and [`RegistrationView`](crate::RegistrationView) starts
//!   a new subscription there (full state). The takeover thus happens within the
//!   subscriber's refresh interval (80% of the granted expiry, at most
//!   [`RegEventConfig::max_expires`](crate::RegEventConfig::max_expires)); changes made
//!   meanwhile reach it in that first full NOTIFY.
//! - **Failures.** A shared store may be unreachable: its methods then return
//!   [`StoreError::Unavailable`], the registrar changes nothing, answers `503` with
//!   `Retry-After` ([`Error::StoreUnavailable`](crate::Error::StoreUnavailable)) and never
//!   mistakes the failure for "no binding".

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::binding::{AorRecord, Binding};

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
    /// The store could not be reached or failed (the cause, for the log); nothing changed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Storage of bindings keyed by address-of-record, with versioned writes.
///
/// See the [module documentation](self) for the consistency the registrar assumes.
pub trait RegistrationStore {
    /// The record of `aor` and its version, or `None` when the AoR has no binding.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer.
    fn load(&self, aor: &str) -> Result<Option<(u64, AorRecord)>, StoreError>;

    /// Replaces the record of `aor` if its current version is `expected` (`0` = absent).
    /// Writing a record without bindings deletes the AoR. Returns the new version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the current version differs,
    /// [`StoreError::Unavailable`] when the store cannot answer (nothing written).
    fn write(&mut self, aor: &str, expected: u64, record: AorRecord) -> Result<u64, StoreError>;

    /// Atomically removes and returns the bindings of `aor` expired at `now`
    /// (`expires_at <= now`); a shared store implements it as one conditional delete.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer (nothing removed).
    fn remove_expired(&mut self, aor: &str, now: Instant) -> Result<Vec<Binding>, StoreError>;

    /// The earliest binding expiry in the store. A store that cannot answer returns the
    /// time it wants to be asked again (never `None`, which means "no binding").
    fn next_expiry(&self) -> Option<Instant>;

    /// Up to `max` AoRs that hold a binding expired at `now` (`expires_at <= now`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer.
    fn due(&self, now: Instant, max: usize) -> Result<Vec<String>, StoreError>;

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
    fn load(&self, aor: &str) -> Result<Option<(u64, AorRecord)>, StoreError> {
        Ok(self.map.get(aor).map(|e| (e.version, e.record.clone())))
    }

    fn write(
        &mut self,
        aor: &str,
        expected: u64,
        mut record: AorRecord,
    ) -> Result<u64, StoreError> {
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
        // Most AoRs hold one binding: do not keep Vec's default growth slack.
        record.bindings.shrink_to_fit();
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

    fn remove_expired(&mut self, aor: &str, now: Instant) -> Result<Vec<Binding>, StoreError> {
        let Some((key, entry)) = self.map.get_key_value(aor) else {
            return Ok(Vec::new());
        };
        if entry.next_expiry.is_none_or(|t| t > now) {
            return Ok(Vec::new());
        }
        let key = Arc::clone(key);
        let Some(mut entry) = self.map.remove(aor) else {
            return Ok(Vec::new());
        };
        if let Some(t) = entry.next_expiry {
            self.expiry.remove(&(t, Arc::clone(&key)));
        }
        let (expired, kept): (Vec<Binding>, Vec<Binding>) = entry
            .record
            .bindings
            .drain(..)
            .partition(|b| b.is_expired(now));
        self.bindings -= expired.len();
        self.next_version += 1;
        if !kept.is_empty() {
            let record = AorRecord { bindings: kept };
            let next_expiry = record.next_expiry();
            if let Some(t) = next_expiry {
                self.expiry.insert((t, Arc::clone(&key)));
            }
            self.map.insert(
                key,
                Entry {
                    version: self.next_version,
                    record,
                    next_expiry,
                },
            );
        }
        Ok(expired)
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::with_capacity(max.min(64));
        out.extend(
            self.expiry
                .iter()
                .take_while(|(t, _)| *t <= now)
                .take(max)
                .map(|(_, a)| a.to_string()),
        );
        Ok(out)
    }

    fn aor_count(&self) -> usize {
        self.map.len()
    }

    fn binding_count(&self) -> usize {
        self.bindings
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;

    fn binding(id: u64, at: Instant, secs: u64) -> Binding {
        Binding {
            id,
            uri: format!("sip:u@192.0.2.{id}"),
            contact: format!("<sip:u@192.0.2.{id}>"),
            instance: None,
            reg_id: None,
            call_id: "c".into(),
            cseq: 1,
            registered_at: at,
            expires_at: at + Duration::from_secs(secs),
            request: Bytes::new(),
            third_party: Vec::new(),
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test's clock origin
    fn versioned_writes_expiry_index_and_remove_expired() {
        let t = Instant::now();
        let mut s = MemoryStore::new();
        let v1 = s
            .write(
                "a",
                0,
                AorRecord {
                    bindings: vec![binding(1, t, 10), binding(2, t, 20)],
                },
            )
            .unwrap();
        // A writer holding a stale version is refused.
        assert_eq!(
            s.write("a", 0, AorRecord::default()),
            Err(StoreError::Conflict { current: v1 })
        );
        let v2 = s
            .write(
                "b",
                0,
                AorRecord {
                    bindings: vec![binding(3, t, 5)],
                },
            )
            .unwrap();
        assert!(v2 > v1);
        assert_eq!(s.binding_count(), 3);
        assert_eq!(s.aor_count(), 2);
        assert_eq!(s.next_expiry(), Some(t + Duration::from_secs(5)));
        assert!(s.due(t + Duration::from_secs(4), 10).unwrap().is_empty());
        assert_eq!(
            s.due(t + Duration::from_secs(10), 10).unwrap(),
            vec!["b".to_owned(), "a".to_owned()]
        );
        assert_eq!(s.due(t + Duration::from_secs(10), 1).unwrap().len(), 1);
        let gone = s.remove_expired("a", t + Duration::from_secs(10)).unwrap();
        assert_eq!(gone.iter().map(|b| b.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.get("a").unwrap().bindings.len(), 1);
        // The version moved: the old one is refused.
        assert!(s.write("a", v1, AorRecord::default()).is_err());
        let (v, _) = s.load("a").unwrap().unwrap();
        s.write("a", v, AorRecord::default()).unwrap();
        assert!(
            s.load("a").unwrap().is_none(),
            "an empty record deletes the AoR"
        );
        assert_eq!(
            s.remove_expired("b", t + Duration::from_secs(5))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            (s.aor_count(), s.binding_count(), s.next_expiry()),
            (0, 0, None)
        );
    }
}
