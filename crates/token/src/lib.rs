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
//! # API overview
//!
//! | need | API |
//! |---|---|
//! | load a private key (PKCS#8 DER) bound to one algorithm | [`SigningKey::from_pkcs8`], [`SigningKey::generate`] (ES256/EdDSA, demos) |
//! | publish the public keys | [`SigningKey::public_jwk`], [`JwkSet::from_keys`], [`JwkSet::to_json`] |
//! | issue tokens | [`Signer::sign_access_token`] ([`AccessTokenClaims`]), [`Signer::sign_id_token`] ([`IdTokenClaims`]) |
//! | configure keys | [`JwkSet::from_json`], [`KeyStore::new`], [`KeyStore::replace`] (rotation) |
//! | refresh on unknown `kid` | [`KeyStore::poll_refresh`], [`KeyStore::handle_refresh_json`] / [`KeyStore::handle_refresh_result`] |
//! | validate | [`Validator::new`] ([`ValidatorConfig`]), [`Validator::validate_access_token`] → [`AccessToken`], [`Validator::validate_id_token`] → [`IdToken`] |
//! | validate, copying only the claims used | [`Validator::validate_access_token_with`] → [`AccessTokenRef`] (borrowed claims) |
//! | handle failures | [`Error::kind`] (log field), [`Error::status_code`] (403 + "101 service authorisation failed") |
//! | lower level | [`verify_compact`] (any compact JWS), [`verify_signature`] (one signature), [`sip_uri::check`] |
//!
//! # What is refused
//!
//! Tokens longer than the limit (8192 bytes by default, checked before
//! decoding); anything but three strict base64url segments; duplicate JSON
//! member names at any depth (`serde_json` alone keeps the last one);
//! nesting deeper than 16; `alg` `none`, HMAC and everything except ES256
//! (64-byte `R‖S` only, DER refused), RS256/PS256 (2048-bit keys and up)
//! and EdDSA (Ed25519); an `alg` other than the one the key is bound to;
//! `crit`, `b64`, `cty: JWT`, `jwk`, `jku`, `x5u`, `x5c` headers; a `typ`
//! other than `at+jwt`/`application/at+jwt` (access tokens) or `JWT`/none
//! (ID tokens); missing, mistyped or empty claims (`exp`, `nbf`, `iat` must
//! be JSON numbers); wrong `iss` or `aud`; expiry, `nbf` and `iat` beyond
//! the leeway (default 60 s, at most 300 s); a `scope` without an accepted
//! scope as a whole space-separated token; an `mcptt_id` that is not a
//! `sip:`/`sips:` URI with a user part. Key sets with private or symmetric
//! key material, duplicate `kid`s, RSA keys below 2048 bits or with the
//! ROCA fingerprint are refused when loaded.
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
pub use claims::{AccessToken, AccessTokenClaims, AccessTokenRef, IdToken, IdTokenClaims};
pub use error::{Error, Part};
pub use jwk::{Jwk, JwkSet, MAX_RSA_BITS, MIN_RSA_BITS};
pub use jws::{JwsLimits, VerifiedJws, verify_compact};
pub use keystore::{DEFAULT_REFRESH_INTERVAL_SECS, KeyStore};
pub use sign::{Signer, SigningKey};
pub use validate::{
    DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS, SCOPE_PTT_SERVER, SCOPE_PTT_SERVICE, Validator,
    ValidatorConfig,
};
