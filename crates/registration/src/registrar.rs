//! The registrar (SIP core side): RFC 3261 §10.3 with RFC 5626/5627 binding keys, identity
//! checks, third-party registration toward application servers and the reg event package.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcptt_sip::{Request, Response};

use crate::binding::{AorRecord, Binding, BindingKey};
use crate::error::Error;
use crate::filter::{FailurePolicy, FilterCriteria};
use crate::identity::IdentityMap;
use crate::regevent::{Notifier, RegEventConfig};
use crate::request::{ContactRead, ContactsKind, RegisterRead, RegisterRequest};
use crate::rng::SplitMix64;
use crate::store::{MemoryStore, RegistrationStore, StoreError};
use crate::wire;

/// How many times a REGISTER is re-applied after a store write conflict.
const MAX_WRITE_ATTEMPTS: usize = 4;

/// Registrar configuration.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Smallest accepted non-zero expiry; shorter requests get `423` with `Min-Expires`
    /// (RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Largest granted expiry; longer requests are shortened to it.
    pub max_expires: u32,
    /// Expiry used when neither the Contact nor the request says.
    pub default_expires: u32,
    /// Most bindings one address-of-record may hold (`503` beyond).
    pub max_bindings_per_aor: usize,
    /// Most bindings the registrar holds in total (`503` beyond).
    pub max_bindings: usize,
    /// Which public user identities each authenticated peer may register.
    pub identities: IdentityMap,
    /// Third-party registration filters, in priority order.
    pub filters: Vec<FilterCriteria>,
    /// The SIP core's own URI: From and Contact of third-party REGISTERs and NOTIFYs.
    pub core_uri: String,
    /// How long an application server has to answer a third-party REGISTER.
    pub third_party_timeout: Duration,
    /// Most third-party REGISTERs waiting for an answer; beyond, the new one is reported
    /// as failed at once ([`ThirdPartyFailure::TooManyPending`]).
    pub max_pending_third_party: usize,
    /// The reg event package (RFC 3680) notifier.
    pub reg_event: RegEventConfig,
    /// Option tags a REGISTER may list in `Require` (RFC 3261 §10.3 step 2); any other
    /// gets `420 Bad Extension`. Empty by default.
    pub supported_extensions: Vec<String>,
    /// The domains this registrar serves (host part of the Request-URI, compared
    /// case-insensitively). When non-empty, a REGISTER for another domain gets `404` and
    /// an address-of-record outside the Request-URI's domain gets `404` (RFC 3261 §10.3
    /// steps 1 and 5). Empty (the default) accepts any domain.
    pub domains: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_bindings_per_aor: 16,
            max_bindings: 1_000_000,
            identities: IdentityMap::new(),
            filters: Vec::new(),
            core_uri: "sip:scscf.invalid".into(),
            third_party_timeout: Duration::from_secs(32),
            max_pending_third_party: 100_000,
            reg_event: RegEventConfig::default(),
            supported_extensions: Vec::new(),
            domains: Vec::new(),
        }
    }
}

/// Why a binding was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalReason {
    /// A REGISTER with `expires=0` or `Contact: *` (RFC 3261 §10.2.2).
    Unregistered,
    /// Its expiry passed (`handle_timeout`, or found expired while handling a request).
    Expired,
    /// An application server failed the third-party REGISTER and the filter's policy is
    /// [`FailurePolicy::Deregister`].
    ApplicationServerFailure,
}

/// How a third-party REGISTER failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThirdPartyFailure {
    /// A final non-2xx response with this status code.
    Status(u16),
    /// No final response within [`RegistrarConfig::third_party_timeout`].
    Timeout,
    /// Too many third-party REGISTERs were pending; this one was not sent.
    TooManyPending,
    /// The configured application server or SIP core URI is not a valid SIP URI, so the
    /// request could not be built (a configuration error, reported rather than dropped).
    InvalidUri,
}

/// A change the application may act on. Every binding change produces exactly one event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new binding.
    BindingAdded {
        /// Address-of-record.
        aor: String,
        /// The binding.
        binding: Binding,
    },
    /// An existing binding was refreshed (new expiry, Call-ID/CSeq, maybe new contact).
    BindingRefreshed {
        /// Address-of-record.
        aor: String,
        /// The binding after the refresh.
        binding: Binding,
    },
    /// A binding is gone.
    BindingRemoved {
        /// Address-of-record.
        aor: String,
        /// The binding as it was.
        binding: Binding,
        /// Why.
        reason: RemovalReason,
    },
    /// An application server failed a third-party REGISTER (never dropped silently).
    ThirdPartyFailed {
        /// Address-of-record the third-party REGISTER was about.
        aor: String,
        /// The application server.
        application_server: String,
        /// What happened.
        failure: ThirdPartyFailure,
        /// What the registrar did about it (the filter's policy).
        action: FailurePolicy,
    },
    /// The binding store failed during timer work (expiry, a deregistration after an
    /// application server failure) or a remote change: that work is retried on a later
    /// [`Registrar::handle_timeout`] / remote change, nothing was lost.
    StoreUnavailable {
        /// What the registrar was doing.
        operation: &'static str,
        /// The store's explanation.
        reason: String,
    },
}

/// A request for the caller to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to send it: the Request-URI's target (an application server, a subscriber's
    /// contact).
    pub destination: String,
    /// The request.
    pub request: Request,
}

/// The result of one REGISTER.
#[derive(Debug)]
pub struct RegisterOutcome {
    /// The response to send back to the UE (200 OK listing the bindings, or the error).
    pub response: Response,
    /// The registered public user identity when the AoR has at least one binding after
    /// this request: the SIP core asserts it (`P-Asserted-Identity`) on later requests from
    /// this connection. `None` after a removal of the last binding or a failure.
    pub registered_identity: Option<String>,
    /// `Ok` or the error the response reports.
    pub result: Result<(), Error>,
}

/// A pending third-party REGISTER (one client transaction).
///
/// ```text
///  Waiting --2xx--> (done)
///  Waiting --non-2xx | deadline--> (failed: Event::ThirdPartyFailed, policy applied)
/// ```
#[derive(Debug)]
enum ThirdPartyTx {
    /// (The Call-ID is not kept: it is the one
    /// [`Registrar::write_third_party_call_id`] writes for `aor` and `filter`.)
    Waiting {
        aor: String,
        filter: u16,
        deadline: Instant,
        /// The bindings it is about; empty unless the filter's policy is
        /// [`FailurePolicy::Deregister`] (nothing else reads them).
        bindings: Vec<u64>,
    },
}

