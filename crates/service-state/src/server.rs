//! The MCPTT server side: PUBLISH (RFC 3903) authorisation and `mcptt-service-state`
//! subscriptions (RFC 6665), sans-IO.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::SharedStr;
use crate::body::StateRef;
use crate::body::simple_multipart_boundary;
use crate::body::{PocSettings, PublishBody, PublishParts, ServiceState, XmlLimits};
use crate::hash::IdentityMap;
use crate::model::{
    AuthorisationState, CombinedState, Random, RegistrationChange, RegistrationState,
    TokenValidator, UeDirectory, UeKind,
};
use mcptt_sip::{KnownHeader, Method, Request};

use crate::sip::{
    Answer, Hex16, Ids, RxBuffer, TOKEN_CHARS, find_byte3, identity, plain_sip_host,
    plain_sip_identity, push_hex16, push_u64,
};
use crate::store::{
    AuthRecord, DialogRecord, MemoryStore, PublicationRecord, ServiceStateStore, StoreError,
    StoreKey, UeRecord, UserRecord,
};

/// Event package of the PUBLISH that carries the access token.
pub const POC_SETTINGS_EVENT: &str = "poc-settings";
/// Event package of the service-state subscription.
pub const SERVICE_STATE_EVENT: &str = "mcptt-service-state";
/// Warning text of a service-authorisation failure (DESIGN.md §3).
pub const AUTHORISATION_FAILED_WARNING: &str = "101 service authorisation failed";

/// Configuration of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's host name: the `Warning` agent and the `Via` sent-by of NOTIFYs.
    pub host: String,
    /// Transport token for the `Via` of NOTIFYs (`TLS`, `TCP`).
    pub transport: String,
    /// The server's public service identity (PUBLISH and SUBSCRIBE Request-URI).
    pub service_uri: String,
    /// The `Contact` URI of the server in SUBSCRIBE responses and NOTIFYs.
    pub contact: String,
    /// The UE directory (UE kinds).
    pub directory: UeDirectory,
    /// Smallest accepted PUBLISH `Expires` (423 below), seconds.
    pub min_publish_expires: u32,
    /// Largest granted PUBLISH `Expires` (longer requests are shortened), seconds.
    pub max_publish_expires: u32,
    /// Smallest accepted SUBSCRIBE `Expires` (423 below), seconds.
    pub min_subscribe_expires: u32,
    /// Largest granted SUBSCRIBE `Expires`, also the default, seconds.
    pub max_subscribe_expires: u32,
    /// Time a NOTIFY may stay unanswered before its subscription ends (Timer F, 64·T1).
    pub notify_timeout: Duration,
    /// Most users signed in at once on one gateway UE.
    pub max_users_per_gateway: usize,
    /// Most subscriptions per (user, UE).
    pub max_subscriptions_per_user_ue: usize,
    /// Most UEs tracked (registered or with state); beyond it new ones are refused (503).
    pub max_ues: usize,
    /// Limits for XML bodies.
    pub xml_limits: XmlLimits,
    /// This instance's identity among the instances sharing a store (dialog holder); must
    /// differ between instances. Default 0.
    pub instance_id: u64,
    /// How long a holder's lease on its subscription dialogs lasts; it renews them at half
    /// that. When an instance dies, another takes its dialogs over once the lease ran out:
    /// within `dialog_lease` plus the time until that instance's next
    /// [`Server::handle_timeout`] (it follows [`Server::poll_timeout`]).
    pub dialog_lease: Duration,
    /// `Retry-After` of the `503` answered when the store is unavailable, seconds; also the
    /// delay before a timer whose store work failed runs again.
    pub store_retry_after: u32,
}

impl ServerConfig {
    /// A configuration with safe defaults for the given host and public service identity.
    #[must_use]
    pub fn new(host: impl Into<String>, service_uri: impl Into<String>) -> Self {
        let host = host.into();
        Self {
            contact: format!("sip:{host};transport=tls"),
            host,
            transport: "TLS".into(),
            service_uri: service_uri.into(),
            directory: UeDirectory::default(),
            min_publish_expires: 60,
            max_publish_expires: 7200,
            min_subscribe_expires: 60,
            max_subscribe_expires: 3600,
            notify_timeout: Duration::from_secs(32),
            max_users_per_gateway: 64,
            max_subscriptions_per_user_ue: 4,
            max_ues: 1_000_000,
            xml_limits: XmlLimits::default(),
            instance_id: 0,
            dialog_lease: Duration::from_secs(60),
            store_retry_after: 5,
        }
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminationReason {
    /// The subscriber sent `Expires: 0`.
    Unsubscribed,
    /// The subscription expired without refresh (`reason=timeout`).
    Timeout,
    /// A NOTIFY was answered with this final non-2xx status (481 and others).
    NotifyRejected(u16),
    /// A NOTIFY got no final response within [`ServerConfig::notify_timeout`].
    NotifyTimedOut,
    /// Another instance sharing the store took the dialog over (this one's lease ran out,
    /// or the subscriber's refresh reached the other one); nothing was sent.
    TakenOver,
}

/// Events a [`Server`] reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The service state of a user on a UE changed (every change, with its new version).
    StateChanged(ServiceState),
    /// A PUBLISH or SUBSCRIBE was refused with 403 + `Warning: 399 … "101 …"`; `reason` is for
    /// the log only and was not sent to the peer.
    AuthorisationFailed {
        /// The asserted identity of the UE (may be empty when none was asserted).
        impu: String,
        /// Why (token validation error, unregistered identity, UE in use, ...).
        reason: String,
    },
    /// A PUBLISH that was accepted carried poc-settings (answer mode, ...) for the user on the UE.
    SettingsPublished {
        /// The user.
        mcptt_id: SharedStr,
        /// The UE.
        impu: SharedStr,
        /// The published settings.
        settings: PocSettings,
    },
    /// A request could not be read far enough to answer it (missing From/To/Call-ID/CSeq ...).
    MalformedRequest {
        /// What was missing or wrong.
        what: &'static str,
    },
    /// A subscription was created.
    SubscriptionCreated {
        /// Subscribed user.
        mcptt_id: SharedStr,
        /// Subscribing UE.
        impu: SharedStr,
        /// Dialog Call-ID.
        call_id: SharedStr,
    },
    /// The store could not be used (unavailable, or conflicts kept recurring); the work is
    /// retried at a later [`Server::handle_timeout`] (requests were answered 503/500).
    StoreUnavailable {
        /// What was being done.
        what: &'static str,
        /// The store's error, for the log.
        reason: String,
    },
    /// A subscription ended.
    SubscriptionTerminated {
        /// Subscribed user.
        mcptt_id: SharedStr,
        /// Subscribing UE.
        impu: SharedStr,
        /// Dialog Call-ID.
        call_id: SharedStr,
        /// Why.
        reason: TerminationReason,
    },
}

/// A message for the caller to send: a response on the connection the request came from, or a
/// NOTIFY towards the first `Route` (or the Request-URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The encoded message.
    pub bytes: Vec<u8>,
}

/// Authorisation state of one user on one UE (stored as [`AuthRecord`]).
///
/// ```text
///                  PUBLISH(valid token)            token exp reached
///  Unauthorised ───────────────────────▶ Authorised ───────────────▶ Expired
///       ▲  ▲                              │  ▲   ▲  PUBLISH(If-Match,  │
///       │  │  publication expiry          │  │   └───── new token) ───┘
///       │  └──────────────────────────────┤  │ PUBLISH (new sign-in)
///       │                                 │  │
///       │           Expires: 0            ▼  │
///       │    SignedOff ◀──────── (Authorised|Expired)
///       │    Replaced  ◀──────── another user signs in on a shareable UE
///       └─ (Expired: publication expiry)
/// ```
/// Refresh (`SIP-If-Match`, no body) keeps the state and issues a new entity-tag (RFC 3903 §4.2).
type Auth = AuthRecord;
type Publication = PublicationRecord;

impl AuthRecord {
    fn public(&self) -> AuthorisationState {
        match self {
            Self::Unauthorised => AuthorisationState::Unauthorised,
            Self::Authorised { .. } => AuthorisationState::Authorised,
            Self::Expired { .. } => AuthorisationState::Expired,
            Self::SignedOff => AuthorisationState::SignedOff,
            Self::Replaced => AuthorisationState::Replaced,
        }
    }

    fn token_deadline(&self) -> Option<Instant> {
        match self {
            Self::Authorised { token_deadline, .. } => Some(*token_deadline),
            _ => None,
        }
    }

    fn token_exp(&self) -> Option<u64> {
        match self {
            Self::Authorised { token_exp, .. } | Self::Expired { token_exp, .. } => {
                Some(*token_exp)
            }
            _ => None,
        }
    }
}

/// One user on one UE.
#[derive(Debug)]
struct Session {
    impu: Arc<str>,
    mcptt_id: Arc<str>,
    auth: Auth,
    version: u64,
    subs: IdList,
}

/// One UE (keyed by its public user identity).
#[derive(Debug, Default)]
struct Ue {
    /// Shared with the store's record.
    instances: Arc<[Arc<str>]>,
    registered: bool,
    sessions: IdList,
    /// Version of the UE's store record this state was read from or written as.
    store_version: u64,
    /// Highest service-state version given to any user on this UE.
    last_version: u64,
}

/// A notifier-side subscription (RFC 6665 §4.2).
///
/// ```text
///  SUBSCRIBE (2xx) ──▶ Active ──SUBSCRIBE refresh──▶ Active (NOTIFY with current state)
///                        │ state change ──▶ NOTIFY active;expires=N
///                        ├─ SUBSCRIBE Expires: 0 ──▶ NOTIFY terminated ──▶ (removed)
///                        ├─ expiry ──────────────▶ NOTIFY terminated;reason=timeout ──▶ (removed)
///                        └─ NOTIFY 481 / error / timeout ──────────────────────────▶ (removed)
/// ```
#[derive(Debug)]
struct Subscription {
    session: u64,
    call_id: Arc<str>,
    our_tag: u64,
    their_tag: Arc<str>,
    local_uri: Arc<str>,
    remote_uri: Arc<str>,
    remote_target: Arc<str>,
    route_set: Arc<[String]>,
    local_cseq: u32,
    remote_cseq: u32,
    event_id: Option<Arc<str>>,
    expires_at: Instant,
    outstanding: Outstanding,
    /// The last service-state version NOTIFYed.
    notified_version: u64,
    /// Version of the dialog's store record.
    store_version: u64,
    /// Until when this instance holds the dialog.
    lease_expires: Instant,
}

impl Subscription {
    /// The dialog state a SUBSCRIBE creates (RFC 6665 §4.1.2, RFC 3261 §12.1.1).
    fn new(
        sub: &SubscribeRequest<'_, '_>,
        session: u64,
        our_tag: u64,
        remote_target: &str,
        expires_at: Instant,
        service_uri: &Arc<str>,
        impu: Option<&Arc<str>>,
    ) -> Self {
        let ids = &sub.ids;
        let local_uri = ids.to.uri();
        let remote_uri = ids.from.uri();
        Self {
            session,
            call_id: Arc::from(ids.call_id),
            our_tag,
            their_tag: Arc::from(ids.from.tag().unwrap_or_default()),
            // Nearly every SUBSCRIBE names the service URI: one shared copy.
            local_uri: if local_uri == &**service_uri {
                Arc::clone(service_uri)
            } else {
                Arc::from(local_uri)
            },
            // Nearly every SUBSCRIBE comes from the UE's own identity: shared with its key.
            remote_uri: match impu {
                Some(impu) if **impu == *remote_uri => Arc::clone(impu),
                _ => Arc::from(remote_uri),
            },
            remote_target: Arc::from(remote_target),
            route_set: Arc::clone(&sub.record_route),
            local_cseq: 0,
            remote_cseq: ids.cseq.seq,
            event_id: sub.event_id.as_deref().map(Arc::from),
            expires_at,
            outstanding: Outstanding::None,
            notified_version: 0,
            store_version: 0,
            lease_expires: expires_at,
        }
    }

    /// The dialog as stored.
    fn record(&self, holder: u64, impu: &Arc<str>, mcptt_id: &Arc<str>) -> DialogRecord {
        DialogRecord {
            impu: Arc::clone(impu),
            mcptt_id: Arc::clone(mcptt_id),
            call_id: self.call_id.clone(),
            their_tag: self.their_tag.clone(),
            local_uri: self.local_uri.clone(),
            remote_uri: self.remote_uri.clone(),
            remote_target: self.remote_target.clone(),
            route_set: self.route_set.clone(),
            local_cseq: self.local_cseq,
            remote_cseq: self.remote_cseq,
            event_id: self.event_id.clone(),
            expires_at: self.expires_at,
            holder,
            lease_expires: self.lease_expires,
            notified_version: self.notified_version,
        }
    }

    /// A dialog taken over from its store record.
    fn from_record(r: DialogRecord, session: u64, our_tag: u64, version: u64) -> Self {
        Self {
            session,
            call_id: r.call_id,
            our_tag,
            their_tag: r.their_tag,
            local_uri: r.local_uri,
            remote_uri: r.remote_uri,
            remote_target: r.remote_target,
            route_set: r.route_set,
            // Already moved past the old holder's unrecorded NOTIFYs by `Server::adopt`.
            local_cseq: r.local_cseq,
            remote_cseq: r.remote_cseq,
            event_id: r.event_id,
            expires_at: r.expires_at,
            outstanding: Outstanding::None,
            notified_version: r.notified_version,
            store_version: version,
            lease_expires: r.lease_expires,
        }
    }
}

/// A UE store version that never matches: the record is read again at the next use.
const STALE: u64 = u64::MAX;

/// What an operation changed locally, to take back if its write fails.
#[derive(Debug, Default)]
struct Undo {
    /// Whether the UE was known before.
    existed: bool,
    /// (session, authorisation, version) of its sessions.
    sessions: Vec<(u64, Auth, u64)>,
    /// Its registered instances, when the operation changed them.
    instances: Option<Arc<[Arc<str>]>>,
    store_version: u64,
    last_version: u64,
}

/// The public user identity and MCPTT ID of a session, shared with it.
type SessionIds = (Arc<str>, Arc<str>);

/// What the server keeps of a validated access token.
struct Grant {
    /// The `mcptt_id` claim.
    mcptt_id: Arc<str>,
    /// The `exp` claim, in seconds since the Unix epoch.
    expires_at: u64,
}

/// CSeq increase of a dialog taken over from another instance.
const TAKEOVER_CSEQ_GAP: u32 = 10_000;
/// Attempts of one request against version conflicts before it is answered 500.
const MAX_STORE_ATTEMPTS: usize = 4;
/// Most store keys handled per [`Server::handle_timeout`] call.
const MAX_DUE_PER_TIMEOUT: usize = 256;

/// What a SUBSCRIBE says, read with `mcptt-sip`'s typed access.
struct SubscribeRequest<'a, 'm> {
    ids: &'a Ids<'m>,
    /// `Record-Route` entries as written, in order (the dialog's route set).
    record_route: Arc<[String]>,
    /// `id` of the `Event` header.
    event_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Publication(u64),
    Token(u64),
    Subscription(u64),
    Notify(u64, u32),
    /// Renew the dialog leases of all subscriptions held here.
    Leases,
}

/// The server's timers: a binary heap ordered by (deadline, timer), with lazy removal. A
/// timer whose deadline moved or whose subject is gone stays queued and is skipped when it
/// comes up ([`Server::timer_live`]); the head is kept live after every public call
/// ([`Server::prune_timers`]), so [`Server::poll_timeout`] names a real deadline. Inserting is
/// cheap (deadlines mostly grow, so a new timer rarely moves up the heap) and cancelling costs
/// nothing.
#[derive(Debug, Default)]
struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    fn insert(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    fn first(&self) -> Option<(Instant, Timer)> {
        self.heap.peek().map(|Reverse(t)| *t)
    }

    fn pop_first(&mut self) -> Option<(Instant, Timer)> {
        self.heap.pop().map(|Reverse(t)| t)
    }

    /// Inserts `timer` at `at` unless `armed` says one is pending already (then records it).
    #[inline]
    fn arm_once(&mut self, armed: &mut Option<Instant>, at: Instant, timer: Timer) {
        if armed.is_none() {
            *armed = Some(at);
            self.insert(at, timer);
        }
    }
}

