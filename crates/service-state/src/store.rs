//! Service-state storage: the [`ServiceStateStore`] trait, its plain-data records and the
//! default [`MemoryStore`].
//!
//! # Consistency the server assumes (same shape as `mcptt_registration::RegistrationStore`)
//!
//! - **Unit of consistency = one UE** (public user identity): its registered instances and,
//!   per user signed in on it, the authorisation (publication entity-tag and expiry, token
//!   expiry) and the service-state version, read and written together as one [`UeRecord`].
//!   Subscription dialogs are separate [`DialogRecord`]s keyed by the dialog's local tag.
//! - **Optimistic concurrency.** Every record carries a store version (`0` = absent). The
//!   server loads `(version, record)`, applies the request to its copy and writes it back
//!   naming the version it read. A store shared by several MCPTT server instances must make
//!   that a linearizable compare-and-swap per key (a Redis Lua script, `WATCH`/`MULTI`, ...).
//!   On [`StoreError::Conflict`] the server reloads the record and runs the request again (a
//!   bounded number of times, then `500`); nothing it answered or NOTIFYed was based on the
//!   refused write.
//! - **Identifiers.** Entity-tags (`SIP-ETag`) and dialog tags are 64 random bits from the
//!   injected [`Random`](crate::Random), so instances sharing a store do not collide (no
//!   per-instance counters cross the store boundary).
//! - **Time.** Expiries are [`Instant`]s of the instance that wrote them; a shared store
//!   translates them to and from a common clock (wall clock or epoch-relative) at its
//!   boundary, as `mcptt_store_redis::TimeBase` does for registration.
//! - **Expiry.** [`ServiceStateStore::due`] lists the keys holding a deadline at or before
//!   `now` (a publication expiry, a token expiry, the end of a dialog holder's lease); the
//!   server applies the expiry through the same versioned write, so two instances racing on
//!   it produce one change (the loser reloads and finds nothing left to do).
//! - **Change propagation.** The instance that made a change reports its events and NOTIFYs
//!   the subscriptions it holds itself. Other instances learn of it through the shared
//!   store's change feed, handed to
//!   [`Server::handle_remote_change`](crate::server::Server::handle_remote_change): each
//!   instance re-reads the record and NOTIFYs only the dialogs it holds, skipping versions
//!   already notified, so each change is NOTIFYed once, by the dialog's holder.
//! - **Failures.** A shared store may be unreachable: its methods return
//!   [`StoreError::Unavailable`], the server changes nothing, answers `503` with
//!   `Retry-After` and never mistakes the failure for "no state".

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

pub use mcptt_registration::StoreError;

use crate::hash::IdentityMap;
use crate::model::UeKind;

/// A publication (RFC 3903) of one user on one UE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicationRecord {
    /// The entity-tag (`SIP-ETag`, sent as 16 lower-case hex digits).
    pub etag: u64,
    /// When the publication expires.
    pub expires_at: Instant,
}

/// Authorisation of one user on one UE, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRecord {
    /// Not signed in.
    Unauthorised,
    /// Signed in with a valid token.
    Authorised {
        /// The live publication.
        publication: PublicationRecord,
        /// When the token's `exp` is reached (monotonic).
        token_deadline: Instant,
        /// The token's `exp` (Unix seconds).
        token_exp: u64,
    },
    /// The token expired while the publication lives.
    Expired {
        /// The live publication.
        publication: PublicationRecord,
        /// The token's `exp` (Unix seconds).
        token_exp: u64,
    },
    /// Signed off with `Expires: 0`.
    SignedOff,
    /// Replaced by another user on a shareable UE.
    Replaced,
}

impl AuthRecord {
    /// The live publication, if any.
    #[must_use]
    pub fn publication(&self) -> Option<&PublicationRecord> {
        match self {
            Self::Authorised { publication, .. } | Self::Expired { publication, .. } => {
                Some(publication)
            }
            _ => None,
        }
    }