/// Sans-IO registrar of the SIP core.
///
/// Binding lifecycle per (address-of-record, [`BindingKey`]), RFC 3261 §10.3:
///
/// ```text
///  (absent) --REGISTER expires>0--------------------------> Active      [BindingAdded]
///  Active   --REGISTER expires>0, newer CSeq/other Call-ID--> Active      [BindingRefreshed]
///  Active   --the same REGISTER again (Call-ID, CSeq, bytes)-> Active      (200, no change)
///  Active   --REGISTER same Call-ID, CSeq <= stored---------> Active      (500, no change)
///  Active   --REGISTER expires=0 | Contact: * + Expires: 0--> (absent)    [BindingRemoved Unregistered]
///  Active   --handle_timeout, expires_at <= now-------------> (absent)    [BindingRemoved Expired]
///  Active   --AS failure, policy Deregister-----------------> (absent)    [BindingRemoved ApplicationServerFailure]
/// ```
///
/// Every change that matches a [`FilterCriteria`] also queues a third-party REGISTER
/// (DESIGN.md §3) on [`Registrar::poll_transmit`], and every change queues a partial
/// reginfo NOTIFY to the AoR's reg event subscribers.
#[derive(Debug)]
pub struct Registrar<S: RegistrationStore = MemoryStore> {
    config: RegistrarConfig,
    store: S,
    events: VecDeque<Event>,
    transmit: VecDeque<Transmit>,
    pending: HashMap<u32, ThirdPartyTx>,
    deadlines: BTreeSet<(Instant, u32)>,
    next_cseq: u32,
    call_id_key: u64,
    /// To tag of REGISTER responses (RFC 3261 §8.2.6.2; registrations create no dialog).
    response_tag: String,
    notifier: Notifier,
    rng: SplitMix64,
    /// The fixed parts of third-party REGISTERs, prepared from the configuration.
    third_party_lines: wire::ThirdPartyLines,
    /// `-KEY-3pr`, the end of every third-party Call-ID ([`Registrar::third_party_call_id`]).
    call_id_suffix: String,
    /// Buffers a REGISTER works in, kept (empty) between requests so that their memory is
    /// reused.
    scratch: Scratch,
    /// The 200 OK's Contact lines of [`Registrar::handle_register`], kept (empty) between
    /// requests as `scratch`.
    listing: wire::ContactLines,
    /// Where a third-party REGISTER's Call-ID is written (reused).
    call_id_buf: String,
}

/// The working lists of one REGISTER ([`Registrar::apply_register`]); empty between
/// requests.
#[derive(Debug, Default)]
struct Scratch {
    /// The granted expiry of each Contact.
    granted: Vec<u32>,
    /// The binding changes of the current attempt.
    changes: Vec<Change>,
    /// The third-party REGISTERs to send: filter, Expires, the bindings they are about.
    third_party: Vec<(u16, u32, Vec<u64>)>,
}

/// Where the registrar lists the bindings a REGISTER's 200 OK carries: each contact value
/// with its remaining expiry (`VALUE;expires=N`).
pub(crate) trait Listing {
    /// Forgets what was listed (a write conflict: the request is applied again).
    fn clear(&mut self);
    /// Lists `contact` with `expires` seconds left.
    fn add(&mut self, contact: &str, expires: u32);
}

impl Listing for Vec<String> {
    fn clear(&mut self) {
        self.truncate(0);
    }

    fn add(&mut self, contact: &str, expires: u32) {
        self.push(format!("{contact};expires={expires}"));
    }
}

/// One binding change, before it becomes an event.
#[derive(Debug)]
enum Change {
    Added(Binding),
    Refreshed(Binding),
    Removed(Binding, RemovalReason),
}

impl Registrar<MemoryStore> {
    /// A registrar over a fresh [`MemoryStore`]; `seed` drives Call-IDs and tags.
    #[must_use]
    pub fn new(config: RegistrarConfig, seed: u64) -> Self {
        Self::with_store(config, MemoryStore::new(), seed)
    }
}

