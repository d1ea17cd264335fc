//! The MCPTT server's view of registrations: third-party REGISTERs from the SIP core and
//! the reg event package (RFC 3680), subscriber side.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcptt_sip::{Request, Response};

use crate::error::Error;
use crate::identity::canonical_aor;
use crate::reginfo::{ContactState, DocState, RegInfo, XmlLimits};
use crate::registrar::Transmit;
use crate::rng::SplitMix64;
use crate::wire;

/// Configuration of the MCPTT server side.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Peer identities of the trusted SIP cores (e.g. their TLS certificate identities);
    /// third-party REGISTERs and reg event NOTIFYs from anyone else are refused with 403.
    pub trusted_cores: HashSet<String>,
    /// The MCPTT server's own URI (From/Contact of its SUBSCRIBEs).
    pub server_uri: String,
    /// Most public user identities tracked.
    pub max_identities: usize,
    /// Most UEs per public user identity.
    pub max_ues_per_identity: usize,
    /// Largest expiry accepted from a third-party REGISTER (longer is shortened).
    pub max_expires: u32,
    /// Limits for the embedded REGISTER.
    pub sip_limits: mcptt_sip::Limits,
    /// Limits for reginfo documents.
    pub xml_limits: XmlLimits,
    /// Expiry requested for reg event subscriptions.
    pub subscription_expires: u32,
    /// Most reg event subscriptions held.
    pub max_subscriptions: usize,
    /// Also report a third-party de-registration of a UE this view does not know
    /// ([`ServerEvent::UeDeregistered`]). Set it when several MCPTT server instances share
    /// their state through a store: the UE's earlier REGISTERs may have reached another
    /// instance. Off by default: a single instance has already reported the UE gone.
    pub report_unknown_deregistrations: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            trusted_cores: HashSet::new(),
            server_uri: "sip:mcptt-server.invalid".into(),
            max_identities: 1_000_000,
            max_ues_per_identity: 16,
            max_expires: 7200,
            sip_limits: mcptt_sip::Limits::default(),
            xml_limits: XmlLimits::default(),
            subscription_expires: 3600,
            max_subscriptions: 100_000,
            report_unknown_deregistrations: false,
        }
    }
}

/// How the server learned about a UE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A third-party REGISTER.
    ThirdParty,
    /// A reg event NOTIFY.
    RegEvent,
}

/// One registered UE of a public user identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredUe {
    /// `+sip.instance`, without quotes.
    pub instance: Option<String>,
    /// The UE's contact URI.
    pub contact: String,
    /// When the registration lapses unless refreshed.
    pub expires_at: Instant,
    /// How the server learned about it last.
    pub source: Source,
}

impl RegisteredUe {
    fn same(&self, instance: Option<&str>, contact: &str) -> bool {
        match (&self.instance, instance) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.contact.eq_ignore_ascii_case(contact),
            _ => false,
        }
    }
}

/// Why a UE left the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UeRemoval {
    /// A third-party REGISTER with `Expires: 0` (or a contact with `expires=0`, or `*`).
    Deregistered,
    /// Its expiry passed without refresh.
    Expired,
    /// A reg event NOTIFY said the contact is terminated (or a full state omitted it).
    RegEvent,
}

/// A change in the server's view.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A UE of `impu` registered.
    UeRegistered {
        /// Public user identity.
        impu: String,
        /// The UE.
        ue: RegisteredUe,
    },
    /// A UE refreshed its registration.
    UeRefreshed {
        /// Public user identity.
        impu: String,
        /// The UE after the refresh.
        ue: RegisteredUe,
    },
    /// A UE is no longer registered. With
    /// [`ServerConfig::report_unknown_deregistrations`], a third-party de-registration of a
    /// contact this view does not know is reported too (`reason`
    /// [`UeRemoval::Deregistered`], `expires_at` = the time it arrived).
    UeDeregistered {
        /// Public user identity.
        impu: String,
        /// The UE as it was.
        ue: RegisteredUe,
        /// Why.
        reason: UeRemoval,
    },
    /// A reg event partial notification skipped versions, or a refresh was answered `481`
    /// (the SIP core instance holding the dialog is gone): a SUBSCRIBE that brings full
    /// state was queued (a new subscription after a `481`).
    RegEventResync {
        /// Public user identity of the subscription.
        impu: String,
    },
    /// A reg event subscription ended (terminated by the notifier or refused).
    SubscriptionEnded {
        /// Public user identity of the subscription.
        impu: String,
    },
}