    /// The earliest deadline of this authorisation (token `exp` or publication expiry).
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        match self {
            Self::Authorised {
                publication,
                token_deadline,
                ..
            } => Some((*token_deadline).min(publication.expires_at)),
            Self::Expired { publication, .. } => Some(publication.expires_at),
            _ => None,
        }
    }
}

/// One user (MCPTT ID) on one UE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The MCPTT ID (shared with the server's copy).
    pub mcptt_id: Arc<str>,
    /// Authorisation state.
    pub auth: AuthRecord,
    /// Version of the user's service state on this UE (the body's version counter).
    pub version: u64,
}

/// Everything the server keeps about one UE (keyed by its public user identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UeRecord {
    /// Highest service-state version given to any user on this UE (new users count on
    /// from it, so versions never repeat for a subscriber).
    pub last_version: u64,
    /// The UE's kind when the record was written (from the UE directory).
    pub kind: UeKind,
    /// Registered instances (`+sip.instance`, empty string when none was given); none = not
    /// registered. Shared with the server's copy (no copy per write).
    pub instances: Arc<[Arc<str>]>,
    /// Users known on this UE: signed in, or with a state a subscriber saw.
    pub users: Vec<UserRecord>,
}

impl UeRecord {
    /// Whether the record carries nothing worth keeping (written as a delete).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.users.is_empty()
    }

    /// The earliest publication or token deadline in the record.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.users
            .iter()
            .filter_map(|u| u.auth.next_deadline())
            .min()
    }
}

/// A subscription dialog (RFC 6665 §4.2, RFC 3261 §12), keyed by its local tag, with the
/// instance holding it. Strings are shared (`Arc`) with the holder's copy, so storing it in
/// memory copies no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogRecord {
    /// The subscribing UE's public user identity.
    pub impu: Arc<str>,
    /// The subscribed user.
    pub mcptt_id: Arc<str>,
    /// Dialog Call-ID.
    pub call_id: Arc<str>,
    /// The subscriber's tag.
    pub their_tag: Arc<str>,
    /// Local URI (To of the SUBSCRIBE).
    pub local_uri: Arc<str>,
    /// Remote URI (From of the SUBSCRIBE).
    pub remote_uri: Arc<str>,
    /// Remote target (the subscriber's Contact).
    pub remote_target: Arc<str>,
    /// Route set (Record-Route of the SUBSCRIBE, in order).
    pub route_set: Arc<[String]>,
    /// CSeq of the last NOTIFY sent.
    pub local_cseq: u32,
    /// CSeq of the last SUBSCRIBE received.
    pub remote_cseq: u32,
    /// `id` of the `Event` header.
    pub event_id: Option<Arc<str>>,
    /// When the subscription expires.
    pub expires_at: Instant,
    /// The instance holding the dialog (sends its NOTIFYs).
    pub holder: u64,
    /// Until when the holder's lease runs; after it another instance may take the dialog.
    pub lease_expires: Instant,
    /// The last service-state version NOTIFYed on this dialog.
    pub notified_version: u64,
}

/// A key of the service-state store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreKey {
    /// A UE, by public user identity.
    Ue(String),
    /// A subscription dialog, by local (server) tag.
    Dialog(u64),
}

/// Storage of service state with versioned writes.
///
/// See the [module documentation](self) for the consistency the server assumes.
pub trait ServiceStateStore {
    /// The record of UE `impu` and its version, or `None` when none is stored.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer.
    fn load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, StoreError>;

    /// The record of `impu` if its version is not `known`: `None` when unchanged (nothing
    /// copied), `Some((0, UeRecord::default()))` when it is gone. A store may override it to
    /// avoid copying an unchanged record (a remote one can compare versions server-side).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer.
    fn load_ue_if_changed(
        &self,
        impu: &str,
        known: u64,
    ) -> Result<Option<(u64, UeRecord)>, StoreError> {
        let loaded = self.load_ue(impu)?.unwrap_or_default();
        Ok((loaded.0 != known).then_some(loaded))
    }

