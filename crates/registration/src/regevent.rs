//! The reg event package (RFC 3680), notifier side: subscriptions to the registration
//! state of an address-of-record, served by the [`crate::Registrar`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use mcptt_sip::{Request, Response};

use crate::binding::{AorRecord, Binding};
use crate::error::Error;
use crate::identity::canonical_aor;
use crate::reginfo::{
    ContactEvent, ContactInfo, ContactState, DocState, RegInfo, RegistrationInfo, RegistrationState,
};
use crate::registrar::{RemovalReason, Transmit};
use crate::rng::SplitMix64;
use crate::store::{RegistrationStore, StoreError};
use crate::wire;

/// Configuration of the reg event notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegEventConfig {
    /// Peer identities (e.g. the MCPTT server's TLS identity) that may subscribe to any
    /// address-of-record. Other peers may subscribe only to identities they may register.
    pub trusted_subscribers: HashSet<String>,
    /// Smallest accepted subscription expiry (`423` below).
    pub min_expires: u32,
    /// Largest granted subscription expiry.
    pub max_expires: u32,
    /// Expiry when the SUBSCRIBE has no `Expires` (RFC 3680 §4.1: 3761 s).
    pub default_expires: u32,
    /// Most subscriptions held at once (`503` beyond).
    pub max_subscriptions: usize,
}

impl Default for RegEventConfig {
    fn default() -> Self {
        Self {
            trusted_subscribers: HashSet::new(),
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3761,
            max_subscriptions: 10_000,
        }
    }
}

/// Subscription state (RFC 6665 §4.1, notifier side).
///
/// ```text
///  (none) --SUBSCRIBE 2xx--> Active --refresh--> Active        [full NOTIFY each time]
///  Active --binding change-------------------> Active          [partial NOTIFY]
///  Active --Expires: 0 | expiry--> (removed)                   [NOTIFY terminated]
///  Active --481/408 to a NOTIFY--> (removed)
/// ```
#[derive(Debug)]
enum SubState {
    Active { expires_at: Instant },
}

#[derive(Debug)]
struct Subscription {
    aor: String,
    /// The authenticated peer that created it: only it may refresh or end it.
    peer: String,
    call_id: String,
    local_tag: String,
    /// Our From (the SUBSCRIBE's To value with our tag).
    local: String,
    /// Their From value as received (with tag).
    remote: String,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact URI).
    target: String,
    cseq: u32,
    version: u32,
    state: SubState,
}

/// The notifier: every subscription of this registrar.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    subs: HashMap<u64, Subscription>,
    by_dialog: HashMap<(String, String), u64>,
    by_aor: HashMap<String, Vec<u64>>,
    expiries: BTreeSet<(Instant, u64)>,
    next_id: u64,
    /// Per AoR with subscriptions: the store version its subscribers were last NOTIFYed
    /// about (`0` = absent), when known; repeated remote changes are skipped with it.
    versions: HashMap<String, u64>,
}

/// `(binding, removal reason if removed, newly added)`.
pub(crate) type ChangeView<'a> = (&'a Binding, Option<RemovalReason>, bool);

fn registration_id(aor: &str) -> String {
    let mut h = std::hash::DefaultHasher::new();
    aor.hash(&mut h);
    format!("r{:x}", h.finish())
}

fn contact_info(
    now: Instant,
    b: &Binding,
    state: ContactState,
    event: ContactEvent,
) -> ContactInfo {
    let mut params = Vec::new();
    if let Some(i) = &b.instance {
        params.push(("+sip.instance".to_owned(), i.clone()));
    }
    if let Some(r) = b.reg_id {
        params.push(("reg-id".to_owned(), r.to_string()));
    }
    ContactInfo {
        id: b.id.to_string(),
        state,
        event,
        expires: Some(if state == ContactState::Active {
            b.remaining(now)
        } else {
            0
        }),
        duration_registered: Some(u32::try_from(b.age(now).as_secs()).unwrap_or(u32::MAX)),
        q: None,
        call_id: Some(b.call_id.clone()),
        cseq: Some(b.cseq),
        uri: b.uri.clone(),
        display_name: None,
        params,
    }
}