/// Subscriber-side subscription state (RFC 6665 §4.1).
///
/// ```text
///  Sent --2xx--> Active --NOTIFY terminated | 4xx-6xx--> (removed, SubscriptionEnded)
///  Active --refresh deadline--> Active (SUBSCRIBE re-sent in the dialog)
///  Active --481 to a refresh--> Sent (new dialog: initial SUBSCRIBE, RegEventResync)
/// ```
#[derive(Debug)]
enum SubState {
    Sent,
    Active { refresh_at: Instant },
}

#[derive(Debug)]
struct Subscription {
    target: String,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    cseq: u32,
    version: Option<u32>,
    state: SubState,
}

/// Sans-IO registration view of an MCPTT server.
#[derive(Debug)]
pub struct RegistrationView {
    config: ServerConfig,
    ues: HashMap<Arc<str>, Vec<RegisteredUe>>,
    expiries: BTreeSet<(Instant, Arc<str>)>,
    events: VecDeque<ServerEvent>,
    transmit: VecDeque<Transmit>,
    subs: HashMap<String, Subscription>,
    by_call_id: HashMap<String, String>,
    refreshes: BTreeSet<(Instant, String)>,
    rng: SplitMix64,
}

impl RegistrationView {
    /// A view with no registrations; `seed` drives Call-IDs and tags.
    #[must_use]
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        Self {
            config,
            ues: HashMap::new(),
            expiries: BTreeSet::new(),
            events: VecDeque::new(),
            transmit: VecDeque::new(),
            subs: HashMap::new(),
            by_call_id: HashMap::new(),
            refreshes: BTreeSet::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// The UEs registered for `impu` (canonical form) at `now`.
    #[must_use]
    pub fn ues(&self, now: Instant, impu: &str) -> Vec<RegisteredUe> {
        self.ues
            .get(impu)
            .map(|v| v.iter().filter(|u| u.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `impu` has a registered UE with `instance` at `now`.
    #[must_use]
    pub fn is_registered(&self, now: Instant, impu: &str, instance: &str) -> bool {
        self.ues(now, impu)
            .iter()
            .any(|u| u.instance.as_deref() == Some(instance))
    }

    /// Number of public user identities with at least one UE.
    #[must_use]
    pub fn identity_count(&self) -> usize {
        self.ues.len()
    }

    /// Handles a third-party REGISTER from the SIP core authenticated as `peer` and returns
    /// the response (200 OK, or 403 for an untrusted peer, 400/415 for a bad body).
    pub fn handle_third_party_register(
        &mut self,
        now: Instant,
        peer: &str,
        request: &Request,
    ) -> Response {
        match self.third_party(now, peer, request) {
            Ok(()) => wire::plain_response(request, 200),
            Err(e) => wire::error_response(request, &e),
        }
    }

    fn third_party(&mut self, now: Instant, peer: &str, request: &Request) -> Result<(), Error> {
        if !self.config.trusted_cores.contains(peer) {
            return Err(Error::UntrustedPeer(peer.to_owned()));
        }
        let tp = wire::extract_third_party(request, &self.config.sip_limits)?;
        let mut impu = tp.impu;
        if !tp.same_aor {
            return Err(Error::InvalidBody(
                "embedded REGISTER is for another identity",
            ));
        }
        let expires = tp.expires.min(self.config.max_expires);
        // (Each Contact's URI and instance are read from the parsed Contact, only they are
        // copied: the view needs nothing else.)
        match tp.contacts {
            wire::ParsedContacts::Fetch => Ok(()),
            wire::ParsedContacts::Star => {
                self.remove_where(&impu, |_| true, UeRemoval::Deregistered);
                Ok(())
            }
            wire::ParsedContacts::List(_) => {
                let mut contacts = tp.contacts.name_addrs().peekable();
                while let Some(na) = contacts.next() {
                    let uri = na.uri().as_str();
                    let instance = na.sip_instance();
                    if expires == 0 || na.expires() == Some(0) {
                        let removed = self.remove_where(
                            &impu,
                            |u| u.same(instance.as_deref(), uri),
                            UeRemoval::Deregistered,
                        );
                        if removed == 0 && self.config.report_unknown_deregistrations {
                            // Not known here: with several MCPTT server instances its
                            // registration may have reached another one (since dead, or
                            // sharing state with this one through a store), so the
                            // application still hears that this UE is gone.
                            self.events.push_back(ServerEvent::UeDeregistered {
                                impu: impu.clone(),
                                ue: RegisteredUe {
                                    instance: instance.map(std::borrow::Cow::into_owned),
                                    contact: uri.to_owned(),
                                    expires_at: now,
                                    source: Source::ThirdParty,
                                },
                                reason: UeRemoval::Deregistered,
                            });
                        }
                    } else {
                        // (The last contact's event takes the identity read from `To`: the
                        // loop ends with it, no copy.)
                        let owned = if contacts.peek().is_none() {
                            std::mem::take(&mut impu)
                        } else {
                            impu.clone()
                        };
                        self.upsert(
                            owned,
                            RegisteredUe {
                                instance: instance.map(std::borrow::Cow::into_owned),
                                contact: uri.to_owned(),
                                expires_at: now + Duration::from_secs(u64::from(expires)),
                                source: Source::ThirdParty,
                            },
                        )?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Adds or refreshes `ue` of `impu`; the event takes `impu`.
    fn upsert(&mut self, impu: String, ue: RegisteredUe) -> Result<(), Error> {
        // (The identity is stored once, shared by the map and the expiry index.)
        let key = match self.ues.get_key_value(impu.as_str()) {
            Some((k, _)) => Arc::clone(k),
            None if self.ues.len() >= self.config.max_identities => {
                return Err(Error::RegistrarFull {
                    limit: self.config.max_identities,
                });
            }
            None => Arc::from(impu.as_str()),
        };
        let list = self.ues.entry(Arc::clone(&key)).or_default();
        if let Some(old) = list
            .iter_mut()
            .find(|u| u.same(ue.instance.as_deref(), &ue.contact))
        {
            self.expiries.remove(&(old.expires_at, key));
            old.clone_from(&ue);
            self.reindex(&impu);
            self.events.push_back(ServerEvent::UeRefreshed { impu, ue });
            return Ok(());
        }
        if list.len() >= self.config.max_ues_per_identity {
            return Err(Error::TooManyBindings {
                limit: self.config.max_ues_per_identity,
            });
        }
        list.push(ue.clone());
        self.expiries.insert((ue.expires_at, key));
        self.events
            .push_back(ServerEvent::UeRegistered { impu, ue });
        Ok(())
    }

    fn remove_where(
        &mut self,
        impu: &str,
        pred: impl Fn(&RegisteredUe) -> bool,
        reason: UeRemoval,
    ) -> usize {
        let Some(key) = self.ues.get_key_value(impu).map(|(k, _)| Arc::clone(k)) else {
            return 0;
        };
        let Some(list) = self.ues.get_mut(impu) else {
            return 0;
        };
        // (Moved out, not copied.)
        let removed: Vec<RegisteredUe> = list.extract_if(.., |u| pred(u)).collect();
        if list.is_empty() {
            self.ues.remove(impu);
        }
        for ue in &removed {
            self.expiries.remove(&(ue.expires_at, Arc::clone(&key)));
        }
        // Entries are per (instant, identity): put back those other UEs still need.
        self.reindex(impu);
        let count = removed.len();
        for ue in removed {
            self.events.push_back(ServerEvent::UeDeregistered {
                impu: impu.to_owned(),
                ue,
                reason,
            });
        }
        count
    }

    fn reindex(&mut self, impu: &str) {
        if let Some((key, list)) = self.ues.get_key_value(impu) {
            for u in list {
                self.expiries.insert((u.expires_at, Arc::clone(key)));
            }
        }
    }

    /// Queues a reg event SUBSCRIBE (RFC 3680) for `impu` toward the SIP core at
    /// `core_uri`; the NOTIFYs that follow are applied by [`RegistrationView::handle_notify`].
    ///
    /// # Errors
    /// [`Error::InvalidAor`] for an unusable `impu`, [`Error::TooManySubscriptions`] at the
    /// limit, [`Error::ApiMisuse`] when already subscribed.
    pub fn subscribe(&mut self, now: Instant, impu: &str, core_uri: &str) -> Result<(), Error> {
        let impu = canonical_aor(impu).ok_or(Error::InvalidAor)?;
        if self.subs.contains_key(&impu) {
            return Err(Error::ApiMisuse("already subscribed to this identity"));
        }
        if self.subs.len() >= self.config.max_subscriptions {
            return Err(Error::TooManySubscriptions {
                limit: self.config.max_subscriptions,
            });
        }
        let sub = Subscription {
            target: core_uri.to_owned(),
            call_id: format!("{}-reg", self.rng.token()),
            local_tag: self.rng.token(),
            remote_tag: None,
            cseq: 0,
            version: None,
            state: SubState::Sent,
        };
        self.by_call_id.insert(sub.call_id.clone(), impu.clone());
        self.subs.insert(impu.clone(), sub);
        self.send_subscribe(now, &impu, self.config.subscription_expires)
    }

    fn send_subscribe(&mut self, _now: Instant, impu: &str, expires: u32) -> Result<(), Error> {
        let branch = self.rng.token();
        let Some(s) = self.subs.get_mut(impu) else {
            return Err(Error::NoSuchSubscription);
        };
        s.cseq += 1;
        let request = wire::subscribe(&wire::Subscribe {
            impu,
            target: &s.target,
            server_uri: &self.config.server_uri,
            call_id: &s.call_id,
            local_tag: &s.local_tag,
            remote_tag: s.remote_tag.as_deref(),
            cseq: s.cseq,
            expires,
            branch: &branch,
        })?;
        self.transmit.push_back(Transmit {
            destination: s.target.clone(),
            request,
        });
        Ok(())
    }

    fn sub_by_call_id(&self, call_id: &str) -> Option<String> {
        self.by_call_id.get(call_id).cloned()
    }

    /// Handles the response to a SUBSCRIBE this view sent. Returns whether it matched.
    pub fn handle_subscribe_response(&mut self, now: Instant, response: &Response) -> bool {
        let Some((call_id, _)) = wire::response_call_id_cseq(response) else {
            return false;
        };
        let Some(impu) = self.sub_by_call_id(call_id) else {
            return false;
        };
        let status = response.status();
        if status < 200 {
            return true;
        }
        if status == 481 && self.subs.get(&impu).is_some_and(|s| s.remote_tag.is_some()) {
            // The notifier no longer knows the dialog: the SIP core instance holding it
            // died (or lost it) and the refresh landed on another instance. Start a new
            // subscription, which any live instance accepts with full state.
            self.resubscribe(now, &impu);
            return true;
        }
        if !(200..300).contains(&status) {
            self.end_subscription(&impu);
            return true;
        }
        let granted = wire::expires_of(response).unwrap_or(self.config.subscription_expires);
        let to_tag = wire::to_tag_of(response);
        if let Some(s) = self.subs.get_mut(&impu) {
            if s.remote_tag.is_none() {
                s.remote_tag = to_tag;
            }
            if let SubState::Active { refresh_at } = s.state {
                self.refreshes.remove(&(refresh_at, impu.clone()));
            }
            // Refresh at 80% of the granted time.
            let refresh_at = now + Duration::from_secs(u64::from(granted) * 4 / 5);
            s.state = SubState::Active { refresh_at };
            self.refreshes.insert((refresh_at, impu));
        }
        true
    }

    /// Replaces the dialog of `impu`'s subscription by a new one (new Call-ID and tag)
    /// and sends its initial SUBSCRIBE; reports [`ServerEvent::RegEventResync`].
    fn resubscribe(&mut self, now: Instant, impu: &str) {
        let call_id = format!("{}-reg", self.rng.token());
        let local_tag = self.rng.token();
        let Some(s) = self.subs.get_mut(impu) else {
            return;
        };
        self.by_call_id.remove(&s.call_id);
        if let SubState::Active { refresh_at } = s.state {
            self.refreshes.remove(&(refresh_at, impu.to_owned()));
        }
        s.call_id.clone_from(&call_id);
        s.local_tag = local_tag;
        s.remote_tag = None;
        s.cseq = 0;
        s.version = None;
        s.state = SubState::Sent;
        self.by_call_id.insert(call_id, impu.to_owned());
        self.events.push_back(ServerEvent::RegEventResync {
            impu: impu.to_owned(),
        });
        if self
            .send_subscribe(now, impu, self.config.subscription_expires)
            .is_err()
        {
            self.end_subscription(impu);
        }
    }

    fn end_subscription(&mut self, impu: &str) {
        if let Some(s) = self.subs.remove(impu) {
            self.by_call_id.remove(&s.call_id);
            if let SubState::Active { refresh_at } = s.state {
                self.refreshes.remove(&(refresh_at, impu.to_owned()));
            }
            self.events.push_back(ServerEvent::SubscriptionEnded {
                impu: impu.to_owned(),
            });
        }
    }

    /// Handles a reg event NOTIFY from the SIP core authenticated as `peer`, applies its
    /// `application/reginfo+xml` body and returns the response.
    ///
    /// Full documents replace the view of the identity; partial documents must carry the
    /// next version (RFC 3680 §4.1.2) — a gap still answers 200 but queues a refreshing
    /// SUBSCRIBE and reports [`ServerEvent::RegEventResync`].
    pub fn handle_notify(&mut self, now: Instant, peer: &str, request: &Request) -> Response {
        match self.notify(now, peer, request) {
            Ok(()) => wire::plain_response(request, 200),
            Err(e) => wire::error_response(request, &e),
        }
    }

    fn notify(&mut self, now: Instant, peer: &str, request: &Request) -> Result<(), Error> {
        if !self.config.trusted_cores.contains(peer) {
            return Err(Error::UntrustedPeer(peer.to_owned()));
        }
        let n = wire::notify_parts(request)?;
        if !n.event.eq_ignore_ascii_case("reg") {
            return Err(Error::BadEvent);
        }
        let impu = self
            .sub_by_call_id(&n.call_id)
            .ok_or(Error::NoSuchSubscription)?;
        if let Some(s) = self.subs.get_mut(&impu)
            && s.remote_tag.is_none()
        {
            s.remote_tag = n.from_tag.clone();
        }
        if let Some(body) = &n.body {
            let doc = RegInfo::parse_with(body, &self.config.xml_limits)?;
            match self.apply_reginfo(now, &impu, &doc) {
                // The NOTIFY itself is fine: accept it (a failure response could end the
                // subscription, RFC 6665 §4.2.2); the refresh is already queued.
                Ok(()) | Err(Error::VersionGap { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if n.terminated {
            self.end_subscription(&impu);
        }
        Ok(())
    }

    /// Applies a reginfo document received in the subscription of `impu`.
    ///
    /// # Errors
    /// [`Error::VersionGap`] (after queueing a resync) when a partial document skipped
    /// versions or is older than the last one; [`Error::NoSuchSubscription`] without a
    /// subscription for `impu`.
    pub fn apply_reginfo(&mut self, now: Instant, impu: &str, doc: &RegInfo) -> Result<(), Error> {
        let Some(s) = self.subs.get(impu) else {
            return Err(Error::NoSuchSubscription);
        };
        if doc.state == DocState::Partial {
            let expected = s.version.map_or(0, |v| v.wrapping_add(1));
            if s.version.is_none() || doc.version != expected {
                self.events.push_back(ServerEvent::RegEventResync {
                    impu: impu.to_owned(),
                });
                self.send_subscribe(now, impu, self.config.subscription_expires)?;
                return Err(Error::VersionGap {
                    expected,
                    got: doc.version,
                });
            }
        } else if let Some(v) = s.version
            && doc.version <= v
            && doc.version != 0
        {
            // A stale full document (versions only grow within a subscription).
            return Err(Error::VersionGap {
                expected: v.wrapping_add(1),
                got: doc.version,
            });
        }
        if let Some(s) = self.subs.get_mut(impu) {
            s.version = Some(doc.version);
        }
        for reg in doc
            .registrations
            .iter()
            .filter(|r| canonical_aor(&r.aor).as_deref() == Some(impu))
        {
            if doc.state == DocState::Full {
                let keep: Vec<(Option<String>, String)> = reg
                    .contacts
                    .iter()
                    .filter(|c| c.state == ContactState::Active)
                    .map(|c| (c.param("+sip.instance").map(str::to_owned), c.uri.clone()))
                    .collect();
                self.remove_where(
                    impu,
                    |u| !keep.iter().any(|(i, c)| u.same(i.as_deref(), c)),
                    UeRemoval::RegEvent,
                );
            }
            for c in &reg.contacts {
                let inst = c.param("+sip.instance").map(str::to_owned);
                match c.state {
                    ContactState::Active => {
                        let secs = c.expires.unwrap_or(0).min(self.config.max_expires);
                        if secs == 0 {
                            continue;
                        }
                        self.upsert(
                            impu.to_owned(),
                            RegisteredUe {
                                instance: inst,
                                contact: c.uri.clone(),
                                expires_at: now + Duration::from_secs(u64::from(secs)),
                                source: Source::RegEvent,
                            },
                        )?;
                    }
                    ContactState::Terminated => {
                        let uri = c.uri.clone();
                        self.remove_where(
                            impu,
                            |u| u.same(inst.as_deref(), &uri),
                            UeRemoval::RegEvent,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs due timers: UE expiry and subscription refreshes.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((t, impu)) = self.expiries.first().cloned() {
            if t > now {
                break;
            }
            self.expiries.pop_first();
            self.remove_where(&impu, |u| u.expires_at <= now, UeRemoval::Expired);
        }
        while let Some((t, impu)) = self.refreshes.first().cloned() {
            if t > now {
                break;
            }
            self.refreshes.pop_first();
            if let Some(s) = self.subs.get_mut(&impu) {
                s.state = SubState::Sent;
            }
            if self
                .send_subscribe(now, &impu, self.config.subscription_expires)
                .is_err()
            {
                self.end_subscription(&impu);
            }
        }
    }

    /// The next request to send (SUBSCRIBEs).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`RegistrationView::handle_timeout`] must next run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.expiries.first().map(|(t, _)| *t),
            self.refreshes.first().map(|(t, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ue(instance: &str, at: Instant) -> RegisteredUe {
        RegisteredUe {
            instance: Some(instance.to_owned()),
            contact: format!("sip:{instance}@192.0.2.1"),
            expires_at: at,
            source: Source::ThirdParty,
        }
    }

    /// The identity stored once for the map and the expiry index: refreshes move a UE's
    /// expiry, removals and expiries find their entries, the limits hold.
    #[test]
    fn expiry_index_follows_refreshes_and_removals() {
        let config = ServerConfig {
            max_identities: 2,
            max_ues_per_identity: 2,
            ..ServerConfig::default()
        };
        let mut v = RegistrationView::new(config, 1);
        #[allow(clippy::disallowed_methods)] // a test's single real origin
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (a, b) = ("sip:a@example.com", "sip:b@example.com");
        v.upsert(a.to_owned(), ue("1", at(10))).unwrap();
        v.upsert(a.to_owned(), ue("2", at(20))).unwrap();
        assert!(matches!(
            v.upsert(a.to_owned(), ue("3", at(20))),
            Err(Error::TooManyBindings { limit: 2 })
        ));
        v.upsert(b.to_owned(), ue("1", at(30))).unwrap();
        assert!(matches!(
            v.upsert("sip:c@example.com".to_owned(), ue("1", at(5))),
            Err(Error::RegistrarFull { limit: 2 })
        ));
        assert_eq!(v.poll_timeout(), Some(at(10)));
        // a refresh of UE 1 of `a` moves its expiry after UE 2's
        v.upsert(a.to_owned(), ue("1", at(40))).unwrap();
        assert_eq!(v.poll_timeout(), Some(at(20)));
        while v.poll_event().is_some() {}
        v.handle_timeout(at(20));
        assert_eq!(
            v.poll_event(),
            Some(ServerEvent::UeDeregistered {
                impu: a.to_owned(),
                ue: ue("2", at(20)),
                reason: UeRemoval::Expired,
            })
        );
        assert!(v.poll_event().is_none());
        assert_eq!(v.ues(at(20), a), [ue("1", at(40))]);
        assert_eq!(v.poll_timeout(), Some(at(30)));
        // removing the last UE of `b` forgets the identity and its expiry
        assert_eq!(v.remove_where(b, |_| true, UeRemoval::Deregistered), 1);
        assert_eq!(v.identity_count(), 1);
        assert_eq!(v.poll_timeout(), Some(at(40)));
        assert_eq!(v.remove_where(b, |_| true, UeRemoval::Deregistered), 0);
        v.handle_timeout(at(40));
        assert_eq!(v.identity_count(), 0);
        assert_eq!(v.poll_timeout(), None);
    }
}