    /// Replaces the record of `impu` if its version is `expected` (`0` = absent); an empty
    /// record ([`UeRecord::is_empty`]) deletes it. Returns the new version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the version differs, [`StoreError::Unavailable`] when the
    /// store cannot answer (nothing written).
    fn write_ue(&mut self, impu: &str, expected: u64, record: UeRecord) -> Result<u64, StoreError>;

    /// The record of dialog `tag` and its version.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer.
    fn load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, StoreError>;

    /// Replaces (or with `None`, deletes) the record of dialog `tag` if its version is
    /// `expected`. Returns the new version.
    ///
    /// # Errors
    /// As [`ServiceStateStore::write_ue`].
    fn write_dialog(
        &mut self,
        tag: u64,
        expected: u64,
        record: Option<DialogRecord>,
    ) -> Result<u64, StoreError>;

    /// Up to `max` keys with a deadline at or before `now` (UE: publication or token expiry;
    /// dialog: end of the holder's lease).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer.
    fn due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, StoreError>;

    /// The earliest deadline in the store. A store that cannot answer returns the time it
    /// wants to be asked again (never `None`, which means "nothing to expire").
    fn next_expiry(&self) -> Option<Instant>;
}

/// A stored UE record. Its deadline index key is `(record.next_deadline(), deadline_key)`
/// when the record has a deadline (the record does not change while stored, so the deadline
/// is read from it rather than kept beside it: smaller map slots).
#[derive(Debug)]
struct Entry {
    /// The map key (the same allocation), so that a write finds it with the entry in one
    /// lookup (the deadline index holds it too).
    key: Arc<str>,
    version: u64,
    record: UeRecord,
    /// Second half of the record's deadline index key.
    deadline_key: u64,
}

impl Entry {
    /// The record's key in the deadline index, if it has a deadline.
    fn indexed(&self) -> Option<(Instant, u64)> {
        self.record.next_deadline().map(|t| (t, self.deadline_key))
    }
}

/// A stored dialog: the record boxed so the map's slots (sized for growth, about a quarter
/// empty) stay small; its deadline (the holder's lease end) is read from the record.
#[derive(Debug)]
struct DialogEntry {
    version: u64,
    record: Box<DialogRecord>,
    /// Second half of the record's deadline index key (the version that indexed it).
    deadline_key: u64,
}

/// Hasher of dialog tags: 64 random bits chosen by the server (no peer picks them), so a
/// multiply is enough.
#[derive(Debug, Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A deadline index keyed by (deadline, number), the keys unique (the number is a store
/// version). Keys mostly come in order (deadlines are `now` plus a period): a key after the
/// last one is appended to a sorted queue, where a B-tree would walk its right edge comparing
/// every key of each node; any other key goes to a B-tree. A key removed from inside the queue
/// leaves a gap (`None`), dropped once it reaches either end, or all at once when gaps
/// outnumber the entries.
#[derive(Debug)]
struct DeadlineIndex<V> {
    queue: VecDeque<((Instant, u64), Option<V>)>,
    gaps: usize,
    tree: BTreeMap<(Instant, u64), V>,
}

impl<V> Default for DeadlineIndex<V> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            gaps: 0,
            tree: BTreeMap::new(),
        }
    }
}

impl<V> DeadlineIndex<V> {
    /// Adds `key` (not in the index).
    fn insert(&mut self, key: (Instant, u64), value: V) {
        if self.queue.back().is_none_or(|(last, _)| *last < key) {
            self.queue.push_back((key, Some(value)));
        } else {
            self.tree.insert(key, value);
        }
    }

    /// Removes `key` if present.
    fn remove(&mut self, key: &(Instant, u64)) {
        match self.queue.binary_search_by(|(k, _)| k.cmp(key)) {
            Ok(i) => {
                if let Some((_, v)) = self.queue.get_mut(i)
                    && v.take().is_some()
                {
                    self.gaps += 1;
                }
                self.trim();
            }
            Err(_) => {
                self.tree.remove(key);
            }
        }
    }

