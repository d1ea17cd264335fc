//! Authentication methods behind one trait, and the three methods this crate ships.
//!
//! | method | `acr` | form fields |
//! |---|---|---|
//! | [`PasswordMethod`] | [`ACR_PASSWORD`] `3gpp:acr:password` | `password` |
//! | [`TwoFactorMethod`] | [`ACR_TWO_FACTOR`] | `password`, `otp` |
//! | [`SimMethod`] | [`ACR_SIM`] | step 1: none; step 2: `challenge_id` and `res` (or `auts`) |
//!
//! An agency adds its own method by implementing [`Authenticator`] and registering it with
//! [`crate::Idms::add_method`]. A method may finish in one step ([`Outcome::Authenticated`]) or
//! hand back a [`Challenge`] whose parameters the client answers in the next request.
//!
//! ```
//! use mcptt_idm::authn::{AuthFailure, Authenticator, Field, FieldKind, LoginInput, Outcome};
//! use mcptt_idm::{RandomSource, User};
//! use std::time::SystemTime;
//!
//! /// An agency method: a badge number checked by the agency's own rule.
//! struct BadgeMethod;
//!
//! impl Authenticator for BadgeMethod {
//!     fn acr(&self) -> &str {
//!         "urn:example-agency:acr:badge"
//!     }
//!     fn fields(&self) -> &'static [Field] {
//!         &[Field { name: "badge", label: "Badge number", kind: FieldKind::Password }]
//!     }
//!     fn authenticate(&mut self, user: &User, input: &LoginInput<'_>, _now: SystemTime, _rng: &dyn RandomSource) -> Result<Outcome, AuthFailure> {
//!         let badge = input.get("badge").ok_or(AuthFailure::MissingField("badge"))?;
//!         let expected = if user.mcptt_id.as_str() == "sip:alice@mcptt.example" { "4711" } else { "" };
//!         if !expected.is_empty() && badge == expected { Ok(Outcome::Authenticated) } else { Err(AuthFailure::WrongPassword) }
//!     }
//! }
//! // Registered with `idms.add_method(Box::new(BadgeMethod))`; a request with
//! // `acr_values=urn:example-agency:acr:badge` then uses it, and the tokens carry that `acr`.
//! ```

use crate::directory::{McpttId, User};
use crate::milenage::{AkaFailure, AuthVector, RAND_LEN};
use crate::oauth::{Fields, Form};
use crate::otp::OtpFailure;
use crate::random::RandomSource;
use crate::{Error, hex, unix_seconds};
use base64::Engine as _;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// `acr` of password login (TS 33.180 §5.1.3 / TS 24.482).
pub const ACR_PASSWORD: &str = "3gpp:acr:password";
/// `acr` of two-factor login (password plus TOTP); a value defined by this project.
pub const ACR_TWO_FACTOR: &str = "urn:mcptt-rs:acr:password-totp";
/// `acr` of SIM-based login (MILENAGE challenge–response); a value defined by this project.
pub const ACR_SIM: &str = "urn:mcptt-rs:acr:sim-milenage";

/// How a login form shows a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// Free text.
    Text,
    /// Hidden while typed.
    Password,
    /// A short numeric one-time code.
    OneTimeCode,
}

/// A form field a method reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The form field name.
    pub name: &'static str,
    /// A label for people.
    pub label: &'static str,
    /// How to show it.
    pub kind: FieldKind,
}

/// The submitted login form (name–value pairs as decoded from the request body).
#[derive(Clone, Copy, Debug)]
pub struct LoginInput<'a> {
    fields: Fields<'a>,
    /// The result of checking `password` against the user's hash, when [`crate::Idms`] ran
    /// that check already (outside its lock; see [`crate::Idms::begin_login`]).
    password_checked: Option<bool>,
}

impl<'a> LoginInput<'a> {
    /// Wraps decoded form fields.
    #[must_use]
    pub fn new(fields: &'a [(String, String)]) -> Self {
        Self::from_fields(Fields::Pairs(fields))
    }

    /// Wraps a decoded [`Form`].
    #[must_use]
    pub fn from_form(form: &'a Form) -> Self {
        Self::from_fields(Fields::Form(form))
    }

    pub(crate) fn from_fields(fields: Fields<'a>) -> Self {
        Self {
            fields,
            password_checked: None,
        }
    }

    /// The same input with the password check already done against the user's stored hash.
    pub(crate) fn with_password_checked(mut self, ok: bool) -> Self {
        self.password_checked = Some(ok);
        self
    }

    /// The value of a field (the first one if repeated).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.get(name)
    }
}