/// The full registration state of `aor` read from `store`.
///
/// # Errors
/// [`Error::StoreUnavailable`] when the store cannot answer.
fn load_registration<S: RegistrationStore>(
    now: Instant,
    aor: &str,
    store: &S,
) -> Result<RegistrationInfo, Error> {
    match store.load(aor) {
        Ok(loaded) => Ok(full_registration(now, aor, loaded.as_ref().map(|(_, r)| r))),
        Err(StoreError::Unavailable(reason)) => Err(Error::StoreUnavailable(reason)),
        Err(StoreError::Conflict { .. }) => Err(Error::StoreConflict(aor.to_owned())),
    }
}

/// The full registration state of `aor` at `now` (what a full NOTIFY carries), from its
/// stored record (`None` = no binding).
pub(crate) fn full_registration(
    now: Instant,
    aor: &str,
    record: Option<&AorRecord>,
) -> RegistrationInfo {
    let bindings: Vec<&Binding> = record
        .map(|r| r.bindings.iter().filter(|b| !b.is_expired(now)).collect())
        .unwrap_or_default();
    RegistrationInfo {
        aor: aor.to_owned(),
        id: registration_id(aor),
        state: if bindings.is_empty() {
            RegistrationState::Init
        } else {
            RegistrationState::Active
        },
        contacts: bindings
            .iter()
            .map(|b| contact_info(now, b, ContactState::Active, ContactEvent::Registered))
            .collect(),
    }
}