    fn trim(&mut self) {
        while let Some((_, None)) = self.queue.front() {
            self.queue.pop_front();
            self.gaps -= 1;
        }
        while let Some((_, None)) = self.queue.back() {
            self.queue.pop_back();
            self.gaps -= 1;
        }
        if self.gaps > self.queue.len() / 2 {
            self.queue.retain(|(_, v)| v.is_some());
            self.gaps = 0;
        }
    }

    /// The first deadline.
    fn first(&self) -> Option<Instant> {
        // The queue's front is never a gap.
        let queued = self.queue.front().map(|((t, _), _)| *t);
        let tree = self.tree.keys().next().map(|(t, _)| *t);
        queued.into_iter().chain(tree).min()
    }

    /// Up to `max` entries with a deadline at or before `now`, in key order.
    fn due(&self, now: Instant, max: usize) -> Vec<((Instant, u64), &V)> {
        let queued = self
            .queue
            .iter()
            .take_while(|((t, _), _)| *t <= now)
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
            .take(max);
        let tree = self
            .tree
            .iter()
            .take_while(|((t, _), _)| *t <= now)
            .take(max)
            .map(|(k, v)| (*k, v));
        let mut due: Vec<_> = queued.chain(tree).collect();
        due.sort_by_key(|(k, _)| *k);
        due.truncate(max);
        due
    }

    /// As [`DeadlineIndex::due`], plus the further entries with the same deadline as the
    /// `max`-th (all that could come first in another order of equal deadlines).
    fn due_with_ties(&self, now: Instant, max: usize) -> Vec<((Instant, u64), &V)> {
        let mut due = self.due(now, max);
        let Some(&(last, _)) = due.last() else {
            return due;
        };
        if due.len() < max {
            return due;
        }
        let start = self.queue.partition_point(|(k, _)| *k <= last);
        let queued = self
            .queue
            .range(start..)
            .take_while(|((t, _), _)| *t == last.0)
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)));
        let tree = self
            .tree
            .range((std::ops::Bound::Excluded(last), std::ops::Bound::Unbounded))
            .take_while(|((t, _), _)| *t == last.0)
            .map(|(k, v)| (*k, v));
        due.extend(queued.chain(tree));
        due
    }
}

/// The default in-memory store: hash maps of records plus deadline indexes. `load_*`
/// clones the record, as a remote store would.
#[derive(Debug, Default)]
pub struct MemoryStore {
    ues: IdentityMap<Arc<str>, Entry>,
    dialogs: HashMap<u64, DialogEntry, BuildHasherDefault<TagHasher>>,
    /// UE deadlines keyed by (deadline, version of the record that set it): no string
    /// comparisons on the index.
    ue_deadlines: DeadlineIndex<Arc<str>>,
    /// Dialog deadlines keyed by (deadline, version of the record that set it), the tag beside.
    dialog_deadlines: DeadlineIndex<u64>,
    next_version: u64,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of UE records.
    #[must_use]
    pub fn ue_count(&self) -> usize {
        self.ues.len()
    }

    /// Number of dialog records.
    #[must_use]
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    fn bump(&mut self) -> u64 {
        // Unique over the store's life: a deleted-then-recreated key never reuses a version.
        self.next_version += 1;
        self.next_version
    }
}

impl ServiceStateStore for MemoryStore {
    fn load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, StoreError> {
        Ok(self.ues.get(impu).map(|e| (e.version, e.record.clone())))
    }

    fn load_ue_if_changed(
        &self,
        impu: &str,
        known: u64,
    ) -> Result<Option<(u64, UeRecord)>, StoreError> {
        Ok(match self.ues.get(impu) {
            Some(e) if e.version == known => None,
            Some(e) => Some((e.version, e.record.clone())),
            None if known == 0 => None,
            None => Some((0, UeRecord::default())),
        })
    }

