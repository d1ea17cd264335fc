//! The service-authorisation model: UE kinds and directory, registration, authorisation and
//! combined states (DESIGN.md §1).

use crate::hash::IdentityMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a UE may be shared between users (TS 22.179 §5.11, §5.13; DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UeKind {
    /// One user at a time; a different user's sign-in while one is signed in is refused (403).
    #[default]
    Personal,
    /// One user at a time; a new user's sign-in signs the previous one off (`replaced`).
    Shareable,
    /// Many users at once (users on non-3GPP devices behind it), independent of one another.
    Gateway,
}

impl UeKind {
    /// The wire name (`personal`, `shareable`, `gateway`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Shareable => "shareable",
            Self::Gateway => "gateway",
        }
    }
}

impl fmt::Display for UeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A UE kind's name that is none of `personal`, `shareable`, `gateway` (from
/// [`UeKind`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownUeKind(pub String);

impl fmt::Display for UnknownUeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown UE kind {:?} (personal, shareable or gateway)",
            self.0
        )
    }
}

impl std::error::Error for UnknownUeKind {}

impl std::str::FromStr for UeKind {
    type Err = UnknownUeKind;

    /// Parses the wire name ([`UeKind::as_str`]), as a UE directory file or a command line
    /// spells it; the names are case-sensitive, as in the service-state body.
    ///
    /// ```
    /// use mcptt_service_state::UeKind;
    /// assert_eq!("gateway".parse::<UeKind>(), Ok(UeKind::Gateway));
    /// assert!("Gateway".parse::<UeKind>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Personal, Self::Shareable, Self::Gateway]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownUeKind(s.to_owned()))
    }
}

/// The MCPTT server's UE directory: the kind of each UE, keyed by public user identity (IMPU).
///
/// UEs not listed get [`UeDirectory::default_kind`] (`personal` unless configured otherwise).
/// Keys are compared as given; use the same URI form the SIP core asserts in `P-Asserted-Identity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UeDirectory {
    /// Kind of UEs that have no entry.
    pub default_kind: UeKind,
    entries: IdentityMap<String, UeKind>,
}

impl UeDirectory {
    /// An empty directory (every UE `personal`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the kind of the UE with public user identity `impu`; returns `self` for chaining.
    #[must_use]
    pub fn with(mut self, impu: impl Into<String>, kind: UeKind) -> Self {
        self.insert(impu, kind);
        self
    }

    /// Sets the kind of the UE with public user identity `impu`.
    pub fn insert(&mut self, impu: impl Into<String>, kind: UeKind) {
        self.entries.insert(impu.into(), kind);
    }

    /// The kind of the UE with public user identity `impu`.
    #[must_use]
    #[inline]
    pub fn kind(&self, impu: &str) -> UeKind {
        // Asked several times per request: an empty directory answers without a call.
        if self.entries.is_empty() {
            return self.default_kind;
        }
        self.entries.get(impu).copied().unwrap_or(self.default_kind)
    }
}

/// SIP registration state of a UE as seen by the MCPTT server (from `mcptt-registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationState {
    /// At least one binding of the UE is registered.
    Registered,
    /// No binding (never registered, deregistered or expired).
    NotRegistered,
}

/// Authorisation state of one user on one UE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorisationState {
    /// A valid, unexpired access token was published.
    Authorised,
    /// No valid publication: never signed in, or the publication lapsed without refresh.
    Unauthorised,
    /// The access token reached its `exp`; a PUBLISH with a new token authorises again.
    Expired,
    /// The user signed off on this UE (PUBLISH with `Expires: 0`).
    SignedOff,
    /// Another user signed in on this shareable UE and signed this user off.
    Replaced,
}

impl AuthorisationState {
    /// The wire name used in the service-state body.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorised => "authorised",
            Self::Unauthorised => "unauthorised",
            Self::Expired => "expired",
            Self::SignedOff => "signed-off",
            Self::Replaced => "replaced",
        }
    }
}

/// The combined MCPTT service state of a user on a UE (DESIGN.md §1, steps 15–18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CombinedState {
    /// SIP-registered **and** authorised.
    FullAccess,
    /// Exactly one of the two (e.g. authorised but deregistered, or registered but the token expired).
    Limited,
    /// Neither.
    None,
}

impl CombinedState {
    /// Combines a registration and an authorisation state.
    #[must_use]
    pub fn of(registration: RegistrationState, authorisation: AuthorisationState) -> Self {
        let registered = registration == RegistrationState::Registered;
        let authorised = authorisation == AuthorisationState::Authorised;
        match (registered, authorised) {
            (true, true) => Self::FullAccess,
            (false, false) => Self::None,
            _ => Self::Limited,
        }
    }
}

/// A change of a UE's SIP registration, fed to the server by the caller (from
/// `mcptt-registration`'s registrar or third-party-registration events).
///
/// `registered: true` when a binding for (`impu`, `instance`) is created or refreshed,
/// `false` when it is removed or expires. A UE counts as registered while at least one of its
/// instances is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistrationChange {
    /// The registered public user identity, as the SIP core asserts it in `P-Asserted-Identity`.
    pub impu: String,
    /// The `+sip.instance` of the binding (e.g. `<urn:uuid:…>`), if any.
    pub instance: Option<String>,
    /// Whether the binding now exists.
    pub registered: bool,
}

impl RegistrationChange {
    /// The change an `mcptt-registration` MCPTT-server-view event stands for (`None` for
    /// events that change no registration, e.g. reg event bookkeeping).
    #[must_use]
    pub fn from_registration_event(event: &mcptt_registration::ServerEvent) -> Option<Self> {
        use mcptt_registration::ServerEvent as E;
        match event {
            E::UeRegistered { impu, ue } | E::UeRefreshed { impu, ue } => Some(Self {
                impu: impu.clone(),
                instance: ue.instance.clone(),
                registered: true,
            }),
            E::UeDeregistered { impu, ue, .. } => Some(Self {
                impu: impu.clone(),
                instance: ue.instance.clone(),
                registered: false,
            }),
            _ => None,
        }
    }
}