impl Notifier {
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.expiries.first().map(|(t, _)| *t)
    }

    pub(crate) fn has_subscribers(&self, aor: &str) -> bool {
        self.by_aor.contains_key(aor)
    }

    pub(crate) fn last_version(&self, aor: &str) -> Option<u64> {
        self.versions.get(aor).copied()
    }

    pub(crate) fn aors(&self) -> Vec<String> {
        self.by_aor.keys().cloned().collect()
    }

    /// Full NOTIFYs of `record` (stored `version`) to every subscription of `aor`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn notify_aor_full(
        &mut self,
        now: Instant,
        aor: &str,
        version: u64,
        record: Option<&AorRecord>,
        core_uri: &str,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) {
        let Some(ids) = self.by_aor.get(aor).cloned() else {
            return;
        };
        self.versions.insert(aor.to_owned(), version);
        let reg = full_registration(now, aor, record);
        for id in ids {
            self.send(
                now,
                id,
                DocState::Full,
                Some(reg.clone()),
                None,
                core_uri,
                rng,
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle_subscribe<S: RegistrationStore>(
        &mut self,
        now: Instant,
        peer: &str,
        req: &Request,
        cfg: &RegEventConfig,
        core_uri: &str,
        allowed: &dyn Fn(&str) -> bool,
        store: &S,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) -> Response {
        match self.subscribe(now, peer, req, cfg, core_uri, allowed, store, rng, out) {
            Ok((tag, expires)) => wire::subscribe_ok(req, &tag, expires, core_uri),
            Err(e) => wire::error_response(req, &e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe<S: RegistrationStore>(
        &mut self,
        now: Instant,
        peer: &str,
        req: &Request,
        cfg: &RegEventConfig,
        core_uri: &str,
        allowed: &dyn Fn(&str) -> bool,
        store: &S,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) -> Result<(String, u32), Error> {
        let d = wire::subscribe_dialog(req)?;
        if !d.event.eq_ignore_ascii_case("reg") {
            return Err(Error::BadEvent);
        }
        let expires = d.expires.unwrap_or(cfg.default_expires);
        if expires != 0 && expires < cfg.min_expires {
            return Err(Error::IntervalTooBrief {
                min_expires: cfg.min_expires,
            });
        }
        let expires = expires.min(cfg.max_expires);
        if let Some(to_tag) = &d.to_tag {
            // Refresh or unsubscribe within an existing dialog.
            let id = *self
                .by_dialog
                .get(&(d.call_id.clone(), to_tag.clone()))
                .ok_or(Error::NoSuchSubscription)?;
            if let Some(s) = self.subs.get(&id)
                && s.peer != peer
            {
                return Err(Error::Forbidden {
                    peer: peer.to_owned(),
                    aor: s.aor.clone(),
                });
            }
            if expires == 0 {
                self.terminate(now, id, "timeout", core_uri, store, rng, out);
            } else {
                // Read the state first: a store failure leaves the subscription as it was.
                let aor = self
                    .subs
                    .get(&id)
                    .map(|s| s.aor.clone())
                    .unwrap_or_default();
                let reg = load_registration(now, &aor, store)?;
                if let Some(s) = self.subs.get_mut(&id) {
                    let SubState::Active { expires_at } = &mut s.state;
                    self.expiries.remove(&(*expires_at, id));
                    *expires_at = now + Duration::from_secs(u64::from(expires));
                    self.expiries.insert((*expires_at, id));
                }
                self.send(now, id, DocState::Full, Some(reg), None, core_uri, rng, out);
            }
            return Ok((to_tag.clone(), expires));
        }
        let aor = canonical_aor(&d.request_uri).ok_or(Error::InvalidAor)?;
        if !allowed(&aor) {
            return Err(Error::Forbidden {
                peer: peer.to_owned(),
                aor,
            });
        }
        if self.subs.len() >= cfg.max_subscriptions {
            return Err(Error::TooManySubscriptions {
                limit: cfg.max_subscriptions,
            });
        }
        // Read the state first: with the store down no subscription is created (503).
        let reg = load_registration(now, &aor, store)?;
        let tag = rng.token();
        let id = self.next_id;
        self.next_id += 1;
        let expires_at = now + Duration::from_secs(u64::from(expires));
        self.subs.insert(
            id,
            Subscription {
                aor: aor.clone(),
                peer: peer.to_owned(),
                call_id: d.call_id.clone(),
                local_tag: tag.clone(),
                local: format!("{};tag={tag}", d.to),
                remote: d.from,
                target: d.contact.unwrap_or_else(|| d.request_uri.clone()),
                cseq: 0,
                version: 0,
                state: SubState::Active { expires_at },
            },
        );
        self.by_dialog.insert((d.call_id, tag.clone()), id);
        self.by_aor.entry(aor).or_default().push(id);
        if expires == 0 {
            // A fetch: one NOTIFY with the state, then the subscription ends.
            self.send(
                now,
                id,
                DocState::Full,
                Some(reg),
                Some("timeout"),
                core_uri,
                rng,
                out,
            );
            self.remove(id);
        } else {
            self.expiries.insert((expires_at, id));
            self.send(now, id, DocState::Full, Some(reg), None, core_uri, rng, out);
        }
        Ok((tag, expires))
    }

    pub(crate) fn handle_notify_response(&mut self, _now: Instant, resp: &Response) -> bool {
        let Some((call_id, from_tag)) = wire::response_dialog(resp) else {
            return false;
        };
        let Some(&id) = self.by_dialog.get(&(call_id, from_tag)) else {
            return false;
        };
        if matches!(resp.status(), 481 | 408) {
            self.remove(id);
        }
        true
    }

    pub(crate) fn handle_timeout<S: RegistrationStore>(
        &mut self,
        now: Instant,
        core_uri: &str,
        store: &S,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) {
        while let Some(&(t, id)) = self.expiries.first() {
            if t > now {
                break;
            }
            self.terminate(now, id, "timeout", core_uri, store, rng, out);
        }
    }

    /// Partial NOTIFYs for a change of `aor`'s bindings; `written` is whether the AoR
    /// still has bindings and the store version after the change, when known.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_changes(
        &mut self,
        now: Instant,
        aor: &str,
        changes: &[ChangeView<'_>],
        written: Option<(bool, u64)>,
        core_uri: &str,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) {
        let Some(ids) = self.by_aor.get(aor) else {
            return;
        };
        let ids = ids.clone();
        let active = match written {
            Some((active, version)) => {
                // A deleted record reads back as version 0.
                let version = if active { version } else { 0 };
                self.versions.insert(aor.to_owned(), version);
                active
            }
            None => {
                self.versions.remove(aor);
                changes.iter().any(|(_, removed, _)| removed.is_none())
            }
        };
        let contacts: Vec<ContactInfo> = changes
            .iter()
            .map(|(b, removed, added)| match removed {
                None => contact_info(
                    now,
                    b,
                    ContactState::Active,
                    if *added {
                        ContactEvent::Registered
                    } else {
                        ContactEvent::Refreshed
                    },
                ),
                Some(r) => contact_info(
                    now,
                    b,
                    ContactState::Terminated,
                    match r {
                        RemovalReason::Unregistered => ContactEvent::Unregistered,
                        RemovalReason::Expired => ContactEvent::Expired,
                        RemovalReason::ApplicationServerFailure => ContactEvent::Deactivated,
                    },
                ),
            })
            .collect();
        let reg = RegistrationInfo {
            aor: aor.to_owned(),
            id: registration_id(aor),
            state: if active {
                RegistrationState::Active
            } else {
                RegistrationState::Terminated
            },
            contacts,
        };
        for id in ids {
            self.send(
                now,
                id,
                DocState::Partial,
                Some(reg.clone()),
                None,
                core_uri,
                rng,
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn terminate<S: RegistrationStore>(
        &mut self,
        now: Instant,
        id: u64,
        reason: &str,
        core_uri: &str,
        store: &S,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) {
        let Some(aor) = self.subs.get(&id).map(|s| s.aor.clone()) else {
            return;
        };
        // With the store down the final NOTIFY carries no <registration> (it claims
        // nothing about the bindings) rather than a wrong "no binding".
        let reg = load_registration(now, &aor, store).ok();
        self.send(
            now,
            id,
            DocState::Full,
            reg,
            Some(reason),
            core_uri,
            rng,
            out,
        );
        self.remove(id);
    }

    fn remove(&mut self, id: u64) {
        if let Some(s) = self.subs.remove(&id) {
            let SubState::Active { expires_at } = s.state;
            self.expiries.remove(&(expires_at, id));
            self.by_dialog.remove(&(s.call_id, s.local_tag));
            if let Some(v) = self.by_aor.get_mut(&s.aor) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.by_aor.remove(&s.aor);
                    self.versions.remove(&s.aor);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now: Instant,
        id: u64,
        state: DocState,
        reg: Option<RegistrationInfo>,
        terminated: Option<&str>,
        core_uri: &str,
        rng: &mut SplitMix64,
        out: &mut Vec<Transmit>,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        let doc = RegInfo {
            version: s.version,
            state,
            registrations: reg.into_iter().collect(),
        };
        s.version = s.version.wrapping_add(1);
        s.cseq += 1;
        let SubState::Active { expires_at } = s.state;
        let sub_state = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!(
                "active;expires={}",
                expires_at.saturating_duration_since(now).as_secs()
            ),
        };
        let branch = rng.token();
        if let Ok(request) = wire::notify(&wire::Notify {
            target: &s.target,
            from: &s.local,
            to: &s.remote,
            call_id: &s.call_id,
            cseq: s.cseq,
            subscription_state: &sub_state,
            contact: core_uri,
            branch: &branch,
            body: doc.encode(),
        }) {
            out.push(Transmit {
                destination: s.target.clone(),
                request,
            });
        }
    }
}