    fn write_ue(
        &mut self,
        impu: &str,
        expected: u64,
        mut record: UeRecord,
    ) -> Result<u64, StoreError> {
        // Kept for the record's life: no spare capacity (a no-op when the writer built the
        // vector exactly, as the server does).
        record.users.shrink_to_fit();
        let deadline = record.next_deadline();
        // One lookup for the common case (the UE exists and stays).
        if let Some(entry) = self.ues.get_mut(impu) {
            if entry.version != expected {
                return Err(StoreError::Conflict {
                    current: entry.version,
                });
            }
            let old = entry.indexed();
            self.next_version += 1;
            let version = self.next_version;
            if record.is_empty() {
                if let Some(k) = old {
                    self.ue_deadlines.remove(&k);
                }
                self.ues.remove(impu);
                return Ok(version);
            }
            let indexed = if old.map(|(t, _)| t) == deadline {
                old
            } else {
                if let Some(k) = old {
                    self.ue_deadlines.remove(&k);
                }
                deadline.map(|t| {
                    self.ue_deadlines
                        .insert((t, version), Arc::clone(&entry.key));
                    (t, version)
                })
            };
            entry.version = version;
            entry.record = record;
            entry.deadline_key = indexed.map_or(0, |(_, k)| k);
            return Ok(version);
        }
        if expected != 0 {
            return Err(StoreError::Conflict { current: 0 });
        }
        let version = self.bump();
        if record.is_empty() {
            return Ok(version);
        }
        let key: Arc<str> = Arc::from(impu);
        let indexed = deadline.map(|t| {
            self.ue_deadlines.insert((t, version), Arc::clone(&key));
            (t, version)
        });
        self.ues.insert(
            Arc::clone(&key),
            Entry {
                key,
                version,
                record,
                deadline_key: indexed.map_or(0, |(_, k)| k),
            },
        );
        Ok(version)
    }

    fn load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, StoreError> {
        Ok(self
            .dialogs
            .get(&tag)
            .map(|e| (e.version, DialogRecord::clone(&e.record))))
    }

