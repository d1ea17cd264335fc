//! `mcptt-token`: JWS/JWT access- and ID-token validation and signing for
//! MCPTT, built on `ring`, `serde_json` and `base64`.
//!
//! The MCPTT server trusts a user only through the access token the IdMS
//! issued (TS 24.482, TS 33.180). This crate:
//!
//! * **signs** access tokens (`typ: at+jwt`, RFC 9068) and ID tokens with
//!   ES256 (default), RS256, PS256 or EdDSA from PKCS#8 keys, and publishes
//!   the public keys as a JWKS ([`SigningKey`], [`Signer`], [`JwkSet`]);
//! * **validates** them strictly by itself ([`Validator`]): strict base64url,
//!   exactly three segments, a size cap before any decoding, duplicate JSON
//!   member names refused, algorithms bound to keys, `typ`/`crit`/`b64`/`cty`
//!   header rules, embedded keys (`jwk`, `jku`, `x5u`, `x5c`) refused, and
//!   the claim rules of RFC 9068 plus `mcptt_id`.
//!
//! It is sans-IO: the caller passes the wall-clock time (`now`, Unix
//! seconds) and fetches key sets itself; the [`KeyStore`] only says when a
//! refresh is due. It spawns no threads and reads no clock.
//!
//! # Example
//!
//! ```
//! use mcptt_token::{AccessTokenClaims, Algorithm, JwkSet, KeyStore, Signer, SigningKey,
//!                   Validator, ValidatorConfig};
//! use ring::rand::SystemRandom;
//!
//! # fn main() -> Result<(), mcptt_token::Error> {
//! // IdMS side: a key, its public JWKS, and a signed access token.
//! let key = SigningKey::generate(Algorithm::Es256, "2026-11", &SystemRandom::new())?;
//! let jwks_json = JwkSet::from_keys([key.public_jwk()])?.to_json();
//! let signer = Signer::new(key);
//! let now = 1_800_000_000;
//! let token = signer.sign_access_token(&AccessTokenClaims {
//!     iss: "https://idms.example".into(),
//!     sub: "alice".into(),
//!     aud: vec!["sip:mcptt-server@mcptt.example".into()],
//!     exp: now + 3600,
//!     iat: now,
//!     jti: "b2f0d5c4".into(),
//!     client_id: "mcptt-client".into(),
//!     scope: "openid 3gpp:mcptt:ptt_server".into(),
//!     mcptt_id: "sip:alice@mcptt.example".into(),
//!     ..Default::default()
//! })?;
//!
//! // MCPTT server side: keys from configuration, then validation.
//! let keys = KeyStore::new(JwkSet::from_json(&jwks_json)?);
//! let validator = Validator::new(
//!     ValidatorConfig::new("https://idms.example", "sip:mcptt-server@mcptt.example"),
//!     keys,
//! )?;
//! let at = validator.validate_access_token(&token, now + 10)?;
//! assert_eq!(at.mcptt_id, "sip:alice@mcptt.example");
//! assert_eq!(at.subject, "alice");
//! let late = validator.validate_access_token(&token, now + 7200).unwrap_err();
//! assert_eq!(late.kind(), "expired");
//! assert_eq!(late.status_code(), Some(403));
//! # Ok(()) }
//! ```

mod alg;
mod b64;
mod cache;
mod claims;
mod error;
mod json;
mod jwk;
mod jws;
mod keystore;
mod sign;
pub mod sip_uri;
mod validate;

pub use alg::{Algorithm, verify_signature};
pub use claims::{AccessToken, AccessTokenClaims, IdToken, IdTokenClaims};
pub use error::{Error, Part};
pub use jwk::{Jwk, JwkSet, MAX_RSA_BITS, MIN_RSA_BITS};
pub use jws::{JwsLimits, VerifiedJws, verify_compact};
pub use keystore::{DEFAULT_REFRESH_INTERVAL_SECS, KeyStore};
pub use sign::{Signer, SigningKey};
pub use validate::{
    DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS, SCOPE_PTT_SERVER, SCOPE_PTT_SERVICE, Validator,
    ValidatorConfig,
};