/// A challenge for the client to answer in its next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Identifies the pending challenge; sent back as `challenge_id`.
    pub id: String,
    /// Parameters for the client (for SIM login: `rand` and `autn`, hex).
    pub params: Vec<(&'static str, String)>,
    /// Fields the client answers with.
    pub fields: &'static [Field],
    /// When the challenge stops being accepted.
    pub expires: SystemTime,
}

impl Challenge {
    /// The challenge as the JSON object a client reads: `challenge_id`, `acr`, `expires_in`
    /// and the challenge's parameters (a parameter of the same name replaces a field), keys
    /// in sorted order. The same text as printing the equivalent `serde_json::Value` object,
    /// written directly.
    #[must_use]
    pub fn to_json(&self, acr: &str, expires_in: u64) -> String {
        enum Value<'a> {
            Str(&'a str),
            Num(u64),
        }
        let mut fields: Vec<(&str, Value<'_>)> = Vec::with_capacity(3 + self.params.len());
        fields.push(("challenge_id", Value::Str(&self.id)));
        fields.push(("acr", Value::Str(acr)));
        fields.push(("expires_in", Value::Num(expires_in)));
        for (k, v) in &self.params {
            match fields.iter_mut().find(|(name, _)| name == k) {
                Some(field) => field.1 = Value::Str(v),
                None => fields.push((k, Value::Str(v))),
            }
        }
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Room for a SIM challenge (id, acr, rand and autn in hex): one allocation.
        let mut out = String::with_capacity(256);
        out.push('{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            crate::issue::push_json_str(&mut out, name);
            out.push(':');
            match value {
                Value::Str(v) => crate::issue::push_json_str(&mut out, v),
                Value::Num(n) => out.push_str(itoa::Buffer::new().format(*n)),
            }
        }
        out.push('}');
        out
    }
}

/// What one authentication step gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The user is authenticated by this method.
    Authenticated,
    /// The client must answer a challenge.
    Challenge(Challenge),
}

/// Why a login attempt failed. Logged by the server; the user is told only that login failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No user with that MCPTT ID.
    #[error("unknown user")]
    UnknownUser,
    /// The user has no credentials for the requested method.
    #[error("method not available for this user")]
    MethodNotAvailable,
    /// The user may not sign in through this client.
    #[error("client not allowed for this user")]
    ClientNotAllowed,
    /// A required field is missing.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// Wrong password.
    #[error("wrong password")]
    WrongPassword,
    /// The one-time code was refused.
    #[error("one-time code refused: {0}")]
    Otp(OtpFailure),
    /// RES does not match XRES.
    #[error("wrong RES")]
    WrongRes,
    /// No pending challenge with that id (never issued, already answered, or for another user).
    #[error("unknown or already used challenge")]
    UnknownChallenge,
    /// The challenge expired.
    #[error("challenge expired")]
    ChallengeExpired,
    /// AUTS did not verify.
    #[error("resynchronisation refused: {0}")]
    Aka(AkaFailure),
    /// A field has the wrong form.
    #[error("malformed field `{0}`")]
    Malformed(&'static str),
    /// Too many pending challenges.
    #[error("too many pending challenges")]
    Busy,
    /// The random generator failed.
    #[error("internal error")]
    Internal,
    /// Too many failures: the user or the source is locked out until this time.
    #[error("locked out")]
    Locked {
        /// When attempts are accepted again.
        until: SystemTime,
    },
}

/// One way of authenticating a user. Implementations keep their own state (replay windows,
/// pending challenges) and take time and randomness as arguments.
pub trait Authenticator: Send {
    /// The `acr` value a success under this method gives.
    fn acr(&self) -> &str;

    /// The fields of the first step, for the login form.
    fn fields(&self) -> &'static [Field];

    /// Runs one step of the method for `user` with the submitted `input`.
    ///
    /// # Errors
    /// [`AuthFailure`] naming why.
    fn authenticate(
        &mut self,
        user: &User,
        input: &LoginInput<'_>,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Outcome, AuthFailure>;

    /// Whether this method checks the user's password (the built-in password and two-factor
    /// methods do). [`crate::Idms`] then runs that check, the expensive part of a login,
    /// before calling [`Authenticator::authenticate`] and without holding its state.
    fn uses_password(&self) -> bool {
        false
    }
}

const PASSWORD_FIELDS: &[Field] = &[Field {
    name: "password",
    label: "Password",
    kind: FieldKind::Password,
}];
const TWO_FACTOR_FIELDS: &[Field] = &[
    Field {
        name: "password",
        label: "Password",
        kind: FieldKind::Password,
    },
    Field {
        name: "otp",
        label: "One-time code",
        kind: FieldKind::OneTimeCode,
    },
];
const SIM_RESPONSE_FIELDS: &[Field] = &[Field {
    name: "res",
    label: "RES (hex)",
    kind: FieldKind::Text,
}];

fn check_password(user: &User, input: &LoginInput<'_>) -> Result<(), AuthFailure> {
    let hash = user
        .password
        .as_ref()
        .ok_or(AuthFailure::MethodNotAvailable)?;
    let password = input
        .get("password")
        .ok_or(AuthFailure::MissingField("password"))?;
    let ok = match input.password_checked {
        Some(ok) => ok,
        None => hash.verify(password),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthFailure::WrongPassword)
    }
}