/// What a validated access token grants, as the server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The `mcptt_id` claim: the MCPTT ID of the user.
    pub mcptt_id: String,
    /// The `client_id` claim, if present.
    pub client_id: Option<String>,
    /// The `exp` claim, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Validates access tokens for the server; this crate implements it for `mcptt-token`'s
/// [`Validator`](mcptt_token::Validator), and callers may implement it for anything else.
///
/// The implementation checks signature, issuer, audience, scope, `exp`/`nbf` against `now_unix`
/// and returns the grant, or a reason that the server reports in
/// [`ServerEvent::AuthorisationFailed`](crate::server::ServerEvent::AuthorisationFailed) (never to
/// the peer).
pub trait TokenValidator {
    /// Validates `token` at wall-clock time `now_unix` (seconds since the Unix epoch).
    ///
    /// # Errors
    /// A printable reason when the token must not authorise the user.
    fn validate(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>>;

    /// Validates `token` as [`Self::validate`] does and passes the grant to `f`, borrowed: the
    /// server copies only what it keeps. The default calls [`Self::validate`]; the
    /// implementation for `mcptt_token::Validator` copies no claim.
    ///
    /// # Errors
    /// As [`Self::validate`]; `f` is called once on success, never on failure.
    fn validate_with(
        &self,
        token: &str,
        now_unix: u64,
        f: &mut dyn FnMut(GrantRef<'_>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let grant = self.validate(token, now_unix)?;
        f(GrantRef::from(&grant));
        Ok(())
    }
}

/// A [`TokenGrant`] borrowed from the validated token ([`TokenValidator::validate_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRef<'a> {
    /// The `mcptt_id` claim: the MCPTT ID of the user.
    pub mcptt_id: &'a str,
    /// The `client_id` claim, if present.
    pub client_id: Option<&'a str>,
    /// The `exp` claim, in seconds since the Unix epoch.
    pub expires_at: u64,
}

impl<'a> From<&'a TokenGrant> for GrantRef<'a> {
    fn from(g: &'a TokenGrant) -> Self {
        Self {
            mcptt_id: &g.mcptt_id,
            client_id: g.client_id.as_deref(),
            expires_at: g.expires_at,
        }
    }
}

/// Injected randomness (STYLE.md §2): SIP-ETags, tags, branches and Call-IDs.
///
/// Production callers implement it over a CSPRNG (e.g. `ring::rand::SystemRandom`); tests use
/// [`SplitMix64`] for repeatable runs.
pub trait Random {
    /// Returns 64 fresh random bits.
    fn next_u64(&mut self) -> u64;
}

/// A seeded, deterministic generator for tests and benches (not for production ETags).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl Random for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl<R: Random + ?Sized> Random for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// A short random token (16 lowercase hex digits) for tags, branches and ETags.
pub(crate) fn random_token(rng: &mut dyn Random) -> String {
    format!("{:016x}", rng.next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ue_kinds_parse_from_their_wire_names_only() {
        for kind in [UeKind::Personal, UeKind::Shareable, UeKind::Gateway] {
            assert_eq!(kind.as_str().parse::<UeKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            // The serde name (directory files, stores) is the same word.
            assert_eq!(
                serde_json::to_string(&kind).ok(),
                Some(format!("\"{}\"", kind.as_str()))
            );
        }
        for bad in ["", "Personal", "gateway ", "shared", "personal\0"] {
            let err = bad.parse::<UeKind>().err();
            assert_eq!(err, Some(UnknownUeKind(bad.to_owned())));
            let text = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains("unknown UE kind"), "{text}");
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // an arbitrary Instant for a plain data field
    fn registration_events_map_to_changes() {
        use mcptt_registration::{RegisteredUe, ServerEvent, Source, UeRemoval};
        let ue = RegisteredUe {
            instance: Some("<urn:uuid:1>".into()),
            contact: "sip:ue1.example.org".into(),
            expires_at: std::time::Instant::now() + std::time::Duration::from_secs(1),
            source: Source::ThirdParty,
        };
        let up = ServerEvent::UeRegistered {
            impu: "sip:ue1@example.org".into(),
            ue: ue.clone(),
        };
        let down = ServerEvent::UeDeregistered {
            impu: "sip:ue1@example.org".into(),
            ue,
            reason: UeRemoval::Expired,
        };
        let c = RegistrationChange::from_registration_event(&up);
        assert_eq!(
            c,
            Some(RegistrationChange {
                impu: "sip:ue1@example.org".into(),
                instance: Some("<urn:uuid:1>".into()),
                registered: true
            })
        );
        let c = RegistrationChange::from_registration_event(&down);
        assert_eq!(c.map(|c| c.registered), Some(false));
        let other = ServerEvent::SubscriptionEnded { impu: "x".into() };
        assert_eq!(RegistrationChange::from_registration_event(&other), None);
    }

    #[test]
    fn combined_state_table() {
        use AuthorisationState as A;
        use RegistrationState as R;
        assert_eq!(
            CombinedState::of(R::Registered, A::Authorised),
            CombinedState::FullAccess
        );
        assert_eq!(
            CombinedState::of(R::NotRegistered, A::Authorised),
            CombinedState::Limited
        );
        assert_eq!(
            CombinedState::of(R::Registered, A::Expired),
            CombinedState::Limited
        );
        assert_eq!(
            CombinedState::of(R::NotRegistered, A::Replaced),
            CombinedState::None
        );
    }
}