/// Outcome of a refused request.
struct Refusal {
    code: u16,
    warning: bool,
    extra: Option<(&'static str, String)>,
}

impl Refusal {
    #[cold]
    #[inline(never)]
    fn code(code: u16) -> Self {
        Self {
            code,
            warning: false,
            extra: None,
        }
    }
    #[cold]
    #[inline(never)]
    fn forbidden() -> Self {
        Self {
            code: 403,
            warning: true,
            extra: None,
        }
    }
    #[cold]
    #[inline(never)]
    fn with(code: u16, name: &'static str, value: String) -> Self {
        Self {
            code,
            warning: false,
            extra: Some((name, value)),
        }
    }
}

/// The MCPTT server's service-authorisation and service-state driver (STYLE.md §2).
///
/// Its state lives in `S`, a [`ServiceStateStore`] ([`MemoryStore`] unless
/// [`Server::with_store`] names another); see the [`store`](crate::store) module for the
/// consistency rules when instances share one.
///
/// Feed it requests ([`Server::handle_request`]), responses to its NOTIFYs
/// ([`Server::handle_response`]), registration changes ([`Server::handle_registration`]) and
/// timeouts; send what [`Server::poll_transmit`] returns and read [`Server::poll_event`].
pub struct Server<V, R, S = MemoryStore> {
    config: ServerConfig,
    validator: V,
    rng: R,
    store: S,
    /// UEs changed by the current operation and the store version they were read at.
    dirty: Dirty,
    /// Sessions whose new state is NOTIFYed once the operation's writes succeeded.
    pending: Vec<u64>,
    /// Registration changes the store refused, applied again at `retry_at`.
    retry: Vec<RegistrationChange>,
    /// When to retry store work that failed (registration changes, due keys).
    retry_at: Option<Instant>,
    /// When the next lease renewal round runs (armed while dialogs are held).
    leases_at: Option<Instant>,
    /// The local state before the current operation.
    undo: Undo,
    /// Keyed by public user identity, shared with the UE's sessions.
    ues: IdentityMap<Arc<str>, Ue>,
    sessions: IdMap<Session>,
    etags: IdMap<u64>,
    /// Boxed: the map's slots (about a quarter empty) stay small.
    subs: IdMap<Box<Subscription>>,
    dialogs: IdMap<u64>,
    timers: Timers,
    next_id: u64,
    transmit: TxQueue,
    events: VecDeque<ServerEvent>,
    /// The `Contact` line of responses (`<` config.contact `>`), written out once
    /// ([`Answer::header_line`]).
    contact_line: Vec<u8>,
    /// `Warning` value of a service-authorisation failure.
    warning: String,
    /// The configured text of every NOTIFY.
    notify_text: NotifyText,
    /// Reused buffer for NOTIFY bodies.
    scratch: Vec<u8>,
    /// Reused buffer the `*_bytes` entry points copy messages into.
    rx: RxBuffer,
    /// The header-line index of the last message the `*_bytes` entry points parsed, reused
    /// by the next parse.
    headers: mcptt_sip::HeaderStorage,
    /// The limits of `mcptt_sip::Message::parse` (its defaults).
    sip_limits: mcptt_sip::Limits,
    /// The last single-entry route set a subscription took (shared by the next ones alike).
    last_route: Option<Arc<[String]>>,
    /// `identity` of the configured public service identity.
    service_identity: String,
    /// The configured service URI, shared by the dialogs whose local URI it is.
    service_uri: Arc<str>,
    /// The same when it is a plain SIP URI (`To` of nearly every SUBSCRIBE: not checked again).
    plain_service_uri: Option<Arc<str>>,
}

impl<V: TokenValidator, R: Random> Server<V, R> {
    /// A server with the given configuration, token validator and randomness source, keeping
    /// its state in a private [`MemoryStore`].
    pub fn new(config: ServerConfig, validator: V, rng: R) -> Self {
        Self::with_store(config, validator, rng, MemoryStore::new())
    }
}

impl<V: TokenValidator, R: Random, S: ServiceStateStore> Server<V, R, S> {
    /// A server keeping its state in `store` (shared with other instances, each with its own
    /// [`ServerConfig::instance_id`]).
    pub fn with_store(config: ServerConfig, validator: V, rng: R, store: S) -> Self {
        Self {
            store,
            dirty: Dirty::default(),
            pending: Vec::new(),
            retry: Vec::new(),
            retry_at: None,
            leases_at: None,
            undo: Undo::default(),
            contact_line: Answer::header_line("Contact", &format!("<{}>", config.contact)),
            warning: format!("399 {} \"{AUTHORISATION_FAILED_WARNING}\"", config.host),
            notify_text: NotifyText::new(&config),
            scratch: Vec::new(),
            rx: RxBuffer::default(),
            headers: mcptt_sip::HeaderStorage::new(),
            sip_limits: mcptt_sip::Limits::default(),
            last_route: None,
            service_identity: identity(&config.service_uri).into_owned(),
            service_uri: Arc::from(config.service_uri.as_str()),
            plain_service_uri: crate::sip::plain_sip_uri(&config.service_uri)
                .then(|| Arc::from(config.service_uri.as_str())),
            config,
            validator,
            rng,
            ues: IdentityMap::default(),
            sessions: IdMap::default(),
            etags: IdMap::default(),
            subs: IdMap::default(),
            dialogs: IdMap::default(),
            timers: Timers::default(),
            next_id: 1,
            transmit: TxQueue::default(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Mutable access to the UE directory (kinds apply to later sign-ins).
    pub fn directory_mut(&mut self) -> &mut UeDirectory {
        &mut self.config.directory
    }

    /// The current service state of `mcptt_id` on the UE `impu`, if the server tracks it.
    #[must_use]
    pub fn state(&self, impu: &str, mcptt_id: &str) -> Option<ServiceState> {
        let impu = identity(impu);
        let ue = self.ues.get(impu.as_ref())?;
        ue.sessions
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .find(|s| &*s.mcptt_id == mcptt_id)
            .map(|s| self.snapshot(s))
    }

    /// Number of active subscriptions.
    #[must_use]
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Number of live publications.
    #[must_use]
    pub fn publication_count(&self) -> usize {
        self.etags.len()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Mutable access to the store (e.g. to feed it a change seen by its own connection).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Another instance changed `key` in the shared store (from the store's change feed).
    ///
    /// For a UE, the server re-reads its record; for every dialog held here whose user's
    /// state version moved past the version last NOTIFYed on it, one NOTIFY goes out (an
    /// instance that made the change itself has already NOTIFYed, so the change is sent
    /// once). For a dialog now held by another instance, the local copy is dropped without
    /// a NOTIFY.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer (nothing changed; call again).
    pub fn handle_remote_change(&mut self, now: Instant, key: &StoreKey) -> Result<(), StoreError> {
        let result = self.remote_change(now, key);
        self.prune_timers();
        result
    }

    /// The work of the public method of the same name, before its timers are pruned.
    fn remote_change(&mut self, now: Instant, key: &StoreKey) -> Result<(), StoreError> {
        match key {
            StoreKey::Ue(impu) => self.remote_ue_change(now, impu)?,
            StoreKey::Dialog(tag) => {
                let Some(&id) = self.dialogs.get(tag) else {
                    return Ok(());
                };
                let held_elsewhere = self
                    .store
                    .load_dialog(*tag)?
                    .is_some_and(|(_, r)| r.holder != self.config.instance_id);
                if held_elsewhere {
                    self.drop_subscription(id);
                }
            }
        }
        Ok(())
    }

    /// Catches up with changes the store's change feed may have missed (it reconnected, or
    /// lost messages): every dialog held here is checked against its store record (one now
    /// held by another instance is dropped without a NOTIFY), then every UE with a dialog
    /// held here is re-read, and each dialog whose user's state version moved past what it
    /// was last sent gets one NOTIFY, exactly as [`Server::handle_remote_change`] does per
    /// key. Nothing is sent for what did not change, so calling it again is harmless.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot answer; what was read before the
    /// failure is applied, and a later call does the rest.
    pub fn resync(&mut self, now: Instant) -> Result<(), StoreError> {
        let result = self.resync_all(now);
        self.prune_timers();
        result
    }

    /// The work of the public method of the same name, before its timers are pruned.
    fn resync_all(&mut self, now: Instant) -> Result<(), StoreError> {
        let tags: Vec<u64> = self.dialogs.keys().copied().collect();
        for tag in tags {
            self.handle_remote_change(now, &StoreKey::Dialog(tag))?;
        }
        let mut impus: Vec<Arc<str>> = self
            .subs
            .values()
            .filter_map(|sub| self.sessions.get(&sub.session))
            .map(|s| Arc::clone(&s.impu))
            .collect();
        impus.sort_unstable();
        impus.dedup();
        for impu in impus {
            self.remote_ue_change(now, &impu)?;
        }
        Ok(())
    }

    /// Another instance changed the record of UE `impu`: re-read it and NOTIFY what moved.
    fn remote_ue_change(&mut self, now: Instant, impu: &str) -> Result<(), StoreError> {
        let loaded = self.store.load_ue(impu)?;
        let known = self.ues.get(impu).map_or(0, |u| u.store_version);
        if loaded.as_ref().map_or(0, |(v, _)| *v) != known {
            self.apply_record(now, impu, loaded, true);
        }
        Ok(())
    }

    /// Reads the record of `impu` into local state when it moved.
    fn sync_ue(&mut self, now: Instant, impu: &str) -> Result<(), StoreError> {
        let known = self.ues.get(impu).map_or(0, |u| u.store_version);
        if let Some(loaded) = self.store.load_ue_if_changed(impu, known)? {
            self.apply_record(now, impu, Some(loaded), true);
        }
        Ok(())
    }

    /// Notes the local state of `impu` (plain copies: no string) before an operation; returns
    /// the store version it was read at (`0` when unknown here).
    fn take_undo(&mut self, impu: &str) -> u64 {
        let undo = &mut self.undo;
        undo.sessions.clear();
        undo.instances = None;
        let Some(ue) = self.ues.get(impu) else {
            undo.existed = false;
            return 0;
        };
        undo.existed = true;
        undo.store_version = ue.store_version;
        undo.last_version = ue.last_version;
        undo.sessions.extend(
            ue.sessions
                .iter()
                .filter_map(|id| self.sessions.get(id).map(|s| (*id, s.auth, s.version))),
        );
        ue.store_version
    }

    /// Takes back what an operation on `impu` changed locally (its write failed).
    fn restore(&mut self, now: Instant, impu: &str) {
        let mut undo = std::mem::take(&mut self.undo);
        let local = self
            .ues
            .get(impu)
            .map(|u| u.sessions.clone())
            .unwrap_or_default();
        for id in local {
            if !undo.sessions.iter().any(|(u, _, _)| *u == id) {
                self.replace_auth(now, id, Auth::Unauthorised, false);
            }
        }
        if !undo.existed {
            if self.ues.get(impu).is_some_and(|u| u.sessions.is_empty()) {
                self.ues.remove(impu);
            }
        } else {
            if !self.ues.contains_key(impu) {
                self.ues.insert(Arc::from(impu), Ue::default());
            }
            let Some(ue) = self.ues.get_mut(impu) else {
                return;
            };
            if let Some(instances) = undo.instances.take() {
                ue.registered = !instances.is_empty();
                ue.instances = instances;
            }
            ue.store_version = undo.store_version;
            ue.last_version = undo.last_version;
            let mut lost = false;
            for &(id, auth, version) in &undo.sessions {
                self.replace_auth(now, id, auth, false);
                match self.sessions.get_mut(&id) {
                    Some(s) => s.version = version,
                    None => lost = true,
                }
            }
            if lost && let Some(ue) = self.ues.get_mut(impu) {
                // A session the operation dropped cannot be rebuilt from the snapshot: the
                // next use of this UE reads its record again.
                ue.store_version = STALE;
            }
        }
        self.dirty.clear();
        self.undo = undo;
    }

    /// Makes the local state of `impu` what `loaded` says; with `notify`, dialogs held here
    /// get the states whose version moved past what they were last sent.
    fn apply_record(
        &mut self,
        now: Instant,
        impu: &str,
        loaded: Option<(u64, UeRecord)>,
        notify: bool,
    ) {
        let (version, record) = loaded.unwrap_or_default();
        if !self.ues.contains_key(impu) {
            if record.is_empty() || self.ues.len() >= self.config.max_ues {
                return;
            }
            self.ues.insert(Arc::from(impu), Ue::default());
        }
        if let Some(ue) = self.ues.get_mut(impu) {
            ue.store_version = version;
            ue.last_version = ue.last_version.max(record.last_version);
            ue.registered = !record.instances.is_empty();
            ue.instances = record.instances;
        }
        let local = self
            .ues
            .get(impu)
            .map(|u| u.sessions.clone())
            .unwrap_or_default();
        // A shareable UE now signed in by someone: a user it no longer lists was replaced.
        let taken_over = record.kind == UeKind::Shareable
            && record
                .users
                .iter()
                .any(|u| matches!(u.auth, Auth::Authorised { .. }));
        let mut seen = Vec::with_capacity(record.users.len());
        for user in record.users {
            let id = self.session_for(impu, &user.mcptt_id);
            seen.push(id);
            self.replace_auth(now, id, user.auth, false);
            if let Some(s) = self.sessions.get_mut(&id) {
                s.version = user.version;
            }
        }
        // Users the record no longer lists: another instance ended their state there and let
        // them go (it held no dialog of theirs). Dialogs held here learn it at the record's
        // last version (given out after anything they saw, so still increasing for them). The
        // record does not say how it ended, so the end is read from what is known here:
        // `replaced` when another user now holds a shareable UE, `signed-off` when the
        // publication known here was still live (it ended early: a sign-off), otherwise
        // `unauthorised` (it expired).
        let dropped: Vec<u64> = local.into_iter().filter(|id| !seen.contains(id)).collect();
        for &id in &dropped {
            let live = self
                .sessions
                .get(&id)
                .and_then(|s| s.auth.publication())
                .is_some_and(|p| p.expires_at > now);
            let end = if taken_over {
                Auth::Replaced
            } else if live {
                Auth::SignedOff
            } else {
                Auth::Unauthorised
            };
            self.replace_auth(now, id, end, false);
            if let Some(s) = self.sessions.get_mut(&id)
                && !s.subs.is_empty()
                && s.version < record.last_version
            {
                s.version = record.last_version;
            }
        }
        if notify {
            for id in seen.into_iter().chain(dropped) {
                self.notify_behind(now, id);
            }
        }
        self.dirty.remove(impu);
        if let Some(ue) = self.ues.get(impu)
            && ue.sessions.is_empty()
            && !ue.registered
        {
            self.ues.remove(impu);
        }
    }

    /// NOTIFYs the dialogs of session `id` that have not seen its current version.
    fn notify_behind(&mut self, now: Instant, id: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        // A dialog whose lease ran out here (this instance stalled, or its clock jumped) may
        // have been taken over by another instance, which then NOTIFYs it: renew the lease
        // first (a compare-and-set on the dialog record); on a conflict the dialog is
        // dropped here and this instance sends nothing, so the NOTIFY goes out once.
        let lapsed = |s: &Session, subs: &IdMap<Box<Subscription>>| {
            s.subs.iter().any(|sub| {
                subs.get(sub)
                    .is_some_and(|d| d.lease_expires <= now && d.notified_version != s.version)
            })
        };
        if lapsed(session, &self.subs) {
            let held: Vec<u64> = session.subs.iter().copied().collect();
            for sub in held {
                if self.subs.get(&sub).is_some_and(|d| d.lease_expires <= now) {
                    self.renew_lease(now, sub);
                }
            }
        }
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let version = session.version;
        let behind: Vec<u64> = session
            .subs
            .iter()
            .copied()
            .filter(|sub| {
                self.subs
                    .get(sub)
                    .is_some_and(|s| s.notified_version != version)
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        let state = self.snapshot(session);
        let body = state.encode();
        for sub in behind {
            self.notify(now, sub, &body, None, version, None);
        }
    }

    /// The store record of the local state of UE `ue` (`impu`), from the server's tables.
    fn ue_record(
        ue: Option<&Ue>,
        sessions: &IdMap<Session>,
        directory: &UeDirectory,
        impu: &str,
    ) -> UeRecord {
        let Some(ue) = ue else {
            return UeRecord::default();
        };
        // Exact capacity: `collect` over a `filter_map` would reserve room for four users,
        // which a store keeping the record as given (`MemoryStore`) would hold per UE.
        let mut users = Vec::with_capacity(ue.sessions.len());
        users.extend(
            ue.sessions
                .iter()
                .filter_map(|id| sessions.get(id))
                .map(|s| UserRecord {
                    mcptt_id: s.mcptt_id.clone(),
                    auth: s.auth,
                    version: s.version,
                }),
        );
        UeRecord {
            last_version: ue.last_version,
            kind: directory.kind(impu),
            instances: ue.instances.clone(),
            users,
        }
    }

    /// Writes the UEs the operation changed; stops at the first failure.
    fn commit(&mut self) -> Result<(), StoreError> {
        while self.dirty.len > 0 {
            self.dirty.len -= 1;
            let slot = self.dirty.len;
            // Borrowed out of the buffer (and put back) so the buffer keeps its capacity.
            let Some((impu, expected)) = self
                .dirty
                .entries
                .get_mut(slot)
                .map(|(i, v)| (std::mem::take(i), *v))
            else {
                break;
            };
            // One lookup: the record is built from the UE, which then takes the new version.
            let mut ue = self.ues.get_mut(impu.as_str());
            let record =
                Self::ue_record(ue.as_deref(), &self.sessions, &self.config.directory, &impu);
            let result = self.store.write_ue(&impu, expected, record);
            if let (Ok(v), Some(ue)) = (&result, ue.as_mut()) {
                ue.store_version = *v;
            }
            if let Some(e) = self.dirty.entries.get_mut(slot) {
                e.0 = impu;
            }
            if let Err(e) = result {
                self.dirty.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Runs `op` on the state of `impu` read from the store and writes the result: on a
    /// version conflict it reloads and runs `op` again, on a failure it restores what was
    /// read and takes back what `op` queued. NOTIFYs of the changes go out only after the
    /// write succeeded.
    fn transact<T>(
        &mut self,
        now: Instant,
        impu: &str,
        mut op: impl FnMut(&mut Self) -> T,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (transmits, events) = (self.transmit.len(), self.events.len());
            // The undo snapshot's lookup also gives the version known here; it is taken again
            // only when the store's record moved.
            let known = self.take_undo(impu);
            if let Some(loaded) = self.store.load_ue_if_changed(impu, known)? {
                self.apply_record(now, impu, Some(loaded), true);
                self.take_undo(impu);
            }
            let out = op(self);
            let Err(e) = self.commit() else {
                self.flush(now);
                return Ok(out);
            };
            self.transmit.truncate(transmits);
            self.events.truncate(events);
            self.pending.clear();
            self.restore(now, impu);
            if !matches!(e, StoreError::Conflict { .. }) || attempts >= MAX_STORE_ATTEMPTS {
                return Err(e);
            }
        }
    }

    /// Sends the NOTIFYs of the sessions changed by the operation just written.
    fn flush(&mut self, now: Instant) {
        let pending = std::mem::take(&mut self.pending);
        for &id in &pending {
            self.notify_behind(now, id);
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// The refusal for a store failure: 503 when unavailable, 500 after repeated conflicts,
    /// both with `Retry-After` (RFC 3261 §20.33).
    #[cold]
    #[inline(never)]
    fn store_refusal(&self, e: &StoreError) -> Refusal {
        let code = match e {
            StoreError::Unavailable(_) => 503,
            _ => 500,
        };
        Refusal::with(
            code,
            "Retry-After",
            self.config.store_retry_after.to_string(),
        )
    }

    /// Applies a registration change (from `mcptt-registration`'s events).
    ///
    /// When the UE's registered/not-registered state flips, every user on it gets a new state
    /// version and a NOTIFY (e.g. `full-access` → `limited` on deregistration).
    ///
    /// When the store is unavailable the change is kept and applied again at the next
    /// [`Server::handle_timeout`] after [`ServerConfig::store_retry_after`]
    /// ([`ServerEvent::StoreUnavailable`] says so); see
    /// [`Server::try_handle_registration`] to handle the failure yourself.
    pub fn handle_registration(&mut self, now: Instant, change: RegistrationChange) {
        if let Err(e) = self.try_handle_registration(now, &change) {
            self.store_failed(now, "registration change", &e);
            // One pending change per (UE, instance): the latest wins, so the list stays
            // bounded by the registrations while the store is away.
            self.retry
                .retain(|c| c.impu != change.impu || c.instance != change.instance);
            self.retry.push(change);
        }
    }

    /// As [`Server::handle_registration`], handing back a store failure (nothing changed).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], or [`StoreError::Conflict`] after repeated conflicts.
    pub fn try_handle_registration(
        &mut self,
        now: Instant,
        change: &RegistrationChange,
    ) -> Result<(), StoreError> {
        // (Borrowed from the change when it is already in canonical form, as the
        // registration view writes it.)
        let impu = identity(&change.impu);
        let result = self.transact(now, &impu, |this| this.registration(now, &impu, change));
        self.prune_timers();
        result
    }

    /// Runs request handler `op` as one store transaction on UE `impu` (when asserted).
    fn in_store(
        &mut self,
        now: Instant,
        impu: Option<&str>,
        op: impl FnMut(&mut Self) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let Some(impu) = impu else {
            let mut op = op;
            return op(self);
        };
        match self.transact(now, impu, op) {
            Ok(result) => result,
            Err(e) => {
                self.events.push_back(ServerEvent::StoreUnavailable {
                    what: "request",
                    reason: e.to_string(),
                });
                Err(self.store_refusal(&e))
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn store_failed(&mut self, now: Instant, what: &'static str, e: &StoreError) {
        self.events.push_back(ServerEvent::StoreUnavailable {
            what,
            reason: e.to_string(),
        });
        let at = now + secs(self.config.store_retry_after);
        if self.retry_at.is_none_or(|t| t > at) {
            self.retry_at = Some(at);
        }
    }

    fn registration(&mut self, now: Instant, impu: &str, change: &RegistrationChange) {
        if !self.ues.contains_key(impu) {
            if !change.registered || self.ues.len() >= self.config.max_ues {
                return;
            }
            self.ues.insert(Arc::from(impu), Ue::default());
        }
        let Some(ue) = self.ues.get_mut(impu) else {
            return;
        };
        let instance = change.instance.as_deref().unwrap_or_default();
        if self.undo.instances.is_none() {
            self.undo.instances = Some(ue.instances.clone());
        }
        let before = ue.instances.len();
        if change.registered {
            if !ue.instances.iter().any(|i| &**i == instance) {
                // (Collected straight into the shared slice: its length is known, so one
                // allocation, not a Vec's and then the slice's.)
                ue.instances = ue
                    .instances
                    .iter()
                    .cloned()
                    .chain(std::iter::once(Arc::from(instance)))
                    .collect();
            }
        } else if ue.instances.iter().any(|i| &**i == instance) {
            let instances: Vec<Arc<str>> = ue
                .instances
                .iter()
                .filter(|i| &***i != instance)
                .cloned()
                .collect();
            ue.instances = instances.into();
        }
        if ue.instances.len() != before {
            mark_dirty(&mut self.dirty, &self.ues, impu);
        }
        let Some(ue) = self.ues.get_mut(impu) else {
            return;
        };
        let registered = !ue.instances.is_empty();
        let flipped = registered != ue.registered;
        ue.registered = registered;
        let sessions = ue.sessions.clone();
        if !registered && sessions.is_empty() {
            self.ues.remove(impu);
            return;
        }
        if flipped {
            for id in sessions {
                self.changed(now, id);
            }
        }
    }

    /// Handles a parsed request (PUBLISH, SUBSCRIBE; others get 405). `now_unix` is the wall
    /// clock in seconds since the Unix epoch, for token `exp` checks.
    pub fn handle_request(&mut self, now: Instant, now_unix: u64, request: &Request) {
        self.request(now, now_unix, request);
        self.prune_timers();
    }

    /// The work of the public method of the same name, before its timers are pruned.
    fn request(&mut self, now: Instant, now_unix: u64, request: &Request) {
        // A SUBSCRIBE's dialog needs the tags and URIs of From and To; other requests are
        // answered by copying them.
        // The usual single plain `P-Asserted-Identity: <URI>`, read once: for the asserted
        // identity, and a SUBSCRIBE's `From` written as the same URI is not checked again.
        let pai = match request.method() {
            Method::Publish | Method::Subscribe => {
                single_plain_uri(request, KnownHeader::PAssertedIdentity)
            }
            _ => None,
        };
        let read = match request.method() {
            Method::Subscribe => Ids::read_known(
                request.headers(),
                self.plain_service_uri.as_deref(),
                pai.as_ref()
                    .and_then(|(uri, host)| host.is_some().then_some(*uri)),
            )
            .map(Some),
            _ => Ids::check(request.headers()).map(|_| None),
        };
        // Borrowed, not moved: `Ids` is large (its typed variants).
        let ids = match &read {
            Ok(ids) => ids.as_ref(),
            Err(what) => {
                let what = *what;
                // Too little of the message is readable to build a response; the transport
                // layer answers what it can.
                self.events
                    .push_back(ServerEvent::MalformedRequest { what });
                return;
            }
        };
        let result = match (request.method(), ids) {
            (Method::Publish, _) => {
                let impu = Self::asserted(request, pai);
                self.in_store(now, impu.as_deref(), |this| {
                    this.publish(now, now_unix, request, impu.as_deref())
                })
            }
            (Method::Subscribe, Some(ids)) => {
                let impu = Self::asserted(request, pai);
                self.in_store(now, impu.as_deref(), |this| {
                    this.subscribe(now, now_unix, request, ids, impu.as_deref())
                })
            }
            _ => Err(Refusal::with(405, "Allow", "PUBLISH, SUBSCRIBE".into())),
        };
        if let Err(refusal) = result {
            let mut answer = Answer::new_in(self.transmit.take(), request, refusal.code);
            if refusal.warning {
                answer = answer.header("Warning", &self.warning);
            }
            if let Some((name, value)) = &refusal.extra {
                answer = answer.header(name, value);
            }
            self.transmit.put(answer.finish());
        }
    }

    /// As [`Server::handle_request`], for one encoded request (read with
    /// `mcptt_sip::Message::parse`; prefer the typed method when the message is already parsed).
    pub fn handle_request_bytes(&mut self, now: Instant, now_unix: u64, request: &[u8]) {
        let bytes = self.rx.copy(request);
        // Matched here (as `sip::parse_request` does) by reference: the request is not moved.
        let parsed =
            mcptt_sip::Message::parse_with_storage(bytes, &self.sip_limits, &mut self.headers);
        match &parsed {
            Ok(mcptt_sip::Message::Request(r)) => self.handle_request(now, now_unix, r),
            Ok(mcptt_sip::Message::Response(_)) => {
                self.events.push_back(ServerEvent::MalformedRequest {
                    what: "a request, not a response",
                });
            }
            Err(_) => self.events.push_back(ServerEvent::MalformedRequest {
                what: "a well-formed SIP message",
            }),
        }
        if let Ok(message) = parsed {
            self.headers = message.into_storage();
        }
    }

    #[cold]
    #[inline(never)]
    fn fail(&mut self, impu: &str, reason: impl Into<String>) -> Refusal {
        self.events.push_back(ServerEvent::AuthorisationFailed {
            impu: impu.to_owned(),
            reason: reason.into(),
        });
        Refusal::forbidden()
    }

    /// The asserted identity (the first SIP URI of `P-Asserted-Identity`, else the first);
    /// `pai` is the request's [`single_plain_uri`] of `P-Asserted-Identity`.
    fn asserted<'r>(
        req: &'r Request,
        pai: Option<(&'r str, Option<std::ops::Range<usize>>)>,
    ) -> Option<Cow<'r, str>> {
        // The usual single `P-Asserted-Identity: <URI>`: the URI is parsed alone (as the
        // name-addr parse would parse it), or not at all in its plain form; any other form
        // goes through the typed list.
        if let Some((inner, plain_host)) = pai {
            if let Some(host) = plain_host {
                return Some(plain_sip_identity(inner, host));
            }
            return mcptt_sip::Uri::parse(inner)
                .ok()
                .map(|u| Cow::Owned(identity(u.as_str()).into_owned()));
        }
        let pai = req.p_asserted_identity().ok()?;
        pai.iter()
            .find(|a| {
                let scheme = a.uri().scheme_str();
                scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
            })
            .or_else(|| pai.first())
            .map(|a| Cow::Owned(identity(a.uri().as_str()).into_owned()))
    }

    /// The request's PUBLISH/SUBSCRIBE body (an mcptt-info document, for SUBSCRIBE).
    /// `body` is the request's (`req.body()`, held by the caller: the parts borrow from it).
    fn body<'b>(&self, req: &Request, body: &'b Bytes) -> Result<PublishParts<'b>, Refusal> {
        if body.is_empty() {
            return Ok(PublishParts::default());
        }
        let limits = &self.config.xml_limits;
        let parsed = match req
            .headers()
            .get_known(KnownHeader::ContentType)
            .and_then(simple_multipart_boundary)
        {
            // The usual `multipart/mixed;boundary=B`, read without the typed parse.
            Some(boundary) => PublishBody::parse_multipart(boundary, body, limits),
            None => {
                let ct = req.content_type().map_err(|_| Refusal::code(415))?;
                PublishBody::parse_typed(ct.as_ref(), body, limits)
            }
        };
        parsed.map_err(|e| Refusal::code(e.status_code().unwrap_or(400)))
    }

    /// The URI of the first `Contact` (`Err` for a malformed one; `None` when there is none or
    /// it is `*`).
    fn first_contact(req: &Request) -> Result<Option<Cow<'_, str>>, ()> {
        // The usual single `Contact: <URI>`: the URI is parsed alone (as the name-addr parse
        // would parse it), or not at all in its plain form; any other form goes through the
        // typed list.
        if let Some(Single {
            value,
            uri: inner,
            plain_sip,
            ..
        }) = single_plain(req, KnownHeader::Contact)
        {
            if plain_sip {
                return Ok(Some(Cow::Borrowed(inner)));
            }
            // A URI is kept as written (`Uri::as_str` is its text): `inner` once it parses,
            // parsed from a zero-copy slice of the message when the header's bytes are the
            // value's.
            let parsed = match req.headers().get_bytes("Contact") {
                Some(b) if b.len() >= 2 && b == value.as_bytes() => {
                    mcptt_sip::Uri::from_bytes(b.slice(1..b.len() - 1)).map(drop)
                }
                _ => mcptt_sip::Uri::parse(inner).map(drop),
            };
            return parsed.map(|()| Some(Cow::Borrowed(inner))).map_err(|_| ());
        }
        let contacts = req.contacts().map_err(|_| ())?;
        Ok(contacts
            .first()
            .and_then(|c| c.uri())
            .map(|u| Cow::Owned(u.as_str().to_owned())))
    }

    /// The route set of a new dialog: the `Record-Route` entries as written, in order (RFC 3261
    /// §12.1.1); a malformed one is a bad request.
    ///
    /// A single route (one proxy on the path) that is the last one seen shares its copy:
    /// subscriptions through the same SIP core hold one route set between them.
    fn route_set(&mut self, req: &Request) -> Result<Arc<[String]>, Refusal> {
        // A single plain `Record-Route: <URI>`: its URI checked alone, or not at all when it
        // is the one taken last (the same text, found valid then).
        let single = single_value(req, KnownHeader::RecordRoute);
        if let (Some(value), Some(last)) = (single, &self.last_route)
            && matches!(&**last, [only] if only == value)
        {
            return Ok(Arc::clone(last));
        }
        if let Some(Single {
            value,
            uri: inner,
            plain_sip,
            ..
        }) = single.and_then(plain_value)
        {
            if !plain_sip && mcptt_sip::Uri::parse(inner).is_err() {
                return Err(Refusal::code(400));
            }
            let route: Arc<[String]> = Arc::from([value.to_owned()]);
            self.last_route = Some(Arc::clone(&route));
            return Ok(route);
        }
        let routes = req.record_route().map_err(|_| Refusal::code(400))?;
        Ok(routes.iter().map(|r| r.as_str().to_owned()).collect())
    }

    /// The remote target of a new dialog: the first `Contact` URI (RFC 3261 §12.1.1), required.
    fn contact(req: &Request) -> Result<Cow<'_, str>, Refusal> {
        match Self::first_contact(req) {
            Ok(Some(c)) => Ok(c),
            _ => Err(Refusal::code(400)),
        }
    }

    /// `Expires`, a malformed value being a bad request.
    fn expires(req: &Request) -> Result<Option<u32>, Refusal> {
        // The usual `Expires: 3600`: up to nine digits (below 2^32), read without the typed
        // parse, which gives the same for them.
        if let Some(v) = req.headers().get_known(KnownHeader::Expires)
            && (1..=9).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_digit())
        {
            let n = v.bytes().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            return Ok(Some(n));
        }
        req.expires().map_err(|_| Refusal::code(400))
    }

    fn validate(
        &mut self,
        impu: &str,
        token: &str,
        now_unix: u64,
        client_id: Option<&str>,
    ) -> Result<Grant, Refusal> {
        // The checks run on the borrowed grant; the MCPTT ID is the copy a session of the
        // user on this UE holds, or else copied once.
        let mut checked = None;
        let (ues, sessions) = (&self.ues, &self.sessions);
        let result = self.validator.validate_with(token, now_unix, &mut |g| {
            checked = Some(if g.expires_at <= now_unix {
                Err("access token expired")
            } else if let (Some(body), Some(claim)) = (client_id, g.client_id)
                && body != claim
            {
                Err("mcptt-client-id does not match the token's client_id")
            } else {
                let known = ues.get(impu).and_then(|ue| {
                    ue.sessions
                        .iter()
                        .filter_map(|id| sessions.get(id))
                        .find(|s| *s.mcptt_id == *g.mcptt_id)
                });
                Ok(Grant {
                    mcptt_id: known
                        .map_or_else(|| Arc::from(g.mcptt_id), |s| Arc::clone(&s.mcptt_id)),
                    expires_at: g.expires_at,
                })
            });
        });
        match (result, checked) {
            (Err(e), _) => Err(self.fail(impu, format!("access token rejected: {e}"))),
            (Ok(()), Some(Ok(grant))) => Ok(grant),
            (Ok(()), Some(Err(reason))) => Err(self.fail(impu, reason)),
            (Ok(()), None) => Err(self.fail(impu, "access token rejected: no grant")),
        }
    }

    /// Checks the `Event` package (RFC 6665 §8.2.3: 489 for another one); returns the event's
    /// `id` parameter.
    fn event_package(req: &Request, expected: &'static str) -> Result<Option<String>, Refusal> {
        // The usual `Event: <package>` without parameters (what the typed parse gives for it).
        if req
            .headers()
            .get_known(KnownHeader::Event)
            .is_some_and(|e| e == expected || e.eq_ignore_ascii_case(expected))
        {
            return Ok(None);
        }
        match req.event() {
            Ok(Some(event)) if event.package().eq_ignore_ascii_case(expected) => {
                Ok(event.id().map(str::to_owned))
            }
            Ok(_) => Err(Refusal::with(489, "Allow-Events", expected.into())),
            Err(_) => Err(Refusal::code(400)),
        }
    }

    // ----- PUBLISH (RFC 3903 §6) -----

    fn publish(
        &mut self,
        now: Instant,
        now_unix: u64,
        req: &Request,
        asserted: Option<&str>,
    ) -> Result<(), Refusal> {
        Self::event_package(req, POC_SETTINGS_EVENT)?;
        let body = req.body();
        let PublishParts { info, settings } = self.body(req, &body)?;
        let Some(impu) = asserted else {
            return Err(self.fail("", "no P-Asserted-Identity"));
        };
        let expires = Self::expires(req)?.unwrap_or(self.config.max_publish_expires);
        if expires != 0 && expires < self.config.min_publish_expires {
            return Err(Refusal::with(
                423,
                "Min-Expires",
                self.config.min_publish_expires.to_string(),
            ));
        }
        let expires = expires.min(self.config.max_publish_expires);
        let (token, client_id) = info.as_ref().map_or((None, None), |i| {
            (i.access_token.as_deref(), i.client_id.as_deref())
        });
        let if_match = req.sip_if_match().map_err(|_| Refusal::code(400))?;
        let signed_in = match if_match {
            Some(etag) => {
                self.publish_refresh(now, now_unix, req, impu, etag, expires, token, client_id)
            }
            None => {
                if expires == 0 {
                    return Err(Refusal::code(400));
                }
                let Some(token) = token else {
                    return Err(self.fail(impu, "initial PUBLISH without an access token"));
                };
                self.publish_initial(now, now_unix, req, impu, token, client_id, expires)
            }
        }?;
        if let (Some(settings), true) = (settings, expires != 0) {
            let (impu, mcptt_id) = signed_in;
            self.events.push_back(ServerEvent::SettingsPublished {
                mcptt_id: mcptt_id.into(),
                impu: impu.into(),
                settings,
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_initial(
        &mut self,
        now: Instant,
        now_unix: u64,
        req: &Request,
        impu: &str,
        token: &str,
        client_id: Option<&str>,
        expires: u32,
    ) -> Result<SessionIds, Refusal> {
        let grant = self.validate(impu, token, now_unix, client_id)?;
        // One lookup: registered, the users on the UE and its key (for a new session).
        let (key, sessions) = match self.ues.get_key_value(impu) {
            Some((k, u)) if u.registered => (Arc::clone(k), u.sessions.clone()),
            _ => return Err(self.fail(impu, "P-Asserted-Identity is not a registered UE")),
        };
        let kind = self.config.directory.kind(impu);
        // Other users signed in on this UE (with a live publication).
        let others: Vec<u64> = sessions
            .iter()
            .copied()
            .filter(|id| {
                self.sessions.get(id).is_some_and(|s| {
                    *s.mcptt_id != *grant.mcptt_id && s.auth.publication().is_some()
                })
            })
            .collect();
        match kind {
            UeKind::Personal if !others.is_empty() => {
                return Err(self.fail(impu, "personal UE already in use by another user"));
            }
            UeKind::Gateway if others.len() >= self.config.max_users_per_gateway => {
                return Err(self.fail(impu, "gateway UE user limit reached"));
            }
            _ => {}
        }
        let replaced = if kind == UeKind::Shareable {
            others
        } else {
            Vec::new()
        };
        // The entity-tag is drawn before the session is found or made (which neither draws
        // nor indexes one), so the lookup finding the session also tells the state change.
        let etag = self.fresh_etag();
        let publication = Publication {
            etag,
            expires_at: now + secs(expires),
        };
        let token_deadline = now + secs64(grant.expires_at.saturating_sub(now_unix));
        let next = Auth::Authorised {
            publication,
            token_deadline,
            token_exp: grant.expires_at,
        };
        // The user's session on this UE (as `session_for` finds it), else a new one. A new
        // sign-in of the same user with the same token expiry is not a state change.
        let found = sessions.iter().find_map(|id| {
            self.sessions
                .get(id)
                .filter(|s| *s.mcptt_id == *grant.mcptt_id)
                .map(|s| {
                    let changes = s.version == 0
                        || s.auth.public() != next.public()
                        || s.auth.token_exp() != next.token_exp();
                    (*id, changes)
                })
        });
        // A new session has version 0: a state change. It joins the UE's list of sessions
        // in the UE lookup of that change (`replace_auth_ids` below); nothing before reads
        // the list for it.
        let (id, changes_state, join) = match found {
            Some((id, changes)) => (id, changes, false),
            None => (self.unlisted_session(key, grant.mcptt_id), true, true),
        };
        // The response goes out before the NOTIFYs it causes.
        self.respond_publish(req, etag, expires);
        for other in replaced {
            self.set_auth(now, other, Auth::Replaced);
        }
        Ok(self.replace_auth_ids(now, id, next, changes_state, join))
    }

    /// [`Self::replace_auth`], then [`Self::session_ids`] (from the same lookup when the
    /// session stays); with `join`, the session is first added to its UE's list.
    fn replace_auth_ids(
        &mut self,
        now: Instant,
        id: u64,
        next: Auth,
        notify: bool,
        join: bool,
    ) -> SessionIds {
        match self.replace_auth_then(now, id, next, notify, join, |s| {
            (Arc::clone(&s.impu), Arc::clone(&s.mcptt_id))
        }) {
            Some(ids) => ids,
            None => self.session_ids(id),
        }
    }

    /// The UE and user of session `id` (shared text; empty for an unknown session).
    fn session_ids(&self, id: u64) -> SessionIds {
        match self.sessions.get(&id) {
            Some(s) => (Arc::clone(&s.impu), Arc::clone(&s.mcptt_id)),
            None => (Arc::from(""), Arc::from("")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_refresh(
        &mut self,
        now: Instant,
        now_unix: u64,
        req: &Request,
        impu: &str,
        etag: &str,
        expires: u32,
        token: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<SessionIds, Refusal> {
        let Some(&id) = tag_value(etag).and_then(|e| self.etags.get(&e)) else {
            return Err(Refusal::code(412));
        };
        let Some(session) = self.sessions.get(&id) else {
            return Err(Refusal::code(412));
        };
        if &*session.impu != impu {
            // Another UE's entity-tag: as if unknown (RFC 3903 §6 step 3).
            return Err(Refusal::code(412));
        }
        let mcptt_id = session.mcptt_id.clone();
        let current = session.auth;
        if expires == 0 {
            let bytes = Answer::new_in(self.transmit.take(), req, 200)
                .header("SIP-ETag", etag)
                .header("Expires", "0")
                .finish();
            self.transmit.put(bytes);
            self.set_auth(now, id, Auth::SignedOff);
            return Ok(self.session_ids(id));
        }
        let new_etag = self.fresh_etag();
        let publication = Publication {
            etag: new_etag,
            expires_at: now + secs(expires),
        };
        let next = match token {
            Some(token) => {
                let grant = self.validate(impu, token, now_unix, client_id)?;
                if *grant.mcptt_id != *mcptt_id {
                    return Err(self.fail(impu, "refresh token names another MCPTT ID"));
                }
                Auth::Authorised {
                    publication,
                    token_deadline: now + secs64(grant.expires_at.saturating_sub(now_unix)),
                    token_exp: grant.expires_at,
                }
            }
            None => match current {
                Auth::Authorised {
                    token_deadline,
                    token_exp,
                    ..
                } => Auth::Authorised {
                    publication,
                    token_deadline,
                    token_exp,
                },
                Auth::Expired { token_exp, .. } => Auth::Expired {
                    publication,
                    token_exp,
                },
                _ => return Err(Refusal::code(412)),
            },
        };
        let changes_state =
            next.public() != current.public() || next.token_exp() != current.token_exp();
        self.respond_publish(req, new_etag, expires);
        Ok(self.replace_auth_ids(now, id, next, changes_state, false))
    }

    fn respond_publish(&mut self, req: &Request, etag: u64, expires: u32) {
        let bytes = Answer::new_in(self.transmit.take(), req, 200)
            .header_hex16("SIP-ETag: ", etag)
            .header_num("Expires: ", expires.into())
            .finish();
        self.transmit.put(bytes);
    }

    fn fresh_etag(&mut self) -> u64 {
        loop {
            let etag = self.rng.next_u64();
            if !self.etags.contains_key(&etag) {
                return etag;
            }
        }
    }

    fn session_for(&mut self, impu: &str, mcptt_id: &str) -> u64 {
        // One lookup when the session exists; the session shares the UE's key.
        let impu = match self.ues.get_key_value(impu) {
            Some((key, ue)) => {
                if let Some(id) = ue.sessions.iter().find(|id| {
                    self.sessions
                        .get(id)
                        .is_some_and(|s| &*s.mcptt_id == mcptt_id)
                }) {
                    return *id;
                }
                Arc::clone(key)
            }
            None => {
                let key: Arc<str> = Arc::from(impu);
                self.ues.insert(Arc::clone(&key), Ue::default());
                key
            }
        };
        self.new_session(impu, mcptt_id)
    }

    /// A new session of `mcptt_id` on UE `impu` (its key; the UE exists).
    fn new_session(&mut self, impu: Arc<str>, mcptt_id: &str) -> u64 {
        if let Some(ue) = self.ues.get_mut(&*impu) {
            ue.sessions.push(self.next_id);
        }
        self.unlisted_session(impu, Arc::from(mcptt_id))
    }

    /// [`Self::new_session`] without adding it to the UE's list of sessions (the caller does).
    fn unlisted_session(&mut self, impu: Arc<str>, mcptt_id: Arc<str>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(
            id,
            Session {
                impu,
                mcptt_id,
                auth: Auth::Unauthorised,
                version: 0,
                subs: IdList::Empty,
            },
        );
        id
    }

    /// Moves a session to `next`, always as a state change (new version + NOTIFYs).
    fn set_auth(&mut self, now: Instant, id: u64, next: Auth) {
        self.replace_auth(now, id, next, true);
    }

    /// Replaces a session's authorisation, keeping timers and the entity-tag index in step.
    fn replace_auth(&mut self, now: Instant, id: u64, next: Auth, notify: bool) {
        self.replace_auth_then(now, id, next, notify, false, |_| ());
    }

    /// [`Self::replace_auth`], then `kept` on the session when it is there and stays (not
    /// collected); `None` otherwise. With `join`, the session (made by
    /// [`Self::unlisted_session`]) is first added to its UE's list of sessions.
    fn replace_auth_then<T>(
        &mut self,
        now: Instant,
        id: u64,
        next: Auth,
        notify: bool,
        join: bool,
        kept: impl FnOnce(&Session) -> T,
    ) -> Option<T> {
        let session = self.sessions.get_mut(&id)?;
        // With `notify`, `changed_in` adds it from its own lookup of the UE.
        if join
            && !notify
            && let Some(ue) = self.ues.get_mut(&session.impu)
        {
            ue.sessions.push(id);
        }
        let old = std::mem::replace(&mut session.auth, next);
        // With `notify`, `changed` below marks the UE (from its own lookup of it).
        if !notify && old != session.auth {
            mark_dirty(&mut self.dirty, &self.ues, &session.impu);
        }
        if let Some(p) = old.publication() {
            self.etags.remove(&p.etag);
        }
        // Timers of the old deadlines stay queued and are skipped when they come up
        // ([`Self::timer_live`]); a deadline that did not change keeps its queued timer.
        if let Some(p) = session.auth.publication() {
            self.etags.insert(p.etag, id);
            if old.publication().map(|o| o.expires_at) != Some(p.expires_at) {
                self.timers.insert(p.expires_at, Timer::Publication(id));
            }
        }
        if let Some(deadline) = session.auth.token_deadline()
            && old.token_deadline() != Some(deadline)
        {
            self.timers.insert(deadline, Timer::Token(id));
        }
        if notify {
            // The session found above, not looked up again.
            changed_in(
                id,
                session,
                join,
                &mut self.ues,
                &mut self.dirty,
                &self.config.directory,
                &mut self.pending,
                &mut self.events,
            );
        }
        // NOTIFYs go out once the change is stored ([`Self::flush`]).
        let _ = now;
        // `collect` would look the session up again only to keep it: it is checked here.
        if session.auth.publication().is_none() && session.subs.is_empty() {
            self.collect(id);
            return None;
        }
        Some(kept(session))
    }

    /// Drops a session nobody needs: no publication and no subscription.
    fn collect(&mut self, id: u64) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        if s.auth.publication().is_some() || !s.subs.is_empty() {
            return;
        }
        let impu = s.impu.clone();
        self.sessions.remove(&id);
        if let Some(ue) = self.ues.get_mut(&impu) {
            ue.sessions.retain(|x| *x != id);
            if ue.sessions.is_empty() && !ue.registered {
                self.ues.remove(&impu);
            }
        }
    }

    /// The service state of a session, borrowed from the server's tables.
    fn state_ref<'a>(&'a self, s: &'a Session) -> StateRef<'a> {
        state_of(s, self.ues.get(&s.impu), &self.config.directory)
    }

    fn snapshot(&self, s: &Session) -> ServiceState {
        snapshot_of(s, self.ues.get(&s.impu), &self.config.directory)
    }

    /// Sends a NOTIFY with the current state of `session` on subscription `id`.
    fn notify_state(&mut self, now: Instant, id: u64, session: u64, final_state: Option<&str>) {
        // The body is written into a buffer the server keeps for it, then into the NOTIFY.
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        if let Some(s) = self.sessions.get(&session) {
            let version = s.version;
            self.state_ref(s).write_json(&mut body);
            self.notify(now, id, &body, final_state, version, None);
        }
        self.scratch = body;
    }

    /// A state change of session `id`: new version, event, NOTIFY to every subscriber.
    fn changed(&mut self, now: Instant, id: u64) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        changed_in(
            id,
            session,
            false,
            &mut self.ues,
            &mut self.dirty,
            &self.config.directory,
            &mut self.pending,
            &mut self.events,
        );
        // NOTIFYs go out once the change is stored ([`Self::flush`]).
        let _ = now;
    }

    // ----- SUBSCRIBE (RFC 6665 §4.2) -----

    fn subscribe(
        &mut self,
        now: Instant,
        now_unix: u64,
        req: &Request,
        ids: &Ids<'_>,
        asserted: Option<&str>,
    ) -> Result<(), Refusal> {
        let event_id = Self::event_package(req, SERVICE_STATE_EVENT)?;
        let expires = Self::expires(req)?.unwrap_or(self.config.max_subscribe_expires);
        if expires != 0 && expires < self.config.min_subscribe_expires {
            return Err(Refusal::with(
                423,
                "Min-Expires",
                self.config.min_subscribe_expires.to_string(),
            ));
        }
        let expires = expires.min(self.config.max_subscribe_expires);
        if let Some(tag) = ids.to.tag() {
            return self.resubscribe(now, req, ids, tag, expires);
        }
        let Some(impu) = asserted else {
            return Err(self.fail("", "no P-Asserted-Identity"));
        };
        if ids.from.tag().is_none() {
            return Err(Refusal::code(400));
        }
        let contact = Self::contact(req)?;
        let body = req.body();
        let info = self.body(req, &body)?.info;
        let (token, client_id) = info.as_ref().map_or((None, None), |i| {
            (i.access_token.as_deref(), i.client_id.as_deref())
        });
        let kind = self.config.directory.kind(impu);
        // The signed-in user's session, when the SUBSCRIBE names no user: the session
        // `session_for` would find for it (one per user on a UE).
        let mut known_session = None;
        let mut ue_view: Option<(bool, Option<Arc<str>>)> = None;
        let mcptt_id = match token {
            Some(token) => self.validate(impu, token, now_unix, client_id)?.mcptt_id,
            None if kind == UeKind::Gateway => {
                return Err(self.fail(impu, "SUBSCRIBE from a gateway UE does not name the user"));
            }
            None => {
                let signed_in = self.ues.get(impu).and_then(|ue| {
                    ue.sessions
                        .iter()
                        .filter_map(|id| self.sessions.get(id).map(|s| (*id, s)))
                        .find(|(_, s)| s.auth.publication().is_some())
                        .map(|(id, s)| {
                            let limits = self.limits_of(s);
                            // What the first NOTIFY's state reads of the UE, which the
                            // SUBSCRIBE does not change.
                            let view = (ue.registered, first_instance(ue).cloned());
                            (id, Arc::clone(&s.mcptt_id), limits, view)
                        })
                });
                match signed_in {
                    Some((id, m, limits, view)) => {
                        known_session = Some((id, limits));
                        ue_view = Some(view);
                        m
                    }
                    None => {
                        return Err(self.fail(impu, "SUBSCRIBE from a UE with no signed-in user"));
                    }
                }
            }
        };
        // Only the user's own state (DESIGN.md §3): a Request-URI naming an MCPTT ID must name this one.
        // A Request-URI written as the configured service URI is the service (no normalising).
        let raw_target = req.uri().as_str();
        let target = if raw_target == self.config.service_uri {
            Cow::Borrowed(self.service_identity.as_str())
        } else {
            identity(raw_target)
        };
        if target != self.service_identity && target != identity(&mcptt_id) {
            return Err(self.fail(
                impu,
                format!("SUBSCRIBE for another user's state ({target})"),
            ));
        }
        let sub_req = SubscribeRequest {
            record_route: self.route_set(req)?,
            ids,
            event_id,
        };
        if expires == 0 {
            // A fetch (RFC 6665 §4.4.3): answer and send one terminated NOTIFY without keeping state.
            self.fetch(now, req, &sub_req, impu, &mcptt_id, &contact);
            return Ok(());
        }
        if self.ues.len() >= self.config.max_ues && !self.ues.contains_key(impu) {
            return Err(Refusal::code(503));
        }
        // The subscription limit and whether the user is new on this UE, from the lookup
        // that found the session (nothing since changed it; the entity-tag draw below leaves
        // it as it is).
        let (session, (too_many, fresh)) = match known_session {
            Some(known) => known,
            None => {
                let id = self.session_for(impu, &mcptt_id);
                let limits = self
                    .sessions
                    .get(&id)
                    .map_or((false, false), |s| self.limits_of(s));
                (id, limits)
            }
        };
        if too_many {
            self.collect(session);
            return Err(self.fail(impu, "too many subscriptions for this user on this UE"));
        }
        let our_tag = loop {
            let t = self.rng.next_u64();
            if !self.dialogs.contains_key(&t) {
                break t;
            }
        };
        // A user new on this UE gets its first state version, stored before the dialog so
        // that other instances count on from it.
        if fresh && let Some(s) = self.sessions.get_mut(&session) {
            bump_version(&mut self.ues, s);
            mark_dirty(&mut self.dirty, &self.ues, impu);
            if let Err(e) = self.commit() {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.version = 0;
                }
                self.collect(session);
                return Err(self.store_refusal(&e));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        // One lookup of the session for its version, identity, the record, the new dialog
        // and the state its first NOTIFY carries (only the server's other tables are touched
        // in between).
        let found = self.sessions.get_mut(&session);
        // The session's own text (it shares the UE's key), for the event below: nothing
        // until then changes the session's identities.
        let (event_impu, event_mcptt_id) = match found.as_deref() {
            Some(s) => (Arc::clone(&s.impu), Arc::clone(&s.mcptt_id)),
            None => (Arc::from(impu), Arc::clone(&mcptt_id)),
        };
        let mut sub = Subscription::new(
            &sub_req,
            session,
            our_tag,
            &contact,
            now + secs(expires),
            &self.service_uri,
            found.as_deref().map(|s| &s.impu),
        );
        sub.lease_expires = now + self.config.dialog_lease;
        // The record as it is after the first NOTIFY below.
        sub.local_cseq = 1;
        sub.notified_version = found.as_deref().map_or(0, |s| s.version);
        let record = match found.as_deref() {
            Some(s) => sub.record(self.config.instance_id, &s.impu, &s.mcptt_id),
            None => sub.record(self.config.instance_id, &Arc::from(impu), &mcptt_id),
        };
        sub.local_cseq = 0;
        match self.store.write_dialog(our_tag, 0, Some(record)) {
            Ok(v) => sub.store_version = v,
            Err(e) => {
                self.collect(session);
                return Err(self.store_refusal(&e));
            }
        }
        self.timers.insert(sub.expires_at, Timer::Subscription(id));
        // As `arm_leases` (on the fields: the session stays borrowed).
        self.timers.arm_once(
            &mut self.leases_at,
            now + self.config.dialog_lease / 2,
            Timer::Leases,
        );
        let call_id = Arc::clone(&sub.call_id);
        self.subs.insert(id, Box::new(sub));
        self.dialogs.insert(our_tag, id);
        // The new dialog, and the state its first NOTIFY (sent after the 200 below, as
        // `notify_state` would) carries.
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        let first = match found {
            Some(s) => {
                s.subs.push(id);
                let directory = &self.config.directory;
                match &ue_view {
                    Some((registered, instance)) => {
                        state_with(s, *registered, instance.as_deref(), directory)
                    }
                    None => state_of(s, self.ues.get(&s.impu), directory),
                }
                .write_json(&mut body);
                Some(s.version)
            }
            None => None,
        };
        // RFC 3261 §12.1.1: the 2xx to a dialog-creating request copies the Record-Route
        // (`Response::from_request` does).
        let bytes = Answer::with_to_tag_in(
            self.transmit.take(),
            req,
            200,
            &sub_req.ids.to,
            Hex16::new(our_tag).as_str(),
        )
        .header_num("Expires: ", expires.into())
        .line(&self.contact_line)
        .finish();
        self.transmit.put(bytes);
        self.events.push_back(ServerEvent::SubscriptionCreated {
            mcptt_id: event_mcptt_id.into(),
            impu: event_impu.into(),
            call_id: call_id.into(),
        });
        if let Some(version) = first {
            // Its expiry is `expires` seconds from `now`: what the NOTIFY says, not read again.
            self.notify(now, id, &body, None, version, Some(u64::from(expires)));
        }
        self.scratch = body;
        Ok(())
    }

    /// Whether session `s` holds as many subscriptions as a user may on a UE, and whether it
    /// is new (version 0).
    fn limits_of(&self, s: &Session) -> (bool, bool) {
        (
            s.subs.len() >= self.config.max_subscriptions_per_user_ue,
            s.version == 0,
        )
    }

    fn fetch(
        &mut self,
        now: Instant,
        req: &Request,
        sub_req: &SubscribeRequest<'_, '_>,
        impu: &str,
        mcptt_id: &str,
        contact: &str,
    ) {
        let our_tag = self.rng.next_u64();
        // RFC 3261 §12.1.1: the 2xx copies the Record-Route (`Response::from_request` does).
        let bytes = Answer::with_to_tag_in(
            self.transmit.take(),
            req,
            200,
            &sub_req.ids.to,
            Hex16::new(our_tag).as_str(),
        )
        .header("Expires", "0")
        .line(&self.contact_line)
        .finish();
        self.transmit.put(bytes);
        let state = self
            .state(impu, mcptt_id)
            .unwrap_or_else(|| self.detached(impu, mcptt_id));
        let sub = Subscription::new(sub_req, 0, our_tag, contact, now, &self.service_uri, None);
        let branch = self.rng.next_u64();
        let body = state.encode();
        let mut bytes = self.transmit.take();
        write_notify(
            &mut bytes,
            &self.notify_text,
            branch,
            &sub,
            0,
            Some("terminated"),
            &body,
        );
        self.transmit.put(bytes);
    }

    /// The state of a user the server holds nothing for (version 0).
    fn detached(&self, impu: &str, mcptt_id: &str) -> ServiceState {
        let registered = self.ues.get(impu).is_some_and(|u| u.registered);
        let registration = if registered {
            RegistrationState::Registered
        } else {
            RegistrationState::NotRegistered
        };
        ServiceState {
            version: 0,
            mcptt_id: mcptt_id.into(),
            impu: impu.into(),
            instance: None,
            ue_kind: self.config.directory.kind(impu),
            registration,
            authorisation: AuthorisationState::Unauthorised,
            state: CombinedState::of(registration, AuthorisationState::Unauthorised),
            token_expires: None,
        }
    }

    fn resubscribe(
        &mut self,
        now: Instant,
        req: &Request,
        ids: &Ids<'_>,
        tag: &str,
        expires: u32,
    ) -> Result<(), Refusal> {
        let contact = Self::first_contact(req).map_err(|()| Refusal::code(400))?;
        let Some(our_tag) = tag_value(tag) else {
            return Err(Refusal::code(481));
        };
        let id = match self.dialogs.get(&our_tag) {
            Some(&id) => id,
            // A dialog another instance holds: the subscriber's refresh landed here, so this
            // instance takes it over (RFC 6665 dialogs live in the shared store).
            None => match self.store.load_dialog(our_tag) {
                Ok(Some((version, record))) => match self.adopt(now, our_tag, version, record) {
                    Ok(Some(id)) => id,
                    Ok(None) => return Err(Refusal::code(481)),
                    Err(e) => return Err(self.store_refusal(&e)),
                },
                Ok(None) => return Err(Refusal::code(481)),
                Err(e) => return Err(self.store_refusal(&e)),
            },
        };
        let Some(sub) = self.subs.get(&id) else {
            return Err(Refusal::code(481));
        };
        if *sub.call_id != *ids.call_id || ids.from.tag() != Some(&*sub.their_tag) {
            return Err(Refusal::code(481));
        }
        if ids.cseq.seq <= sub.remote_cseq {
            return Err(Refusal::code(500));
        }
        // The refreshed dialog is stored before it is answered.
        if expires != 0 {
            let (impu, mcptt_id) = self
                .sessions
                .get(&sub.session)
                .map(|s| (Arc::clone(&s.impu), Arc::clone(&s.mcptt_id)))
                .unwrap_or_else(|| (Arc::from(""), Arc::from("")));
            let mut record = sub.record(self.config.instance_id, &impu, &mcptt_id);
            record.remote_cseq = ids.cseq.seq;
            if let Some(c) = &contact {
                record.remote_target = Arc::from(&**c);
            }
            record.expires_at = now + secs(expires);
            record.lease_expires = now + self.config.dialog_lease;
            match self
                .store
                .write_dialog(our_tag, sub.store_version, Some(record))
            {
                Ok(v) => self.renewed(now, id, v),
                Err(StoreError::Conflict { .. }) => {
                    self.drop_subscription(id);
                    return Err(Refusal::code(481));
                }
                Err(e) => return Err(self.store_refusal(&e)),
            }
        }
        let Some(sub) = self.subs.get_mut(&id) else {
            return Err(Refusal::code(481));
        };
        sub.remote_cseq = ids.cseq.seq;
        if let Some(c) = contact {
            sub.remote_target = Arc::from(c);
        }
        let old_expiry = sub.expires_at;
        let session = sub.session;
        if expires != 0 {
            sub.expires_at = now + secs(expires);
            if sub.expires_at != old_expiry {
                self.timers.insert(sub.expires_at, Timer::Subscription(id));
            }
        }
        let bytes = Answer::new_in(self.transmit.take(), req, 200)
            .header_num("Expires: ", expires.into())
            .line(&self.contact_line)
            .finish();
        self.transmit.put(bytes);
        if expires == 0 {
            self.terminate(now, id, TerminationReason::Unsubscribed, Some("terminated"));
            return Ok(());
        }
        // RFC 6665 §4.2.1.2: a NOTIFY follows every accepted refresh.
        self.notify_state(now, id, session, None);
        Ok(())
    }

    /// Sends a NOTIFY with `body` on subscription `id` (`final_state` = `terminated;…` for the
    /// last one). `expires_in`: the seconds left until the subscription expires, when the
    /// caller knows them (else read from its expiry and `now`).
    fn notify(
        &mut self,
        now: Instant,
        id: u64,
        body: &[u8],
        final_state: Option<&str>,
        version: u64,
        expires_in: Option<u64>,
    ) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let expires_in = match (final_state, expires_in) {
            (Some(_), _) => 0,
            (None, Some(secs)) => secs,
            (None, None) => sub.expires_at.saturating_duration_since(now).as_secs(),
        };
        sub.local_cseq = sub.local_cseq.wrapping_add(1);
        sub.notified_version = version;
        let branch = self.rng.next_u64();
        let mut bytes = self.transmit.take();
        write_notify(
            &mut bytes,
            &self.notify_text,
            branch,
            sub,
            expires_in,
            final_state,
            body,
        );
        if final_state.is_none() {
            let deadline = now + self.config.notify_timeout;
            sub.outstanding.push(sub.local_cseq, deadline);
            self.timers
                .insert(deadline, Timer::Notify(id, sub.local_cseq));
        }
        self.transmit.put(bytes);
    }

    /// Ends subscription `id`, sending a final NOTIFY when `final_state` is given.
    fn terminate(
        &mut self,
        now: Instant,
        id: u64,
        reason: TerminationReason,
        final_state: Option<&str>,
    ) {
        if let Some(state) = final_state
            && let Some(session) = self.subs.get(&id).map(|s| s.session)
        {
            self.notify_state(now, id, session, Some(state));
        }
        let Some(sub) = self.subs.get(&id) else {
            return;
        };
        if let Err(e) = self
            .store
            .write_dialog(sub.our_tag, sub.store_version, None)
        {
            // The record stays until its expiry or lease runs out; an instance taking it
            // over then finds the subscriber gone (481) or the subscription expired.
            self.events.push_back(ServerEvent::StoreUnavailable {
                what: "subscription end",
                reason: e.to_string(),
            });
        }
        self.forget(id, reason);
    }

    /// Removes subscription `id` from this instance (its store record is not touched).
    fn forget(&mut self, id: u64, reason: TerminationReason) {
        let Some(sub) = self.subs.remove(&id) else {
            return;
        };
        // Its queued timers find it gone and are skipped.
        self.dialogs.remove(&sub.our_tag);
        let (mcptt_id, impu) = match self.sessions.get_mut(&sub.session) {
            Some(s) => {
                s.subs.retain(|x| *x != id);
                (SharedStr::from(&s.mcptt_id), SharedStr::from(&s.impu))
            }
            None => (SharedStr::default(), SharedStr::default()),
        };
        self.collect(sub.session);
        self.events.push_back(ServerEvent::SubscriptionTerminated {
            mcptt_id,
            impu,
            call_id: SharedStr::from(&sub.call_id),
            reason,
        });
    }

    /// Handles a response to one of the server's NOTIFYs (RFC 6665 §4.2.2: 481, other
    /// failures end the subscription).
    pub fn handle_response(&mut self, now: Instant, response: &mcptt_sip::Response) {
        self.response(now, response);
        self.prune_timers();
    }

    /// The work of the public method of the same name, before its timers are pruned.
    fn response(&mut self, now: Instant, response: &mcptt_sip::Response) {
        let status = response.status();
        // As `Ids::check`, keeping the From value (read once).
        let headers = response.headers();
        let Some(from_value) = headers.get_known(KnownHeader::From) else {
            return;
        };
        let Ok((call_id, cseq)) = Ids::check_after_from(headers) else {
            return;
        };
        if status < 200 || cseq.method != Method::Notify {
            return;
        }
        // Our NOTIFY's From comes back as we wrote it, `<URI>;tag=T`: its tag is read from the
        // text; any other form goes through the typed parse. (The URI is not checked on the
        // plain form: the tag must name a dialog held here and the Call-ID match it.)
        let our_tag = match plain_tag_text(from_value) {
            // The usual 16 bytes: `tag_value` takes only hex digits (token characters all), so
            // this gives what `plain_tag` then `tag_value` gives; any other tag can name no
            // dialog unless its typed reading has 16 hex digits, which needs 16 bytes.
            Some(tag) if tag.len() == 16 => tag_value(tag),
            _ => match plain_tag(from_value) {
                Some(tag) => tag_value(tag),
                None => {
                    let Ok(from) = response.from() else { return };
                    from.tag().and_then(tag_value)
                }
            },
        };
        let Some(&id) = our_tag.and_then(|t| self.dialogs.get(&t)) else {
            return;
        };
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        if *sub.call_id != *call_id {
            return;
        }
        // Its queued timer finds it answered and is skipped.
        if !sub.outstanding.remove(cseq.seq) {
            return;
        }
        if status >= 300 {
            self.terminate(now, id, TerminationReason::NotifyRejected(status), None);
        }
    }

    /// As [`Server::handle_response`], for one encoded response.
    pub fn handle_response_bytes(&mut self, now: Instant, response: &[u8]) {
        let bytes = self.rx.copy(response);
        let parsed =
            mcptt_sip::Message::parse_with_storage(bytes, &self.sip_limits, &mut self.headers);
        if let Ok(mcptt_sip::Message::Response(r)) = &parsed {
            self.handle_response(now, r);
        }
        if let Ok(message) = parsed {
            self.headers = message.into_storage();
        }
    }

    /// Runs the timers due at `now`: publication expiry, token expiry (at `exp`), subscription
    /// expiry and NOTIFY timeouts.
    ///
    /// Also applies the store's due keys (expiries another instance did not apply, dialogs
    /// whose holder's lease ran out: taken over here) and retries store work that failed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timeout(now);
        self.prune_timers();
    }

    /// The work of the public method of the same name, before its timers are pruned.
    fn timeout(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            for change in std::mem::take(&mut self.retry) {
                self.handle_registration(now, change);
            }
        }
        match self.store.due(now, MAX_DUE_PER_TIMEOUT) {
            Ok(keys) => {
                for key in keys {
                    self.due_key(now, &key);
                }
            }
            Err(e) => self.store_failed(now, "expiry", &e),
        }
        while let Some((at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if !self.timer_live(at, timer) {
                continue;
            }
            match timer {
                Timer::Publication(_) | Timer::Token(_) => self.expiry_timer(now, at, timer),
                Timer::Leases => self.renew_leases(now),
                Timer::Subscription(id) => {
                    self.terminate(
                        now,
                        id,
                        TerminationReason::Timeout,
                        Some("terminated;reason=timeout"),
                    );
                }
                Timer::Notify(id, cseq) => {
                    let timed_out = self
                        .subs
                        .get(&id)
                        .is_some_and(|s| s.outstanding.iter().any(|(c, _)| *c == cseq));
                    if timed_out {
                        self.terminate(now, id, TerminationReason::NotifyTimedOut, None);
                    }
                }
            }
        }
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let bytes = self.transmit.pop()?.to_vec();
        Some(Transmit { bytes })
    }

    /// As [`Server::poll_transmit`], appending the next message to `out` instead of returning
    /// a `Vec` of its own: a caller that reuses `out` sends without an allocation per message.
    /// Returns the number of bytes appended, `None` (and `out` unchanged) when nothing is
    /// pending. The two methods take from the same queue and may be mixed.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use mcptt_service_state::server::{Server, ServerConfig};
    /// # use mcptt_service_state::{SplitMix64, TokenGrant, TokenValidator};
    /// # struct NoTokens;
    /// # impl TokenValidator for NoTokens {
    /// #     fn validate(&self, _: &str, _: u64)
    /// #         -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
    /// #         Err("no tokens here".into())
    /// #     }
    /// # }
    /// let mut server = Server::new(
    ///     ServerConfig::new("mcptt.example.org", "sip:mcptt@mcptt.example.org"),
    ///     NoTokens,
    ///     SplitMix64(7),
    /// );
    /// // An OPTIONS is answered 405.
    /// let options = b"OPTIONS sip:mcptt@mcptt.example.org SIP/2.0\r\n\
    /// Via: SIP/2.0/TLS ue.example.org;branch=z9hG4bK1\r\n\
    /// From: <sip:ue@example.org>;tag=1\r\nTo: <sip:mcptt@mcptt.example.org>\r\n\
    /// Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    /// let mut out = Vec::with_capacity(4096); // reused for every message
    /// server.handle_request_bytes(Instant::now(), 1_800_000_000, options);
    /// while let Some(len) = server.poll_transmit_into(&mut out) {
    ///     assert_eq!(len, out.len());
    ///     assert!(out.starts_with(b"SIP/2.0 405 "));
    ///     out.clear(); // (after sending it)
    /// }
    /// assert!(server.poll_transmit().is_none());
    /// ```
    #[must_use]
    pub fn poll_transmit_into(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        let bytes = self.transmit.pop()?;
        out.extend_from_slice(bytes);
        Some(bytes.len())
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next timer deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let local = self.timers.first().map(|(at, _)| at);
        [local, self.retry_at, self.store.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether a queued timer still stands for a deadline of the current state (a moved
    /// deadline, or a retry queued later than it, counts when the deadline is not after it).
    fn timer_live(&self, at: Instant, timer: Timer) -> bool {
        match timer {
            Timer::Publication(id) => self
                .sessions
                .get(&id)
                .and_then(|s| s.auth.publication())
                .is_some_and(|p| p.expires_at <= at),
            Timer::Token(id) => self
                .sessions
                .get(&id)
                .and_then(|s| s.auth.token_deadline())
                .is_some_and(|d| d <= at),
            Timer::Subscription(id) => self.subs.get(&id).is_some_and(|s| s.expires_at <= at),
            Timer::Notify(id, cseq) => self
                .subs
                .get(&id)
                .is_some_and(|s| s.outstanding.iter().any(|&(c, d)| c == cseq && d <= at)),
            Timer::Leases => self.leases_at.is_some_and(|t| t <= at),
        }
    }

    /// Drops the queued timers at the head that no longer stand for a deadline; when skipped
    /// timers outnumber the live ones (subscribe/unsubscribe churn), drops them all, so the
    /// queue stays within a constant factor of the state it times (the rebuild is linear and
    /// runs at most once per as many insertions: constant time each, amortised).
    fn prune_timers(&mut self) {
        // At most: publication and token per session; expiry and a few NOTIFYs per subscription.
        let bound = 2 * self.sessions.len() + 3 * self.subs.len() + 1;
        if self.timers.heap.len() > 2 * bound + 1024 {
            let mut queued = std::mem::take(&mut self.timers.heap).into_vec();
            queued.retain(|Reverse((at, timer))| self.timer_live(*at, *timer));
            self.timers.heap = BinaryHeap::from(queued);
        }
        while let Some((at, timer)) = self.timers.first() {
            if self.timer_live(at, timer) {
                break;
            }
            self.timers.pop_first();
        }
    }

    /// A publication or token timer of this instance: applied as a store transaction.
    fn expiry_timer(&mut self, now: Instant, at: Instant, timer: Timer) {
        let (Timer::Publication(id) | Timer::Token(id)) = timer else {
            return;
        };
        let Some(impu) = self.sessions.get(&id).map(|s| s.impu.clone()) else {
            return;
        };
        let result = self.transact(now, &impu, |this| match timer {
            Timer::Publication(_) => this.expire_publication(now, id),
            _ => this.expire_token(now, id),
        });
        if let Err(e) = result {
            self.store_failed(now, "expiry", &e);
            // Still due: run again once the store may answer.
            self.timers
                .insert(at.max(now) + secs(self.config.store_retry_after), timer);
        }
    }

    /// Publication expiry of session `id` (when due at `now`).
    fn expire_publication(&mut self, now: Instant, id: u64) {
        let due = self
            .sessions
            .get(&id)
            .and_then(|s| s.auth.publication())
            .is_some_and(|p| p.expires_at <= now);
        if due {
            self.set_auth(now, id, Auth::Unauthorised);
        }
    }

    /// Token expiry of session `id` (when due at `now`).
    fn expire_token(&mut self, now: Instant, id: u64) {
        let next = match self.sessions.get(&id).map(|s| s.auth) {
            Some(Auth::Authorised {
                publication,
                token_exp,
                token_deadline,
            }) if token_deadline <= now => Auth::Expired {
                publication,
                token_exp,
            },
            _ => return,
        };
        self.set_auth(now, id, next);
    }

    /// A key the store says is due.
    fn due_key(&mut self, now: Instant, key: &StoreKey) {
        match key {
            StoreKey::Ue(impu) => {
                let result = self.transact(now, impu, |this| {
                    let sessions = this
                        .ues
                        .get(impu.as_str())
                        .map(|u| u.sessions.clone())
                        .unwrap_or_default();
                    for id in sessions {
                        this.expire_token(now, id);
                        this.expire_publication(now, id);
                    }
                });
                if let Err(e) = result {
                    self.store_failed(now, "expiry", &e);
                }
            }
            StoreKey::Dialog(tag) => {
                if let Some(&id) = self.dialogs.get(tag) {
                    // Held here: its own timers renew or end it.
                    let _ = id;
                    return;
                }
                match self.store.load_dialog(*tag) {
                    Ok(Some((version, record))) if record.lease_expires <= now => {
                        if let Err(e) = self.adopt(now, *tag, version, record) {
                            self.store_failed(now, "dialog take-over", &e);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => self.store_failed(now, "dialog take-over", &e),
                }
            }
        }
    }

    /// Takes over dialog `tag` from its store record (read at `version`): this instance
    /// becomes its holder, continues its CSeq and NOTIFYs the state if the subscriber has
    /// not seen it. `None` when another instance took it first.
    fn adopt(
        &mut self,
        now: Instant,
        tag: u64,
        version: u64,
        mut record: DialogRecord,
    ) -> Result<Option<u64>, StoreError> {
        record.holder = self.config.instance_id;
        record.lease_expires = now + self.config.dialog_lease;
        // NOTIFYs the old holder sent after its last write are not in the record; CSeq need
        // only increase (RFC 3261 §12.2.1.1), so jump past any it may have sent.
        record.local_cseq = record.local_cseq.saturating_add(TAKEOVER_CSEQ_GAP);
        let v = match self.store.write_dialog(tag, version, Some(record.clone())) {
            Ok(v) => v,
            Err(StoreError::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Err(e) = self.sync_ue(now, &record.impu) {
            // The state is read again at the next change; the dialog is held meanwhile.
            self.store_failed(now, "dialog take-over", &e);
        }
        if !self.ues.contains_key(&*record.impu) && self.ues.len() >= self.config.max_ues {
            return Ok(None);
        }
        let session = self.session_for(&record.impu, &record.mcptt_id);
        let (impu, mcptt_id, call_id) = (
            SharedStr::from(&record.impu),
            SharedStr::from(&record.mcptt_id),
            SharedStr::from(&record.call_id),
        );
        let id = self.next_id;
        self.next_id += 1;
        let sub = Box::new(Subscription::from_record(record, session, tag, v));
        self.timers.insert(sub.expires_at, Timer::Subscription(id));
        self.arm_leases(now);
        self.subs.insert(id, sub);
        self.dialogs.insert(tag, id);
        if let Some(s) = self.sessions.get_mut(&session) {
            s.subs.push(id);
        }
        self.events.push_back(ServerEvent::SubscriptionCreated {
            mcptt_id,
            impu,
            call_id,
        });
        self.notify_behind(now, session);
        Ok(Some(id))
    }

    /// Renews this instance's lease on the dialog of subscription `id`.
    fn renew_lease(&mut self, now: Instant, id: u64) {
        let Some(sub) = self.subs.get(&id) else {
            return;
        };
        let (impu, mcptt_id) = self
            .sessions
            .get(&sub.session)
            .map(|s| (Arc::clone(&s.impu), Arc::clone(&s.mcptt_id)))
            .unwrap_or_else(|| (Arc::from(""), Arc::from("")));
        let mut record = sub.record(self.config.instance_id, &impu, &mcptt_id);
        record.lease_expires = now + self.config.dialog_lease;
        match self
            .store
            .write_dialog(sub.our_tag, sub.store_version, Some(record))
        {
            Ok(v) => self.renewed(now, id, v),
            // Another instance took the dialog over (this one was presumed dead).
            Err(StoreError::Conflict { .. }) => self.drop_subscription(id),
            // Tried again at the next renewal round (half a lease later); if the lease
            // runs out meanwhile another instance may take the dialog over, and the next
            // renewal here then conflicts and drops it.
            Err(e) => self.store_failed(now, "dialog lease", &e),
        }
    }

    /// The dialog of subscription `id` was written at `version` with a fresh lease.
    fn renewed(&mut self, now: Instant, id: u64, version: u64) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        sub.store_version = version;
        sub.lease_expires = now + self.config.dialog_lease;
    }

    /// Makes sure a lease renewal round is scheduled (every half lease while dialogs are held).
    fn arm_leases(&mut self, now: Instant) {
        self.timers.arm_once(
            &mut self.leases_at,
            now + self.config.dialog_lease / 2,
            Timer::Leases,
        );
    }

    /// A renewal round: every dialog held here gets a fresh lease.
    fn renew_leases(&mut self, now: Instant) {
        self.leases_at = None;
        let held: Vec<u64> = self.subs.keys().copied().collect();
        for id in held {
            self.renew_lease(now, id);
        }
        if !self.subs.is_empty() {
            self.arm_leases(now);
        }
    }

    /// Drops subscription `id` held here because another instance now holds its dialog.
    fn drop_subscription(&mut self, id: u64) {
        self.forget(id, TerminationReason::TakenOver);
    }
}

/// Gives `session` its next service-state version: above every version any user of its UE
/// had, so that a user who left the store and came back never repeats a version a
/// subscriber saw.
fn bump_version(ues: &mut IdentityMap<Arc<str>, Ue>, session: &mut Session) {
    bump_version_in(ues.get_mut(&session.impu), session);
}

/// [`Server::changed`] for session `id` already looked up (`session`), on the server's
/// tables: new version, dirty mark, event, and the session queued for NOTIFYs. With `join`,
/// the session is first added to its UE's list of sessions.
#[allow(clippy::too_many_arguments)]
fn changed_in(
    id: u64,
    session: &mut Session,
    join: bool,
    ues: &mut IdentityMap<Arc<str>, Ue>,
    dirty: &mut Dirty,
    directory: &UeDirectory,
    pending: &mut Vec<u64>,
    events: &mut VecDeque<ServerEvent>,
) {
    // One lookup of the UE: the new version, the dirty mark and the state from it.
    let mut ue = ues.get_mut(&session.impu);
    if join && let Some(ue) = ue.as_deref_mut() {
        ue.sessions.push(id);
    }
    bump_version_in(ue.as_deref_mut(), session);
    let store_version = ue.as_ref().map_or(0, |u| u.store_version);
    mark_dirty_at(dirty, &session.impu, store_version);
    let state = snapshot_of(session, ue.as_deref(), directory);
    if !session.subs.is_empty() && !pending.contains(&id) {
        pending.push(id);
    }
    events.push_back(ServerEvent::StateChanged(state));
}

/// [`bump_version`] with the session's UE already looked up.
fn bump_version_in(ue: Option<&mut Ue>, session: &mut Session) {
    match ue {
        Some(ue) => {
            session.version = session.version.max(ue.last_version) + 1;
            ue.last_version = session.version;
        }
        None => session.version += 1,
    }
}

/// The instance a UE's state names: its first registered one.
fn first_instance(ue: &Ue) -> Option<&Arc<str>> {
    ue.instances.iter().find(|i| !i.is_empty())
}

/// The service state of session `s` on UE `ue` (its entry in the server's table, if any).
fn state_of<'a>(s: &'a Session, ue: Option<&'a Ue>, directory: &UeDirectory) -> StateRef<'a> {
    state_with(
        s,
        ue.is_some_and(|u| u.registered),
        ue.and_then(first_instance).map(|i| &**i),
        directory,
    )
}

/// [`state_of`] from what it reads of the UE: whether it is registered, and its instance.
fn state_with<'a>(
    s: &'a Session,
    registered: bool,
    instance: Option<&'a str>,
    directory: &UeDirectory,
) -> StateRef<'a> {
    let registration = if registered {
        RegistrationState::Registered
    } else {
        RegistrationState::NotRegistered
    };
    let authorisation = s.auth.public();
    StateRef {
        version: s.version,
        mcptt_id: &s.mcptt_id,
        impu: &s.impu,
        instance,
        ue_kind: directory.kind(&s.impu),
        registration,
        authorisation,
        state: CombinedState::of(registration, authorisation),
        token_expires: s.auth.token_exp(),
    }
}

/// The state of session `s` on UE `ue` (as [`state_of`]) as an owned value, sharing the
/// text of the server's tables.
fn snapshot_of(s: &Session, ue: Option<&Ue>, directory: &UeDirectory) -> ServiceState {
    let r = state_of(s, ue, directory);
    ServiceState {
        version: r.version,
        mcptt_id: SharedStr::from(&s.mcptt_id),
        impu: SharedStr::from(&s.impu),
        instance: ue.and_then(first_instance).map(SharedStr::from),
        ue_kind: r.ue_kind,
        registration: r.registration,
        authorisation: r.authorisation,
        state: r.state,
        token_expires: r.token_expires,
    }
}

/// The UEs an operation changed and the store versions they were read at; the strings are
/// buffers reused from one operation to the next (no allocation per request).
#[derive(Debug, Default)]
struct Dirty {
    entries: Vec<(String, u64)>,
    len: usize,
}

impl Dirty {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn remove(&mut self, impu: &str) {
        let live = self.len.min(self.entries.len());
        if let Some(i) = self.entries[..live].iter().position(|(u, _)| u == impu) {
            self.entries.swap(i, live - 1);
            self.len = live - 1;
        }
    }
}

/// Notes in `dirty` that the operation changed UE `impu` (written by `Server::commit`).
fn mark_dirty(dirty: &mut Dirty, ues: &IdentityMap<Arc<str>, Ue>, impu: &str) {
    let live = dirty.len.min(dirty.entries.len());
    if dirty.entries[..live].iter().any(|(i, _)| i == impu) {
        return;
    }
    mark_dirty_at(dirty, impu, ues.get(impu).map_or(0, |u| u.store_version));
}

/// [`mark_dirty`] with the UE's store version already read (`0` when the UE is unknown).
fn mark_dirty_at(dirty: &mut Dirty, impu: &str, version: u64) {
    let live = dirty.len.min(dirty.entries.len());
    if dirty.entries[..live].iter().any(|(i, _)| i == impu) {
        return;
    }
    match dirty.entries.get_mut(live) {
        Some((buf, v)) => {
            buf.clear();
            buf.push_str(impu);
            *v = version;
        }
        None => dirty.entries.push((impu.to_owned(), version)),
    }
    dirty.len = live + 1;
}

/// The Content-Type line of a NOTIFY and the start of its Content-Length line.
const CONTENT_TYPE_LENGTH: &str = concat!(
    "\r\nContent-Type: ",
    "application/vnd.mcptt-service-state+json",
    "\r\nContent-Length: "
);

/// The configured text of every NOTIFY, written out once when the server is built.
#[derive(Debug)]
struct NotifyText {
    /// ` SIP/2.0` CRLF `Via: SIP/2.0/<transport> <host>;branch=z9hG4bK`.
    via: Vec<u8>,
    /// ` NOTIFY` CRLF `Contact: <contact>` CRLF `Event: mcptt-service-state`.
    contact_event: Vec<u8>,
    /// The configured part of those (transport, host and contact), in bytes.
    configured_len: usize,
}

impl NotifyText {
    fn new(config: &ServerConfig) -> Self {
        let join = |parts: &[&[u8]]| parts.concat();
        Self {
            via: join(&[
                b" SIP/2.0\r\nVia: SIP/2.0/",
                config.transport.as_bytes(),
                b" ",
                config.host.as_bytes(),
                b";branch=z9hG4bK",
            ]),
            contact_event: join(&[
                b" NOTIFY\r\nContact: <",
                config.contact.as_bytes(),
                b">\r\nEvent: ",
                SERVICE_STATE_EVENT.as_bytes(),
            ]),
            configured_len: config.transport.len() + config.host.len() + config.contact.len(),
        }
    }
}

/// Writes a NOTIFY on `sub` (whose `local_cseq` is already this NOTIFY's) into one buffer:
/// request line, Via, the route set, From/To with the dialog tags, Call-ID, CSeq, Contact,
/// Event, Subscription-State (`active;expires=N` with N = `expires_in`, or `final_state`) and
/// the service-state body.
fn write_notify(
    out: &mut Vec<u8>,
    text: &NotifyText,
    branch: u64,
    sub: &Subscription,
    expires_in: u64,
    final_state: Option<&str>,
    body: &[u8],
) {
    // Sized for the whole message: the fixed text and numbers take under 400 bytes (with the
    // content type), each route adds its line.
    out.reserve(
        400 + body.len()
            + sub.remote_target.len()
            + text.configured_len
            + sub.local_uri.len()
            + sub.remote_uri.len()
            + sub.their_tag.len()
            + sub.call_id.len()
            + sub.event_id.as_deref().map_or(0, str::len)
            + final_state.map_or(0, str::len)
            + sub.route_set.iter().map(|r| r.len() + 9).sum::<usize>(),
    );
    out.extend_from_slice(b"NOTIFY ");
    out.extend_from_slice(sub.remote_target.as_bytes());
    out.extend_from_slice(&text.via);
    push_hex16(out, branch);
    for route in sub.route_set.iter() {
        out.extend_from_slice(b"\r\nRoute: ");
        out.extend_from_slice(route.as_bytes());
    }
    out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nFrom: <");
    out.extend_from_slice(sub.local_uri.as_bytes());
    out.extend_from_slice(b">;tag=");
    push_hex16(out, sub.our_tag);
    out.extend_from_slice(b"\r\nTo: <");
    out.extend_from_slice(sub.remote_uri.as_bytes());
    out.extend_from_slice(b">;tag=");
    out.extend_from_slice(sub.their_tag.as_bytes());
    out.extend_from_slice(b"\r\nCall-ID: ");
    out.extend_from_slice(sub.call_id.as_bytes());
    out.extend_from_slice(b"\r\nCSeq: ");
    push_u64(out, sub.local_cseq.into());
    out.extend_from_slice(&text.contact_event);
    if let Some(id) = &sub.event_id {
        out.extend_from_slice(b";id=");
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(b"\r\nSubscription-State: ");
    match final_state {
        Some(s) => out.extend_from_slice(s.as_bytes()),
        None => {
            out.extend_from_slice(b"active;expires=");
            push_u64(out, expires_in);
        }
    }
    out.extend_from_slice(CONTENT_TYPE_LENGTH.as_bytes());
    push_u64(out, body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The messages waiting for [`Server::poll_transmit`], end to end in one buffer kept from one
/// burst to the next (no allocation per message once it has grown).
#[derive(Debug, Default)]
struct TxQueue {
    /// The messages; those before `ends[next - 1]` were read.
    buf: Vec<u8>,
    /// Where each message ends in `buf`, in queue order.
    ends: Vec<usize>,
    /// How many messages were read.
    next: usize,
}

/// Capacity above which [`TxQueue`] lets its buffer go once drained (a burst of NOTIFYs).
const TX_KEEP: usize = 64 * 1024;

impl TxQueue {
    /// Messages pending.
    fn len(&self) -> usize {
        self.ends.len() - self.next
    }

    /// The buffer, to append one message to and give back with [`TxQueue::put`].
    #[inline]
    fn take(&mut self) -> Vec<u8> {
        if self.next == self.ends.len() {
            self.start_over();
        } else if self.next >= 64 && self.next * 2 >= self.ends.len() {
            // A caller that never drains the queue: what was read goes.
            let read = self.ends.get(self.next - 1).copied().unwrap_or(0);
            self.buf.drain(..read);
            self.ends.drain(..self.next);
            for end in &mut self.ends {
                *end -= read;
            }
            self.next = 0;
        }
        std::mem::take(&mut self.buf)
    }

    /// Empties the buffer (nothing is pending).
    fn start_over(&mut self) {
        self.next = 0;
        self.ends.clear();
        self.buf.clear();
        if self.buf.capacity() > TX_KEEP {
            self.buf = Vec::new();
        }
    }

    /// Takes `buf` back with one more message at its end.
    #[inline]
    fn put(&mut self, buf: Vec<u8>) {
        self.buf = buf;
        self.ends.push(self.buf.len());
    }

    /// Drops the messages queued after the first `len` pending ones.
    fn truncate(&mut self, len: usize) {
        self.ends.truncate(self.next + len);
        let end = match self.ends.len().checked_sub(1) {
            Some(last) => self.ends.get(last).copied().unwrap_or(0),
            None => 0,
        };
        self.buf.truncate(end);
    }

    /// The oldest pending message, taken off the queue (its bytes stay until the next
    /// [`TxQueue::take`]).
    #[inline]
    fn pop(&mut self) -> Option<&[u8]> {
        let end = *self.ends.get(self.next)?;
        let start = match self.next.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        };
        self.next += 1;
        self.buf.get(start..end)
    }
}

/// A map keyed by numbers this server chose itself (sequential ids, random entity-tags and
/// dialog tags): no peer picks these keys, so a multiply-and-rotate hash is enough (SipHash,
/// the default, is for keys an attacker could choose).
type IdMap<T> = HashMap<u64, T, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`] (Fibonacci hashing of one `u64`).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by u64 keys; kept correct for any other input.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The URI of header `name` when the request has exactly one such line and its value is
/// written plainly as `<URI>` (no display name, parameter, list or quote): the name-addr
/// parse would read just that URI. Beside it, its host range when it is a
/// [`plain_sip_uri`](crate::sip::plain_sip_uri).
fn single_plain_uri(
    req: &Request,
    name: KnownHeader,
) -> Option<(&str, Option<std::ops::Range<usize>>)> {
    single_plain(req, name).map(|s| (s.uri, s.plain_host))
}

/// A header value written plainly as `<URI>`.
struct Single<'r> {
    /// The whole value.
    value: &'r str,
    /// The URI.
    uri: &'r str,
    /// Whether the URI is a [`plain_sip_uri`](crate::sip::plain_sip_uri) (valid as written).
    plain_sip: bool,
    /// Then, its host's range in `uri` ([`plain_sip_host`]).
    plain_host: Option<std::ops::Range<usize>>,
}

/// As [`single_plain_uri`], with the whole value (`<URI>`) beside the URI.
fn single_plain(req: &Request, name: KnownHeader) -> Option<Single<'_>> {
    plain_value(single_value(req, name)?)
}

/// The value of header `name` when the request has exactly one such line.
fn single_value(req: &Request, name: KnownHeader) -> Option<&str> {
    req.headers().get_single_known(name)
}

/// `value` when it is written plainly as `<URI>` (see [`single_plain`]).
fn plain_value(value: &str) -> Option<Single<'_>> {
    let inner = value.strip_prefix('<')?.strip_suffix('>')?;
    // A plain SIP URI has none of the characters checked for below (one pass fewer for the
    // usual value).
    if let Some(host) = plain_sip_host(inner) {
        return Some(Single {
            value,
            uri: inner,
            plain_sip: true,
            plain_host: Some(host),
        });
    }
    let plain = !inner
        .bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'"' | b','));
    plain.then_some(Single {
        value,
        uri: inner,
        plain_sip: false,
        plain_host: None,
    })
}

/// The tag of a name-addr written plainly as `<URI>;tag=T` (no display name, no other
/// parameter, `T` of token characters), else `None`.
fn plain_tag(value: &str) -> Option<&str> {
    let tag = plain_tag_text(value)?;
    (!tag.is_empty() && tag.bytes().all(|b| TOKEN_CHARS[usize::from(b)])).then_some(tag)
}

/// The text after `<URI>;tag=` in `value` (see [`plain_tag`]), not checked.
fn plain_tag_text(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('<')?;
    // The first of `>`, `<` and `"` must be the `>` that closes the URI.
    let close = find_byte3(b'>', b'<', b'"', rest.as_bytes())?;
    if rest.as_bytes().get(close) != Some(&b'>') {
        return None;
    }
    rest.get(close + 1..)?.strip_prefix(";tag=")
}

/// Reads an entity-tag or dialog tag this server issued (16 hex digits).
fn tag_value(s: &str) -> Option<u64> {
    // Exactly as issued: 16 lower-case hex digits (entity-tags compare as opaque strings),
    // after `str::trim` (a no-op when the value is 16 bytes already: hex digits are no white
    // space, and anything else is refused below either way).
    let s = if s.len() == 16 { s } else { s.trim() };
    let b: &[u8; 16] = s.as_bytes().try_into().ok()?;
    // Digit values from a table (16 = not a lower-case hex digit), checked once at the end.
    let (mut v, mut bad) = (0u64, 0u8);
    for &c in b {
        let d = HEX_VALUE[usize::from(c)];
        bad |= d;
        v = (v << 4) | u64::from(d & 15);
    }
    (bad & 16 == 0).then_some(v)
}

/// Values of the lower-case hex digits; 16 for every other byte.
static HEX_VALUE: [u8; 256] = {
    let mut table = [16u8; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

fn secs64(s: u64) -> Duration {
    // Bounded so that `Instant + Duration` cannot overflow for absurd `exp` values.
    Duration::from_secs(s.min(10 * 365 * 24 * 3600))
}

/// The NOTIFYs of a subscription not yet answered, as (CSeq, deadline): most subscriptions
/// have none or one (held inline, nothing allocated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Outstanding {
    #[default]
    None,
    One((u32, Instant)),
    Many(Vec<(u32, Instant)>),
}

impl Outstanding {
    fn push(&mut self, cseq: u32, deadline: Instant) {
        match self {
            Self::None => *self = Self::One((cseq, deadline)),
            Self::One(first) => *self = Self::Many(vec![*first, (cseq, deadline)]),
            Self::Many(v) => v.push((cseq, deadline)),
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, (u32, Instant)> {
        match self {
            Self::None => [].iter(),
            Self::One(one) => std::slice::from_ref(one).iter(),
            Self::Many(v) => v.iter(),
        }
    }

    /// Removes the entry for `cseq`; `false` when there is none.
    fn remove(&mut self, cseq: u32) -> bool {
        match self {
            Self::None => false,
            Self::One((c, _)) if *c == cseq => {
                *self = Self::None;
                true
            }
            Self::One(..) => false,
            Self::Many(v) => {
                let Some(pos) = v.iter().position(|(c, _)| *c == cseq) else {
                    return false;
                };
                v.swap_remove(pos);
                match v.as_slice() {
                    // Give the buffer back: most subscriptions have nothing outstanding most
                    // of the time.
                    [] => *self = Self::None,
                    &[one] => *self = Self::One(one),
                    _ => {}
                }
                true
            }
        }
    }
}

/// A short list of ids with the first one inline: most UEs have one user and most users one
/// subscription, so the common case allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum IdList {
    #[default]
    Empty,
    One(u64),
    Many(Vec<u64>),
}

impl IdList {
    fn as_slice(&self) -> &[u64] {
        match self {
            Self::Empty => &[],
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, u64> {
        self.as_slice().iter()
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn push(&mut self, id: u64) {
        match self {
            Self::Empty => *self = Self::One(id),
            Self::One(first) => *self = Self::Many(vec![*first, id]),
            Self::Many(ids) => {
                ids.reserve_exact(1);
                ids.push(id);
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&u64) -> bool) {
        match self {
            Self::Empty => {}
            Self::One(id) => {
                if !keep(id) {
                    *self = Self::Empty;
                }
            }
            Self::Many(ids) => {
                ids.retain(|id| keep(id));
                match ids.as_slice() {
                    [] => *self = Self::Empty,
                    [id] => *self = Self::One(*id),
                    _ => {}
                }
            }
        }
    }
}

impl<'a> IntoIterator for &'a IdList {
    type Item = &'a u64;
    type IntoIter = std::slice::Iter<'a, u64>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Owned iteration over an [`IdList`].
#[derive(Debug)]
enum IdIter {
    One(Option<u64>),
    Many(std::vec::IntoIter<u64>),
}

impl Iterator for IdIter {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self {
            Self::One(id) => id.take(),
            Self::Many(ids) => ids.next(),
        }
    }
}

impl IntoIterator for IdList {
    type Item = u64;
    type IntoIter = IdIter;

    fn into_iter(self) -> IdIter {
        match self {
            Self::Empty => IdIter::One(None),
            Self::One(id) => IdIter::One(Some(id)),
            Self::Many(ids) => IdIter::Many(ids.into_iter()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{MemoryStore, Server, plain_tag, plain_tag_text, tag_value};
    use crate::{SplitMix64, TokenGrant, TokenValidator};

    struct NoTokens;
    impl TokenValidator for NoTokens {
        fn validate(
            &self,
            _: &str,
            _: u64,
        ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
            Err("none".into())
        }
    }
    type Srv = Server<NoTokens, SplitMix64, MemoryStore>;

    /// Appends `msg` to the queue as the server does.
    fn queue(q: &mut super::TxQueue, msg: &[u8]) {
        let mut buf = q.take();
        buf.extend_from_slice(msg);
        q.put(buf);
    }

    #[test]
    fn transmit_queue_keeps_order_truncates_and_stays_bounded() {
        let mut q = super::TxQueue::default();
        assert_eq!(q.pop(), None);
        queue(&mut q, b"one");
        queue(&mut q, b"two");
        assert_eq!(q.pop(), Some(&b"one"[..]));
        queue(&mut q, b"three");
        queue(&mut q, b"four");
        assert_eq!(q.len(), 3);
        // A failed operation takes back what it queued.
        q.truncate(1);
        assert_eq!(q.len(), 1);
        queue(&mut q, b"five");
        assert_eq!(q.pop(), Some(&b"two"[..]));
        assert_eq!(q.pop(), Some(&b"five"[..]));
        assert_eq!(q.pop(), None);
        assert_eq!(q.len(), 0);
        q.truncate(0);
        assert_eq!(q.pop(), None);
        // Drained: the next message starts the buffer over.
        queue(&mut q, b"six");
        assert_eq!(q.buf.len(), 3);
        // A caller that leaves one message queued forever: the buffer stays small.
        for i in 0..10_000u32 {
            queue(&mut q, &i.to_be_bytes());
            let _ = q.pop();
            assert!(q.buf.len() < 1_000, "{}", q.buf.len());
        }
        assert_eq!(q.pop(), Some(&9_999u32.to_be_bytes()[..]));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn poll_transmit_into_appends_and_mixes_with_poll_transmit() {
        let mut srv = Srv::with_store(
            super::ServerConfig::new("h.example.org", "sip:psi@example.org"),
            NoTokens,
            SplitMix64(1),
            MemoryStore::default(),
        );
        let options = |n: u32| {
            format!(
                "OPTIONS sip:psi@example.org SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK{n}\r\n\
From: <sip:u@example.org>;tag=x\r\nTo: <sip:psi@example.org>\r\nCall-ID: c{n}\r\n\
CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        };
        #[allow(clippy::disallowed_methods)] // any start: no timer is involved
        let now = std::time::Instant::now();
        for n in 1..=3 {
            srv.handle_request_bytes(now, 0, options(n).as_bytes());
        }
        let mut out = b"kept".to_vec();
        let first = srv.poll_transmit_into(&mut out).unwrap();
        assert_eq!(first, out.len() - 4);
        assert!(out.starts_with(b"kept"));
        let first = String::from_utf8(out[4..].to_vec()).unwrap();
        assert!(first.starts_with("SIP/2.0 405 ") && first.contains("Call-ID: c1\r\n"));
        let second = srv.poll_transmit().unwrap().bytes;
        assert!(
            String::from_utf8(second)
                .unwrap()
                .contains("Call-ID: c2\r\n")
        );
        let len = out.len();
        let third = srv.poll_transmit_into(&mut out).unwrap();
        assert!(
            String::from_utf8(out[len..].to_vec())
                .unwrap()
                .contains("Call-ID: c3\r\n")
        );
        assert_eq!(out.len(), len + third);
        assert_eq!(srv.poll_transmit_into(&mut out), None);
        assert_eq!(out.len(), len + third);
        assert!(srv.poll_transmit().is_none());
    }

    /// A UE's registered instances, as stored, follow its registration changes: each
    /// instance once, in the order first registered (the list a `Vec` built, appending the
    /// new one), a removed one gone, the UE forgotten with the last one; the identity is
    /// read in any spelling.
    #[test]
    fn registration_changes_keep_each_instance_once_in_order() {
        use crate::store::ServiceStateStore;
        let mut srv = Srv::with_store(
            super::ServerConfig::new("h.example.org", "sip:psi@example.org"),
            NoTokens,
            SplitMix64(1),
            MemoryStore::default(),
        );
        #[allow(clippy::disallowed_methods)] // any start: no timer is involved
        let now = std::time::Instant::now();
        let impu = "sip:ue@example.org";
        let mut expected: Vec<&str> = Vec::new();
        for (to, instance, registered) in [
            (impu, "a", true),
            ("<sip:ue@EXAMPLE.org>", "b", true),
            (impu, "a", true),
            (impu, "c", true),
            (impu, "b", false),
            (impu, "b", true),
            (impu, "x", false),
            (impu, "a", false),
            (impu, "c", false),
            (impu, "b", false),
        ] {
            srv.handle_registration(
                now,
                crate::RegistrationChange {
                    impu: to.to_owned(),
                    instance: Some(instance.to_owned()),
                    registered,
                },
            );
            if registered && !expected.contains(&instance) {
                expected.push(instance);
            } else if !registered {
                expected.retain(|i| *i != instance);
            }
            let stored = srv.store().load_ue(impu).unwrap();
            let got: Vec<String> = stored
                .map(|(_, r)| r.instances.iter().map(|i| i.to_string()).collect())
                .unwrap_or_default();
            assert_eq!(got, expected, "after {instance} {registered}");
        }
        assert!(srv.store().load_ue(impu).unwrap().is_none());
    }

    /// Grants every token for `alice` until `exp`, with client id `c`.
    struct Fixed(u64);

    impl TokenValidator for Fixed {
        fn validate(
            &self,
            _: &str,
            _: u64,
        ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
            Ok(TokenGrant {
                mcptt_id: "sip:alice@example.org".into(),
                client_id: Some("c".into()),
                expires_at: self.0,
            })
        }
    }

    #[test]
    fn a_grant_shares_the_mcptt_id_of_the_users_session_on_the_ue() {
        let mut srv = Server::with_store(
            super::ServerConfig::new("h.example.org", "sip:psi@example.org"),
            Fixed(100),
            SplitMix64(1),
            MemoryStore::default(),
        );
        let (ue, alice) = ("sip:ue1@example.org", "sip:alice@example.org");
        // No session yet: a new copy.
        let g = srv.validate(ue, "t", 10, Some("c")).ok().unwrap();
        assert_eq!((&*g.mcptt_id, g.expires_at), (alice, 100));
        // Alice's session on this UE: its copy; on another UE: a new one.
        let id = srv.session_for(ue, alice);
        let kept = std::sync::Arc::clone(&srv.sessions.get(&id).unwrap().mcptt_id);
        let g = srv.validate(ue, "t", 10, None).ok().unwrap();
        assert!(std::sync::Arc::ptr_eq(&g.mcptt_id, &kept));
        let g = srv
            .validate("sip:ue2@example.org", "t", 10, None)
            .ok()
            .unwrap();
        assert!(!std::sync::Arc::ptr_eq(&g.mcptt_id, &kept) && *g.mcptt_id == *alice);
        // The checks after validation still refuse.
        assert!(srv.validate(ue, "t", 100, None).is_err());
        assert!(srv.validate(ue, "t", 10, Some("other")).is_err());
        let reasons: Vec<_> = srv
            .events
            .iter()
            .filter_map(|e| match e {
                super::ServerEvent::AuthorisationFailed { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "access token expired",
                "mcptt-client-id does not match the token's client_id"
            ]
        );
    }

    #[test]
    fn plain_header_forms_read_as_the_typed_parse_reads_them() {
        let mut srv = Srv::with_store(
            super::ServerConfig::new("h.example.org", "sip:psi@example.org"),
            NoTokens,
            SplitMix64(1),
            MemoryStore::default(),
        );
        for (name, value) in [
            ("Contact", "<sip:ue1.example.org;transport=tls>"),
            ("Contact", "<sip:ue1@[::1]:5061>"),
            ("Contact", "<sip:127.0.0.1:40001;transport=tls>"),
            ("Contact", "<sip:ue1@127.0.0.1:99999;transport=tls>"),
            ("Contact", "<sip:ue1@127.0.0.1:;transport=tls>"),
            ("Contact", "<sip:ue1@host:5061?x=%41>"),
            ("Contact", "<sip:ue1@host:5061;x=%4>"),
            ("Contact", "<>"),
            ("m", "<sip:127.0.0.1:40001;transport=tls>"),
            ("m", "<sip:bad host:1>"),
            ("Contact", "<sip:bad host>"),
            ("Contact", "<sip:a@b>;expires=60"),
            ("Contact", "*"),
            ("Record-Route", "<sip:core.example.org;transport=tls;lr>"),
            ("Record-Route", "<sip:p1;lr>, <sip:p2;lr>"),
            ("Record-Route", "<not a uri>"),
            ("Record-Route", "<sip:>"),
            ("Record-Route", "< sip:p1;lr>"),
            ("Record-Route", "<sip:p1;lr >"),
            ("Record-Route", "<sip:p1;lr>;x=1"),
            ("Record-Route", "<sips:[::1]:5061;lr>"),
            ("Contact", "<sip:>"),
            ("Contact", "< sip:a@b>"),
            ("Contact", "<tel:+1234>"),
            ("Contact", "<sip:a@b;x=%41>"),
            ("P-Asserted-Identity", "<sip:Ue1@Example.ORG>"),
            ("P-Asserted-Identity", "<tel:+1234>"),
            ("P-Asserted-Identity", "<sip:>"),
            ("Event", "mcptt-service-state"),
            ("Event", "MCPTT-Service-State"),
            ("Event", "mcptt-service-state;id=7"),
            ("Expires", "3600"),
            ("Expires", "0"),
            ("Expires", "007"),
            ("Expires", "999999999"),
            ("Expires", "4294967295"),
            ("Expires", "4294967296"),
            ("Expires", "99999999999"),
            ("Expires", "36 00"),
            ("Expires", "-1"),
            ("Expires", "6a"),
            ("Expires", "\u{661}"),
            ("Expires", "3600\r\n 1"),
        ] {
            let req = mcptt_sip::Request::parse(bytes::Bytes::from(format!(
                "SUBSCRIBE sip:psi@example.org SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK1\r\n\
From: <sip:u@example.org>;tag=x\r\nTo: <sip:psi@example.org>\r\nCall-ID: c\r\n\
CSeq: 1 SUBSCRIBE\r\n{name}: {value}\r\nContent-Length: 0\r\n\r\n"
            )))
            .unwrap();
            let typed_contact = req.contacts().map_err(|_| ()).map(|c| {
                c.first()
                    .and_then(|c| c.uri())
                    .map(|u| u.as_str().to_owned())
            });
            assert_eq!(
                Srv::first_contact(&req).map(|c| c.map(std::borrow::Cow::into_owned)),
                typed_contact,
                "{value}"
            );
            let typed_routes = req
                .record_route()
                .map(|r| r.iter().map(|r| r.as_str().to_owned()).collect::<Vec<_>>())
                .ok();
            // Twice: the second time the route set may come from the last one kept.
            for _ in 0..2 {
                assert_eq!(
                    srv.route_set(&req).ok().map(|r| r.to_vec()),
                    typed_routes,
                    "{value}"
                );
            }
            let typed_pai = req.p_asserted_identity().ok().and_then(|p| {
                p.first()
                    .map(|a| crate::sip::identity(a.uri().as_str()).into_owned())
            });
            assert_eq!(
                Srv::asserted(
                    &req,
                    super::single_plain_uri(&req, mcptt_sip::KnownHeader::PAssertedIdentity)
                )
                .map(std::borrow::Cow::into_owned),
                typed_pai,
                "{value}"
            );
            let typed_event = match req.event() {
                Ok(Some(e)) if e.package().eq_ignore_ascii_case("mcptt-service-state") => {
                    Some(e.id().map(str::to_owned))
                }
                _ => None,
            };
            assert_eq!(
                Srv::event_package(&req, "mcptt-service-state").ok(),
                typed_event,
                "{value}"
            );
            assert_eq!(
                Srv::expires(&req).map_err(|r| r.code),
                req.expires().map_err(|_| 400),
                "{value}"
            );
        }
        // Two lines: the first one counts, as for the typed parse.
        let req = mcptt_sip::Request::parse(bytes::Bytes::from_static(
            b"SUBSCRIBE sip:psi@example.org SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK1\r\n\
From: <sip:u@example.org>;tag=x\r\nTo: <sip:psi@example.org>\r\nCall-ID: c\r\n\
CSeq: 1 SUBSCRIBE\r\nExpires: 60\r\nExpires: 120\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(Srv::expires(&req).map_err(|r| r.code), Ok(Some(60)));
        assert_eq!(req.expires().ok(), Some(Some(60)));
    }

    #[test]
    fn outstanding_notifies_inline_then_spilled() {
        #[allow(clippy::disallowed_methods)] // an arbitrary Instant for a plain data field
        let t = std::time::Instant::now();
        let mut o = super::Outstanding::default();
        assert!(!o.remove(1));
        o.push(1, t);
        assert_eq!(o, super::Outstanding::One((1, t)));
        assert!(!o.remove(2));
        o.push(2, t);
        o.push(3, t);
        assert_eq!(o.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(o.remove(1));
        assert!(!o.remove(1));
        assert_eq!(o.iter().count(), 2);
        assert!(o.remove(3));
        assert_eq!(o, super::Outstanding::One((2, t)));
        assert!(o.remove(2));
        assert_eq!(o, super::Outstanding::None);
        assert_eq!(o.iter().count(), 0);
    }

    proptest::proptest! {
        /// `tag_value` reads exactly the tags this server issues (16 lower-case hex digits,
        /// white space around them allowed), as the first version (trim + check + parse) did.
        #[test]
        fn tag_value_matches_the_reference(s in "[ \t]?[0-9a-fA-FxX ]{14,18}[ \t]?") {
            let t = s.trim();
            let reference = (t.len() == 16
                && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| u64::from_str_radix(t, 16).ok())
            .flatten();
            proptest::prop_assert_eq!(tag_value(&s), reference);
        }

        /// Every tag as issued reads back.
        #[test]
        fn issued_tags_read_back(n in proptest::num::u64::ANY) {
            proptest::prop_assert_eq!(tag_value(&format!("{n:016x}")), Some(n));
        }
    }

    #[test]
    fn notify_content_type_is_the_service_state_type() {
        assert_eq!(
            super::CONTENT_TYPE_LENGTH,
            format!(
                "\r\nContent-Type: {}\r\nContent-Length: ",
                crate::body::SERVICE_STATE_CONTENT_TYPE
            )
        );
    }

    #[test]
    fn tag_values_as_issued() {
        assert_eq!(tag_value("0123456789abcdef"), Some(0x0123_4567_89ab_cdef));
        assert_eq!(tag_value(" ffffffffffffffff "), Some(u64::MAX));
        assert_eq!(tag_value("0123456789ABCDEF"), None);
        assert_eq!(tag_value("0123456789abcdeg"), None);
        assert_eq!(tag_value("0123456789abcde"), None);
    }

    #[test]
    fn plain_tag_reads_what_the_typed_parse_reads() {
        for value in [
            "<sip:mcptt-server@example.org>;tag=00000000000000ab",
            "<sip:a@b;transport=tls>;tag=x-1",
            "<sip:a@b>;tag=",
            "<sip:a@b>;TAG=1",
            "<sip:a@b>;tag=1;x=2",
            "\"A\" <sip:a@b>;tag=1",
            "sip:a@b;tag=1",
            "<sip:a@b>",
            "<sip:a@b> ;tag=1",
        ] {
            // `None` leaves the value to the typed parse (which may find a tag).
            if let Some(tag) = plain_tag(value) {
                let typed = mcptt_sip::NameAddr::parse(value).unwrap();
                assert_eq!(typed.tag(), Some(tag), "{value}");
            }
        }
        assert_eq!(
            plain_tag("<sip:psi@example.org>;tag=00000000000000ab"),
            Some("00000000000000ab")
        );
        assert_eq!(plain_tag("<sip:a@b>;tag=1;x=2"), None);
    }

    #[test]
    fn a_16_byte_plain_tag_reads_as_the_typed_tag_does() {
        // What `Server::response` reads from the text of a 16-byte tag, and what it read through
        // `plain_tag` or the typed parse before: the same dialog tag, or none.
        for value in [
            "<sip:psi@example.org>;tag=00000000000000ab",
            "<sip:psi@example.org>;tag=00000000000000AB",
            "<sip:psi@example.org>;tag=000000000000000g",
            "<sip:psi@example.org>;tag=00000000000000;a",
            "<sip:psi@example.org>;tag=000000000000 0ab",
            "<sip:psi@example.org>;tag=\"0000000000000a\"",
        ] {
            let text = plain_tag_text(value).unwrap();
            assert_eq!(text.len(), 16, "{value}");
            let before = match plain_tag(value) {
                Some(tag) => tag_value(tag),
                None => mcptt_sip::NameAddr::parse(value)
                    .ok()
                    .and_then(|n| n.tag().and_then(tag_value)),
            };
            assert_eq!(tag_value(text), before, "{value}");
        }
        assert_eq!(
            plain_tag_text("<sip:psi@example.org>;tag=00000000000000ab").and_then(tag_value),
            Some(0xab)
        );
    }
}