/// Password login (`3gpp:acr:password`).
#[derive(Debug, Default)]
pub struct PasswordMethod;

impl Authenticator for PasswordMethod {
    fn acr(&self) -> &str {
        ACR_PASSWORD
    }
    fn uses_password(&self) -> bool {
        true
    }
    fn fields(&self) -> &'static [Field] {
        PASSWORD_FIELDS
    }
    fn authenticate(
        &mut self,
        user: &User,
        input: &LoginInput<'_>,
        _now: SystemTime,
        _rng: &dyn RandomSource,
    ) -> Result<Outcome, AuthFailure> {
        check_password(user, input)?;
        Ok(Outcome::Authenticated)
    }
}

/// Two-factor login: password plus a TOTP code; a code is accepted once per user.
#[derive(Debug, Default)]
pub struct TwoFactorMethod {
    last_step: HashMap<McpttId, u64>,
}

impl TwoFactorMethod {
    /// Creates the method with no codes used yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Authenticator for TwoFactorMethod {
    fn acr(&self) -> &str {
        ACR_TWO_FACTOR
    }
    fn uses_password(&self) -> bool {
        true
    }
    fn fields(&self) -> &'static [Field] {
        TWO_FACTOR_FIELDS
    }
    fn authenticate(
        &mut self,
        user: &User,
        input: &LoginInput<'_>,
        now: SystemTime,
        _rng: &dyn RandomSource,
    ) -> Result<Outcome, AuthFailure> {
        let totp = user.totp.as_ref().ok_or(AuthFailure::MethodNotAvailable)?;
        let otp = input.get("otp").ok_or(AuthFailure::MissingField("otp"))?;
        // The password is checked first and always, so a failure does not tell which factor was wrong.
        let password = check_password(user, input);
        let step = totp
            .verify(
                otp.trim(),
                unix_seconds(now),
                self.last_step.get(&user.mcptt_id).copied(),
            )
            .map_err(AuthFailure::Otp);
        password?;
        let step = step?;
        self.last_step.insert(user.mcptt_id.clone(), step);
        Ok(Outcome::Authenticated)
    }
}

/// Limits of [`SimMethod`].
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// How long a challenge may be answered.
    pub challenge_lifetime: Duration,
    /// Most challenges pending at once (all users).
    pub max_pending: usize,
    /// SQN increment per challenge (TS 33.102 Annex C: SEQ steps; 32 leaves room for IND).
    pub sqn_step: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            challenge_lifetime: Duration::from_secs(120),
            max_pending: 10_000,
            sqn_step: 32,
        }
    }
}

#[derive(Debug)]
struct PendingAka {
    user: McpttId,
    rand: [u8; RAND_LEN],
    xres: [u8; 8],
    expires: SystemTime,
}

/// SIM-based login: a MILENAGE challenge–response (TS 33.102 §6.3 with TS 35.206).
///
/// Step 1 (no `challenge_id`): the IdMS advances the user's SQN, draws RAND and answers a
/// [`Challenge`] with `rand` and `autn`. Step 2: the client sends `challenge_id` and `res`
/// (computed by its USIM, see [`crate::milenage::Usim`]); the challenge is consumed whatever the
/// result, so a response is accepted at most once. If the USIM found SQN stale it sends `auts`
/// instead; the IdMS checks MAC-S, takes SQN_MS and issues a new challenge.
#[derive(Debug, Default)]
pub struct SimMethod {
    config: SimConfig,
    sqn: HashMap<McpttId, u64>,
    /// Pending challenges by the 16 random bytes of their id (see [`challenge_key`]).
    pending: HashMap<[u8; CHALLENGE_ID_LEN], PendingAka>,
}

