//! An atomically replaceable key set with a sans-IO refresh policy.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::{Error, JwkSet};

/// Default minimum time between two refreshes asked for by unknown `kid`s.
pub const DEFAULT_REFRESH_INTERVAL_SECS: u64 = 300;

/// The live key set of one issuer, shared (`Arc<KeyStore>`) by every
/// [`crate::Validator`] and by the code that fetches the issuer's JWKS.
///
/// * **Atomic replacement**: [`KeyStore::replace`] swaps the whole set at
///   once; a validation running meanwhile finishes with the set it started
///   with (it holds an `Arc` to it), later ones see the new set.
/// * **Refresh policy** (sans-IO): when a token names an unknown `kid`, the
///   validator calls [`KeyStore::request_refresh`]; at most one refresh per
///   interval is requested. The caller polls [`KeyStore::poll_refresh`],
///   fetches the JWKS itself, and reports with
///   [`KeyStore::handle_refresh_result`]; on failure the last good set stays.
///
/// ```text
///             request_refresh(now) [interval elapsed]
///    Idle ───────────────────────────────────────────▶ Requested
///     ▲                                                   │ poll_refresh() → true
///     │  handle_refresh_result(now, Ok(set) | Err(_))     ▼
///     └──────────────────────────────────────────────── Fetching
/// ```
#[derive(Debug)]
pub struct KeyStore {
    current: RwLock<Arc<Generation>>,
    refresh: Mutex<RefreshState>,
    interval: u64,
}

#[derive(Debug)]
pub(crate) struct Generation {
    pub(crate) set: JwkSet,
    pub(crate) number: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Requested,
    Fetching,
}

#[derive(Debug)]
struct RefreshState {
    phase: Phase,
    last_request: Option<u64>,
    last_error: Option<Error>,
    failures: u64,
}

impl KeyStore {
    /// A store holding `set`, with the default refresh interval (300 s).
    pub fn new(set: JwkSet) -> Self {
        Self::with_refresh_interval(set, DEFAULT_REFRESH_INTERVAL_SECS)
    }

    /// A store whose unknown-`kid` refreshes are at least `secs` seconds apart.
    pub fn with_refresh_interval(set: JwkSet, secs: u64) -> Self {
        Self {
            current: RwLock::new(Arc::new(Generation { set, number: 0 })),
            refresh: Mutex::new(RefreshState {
                phase: Phase::Idle,
                last_request: None,
                last_error: None,
                failures: 0,
            }),
            interval: secs,
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Generation> {
        // A poisoned lock still holds a complete `Arc` (replacement is one store).
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current key set.
    pub fn current(&self) -> JwkSet {
        self.snapshot().set.clone()
    }

    /// How many times the set was replaced (0 for the initial set).
    pub fn generation(&self) -> u64 {
        self.snapshot().number
    }

    /// Atomically replaces the key set (rotation, or a refresh fetched outside
    /// the refresh policy).
    pub fn replace(&self, set: JwkSet) {
        let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let number = cur.number + 1;
        *cur = Arc::new(Generation { set, number });
    }

    /// Notes that a token named a key this store lacks. Returns `true` when
    /// this asks for a refresh (the first miss, or the first one at least the
    /// interval after the previous request, with no fetch under way).
    pub fn request_refresh(&self, now: u64) -> bool {
        let mut st = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        if st.phase != Phase::Idle {
            return false;
        }
        let due = st
            .last_request
            .is_none_or(|t| now >= t.saturating_add(self.interval));
        if due {
            st.phase = Phase::Requested;
            st.last_request = Some(now);
        }
        due
    }

    /// Whether the caller should fetch the JWKS now; `true` once per request.
    #[must_use]
    pub fn poll_refresh(&self) -> bool {
        let mut st = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        if st.phase == Phase::Requested {
            st.phase = Phase::Fetching;
            return true;
        }
        false
    }

    /// Reports the outcome of a fetch: a new set replaces the current one
    /// atomically; an error keeps the last good set and is remembered.
    pub fn handle_refresh_result(&self, now: u64, result: Result<JwkSet, Error>) {
        let mut st = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        st.phase = Phase::Idle;
        // The interval runs from the end of the fetch as well as from the request.
        st.last_request = Some(st.last_request.map_or(now, |t| t.max(now)));
        match result {
            Ok(set) => {
                st.last_error = None;
                drop(st);
                self.replace(set);
            }
            Err(e) => {
                st.failures += 1;
                st.last_error = Some(e);
            }
        }
    }

    /// Parses a fetched JWKS document and reports it
    /// ([`KeyStore::handle_refresh_result`]); returns the parse error, if any.
    ///
    /// # Errors
    /// The [`JwkSet::from_json`] error (the last good set stays in place).
    pub fn handle_refresh_json(&self, now: u64, jwks_json: &str) -> Result<(), Error> {
        let parsed = JwkSet::from_json(jwks_json);
        let out = parsed.as_ref().map(drop).map_err(Clone::clone);
        self.handle_refresh_result(now, parsed);
        out
    }

    /// The error of the last failed refresh (cleared by a successful one).
    pub fn last_refresh_error(&self) -> Option<Error> {
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error
            .clone()
    }

    /// Number of failed refreshes so far.
    pub fn refresh_failures(&self) -> u64 {
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failures
    }
}
