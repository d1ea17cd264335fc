//! `mcptt-idm`: MCPTT identity management: users, authentication methods, OAuth 2.0
//! authorization code + PKCE, and token issuing (step 1 of the MCPTT flow).
//!
//! - [`directory`]: users keyed by MCPTT ID (a SIP URI, independent of IMSI and public user
//!   identity), their credentials and allowed clients, loaded from a documented TOML format.
//! - [`authn`]: the [`Authenticator`] trait and three methods: password (PBKDF2-HMAC-SHA256,
//!   [`password`]), two-factor password + TOTP ([`otp`], RFC 6238 / RFC 4226) and SIM-based
//!   MILENAGE challenge–response ([`milenage`], TS 35.206, TS 33.102).
//! - [`throttle`]: per-user and per-source failure counters with lock-out and back-off.
//! - [`oauth`]: authorization requests, single-use PKCE-bound codes (S256 only, RFC 7636),
//!   token endpoint with refresh-token rotation, RFC 6749 §5.2 errors.
//! - [`issue`]: ID and access tokens (RFC 9068) signed through `mcptt-token`, with a key ring
//!   whose JWKS publishes every key so rotation does not break tokens in flight.
//! - [`Idms`]: all of it behind the IdMS endpoints as plain functions.
//!
//! The crate is **sans-IO**: it opens no sockets and files, reads no clock and draws no
//! randomness of its own. Callers pass `now` (wall-clock [`SystemTime`]), the request's source
//! address, and a [`RandomSource`]. The HTTP server lives in the `idms` example.
//!
//! # Example
//!
//! ```
//! use mcptt_idm::{Directory, Idms, IdmsConfig, KeyRing, LoginOutcome, SystemRandom};
//! use mcptt_idm::oauth::{parse_form, s256_challenge, Client};
//! use mcptt_idm::password::PasswordHash;
//! use mcptt_token::{Algorithm, SigningKey};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rng = SystemRandom::new();
//! let hash = PasswordHash::generate("secret", 1_000, &rng)?.encode();
//! let mut directory = Directory::from_toml(&format!(r#"
//!     [[client]]
//!     client_id = "mcptt-ue"
//!     redirect_uris = ["http://127.0.0.1:7777/cb"]
//!     [[user]]
//!     mcptt_id = "sip:alice@mcptt.example"
//!     password = "{hash}"
//! "#))?;
//! let key = SigningKey::generate(Algorithm::Es256, "k1", &ring::rand::SystemRandom::new())?;
//! let mut idms = Idms::new(IdmsConfig::new("https://idms.example"), directory, KeyRing::new(key))?;
//!
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! let form = format!(
//!     "response_type=code&client_id=mcptt-ue&redirect_uri=http%3A%2F%2F127.0.0.1%3A7777%2Fcb\
//!      &scope=openid+3gpp%3Amcptt%3Aptt_server&state=xyz&nonce=n1&code_challenge={}\
//!      &code_challenge_method=S256&username=sip%3Aalice%40mcptt.example&password=secret",
//!     s256_challenge(verifier));
//! let form = parse_form(&form, 64)?;
//! let LoginOutcome::Redirect(location) = idms.login(&form, "127.0.0.1".parse()?, now, &rng) else {
//!     panic!("login failed");
//! };
//! let code = location.split("code=").nth(1).and_then(|s| s.split('&').next()).unwrap_or_default();
//! let token_form = parse_form(&format!(
//!     "grant_type=authorization_code&client_id=mcptt-ue&code={code}\
//!      &redirect_uri=http%3A%2F%2F127.0.0.1%3A7777%2Fcb&code_verifier={verifier}"), 64)?;
//! let tokens = idms.token(&token_form, now, &rng)?;
//! assert_eq!(tokens.token_type, "Bearer");
//! assert!(tokens.id_token.is_some());
//! # Ok(()) }
//! ```

pub mod authn;
pub mod directory;
mod error;
pub mod hex;
mod idms;
pub mod issue;
pub mod milenage;
pub mod oauth;
pub mod otp;
pub mod password;
mod random;
pub mod throttle;

pub use authn::{ACR_PASSWORD, ACR_SIM, ACR_TWO_FACTOR, AuthFailure, Authenticator};
pub use directory::{Directory, McpttId, User};
pub use error::{DirectoryError, Error};
pub use idms::{
    AUTHORIZE_PATH, DISCOVERY_PATH, Idms, IdmsConfig, JWKS_PATH, LoginOutcome, LoginPage,
    PendingLogin, TOKEN_PATH,
};
pub use issue::{KeyRing, TokenResponse};
pub use random::{BufferedRandom, RandomSource, SystemRandom};

use std::time::SystemTime;

/// Seconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