impl SimMethod {
    /// Creates the method.
    #[must_use]
    pub fn new(config: SimConfig) -> Self {
        Self {
            config,
            sqn: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// The SQN the IdMS last used for `user` (for tests and persistence).
    #[must_use]
    pub fn sqn(&self, user: &McpttId) -> Option<u64> {
        self.sqn.get(user).copied()
    }

    fn challenge(
        &mut self,
        user: &User,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Outcome, AuthFailure> {
        let sim = user.sim.as_ref().ok_or(AuthFailure::MethodNotAvailable)?;
        self.pending.retain(|_, p| p.expires > now);
        if self.pending.len() >= self.config.max_pending {
            return Err(AuthFailure::Busy);
        }
        let current = self
            .sqn
            .get(&user.mcptt_id)
            .copied()
            .unwrap_or(sim.sqn)
            .max(sim.sqn);
        let sqn = (current + self.config.sqn_step.max(1)) & crate::milenage::MAX_SQN;
        self.sqn.insert(user.mcptt_id.clone(), sqn);
        let mut rand = [0u8; RAND_LEN];
        rng.fill(&mut rand).map_err(|_| AuthFailure::Internal)?;
        let v = AuthVector::generate(&sim.milenage, rand, sqn, sim.amf);
        let mut key = [0u8; CHALLENGE_ID_LEN];
        rng.fill(&mut key).map_err(|_| AuthFailure::Internal)?;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        let expires = now + self.config.challenge_lifetime;
        self.pending.insert(
            key,
            PendingAka {
                user: user.mcptt_id.clone(),
                rand,
                xres: v.xres,
                expires,
            },
        );
        Ok(Outcome::Challenge(Challenge {
            id,
            params: vec![
                ("rand", hex::encode(&v.rand)),
                ("autn", hex::encode(&v.autn)),
            ],
            fields: SIM_RESPONSE_FIELDS,
            expires,
        }))
    }
}

/// Random bytes in a SIM challenge id.
const CHALLENGE_ID_LEN: usize = 16;

/// The bytes of a challenge id given as text: `None` unless it is the unpadded base64url of
/// [`CHALLENGE_ID_LEN`] bytes (22 characters), the only text [`SimMethod`] makes (the
/// decoder refuses non-zero trailing bits, so each id has one text).
fn challenge_key(text: &str) -> Option<[u8; CHALLENGE_ID_LEN]> {
    crate::random::token_bytes(text)
}

impl Authenticator for SimMethod {
    fn acr(&self) -> &str {
        ACR_SIM
    }
    fn fields(&self) -> &'static [Field] {
        &[]
    }
    fn authenticate(
        &mut self,
        user: &User,
        input: &LoginInput<'_>,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Outcome, AuthFailure> {
        let sim = user.sim.as_ref().ok_or(AuthFailure::MethodNotAvailable)?;
        let Some(id) = input.get("challenge_id").filter(|s| !s.is_empty()) else {
            return self.challenge(user, now, rng);
        };
        // Single use: removed before anything is checked.
        let pending = challenge_key(id)
            .and_then(|key| self.pending.remove(&key))
            .ok_or(AuthFailure::UnknownChallenge)?;
        if pending.user != user.mcptt_id {
            return Err(AuthFailure::UnknownChallenge);
        }
        if now >= pending.expires {
            return Err(AuthFailure::ChallengeExpired);
        }
        if let Some(auts) = input.get("auts").filter(|s| !s.is_empty()) {
            let auts =
                hex::decode_array(auts.trim()).map_err(|_| AuthFailure::Malformed("auts"))?;
            let sqn_ms = sim
                .milenage
                .resynchronise(&pending.rand, &auts)
                .map_err(AuthFailure::Aka)?;
            self.sqn.insert(user.mcptt_id.clone(), sqn_ms);
            return self.challenge(user, now, rng);
        }
        let res = input.get("res").ok_or(AuthFailure::MissingField("res"))?;
        let res: [u8; 8] =
            hex::decode_array(res.trim()).map_err(|_| AuthFailure::Malformed("res"))?;
        if !crate::ct_eq(&res, &pending.xres) {
            return Err(AuthFailure::WrongRes);
        }
        Ok(Outcome::Authenticated)
    }
}

/// Decodes a challenge's `rand` and `autn` parameters (client side).
///
/// # Errors
/// [`Error::Malformed`] when either is missing or not 16 bytes of hex.
pub fn sim_challenge_params(
    params: &[(impl AsRef<str>, impl AsRef<str>)],
) -> Result<([u8; 16], [u8; 16]), Error> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    };
    let rand = get("rand").ok_or(Error::Malformed {
        what: "SIM challenge",
        reason: "missing rand",
    })?;
    let autn = get("autn").ok_or(Error::Malformed {
        what: "SIM challenge",
        reason: "missing autn",
    })?;
    Ok((hex::decode_array(rand)?, hex::decode_array(autn)?))
}

#[cfg(test)]
mod tests;