impl<S: RegistrationStore> Registrar<S> {
    /// A registrar over `store`; `seed` drives Call-IDs and tags.
    #[must_use]
    pub fn with_store(config: RegistrarConfig, store: S, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let call_id_key = rng.next_u64();
        let response_tag = rng.token();
        let third_party_lines = wire::ThirdPartyLines::new(
            config.filters.iter().map(|f| f.application_server.as_str()),
            &config.core_uri,
        );
        Self {
            third_party_lines,
            call_id_suffix: format!("-{:x}-3pr", call_id_key >> 40),
            config,
            store,
            events: VecDeque::new(),
            transmit: VecDeque::new(),
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_cseq: 1,
            call_id_key,
            response_tag,
            notifier: Notifier::default(),
            rng,
            scratch: Scratch::default(),
            listing: wire::ContactLines::default(),
            call_id_buf: String::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (administrative changes made here produce no events).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The current bindings of `aor` (canonical form), as stored (expired bindings not yet
    /// collected by `handle_timeout` are filtered out at `now`).
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when the store cannot answer (never "no binding").
    pub fn bindings(&self, now: Instant, aor: &str) -> Result<Vec<Binding>, Error> {
        Ok(self
            .store
            .load(aor)
            .map_err(|e| store_error(aor, e))?
            .map(|(_, r)| {
                r.bindings
                    .into_iter()
                    .filter(|b| !b.is_expired(now))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether `aor` has a live binding at `now`.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when the store cannot answer.
    pub fn is_registered(&self, now: Instant, aor: &str) -> Result<bool, Error> {
        Ok(!self.bindings(now, aor)?.is_empty())
    }

    /// Another instance sharing the store changed the record of `aor` (an input from the
    /// store's change feed, e.g. `mcptt-store-redis`'s `ChangeFeed`).
    ///
    /// When this registrar holds reg event subscriptions to `aor`, it re-reads the record
    /// and queues a full-state NOTIFY (RFC 3680 §4.1) to each of them, unless the stored
    /// version is the one they were last told about (a repeated or stale change, or this
    /// instance's own write). Without such a subscription it does nothing: no store round
    /// trip. The instance that made the change NOTIFYs the subscriptions it holds itself,
    /// so each change is NOTIFYed once, by the holder of the subscriber's dialog.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when the record could not be read: nothing was sent;
    /// call again (or [`Registrar::handle_remote_resync`]) once the store is back.
    pub fn handle_remote_change(&mut self, now: Instant, aor: &str) -> Result<(), Error> {
        if !self.notifier.has_subscribers(aor) {
            return Ok(());
        }
        let loaded = self.store.load(aor).map_err(|e| store_error(aor, e))?;
        let version = loaded.as_ref().map_or(0, |(v, _)| *v);
        if self.notifier.last_version(aor) == Some(version) {
            return Ok(());
        }
        let mut out = Vec::new();
        self.notifier.notify_aor_full(
            now,
            aor,
            version,
            loaded.as_ref().map(|(_, r)| r),
            &self.config.core_uri,
            &mut self.rng,
            &mut out,
        );
        self.transmit.extend(out);
        Ok(())
    }

    /// Re-reads every AoR this registrar holds reg event subscriptions for and NOTIFYs
    /// the changed ones ([`Registrar::handle_remote_change`] for each): after the change
    /// feed was interrupted (changes published meanwhile are lost) or the store was back.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] at the first AoR that could not be read.
    pub fn handle_remote_resync(&mut self, now: Instant) -> Result<(), Error> {
        for aor in self.notifier.aors() {
            self.handle_remote_change(now, &aor)?;
        }
        Ok(())
    }

    /// Handles a REGISTER from the authenticated peer `peer` (the TLS client certificate
    /// identity) and returns the response to send (RFC 3261 §10.3).
    pub fn handle_register(
        &mut self,
        now: Instant,
        peer: &str,
        request: &Request,
    ) -> RegisterOutcome {
        let mut listed = std::mem::take(&mut self.listing);
        let result = self
            .check_request_uri(request)
            .and_then(|()| wire::check_require(request, &self.config.supported_extensions))
            .and_then(|()| wire::parsed_register(request))
            .and_then(|req| {
                self.check_aor_domain(request, req.aor())?;
                self.apply_register(now, peer, &req, &mut listed)
                    .map(|()| req)
            });
        let outcome = match result {
            Ok(req) => RegisterOutcome {
                response: wire::register_ok_lines(request, &listed, &self.response_tag),
                registered_identity: (!listed.is_empty()).then_some(req.parts.aor),
                result: Ok(()),
            },
            Err(e) => RegisterOutcome {
                response: wire::error_response(request, &e),
                registered_identity: None,
                result: Err(e),
            },
        };
        Listing::clear(&mut listed);
        self.listing = listed;
        outcome
    }

    /// Applies an already extracted REGISTER (RFC 3261 §10.3 steps 4–8) and returns the
    /// Contact values to list in the 200 OK, each with its remaining `expires`.
    ///
    /// This is [`Registrar::handle_register`] without message parsing and response
    /// building, and without the Request-URI checks (scheme, [`RegistrarConfig::domains`]):
    /// the caller has done them.
    ///
    /// # Errors
    /// The error the response must report (see [`Error::status_code`]).
    pub fn handle_register_request(
        &mut self,
        now: Instant,
        peer: &str,
        req: &RegisterRequest,
    ) -> Result<Vec<String>, Error> {
        let mut listed = Vec::new();
        self.apply_register(now, peer, req, &mut listed)?;
        Ok(listed)
    }

    /// [`Registrar::handle_register_request`], listing the 200 OK's contacts in `listed`.
    fn apply_register(
        &mut self,
        now: Instant,
        peer: &str,
        req: &impl RegisterRead,
        listed: &mut impl Listing,
    ) -> Result<(), Error> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.apply_register_in(now, peer, req, listed, &mut scratch);
        scratch.granted.clear();
        scratch.changes.clear();
        scratch.third_party.clear();
        self.scratch = scratch;
        result
    }

    /// [`Registrar::apply_register`] working in `scratch`.
    fn apply_register_in(
        &mut self,
        now: Instant,
        peer: &str,
        req: &impl RegisterRead,
        listed: &mut impl Listing,
        scratch: &mut Scratch,
    ) -> Result<(), Error> {
        // Step 4: authorization of the authenticated identity for this AoR.
        if !self.config.identities.may_register(peer, req.aor()) {
            return Err(Error::Forbidden {
                peer: peer.to_owned(),
                aor: req.aor().to_owned(),
            });
        }
        // Step 6/7: validate every Contact before touching state (processing is atomic).
        let granted = &mut scratch.granted;
        self.granted_expiries(req, granted)?;
        let granted = &scratch.granted;
        let changes = &mut scratch.changes;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (version, mut record) = self
                .store
                .load(req.aor())
                .map_err(|e| store_error(req.aor(), e))?
                .unwrap_or_default();
            let old_len = record.bindings.len();
            changes.clear();
            purge_expired(now, &mut record, changes);
            self.apply(now, req, granted, &mut record, changes)?;
            let new_len = record.bindings.len();
            if new_len > self.config.max_bindings_per_aor {
                return Err(Error::TooManyBindings {
                    limit: self.config.max_bindings_per_aor,
                });
            }
            // A shared store's count may lag other instances' writes: never underflow.
            if new_len > old_len
                && self.store.binding_count().saturating_sub(old_len) + new_len
                    > self.config.max_bindings
            {
                return Err(Error::RegistrarFull {
                    limit: self.config.max_bindings,
                });
            }
            listed.clear();
            for b in &record.bindings {
                listed.add(&b.contact, b.remaining(now));
            }
            if changes.is_empty() {
                // A fetch or an already applied duplicate: nothing to write or announce.
                return Ok(());
            }
            // The bindings each third-party REGISTER is about (those this request added or
            // refreshed), known before the write: no second read of the store.
            let third_party = &mut scratch.third_party;
            self.third_party_plan(req, granted, &record, changes, third_party);
            for (filter, _, ids) in third_party.iter_mut() {
                // (Only a failure under FailurePolicy::Deregister reads them.)
                if self.deregisters_on_failure(*filter) {
                    *ids = binding_ids_for(changes, *filter);
                }
            }
            let active = !record.bindings.is_empty();
            match self.store.write(req.aor(), version, record) {
                Ok(new_version) => {
                    self.commit(
                        now,
                        req.aor(),
                        changes.drain(..),
                        Some((active, new_version)),
                    );
                    for (filter, expires, ids) in third_party.drain(..) {
                        self.send_third_party(
                            now,
                            req.aor(),
                            filter,
                            expires,
                            req.raw().clone(),
                            ids,
                        );
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => {}
                // Not retried: the store is down, the UE retries after `Retry-After`.
                Err(e) => return Err(store_error(req.aor(), e)),
            }
        }
        Err(Error::StoreConflict(req.aor().to_owned()))
    }

    /// Handles the response of an application server to a third-party REGISTER.
    /// Responses that match no pending third-party REGISTER are ignored (returns `false`).
    pub fn handle_third_party_response(&mut self, now: Instant, response: &Response) -> bool {
        let Some((call_id, cseq)) = wire::response_call_id_cseq(response) else {
            return false;
        };
        let status = response.status();
        if status < 200 {
            return self.pending.contains_key(&cseq);
        }
        let matches = matches!(self.pending.get(&cseq), Some(ThirdPartyTx::Waiting { aor, filter, .. }) if self.is_third_party_call_id(aor, *filter, call_id));
        if !matches {
            return false;
        }
        let Some(tx) = self.pending.remove(&cseq) else {
            return false;
        };
        match tx {
            ThirdPartyTx::Waiting {
                aor,
                filter,
                deadline,
                bindings,
                ..
            } => {
                self.deadlines.remove(&(deadline, cseq));
                if !(200..300).contains(&status) {
                    self.third_party_failed(
                        now,
                        aor,
                        filter,
                        bindings,
                        ThirdPartyFailure::Status(status),
                    );
                }
            }
        }
        true
    }

    /// Handles a SUBSCRIBE for the reg event package (RFC 3680) from the authenticated
    /// peer `peer` and returns the response; the initial (full) NOTIFY is queued on
    /// [`Registrar::poll_transmit`].
    pub fn handle_subscribe(&mut self, now: Instant, peer: &str, request: &Request) -> Response {
        let identities = &self.config.identities;
        let allowed = |aor: &str| {
            self.config.reg_event.trusted_subscribers.contains(peer)
                || identities.may_register(peer, aor)
        };
        let mut out = Vec::new();
        let response = self.notifier.handle_subscribe(
            now,
            peer,
            request,
            &self.config.reg_event,
            &self.config.core_uri,
            &allowed,
            &self.store,
            &mut self.rng,
            &mut out,
        );
        self.transmit.extend(out);
        response
    }

    /// Handles a response to a NOTIFY this registrar sent; a `481` or `408` ends the
    /// subscription (RFC 6665 §4.2.2). Returns whether it matched a subscription.
    pub fn handle_notify_response(&mut self, now: Instant, response: &Response) -> bool {
        self.notifier.handle_notify_response(now, response)
    }

    /// Runs due timers: binding expiry (with third-party REGISTER `Expires: 0` and reg
    /// event NOTIFYs), third-party REGISTER timeouts, subscription expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Small batches: the list stays a small allocation (large ones make glibc's malloc
        // consolidate its free lists, which dominated the cost with 10,000 expiries).
        let mut previous: Vec<String> = Vec::new();
        'expiry: loop {
            let due = match self.store.due(now, 16) {
                Ok(due) => due,
                Err(e) => {
                    self.store_failed("expiry", e);
                    break;
                }
            };
            if due.is_empty() || due == previous {
                // Nothing due, or no progress (the store kept refusing the writes).
                break;
            }
            for aor in &due {
                if let Err(e) = self.expire_aor(now, aor) {
                    self.store_failed("expiry", e);
                    break 'expiry;
                }
            }
            previous = due;
        }
        while let Some(&(deadline, cseq)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(ThirdPartyTx::Waiting {
                aor,
                filter,
                bindings,
                ..
            }) = self.pending.remove(&cseq)
            {
                self.third_party_failed(now, aor, filter, bindings, ThirdPartyFailure::Timeout);
            }
        }
        let mut out = Vec::new();
        self.notifier.handle_timeout(
            now,
            &self.config.core_uri,
            &self.store,
            &mut self.rng,
            &mut out,
        );
        self.transmit.extend(out);
    }

    /// The next request to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Registrar::handle_timeout`] must next run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.store.next_expiry(),
            self.deadlines.first().map(|(t, _)| *t),
            self.notifier.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Number of reg event subscriptions.
    #[must_use]
    pub fn subscription_count(&self) -> usize {
        self.notifier.len()
    }

    // ---- internals ----

    /// RFC 3261 §10.3 step 1: a SIP Request-URI (`416` otherwise) of a served domain
    /// (`404` otherwise, when [`RegistrarConfig::domains`] is set).
    fn check_request_uri(&self, request: &Request) -> Result<(), Error> {
        let uri = request.uri();
        let scheme = uri.scheme_str();
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return Err(Error::UnsupportedUriScheme(scheme.to_owned()));
        }
        let host = uri.host();
        if !self.config.domains.is_empty()
            && !self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
        {
            return Err(Error::UnknownDomain(host.to_owned()));
        }
        Ok(())
    }

    /// RFC 3261 §10.3 step 5: with [`RegistrarConfig::domains`] set, a SIP AoR must be
    /// of the Request-URI's domain (`404` otherwise).
    fn check_aor_domain(&self, request: &Request, aor: &str) -> Result<(), Error> {
        if self.config.domains.is_empty() {
            return Ok(());
        }
        let Some(rest) = aor.strip_prefix("sip:") else {
            // tel: AoRs have no domain to compare.
            return Ok(());
        };
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        if host.eq_ignore_ascii_case(request.uri().host()) {
            Ok(())
        } else {
            Err(Error::InvalidAor)
        }
    }

    /// The granted expiry of each Contact of `req`, in `granted` (emptied first).
    fn granted_expiries(
        &self,
        req: &impl RegisterRead,
        granted: &mut Vec<u32>,
    ) -> Result<(), Error> {
        granted.clear();
        match req.kind() {
            ContactsKind::Fetch => Ok(()),
            ContactsKind::Star => {
                // RFC 3261 §10.3 step 6: `*` only with Expires: 0.
                if req.expires() == Some(0) {
                    Ok(())
                } else {
                    Err(Error::InvalidHeader {
                        header: "Contact",
                        reason: "`*` requires Expires: 0",
                    })
                }
            }
            ContactsKind::List => {
                for c in req.contacts() {
                    let e = c
                        .expires()
                        .or_else(|| req.expires())
                        .unwrap_or(self.config.default_expires);
                    if e != 0 && e < self.config.min_expires {
                        return Err(Error::IntervalTooBrief {
                            min_expires: self.config.min_expires,
                        });
                    }
                    granted.push(e.min(self.config.max_expires));
                }
                Ok(())
            }
        }
    }

    /// RFC 3261 §10.3 step 7 on a copy of the record.
    fn apply(
        &mut self,
        now: Instant,
        req: &impl RegisterRead,
        granted: &[u32],
        record: &mut AorRecord,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        match req.kind() {
            ContactsKind::Fetch => Ok(()),
            ContactsKind::Star => {
                for b in &record.bindings {
                    check_order(b, req)?;
                }
                for b in record.bindings.drain(..) {
                    changes.push(Change::Removed(b, RemovalReason::Unregistered));
                }
                Ok(())
            }
            ContactsKind::List => {
                for (c, &expires) in req.contacts().zip(granted) {
                    let instance = c.instance();
                    let key = BindingKey::from_parts(c.uri(), instance.as_deref(), c.reg_id());
                    match record.find(&key) {
                        Some(i) => {
                            let Some(b) = record.bindings.get(i) else {
                                continue;
                            };
                            if is_duplicate(b, req) {
                                // Already applied (e.g. retransmitted to another
                                // instance after a failover): answer with the current
                                // bindings, change nothing.
                                continue;
                            }
                            check_order(b, req)?;
                            if expires == 0 {
                                let b = record.bindings.remove(i);
                                changes.push(Change::Removed(b, RemovalReason::Unregistered));
                            } else if let Some(b) = record.bindings.get_mut(i) {
                                refresh(b, c, req, now, expires, self.third_party_of(c));
                                changes.push(Change::Refreshed(b.clone()));
                            }
                        }
                        None if expires == 0 => {}
                        None => {
                            let b = Binding {
                                id: new_binding_id(&mut self.rng, record),
                                uri: c.uri().to_owned(),
                                contact: {
                                    let mut value = String::new();
                                    c.write_value(&mut value);
                                    value
                                },
                                instance: instance.map(std::borrow::Cow::into_owned),
                                reg_id: c.reg_id(),
                                call_id: req.call_id().to_owned(),
                                cseq: req.cseq(),
                                registered_at: now,
                                expires_at: now + Duration::from_secs(u64::from(expires)),
                                request: req.raw().clone(),
                                third_party: self.third_party_of(c),
                            };
                            changes.push(Change::Added(b.clone()));
                            record.bindings.push(b);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether a failed third-party REGISTER through `filter` removes the bindings it
    /// was about ([`FailurePolicy::Deregister`]).
    fn deregisters_on_failure(&self, filter: u16) -> bool {
        self.config
            .filters
            .get(usize::from(filter))
            .is_some_and(|f| f.default_handling == FailurePolicy::Deregister)
    }

    fn third_party_of(&self, c: &impl ContactRead) -> Vec<u16> {
        self.third_party_filters(c).collect()
    }

    /// The filters (indexes) whose criteria a REGISTER with contact `c` matches.
    fn third_party_filters<'a>(
        &'a self,
        c: &'a impl ContactRead,
    ) -> impl Iterator<Item = u16> + 'a {
        self.config
            .filters
            .iter()
            .enumerate()
            .filter(|(_, f)| f.matches("REGISTER", c.params()))
            .filter_map(|(i, _)| u16::try_from(i).ok())
    }

    /// Which application servers get a third-party REGISTER for this request, with which
    /// Expires: the longest granted expiry among the request's contacts that match the
    /// filter and are bound after the request, else 0. Written in `plan` (emptied first),
    /// each with no binding id yet.
    fn third_party_plan(
        &self,
        req: &impl RegisterRead,
        granted: &[u32],
        record: &AorRecord,
        changes: &[Change],
        plan: &mut Vec<(u16, u32, Vec<u64>)>,
    ) {
        plan.clear();
        let mut bump = |f: u16, e: u32| match plan.iter_mut().find(|(x, _, _)| *x == f) {
            Some((_, old, _)) => *old = (*old).max(e),
            None => plan.push((f, e, Vec::new())),
        };
        if req.kind() == ContactsKind::List {
            for (c, &e) in req.contacts().zip(granted) {
                let instance = c.instance();
                let key = BindingKey::from_parts(c.uri(), instance.as_deref(), c.reg_id());
                let bound = record.find(&key).is_some();
                for f in self.third_party_filters(c) {
                    bump(f, if bound { e } else { 0 });
                }
            }
        }
        for ch in changes {
            if let Change::Removed(b, RemovalReason::Unregistered) = ch {
                for &f in &b.third_party {
                    bump(f, 0);
                }
            }
        }
    }

    /// Reports a store failure met outside a request (timers, remote changes).
    fn store_failed(&mut self, operation: &'static str, e: StoreError) {
        let reason = match e {
            StoreError::Unavailable(reason) => reason,
            other => other.to_string(),
        };
        self.events
            .push_back(Event::StoreUnavailable { operation, reason });
    }

    /// Queues the events and partial NOTIFYs of `changes`. `written` is whether the AoR
    /// still has bindings and the version the write created, when known.
    fn commit(
        &mut self,
        now: Instant,
        aor: &str,
        changes: impl ExactSizeIterator<Item = Change> + AsRef<[Change]>,
        written: Option<(bool, u64)>,
    ) {
        if changes.len() == 0 {
            return;
        }
        // (Without a subscriber to the AoR the notifier does nothing: no view to build.)
        if self.notifier.has_subscribers(aor) {
            let mut out = Vec::new();
            self.notifier.on_changes(
                now,
                aor,
                &changes_view(changes.as_ref()),
                written,
                &self.config.core_uri,
                &mut self.rng,
                &mut out,
            );
            self.transmit.extend(out);
        }
        for ch in changes {
            let aor = aor.to_owned();
            self.events.push_back(match ch {
                Change::Added(binding) => Event::BindingAdded { aor, binding },
                Change::Refreshed(binding) => Event::BindingRefreshed { aor, binding },
                Change::Removed(binding, reason) => Event::BindingRemoved {
                    aor,
                    binding,
                    reason,
                },
            });
        }
    }

    fn expire_aor(&mut self, now: Instant, aor: &str) -> Result<(), StoreError> {
        let expired = self.store.remove_expired(aor, now)?;
        if expired.is_empty() {
            return Ok(());
        }
        let mut ends: Vec<(u16, Bytes)> = Vec::new();
        for b in &expired {
            ends.extend(b.third_party.iter().map(|&f| (f, b.request.clone())));
        }
        let changes: Vec<Change> = expired
            .into_iter()
            .map(|b| Change::Removed(b, RemovalReason::Expired))
            .collect();
        // `remove_expired` does not say what remains: read it back only when a local
        // subscriber needs it (its partial NOTIFY carries the registration state).
        let written = if self.notifier.has_subscribers(aor) {
            match self.store.load(aor) {
                Ok(loaded) => Some(loaded.map_or((false, 0), |(v, r)| (!r.bindings.is_empty(), v))),
                Err(_) => None,
            }
        } else {
            None
        };
        self.commit(now, aor, changes.into_iter(), written);
        for (f, body) in ends {
            self.send_third_party(now, aor, f, 0, body, Vec::new());
        }
        Ok(())
    }

    /// `HASH-KEY-3pr`: `HASH` the 16 hex digits of a keyed hash of (`aor`, `filter`),
    /// `KEY` the top bits of the key in hex (as `format!("{:016x}-{:x}-3pr", ..)`).
    #[cfg(test)]
    fn third_party_call_id(&self, aor: &str, filter: u16) -> String {
        let mut id = String::new();
        self.write_third_party_call_id(aor, filter, &mut id);
        id
    }

    /// [`Registrar::third_party_call_id`] written in `out` (emptied first).
    fn write_third_party_call_id(&self, aor: &str, filter: u16, out: &mut String) {
        out.clear();
        // Hex digits: always UTF-8.
        out.push_str(
            std::str::from_utf8(&wire::hex16(self.call_id_hash(aor, filter))).unwrap_or_default(),
        );
        out.push_str(&self.call_id_suffix);
    }

    /// Whether `call_id` is [`Registrar::third_party_call_id`] of `aor` and `filter`.
    fn is_third_party_call_id(&self, aor: &str, filter: u16, call_id: &str) -> bool {
        call_id
            .as_bytes()
            .split_at_checked(16)
            .is_some_and(|(hash, suffix)| {
                *hash == wire::hex16(self.call_id_hash(aor, filter))
                    && suffix == self.call_id_suffix.as_bytes()
            })
    }

    /// The keyed hash of (`aor`, `filter`) in third-party Call-IDs.
    fn call_id_hash(&self, aor: &str, filter: u16) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.call_id_key.hash(&mut h);
        aor.hash(&mut h);
        filter.hash(&mut h);
        h.finish()
    }

    fn send_third_party(
        &mut self,
        now: Instant,
        aor: &str,
        filter: u16,
        expires: u32,
        body: Bytes,
        bindings: Vec<u64>,
    ) {
        let Some(fc) = self.config.filters.get(usize::from(filter)) else {
            return;
        };
        let application_server = fc.application_server.clone();
        if self.pending.len() >= self.config.max_pending_third_party {
            self.third_party_failed(
                now,
                aor.to_owned(),
                filter,
                bindings,
                ThirdPartyFailure::TooManyPending,
            );
            return;
        }
        let cseq = self.next_cseq;
        // CSeq stays below 2^31 (RFC 3261 §8.1.1.5); one counter serves every Call-ID, so
        // it increases within each of them.
        self.next_cseq = if cseq >= (1 << 31) - 1 { 1 } else { cseq + 1 };
        // (Written in a buffer the registrar keeps: the pending transaction does not keep it.)
        let mut call_id = std::mem::take(&mut self.call_id_buf);
        self.write_third_party_call_id(aor, filter, &mut call_id);
        let branch = self.rng.next_u64();
        let tag = self.rng.next_u64();
        let fast = wire::third_party_register_fast(
            &self.third_party_lines,
            &wire::FastThirdParty {
                filter,
                aor,
                call_id: &call_id,
                cseq,
                expires,
                branch,
                tag,
                body: &body,
            },
        );
        let built = match fast {
            Some(request) => Ok(request),
            None => wire::third_party_register(&wire::ThirdParty {
                application_server: &application_server,
                core_uri: &self.config.core_uri,
                aor,
                call_id: &call_id,
                cseq,
                expires,
                branch: &format!("{branch:016x}"),
                tag: &format!("{tag:016x}"),
                body,
            }),
        };
        self.call_id_buf = call_id;
        match built {
            Ok(request) => {
                let deadline = now + self.config.third_party_timeout;
                self.deadlines.insert((deadline, cseq));
                self.pending.insert(
                    cseq,
                    ThirdPartyTx::Waiting {
                        aor: aor.to_owned(),
                        filter,
                        deadline,
                        bindings,
                    },
                );
                self.transmit.push_back(Transmit {
                    destination: application_server,
                    request,
                });
            }
            Err(_) => {
                // The configured AS or core URI is not a valid URI: a configuration error,
                // reported like an AS failure so that it is never silent.
                self.third_party_failed(
                    now,
                    aor.to_owned(),
                    filter,
                    bindings,
                    ThirdPartyFailure::InvalidUri,
                );
            }
        }
    }

    fn third_party_failed(
        &mut self,
        now: Instant,
        aor: String,
        filter: u16,
        bindings: Vec<u64>,
        failure: ThirdPartyFailure,
    ) {
        let Some(fc) = self.config.filters.get(usize::from(filter)) else {
            return;
        };
        let action = fc.default_handling;
        self.events.push_back(Event::ThirdPartyFailed {
            aor: aor.clone(),
            application_server: fc.application_server.clone(),
            failure,
            action,
        });
        if action == FailurePolicy::Deregister && !bindings.is_empty() {
            for _ in 0..MAX_WRITE_ATTEMPTS {
                let (version, mut record) = match self.store.load(&aor) {
                    Ok(Some(loaded)) => loaded,
                    Ok(None) => return,
                    Err(e) => {
                        self.store_failed("deregistration after application server failure", e);
                        return;
                    }
                };
                let mut changes = Vec::new();
                record.bindings.retain(|b| {
                    if bindings.contains(&b.id) {
                        changes.push(Change::Removed(
                            b.clone(),
                            RemovalReason::ApplicationServerFailure,
                        ));
                        false
                    } else {
                        true
                    }
                });
                if changes.is_empty() {
                    return;
                }
                let active = !record.bindings.is_empty();
                match self.store.write(&aor, version, record) {
                    Ok(v) => {
                        self.commit(now, &aor, changes.into_iter(), Some((active, v)));
                        return;
                    }
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => {
                        self.store_failed("deregistration after application server failure", e);
                        return;
                    }
                }
            }
        }
    }
}

/// The registrar error for a store failure on `aor`.
fn store_error(aor: &str, e: StoreError) -> Error {
    match e {
        StoreError::Unavailable(reason) => Error::StoreUnavailable(reason),
        StoreError::Conflict { .. } => Error::StoreConflict(aor.to_owned()),
    }
}

/// A binding id from the injected randomness: unique across instances sharing a store
/// (as long as their seeds differ), and never one already in `record` nor `0`.
fn new_binding_id(rng: &mut SplitMix64, record: &AorRecord) -> u64 {
    loop {
        let id = rng.next_u64();
        if id != 0 && record.bindings.iter().all(|b| b.id != id) {
            return id;
        }
    }
}

/// Ids of the bindings a third-party REGISTER through `filter` is about: those the request
/// added or refreshed (an application server refusing it, with
/// [`FailurePolicy::Deregister`], removes these, never another device's binding).
fn binding_ids_for(changes: &[Change], filter: u16) -> Vec<u64> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Added(b) | Change::Refreshed(b) if b.third_party.contains(&filter) => {
                Some(b.id)
            }
            _ => None,
        })
        .collect()
}

/// The very request that last updated `b` (same Call-ID, CSeq and bytes): a
/// retransmission whose first copy already took effect.
fn is_duplicate(b: &Binding, req: &impl RegisterRead) -> bool {
    b.call_id == req.call_id() && b.cseq == req.cseq() && b.request == req.raw()
}

fn check_order(b: &Binding, req: &impl RegisterRead) -> Result<(), Error> {
    // RFC 3261 §10.3 step 7: same Call-ID needs a higher CSeq.
    if b.call_id == req.call_id() && req.cseq() <= b.cseq {
        return Err(Error::OutOfOrder {
            cseq: req.cseq(),
            last: b.cseq,
        });
    }
    Ok(())
}

fn refresh(
    b: &mut Binding,
    c: &impl ContactRead,
    req: &impl RegisterRead,
    now: Instant,
    expires: u32,
    third_party: Vec<u16>,
) {
    c.uri().clone_into(&mut b.uri);
    c.write_value(&mut b.contact);
    req.call_id().clone_into(&mut b.call_id);
    b.cseq = req.cseq();
    b.expires_at = now + Duration::from_secs(u64::from(expires));
    b.request = req.raw().clone();
    b.third_party = third_party;
}

fn purge_expired(now: Instant, record: &mut AorRecord, changes: &mut Vec<Change>) {
    if record.bindings.iter().any(|b| b.is_expired(now)) {
        let (expired, kept): (Vec<Binding>, Vec<Binding>) = std::mem::take(&mut record.bindings)
            .into_iter()
            .partition(|b| b.is_expired(now));
        record.bindings = kept;
        changes.extend(
            expired
                .into_iter()
                .map(|b| Change::Removed(b, RemovalReason::Expired)),
        );
    }
}

fn changes_view(changes: &[Change]) -> Vec<(&Binding, Option<RemovalReason>, bool)> {
    changes
        .iter()
        .map(|c| match c {
            Change::Added(b) => (b, None, true),
            Change::Refreshed(b) => (b, None, false),
            Change::Removed(b, r) => (b, Some(*r), false),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The third-party Call-ID written without `format!` is the one `format!` wrote.
    #[test]
    fn third_party_call_id_is_the_formatted_one() {
        for seed in [0, 1, 42, u64::MAX] {
            let r = Registrar::new(RegistrarConfig::default(), seed);
            for (aor, filter) in [("sip:alice@example.com", 0), ("tel:+1", 7), ("", u16::MAX)] {
                let mut h = std::hash::DefaultHasher::new();
                r.call_id_key.hash(&mut h);
                aor.hash(&mut h);
                filter.hash(&mut h);
                let expected = format!("{:016x}-{:x}-3pr", h.finish(), r.call_id_key >> 40);
                assert_eq!(r.third_party_call_id(aor, filter), expected);
                // A response's Call-ID is checked against it without writing it.
                assert!(r.is_third_party_call_id(aor, filter, &expected));
                assert!(!r.is_third_party_call_id("sip:other@example.com", filter, &expected));
                assert!(!r.is_third_party_call_id(aor, filter ^ 1, &expected));
                for wrong in [
                    String::new(),
                    expected[..16].to_owned(),
                    expected[..expected.len() - 1].to_owned(),
                    format!("{expected}x"),
                    expected.to_uppercase(),
                    format!("é{}", &expected[2..]),
                ] {
                    assert!(!r.is_third_party_call_id(aor, filter, &wrong), "{wrong:?}");
                }
            }
        }
    }

    /// Runs `requests` (REGISTER texts, one second apart) through two registrars: one by
    /// [`Registrar::handle_register`] (the Contacts read where parsed), the other by
    /// [`Registrar::handle_register_request`] on the owned extraction
    /// ([`wire::extract_register`], the reference); both must answer, change, announce and
    /// send the same.
    fn same_as_owned(requests: &[String]) {
        let config = RegistrarConfig {
            identities: IdentityMap::new()
                .allow("ue1", "sip:alice@example.com")
                .allow("ue1", "sip:bob@example.com"),
            filters: vec![
                FilterCriteria::mcptt("sip:as.example.com"),
                FilterCriteria {
                    application_server: "sip:as2.example.com".into(),
                    feature_tag: "+g.x".into(),
                    value: None,
                    ..FilterCriteria::mcptt("sip:as2.example.com")
                },
            ],
            core_uri: "sip:core.example.com".into(),
            max_bindings_per_aor: 3,
            ..RegistrarConfig::default()
        };
        let mut parsed = Registrar::new(config.clone(), 9);
        let mut owned = Registrar::new(config, 9);
        #[allow(clippy::disallowed_methods)] // a test's single real origin
        let mut now = Instant::now();
        for text in requests {
            now += Duration::from_secs(1);
            let Ok(req) = Request::parse(Bytes::copy_from_slice(text.as_bytes())) else {
                continue;
            };
            let outcome = parsed.handle_register(now, "ue1", &req);
            match wire::extract_register(&req) {
                Ok(r) => {
                    let listed = owned.handle_register_request(now, "ue1", &r);
                    match (&outcome.result, &listed) {
                        (Ok(()), Ok(listed)) => {
                            let contacts: Vec<&str> = outcome
                                .response
                                .headers()
                                .iter()
                                .filter(|(n, _)| *n == "Contact")
                                .map(|(_, v)| v)
                                .collect();
                            assert_eq!(contacts, *listed, "for {text:?}");
                        }
                        (Err(a), Err(b)) => assert_eq!(a, b, "for {text:?}"),
                        (a, b) => panic!("{a:?} vs {b:?} for {text:?}"),
                    }
                }
                Err(e) => assert_eq!(outcome.result, Err(e), "for {text:?}"),
            }
            loop {
                let (a, b) = (parsed.poll_event(), owned.poll_event());
                assert_eq!(a, b, "for {text:?}");
                if a.is_none() {
                    break;
                }
            }
            loop {
                let (a, b) = (parsed.poll_transmit(), owned.poll_transmit());
                assert_eq!(
                    a.as_ref().map(|t| (&t.destination, t.request.encode())),
                    b.as_ref().map(|t| (&t.destination, t.request.encode())),
                    "for {text:?}"
                );
                if a.is_none() {
                    break;
                }
            }
        }
        let mut a: Vec<_> = parsed.store().iter().collect();
        let mut b: Vec<_> = owned.store().iter().collect();
        a.sort_by_key(|(k, _)| *k);
        b.sort_by_key(|(k, _)| *k);
        assert_eq!(a, b);
    }

    fn register(to: &str, call_id: &str, cseq: u32, contacts: &str, expires: &str) -> String {
        format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Via: SIP/2.0/TLS ue.example.com;branch=z9hG4bK{cseq}\r\n\
             From: <{to}>;tag=1\r\n\
             To: <{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             {contacts}{expires}Content-Length: 0\r\n\r\n"
        )
    }

    const MCPTT: &str = "+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"";

    #[test]
    fn parsed_path_is_the_owned_one() {
        let alice = "sip:alice@example.com";
        let ue = |n: u32, extra: &str| {
            format!(
                "Contact: <sip:alice@192.0.2.{n};transport=tls>;+sip.instance=\"<urn:uuid:{n}>\";+g.3gpp.mcptt;{MCPTT}{extra}\r\n"
            )
        };
        same_as_owned(&[
            register(alice, "c1", 1, &ue(1, ""), "Expires: 600\r\n"),
            // a retransmission, an out-of-order request, a refresh, a fetch
            register(alice, "c1", 1, &ue(1, ""), "Expires: 600\r\n"),
            register(alice, "c1", 1, &ue(1, ";expires=300"), ""),
            register(alice, "c1", 2, &ue(1, ";expires=300;+g.x"), ""),
            register(alice, "c9", 1, "", ""),
            // several contacts, a plain one, one without the MCPTT tag, reg-id
            register(
                alice,
                "c2",
                1,
                &format!(
                    "{}Contact: <sip:a@192.0.2.7>, <sip:b@192.0.2.8>;+g.x;reg-id=2;+sip.instance=<i>\r\n",
                    ue(2, ";reg-id=1")
                ),
                "",
            ),
            // too brief, too many, someone else's AoR, `*` without and with Expires: 0
            register(alice, "c3", 1, &ue(3, ";expires=5"), ""),
            register(alice, "c3", 2, &format!("{}{}", ue(4, ""), ue(5, "")), ""),
            register("sip:carol@example.com", "c4", 1, &ue(1, ""), ""),
            register(alice, "c5", 1, "Contact: *\r\n", ""),
            register("sip:bob@example.com", "c6", 1, &ue(6, ""), ""),
            register(alice, "c1", 3, &ue(1, ";expires=0"), ""),
            register(alice, "c5", 2, "Contact: *\r\n", "Expires: 0\r\n"),
            register("sip:bob@example.com", "c6", 2, &ue(6, ""), "Expires: 0\r\n"),
        ]);
    }

    proptest::proptest! {
        #[test]
        fn parsed_path_is_the_owned_one_on_any_contacts(
            steps in proptest::collection::vec(
                (
                    0u32..3,
                    "[<>\"a-zA-Z0-9:;@=+.,* -]{0,50}",
                    proptest::option::of(proptest::sample::select(vec![0u32, 5, 600, 100_000])),
                ),
                1..6,
            )
        ) {
            let texts: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, (call, contact, expires))| {
                    let cseq = u32::try_from(i).unwrap_or(0) + 1;
                    let expires = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
                    let contact = if contact.is_empty() {
                        String::new()
                    } else {
                        format!("Contact: {contact};{MCPTT}\r\n")
                    };
                    register("sip:alice@example.com", &format!("c{call}"), cseq, &contact, &expires)
                })
                .collect();
            same_as_owned(&texts);
        }
    }

    /// The public listing (`handle_register_request`) is the one the 200 OK carries.
    #[test]
    fn vec_listing_formats_contact_and_expiry() {
        let mut v = vec!["stale".to_owned()];
        Listing::clear(&mut v);
        v.add("<sip:a@b>;+sip.instance=\"<urn:uuid:1>\"", 3600);
        assert_eq!(v, ["<sip:a@b>;+sip.instance=\"<urn:uuid:1>\";expires=3600"]);
    }
}