    fn write_dialog(
        &mut self,
        tag: u64,
        expected: u64,
        record: Option<DialogRecord>,
    ) -> Result<u64, StoreError> {
        let version = self.next_version + 1;
        match self.dialogs.entry(tag) {
            MapEntry::Occupied(mut slot) => {
                let current = slot.get().version;
                if current != expected {
                    return Err(StoreError::Conflict { current });
                }
                let old = slot.get().record.lease_expires;
                match record {
                    Some(record) => {
                        // The holder ends an expired subscription itself; the store only
                        // watches the lease, whose end hands the dialog (expired or not)
                        // to another instance.
                        let deadline = record.lease_expires;
                        let entry = slot.get_mut();
                        if deadline != old {
                            self.dialog_deadlines.remove(&(old, entry.deadline_key));
                            self.dialog_deadlines.insert((deadline, version), tag);
                            entry.deadline_key = version;
                        }
                        entry.version = version;
                        // Reuses the box: an update allocates nothing.
                        *entry.record = record;
                    }
                    None => {
                        self.dialog_deadlines
                            .remove(&(old, slot.get().deadline_key));
                        slot.remove();
                    }
                }
            }
            MapEntry::Vacant(slot) => {
                if expected != 0 {
                    return Err(StoreError::Conflict { current: 0 });
                }
                if let Some(record) = record {
                    let deadline = record.lease_expires;
                    self.dialog_deadlines.insert((deadline, version), tag);
                    slot.insert(DialogEntry {
                        version,
                        record: Box::new(record),
                        deadline_key: version,
                    });
                }
            }
        }
        self.next_version = version;
        Ok(version)
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, StoreError> {
        let ues = self
            .ue_deadlines
            .due(now, max)
            .into_iter()
            .map(|((t, _), k)| (t, StoreKey::Ue(k.to_string())));
        // The first `max` dialogs by (deadline, tag), as the index was once keyed (the order
        // among equal deadlines stays as it was).
        let mut dialogs: Vec<(Instant, u64)> = self
            .dialog_deadlines
            .due_with_ties(now, max)
            .into_iter()
            .map(|((t, _), tag)| (t, *tag))
            .collect();
        dialogs.sort_unstable();
        dialogs.truncate(max);
        let dialogs = dialogs.into_iter().map(|(t, k)| (t, StoreKey::Dialog(k)));
        let mut due: Vec<(Instant, StoreKey)> = ues.chain(dialogs).collect();
        due.sort_by_key(|(t, _)| *t);
        due.truncate(max);
        Ok(due.into_iter().map(|(_, k)| k).collect())
    }

    fn next_expiry(&self) -> Option<Instant> {
        let ue = self.ue_deadlines.first();
        let dialog = self.dialog_deadlines.first();
        ue.into_iter().chain(dialog).min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn user(at: Instant, secs: u64) -> UserRecord {
        UserRecord {
            mcptt_id: "sip:alice@example.org".into(),
            auth: AuthRecord::Authorised {
                publication: PublicationRecord {
                    etag: 7,
                    expires_at: at + Duration::from_secs(secs),
                },
                token_deadline: at + Duration::from_secs(secs / 2),
                token_exp: 1,
            },
            version: 1,
        }
    }

    proptest::proptest! {
        /// The deadline index answers as one B-tree map: keys mostly in order (appended),
        /// some not, removals anywhere (gaps), `first` and `due` after every step.
        #[test]
        fn deadline_index_answers_as_a_btree(
            ops in proptest::collection::vec((0u8..4, 0u64..64, 0u64..8), 0..300),
        ) {
            #[allow(clippy::disallowed_methods)] // the test's clock origin
            let origin = Instant::now();
            let mut index = DeadlineIndex::default();
            let mut reference = BTreeMap::new();
            let mut version = 0u64;
            let mut clock = 0u64;
            for (op, secs, n) in ops {
                match op {
                    // In order: deadlines follow a clock that moves on.
                    0 | 1 => {
                        clock += secs % 4;
                        version += 1;
                        let key = (origin + Duration::from_secs(clock + 10), version);
                        index.insert(key, version);
                        reference.insert(key, version);
                    }
                    // Any deadline.
                    2 => {
                        version += 1;
                        let key = (origin + Duration::from_secs(secs), version);
                        index.insert(key, version);
                        reference.insert(key, version);
                    }
                    // Remove the n-th key (or a missing one).
                    _ => {
                        let key = reference
                            .keys()
                            .nth(usize::try_from(n).unwrap_or(0))
                            .copied()
                            .unwrap_or((origin, u64::MAX));
                        index.remove(&key);
                        reference.remove(&key);
                    }
                }
                proptest::prop_assert_eq!(index.first(), reference.keys().next().map(|(t, _)| *t));
                let now = origin + Duration::from_secs(secs);
                let max = usize::try_from(n).unwrap_or(0);
                let expected: Vec<_> = reference
                    .iter()
                    .take_while(|((t, _), _)| *t <= now)
                    .take(max)
                    .map(|(k, v)| (*k, v))
                    .collect();
                proptest::prop_assert_eq!(index.due(now, max), expected);
                let live = index.queue.iter().filter(|(_, v)| v.is_some()).count();
                proptest::prop_assert_eq!(live + index.tree.len(), reference.len());
                proptest::prop_assert!(index.gaps <= index.queue.len() / 2);
            }
        }
    }

    proptest::proptest! {
        /// Dialogs indexed by (deadline, version) still come out as the first `max` by
        /// (deadline, tag): `due_with_ties` sorted and cut equals the B-tree set's first ones.
        #[test]
        fn dialog_due_order_is_by_deadline_then_tag(
            entries in proptest::collection::vec((0u64..6, proptest::num::u64::ANY), 0..60),
            removals in proptest::collection::vec(0usize..60, 0..20),
            now in 0u64..8,
            max in 0usize..20,
        ) {
            #[allow(clippy::disallowed_methods)] // the test's clock origin
            let origin = Instant::now();
            let mut index = DeadlineIndex::default();
            let mut reference = std::collections::BTreeSet::new();
            let mut keys = Vec::new();
            for (version, (secs, tag)) in (1u64..).zip(entries) {
                let t = origin + Duration::from_secs(secs);
                // tags are unique
                if reference.iter().any(|(_, g)| *g == tag) {
                    continue;
                }
                index.insert((t, version), tag);
                reference.insert((t, tag));
                keys.push(((t, version), tag));
            }
            for r in removals {
                if let Some(&(key, tag)) = keys.get(r) {
                    index.remove(&key);
                    reference.remove(&(key.0, tag));
                }
            }
            let now = origin + Duration::from_secs(now);
            let mut got: Vec<(Instant, u64)> = index
                .due_with_ties(now, max)
                .into_iter()
                .map(|((t, _), tag)| (t, *tag))
                .collect();
            got.sort_unstable();
            got.truncate(max);
            let expected: Vec<_> = reference
                .iter()
                .take_while(|(t, _)| *t <= now)
                .take(max)
                .copied()
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test's clock origin
    fn versioned_writes_and_deadline_index() {
        let t = Instant::now();
        let mut s = MemoryStore::new();
        let rec = UeRecord {
            last_version: 1,
            kind: UeKind::Personal,
            instances: Arc::from([Arc::from("")]),
            users: vec![user(t, 100)],
        };
        let v1 = s.write_ue("sip:ue1@x", 0, rec.clone()).unwrap();
        assert_eq!(
            s.write_ue("sip:ue1@x", 0, rec.clone()),
            Err(StoreError::Conflict { current: v1 })
        );
        assert_eq!(s.load_ue("sip:ue1@x").unwrap(), Some((v1, rec.clone())));
        // The token deadline (50 s) is the record's deadline.
        assert_eq!(s.next_expiry(), Some(t + Duration::from_secs(50)));
        assert!(s.due(t + Duration::from_secs(49), 9).unwrap().is_empty());
        assert_eq!(
            s.due(t + Duration::from_secs(50), 9).unwrap(),
            vec![StoreKey::Ue("sip:ue1@x".into())]
        );
        let v2 = s.write_ue("sip:ue1@x", v1, UeRecord::default()).unwrap();
        assert!(v2 > v1);
        assert_eq!(s.load_ue("sip:ue1@x").unwrap(), None, "empty = deleted");
        assert_eq!((s.ue_count(), s.next_expiry()), (0, None));
        // A recreated key gets a version never used before.
        let v3 = s.write_ue("sip:ue1@x", 0, rec).unwrap();
        assert!(v3 > v2);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test's clock origin
    fn dialog_lease_is_a_deadline() {
        let t = Instant::now();
        let mut s = MemoryStore::new();
        let d = DialogRecord {
            impu: "sip:ue1@x".into(),
            mcptt_id: "sip:alice@x".into(),
            call_id: "c".into(),
            their_tag: "t".into(),
            local_uri: "sip:psi@x".into(),
            remote_uri: "sip:ue1@x".into(),
            remote_target: "sip:ue1@192.0.2.1".into(),
            route_set: Vec::new().into(),
            local_cseq: 1,
            remote_cseq: 1,
            event_id: None,
            expires_at: t + Duration::from_secs(600),
            holder: 1,
            lease_expires: t + Duration::from_secs(30),
            notified_version: 1,
        };
        let v = s.write_dialog(5, 0, Some(d)).unwrap();
        assert_eq!(s.next_expiry(), Some(t + Duration::from_secs(30)));
        assert_eq!(
            s.due(t + Duration::from_secs(30), 9).unwrap(),
            vec![StoreKey::Dialog(5)]
        );
        assert!(s.write_dialog(5, v + 1, None).is_err());
        s.write_dialog(5, v, None).unwrap();
        assert_eq!((s.dialog_count(), s.next_expiry()), (0, None));
    }
}
