//! Signing keys and token issuing (the IdMS side).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, KeyPair as _};

use crate::alg::Algorithm;
use crate::claims::{ACCESS_FIELDS, AccessTokenClaims, ID_FIELDS, IdTokenClaims};
use crate::jwk::{Jwk, KeyMaterial, MIN_RSA_BITS, bit_len};
use crate::{Error, b64, sip_uri};

enum Inner {
    Ecdsa(signature::EcdsaKeyPair),
    Rsa(signature::RsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

/// A private signing key bound to one [`Algorithm`] and one `kid`.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    inner: Inner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 v1/v2 DER private key (`-----BEGIN PRIVATE KEY-----`
    /// without the PEM armour) for `alg`: P-256 for ES256, RSA ≥ 2048 bits for
    /// RS256/PS256, Ed25519 for EdDSA.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the DER is not a key of that type,
    /// [`Error::WeakKey`] for RSA below 2048 bits, [`Error::ApiMisuse`] for an empty `kid`.
    pub fn from_pkcs8(alg: Algorithm, kid: impl Into<String>, der: &[u8]) -> Result<Self, Error> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(Error::ApiMisuse(
                "a signing key needs a non-empty kid".into(),
            ));
        }
        let bad = |e: ring::error::KeyRejected| Error::InvalidKey {
            kid: Some(kid.clone()),
            reason: format!("PKCS#8 key rejected for {alg}: {e}"),
        };
        let inner = match alg {
            Algorithm::Es256 => Inner::Ecdsa(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(bad)?,
            ),
            Algorithm::Rs256 | Algorithm::Ps256 => {
                let kp = signature::RsaKeyPair::from_pkcs8(der).map_err(bad)?;
                let bits = bit_len(kp.public_key().as_ref()).min(kp.public().modulus_len() * 8);
                if kp.public().modulus_len() * 8 < MIN_RSA_BITS {
                    return Err(Error::WeakKey {
                        bits,
                        min: MIN_RSA_BITS,
                    });
                }
                Inner::Rsa(kp)
            }
            Algorithm::EdDsa => Inner::Ed25519(
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(bad)?,
            ),
        };
        Ok(Self { alg, kid, inner })
    }

    /// Generates a fresh key pair (ES256 or EdDSA; ring cannot generate RSA
    /// keys) and returns it with its PKCS#8 DER encoding, so it can be stored.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for RS256/PS256, [`Error::Signing`] when `rng` fails.
    pub fn generate_pkcs8(alg: Algorithm, rng: &dyn SecureRandom) -> Result<Vec<u8>, Error> {
        match alg {
            Algorithm::Es256 => signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                rng,
            )
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| Error::Signing),
            Algorithm::EdDsa => signature::Ed25519KeyPair::generate_pkcs8(rng)
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| Error::Signing),
            Algorithm::Rs256 | Algorithm::Ps256 => Err(Error::ApiMisuse(
                "RSA keys cannot be generated here; load one with SigningKey::from_pkcs8".into(),
            )),
        }
    }

    /// Generates a fresh key pair (ES256 or EdDSA), e.g. for demos and tests.
    ///
    /// # Errors
    /// As [`SigningKey::generate_pkcs8`] and [`SigningKey::from_pkcs8`].
    pub fn generate(
        alg: Algorithm,
        kid: impl Into<String>,
        rng: &dyn SecureRandom,
    ) -> Result<Self, Error> {
        let der = Self::generate_pkcs8(alg, rng)?;
        Self::from_pkcs8(alg, kid, &der)
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id put in every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a [`Jwk`] (same `kid` and algorithm), for the JWKS.
    pub fn public_jwk(&self) -> Jwk {
        let material = match &self.inner {
            Inner::Ecdsa(kp) => {
                let mut point = [0u8; 65];
                let pk = kp.public_key().as_ref();
                if pk.len() == 65 {
                    point.copy_from_slice(pk);
                }
                KeyMaterial::P256 { point }
            }
            Inner::Rsa(kp) => {
                let c: ring::rsa::PublicKeyComponents<Vec<u8>> = kp.public().into();
                KeyMaterial::Rsa { n: c.n, e: c.e }
            }
            Inner::Ed25519(kp) => {
                let mut x = [0u8; 32];
                let pk = kp.public_key().as_ref();
                if pk.len() == 32 {
                    x.copy_from_slice(pk);
                }
                KeyMaterial::Ed25519 { x }
            }
        };
        Jwk::new(Some(self.kid.clone()), self.alg, material)
    }

    /// Signs `signing_input` (the ASCII `header.payload`) and returns the raw
    /// JWS signature (64-byte `R‖S` for ES256).
    ///
    /// # Errors
    /// [`Error::Signing`] when the primitive or `rng` fails.
    pub fn sign(&self, signing_input: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, Error> {
        self.signature(signing_input, rng)
            .map(|s| s.as_ref().to_vec())
    }

    /// [`Self::sign`] without the copy: ECDSA and EdDSA signatures stay in
    /// ring's fixed-size value.
    fn signature(&self, signing_input: &[u8], rng: &dyn SecureRandom) -> Result<Sig, Error> {
        match &self.inner {
            Inner::Ecdsa(kp) => kp
                .sign(rng, signing_input)
                .map(Sig::Ring)
                .map_err(|_| Error::Signing),
            Inner::Rsa(kp) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(padding, rng, signing_input, &mut sig)
                    .map_err(|_| Error::Signing)?;
                Ok(Sig::Vec(sig))
            }
            Inner::Ed25519(kp) => Ok(Sig::Ring(kp.sign(signing_input))),
        }
    }
}

/// A raw JWS signature: ring's value (ECDSA, EdDSA) or an RSA signature.
enum Sig {
    Ring(signature::Signature),
    Vec(Vec<u8>),
}

impl AsRef<[u8]> for Sig {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Ring(s) => s.as_ref(),
            Self::Vec(v) => v,
        }
    }
}

/// Issues signed access and ID tokens with one [`SigningKey`].
///
/// The header is `{"alg":…,"typ":"at+jwt","kid":…}` for access tokens
/// (RFC 9068 §2.1) and `{"alg":…,"typ":"JWT","kid":…}` for ID tokens.
/// ECDSA and RSA-PSS need randomness: [`Signer::new`] uses ring's
/// `SystemRandom`; [`Signer::with_rng`] injects another source.
pub struct Signer {
    key: SigningKey,
    rng: Box<dyn SecureRandom + Send + Sync>,
    /// The base64url headers of access tokens (`at+jwt`) and ID tokens (`JWT`), encoded once:
    /// `alg` and `kid` never change for a signer, so every token of a kind has the same header.
    access_header: String,
    id_header: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with ring's operating-system random source.
    pub fn new(key: SigningKey) -> Self {
        Self::with_rng(key, Box::new(SystemRandom::new()))
    }

    /// A signer with an injected random source.
    pub fn with_rng(key: SigningKey, rng: Box<dyn SecureRandom + Send + Sync>) -> Self {
        Self {
            access_header: encoded_header(&key, "at+jwt"),
            id_header: encoded_header(&key, "JWT"),
            key,
            rng,
        }
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs an access token (`typ: at+jwt`).
    ///
    /// The claims are checked first so that the IdMS never issues a token the
    /// validator would refuse for its shape: non-empty `iss`, `sub`, `jti`,
    /// `client_id`, `scope`, at least one non-empty audience, `exp > iat`,
    /// `mcptt_id` a SIP URI, and no `extra` claim shadowing a field.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for claims that break these rules, [`Error::Signing`].
    pub fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        let misuse = |m: &str| Err(Error::ApiMisuse(format!("access token claims: {m}")));
        for (name, v) in [
            ("iss", &claims.iss),
            ("sub", &claims.sub),
            ("jti", &claims.jti),
            ("client_id", &claims.client_id),
            ("scope", &claims.scope),
        ] {
            if v.is_empty() {
                return misuse(&format!("{name} is empty"));
            }
        }
        if claims.aud.is_empty() || claims.aud.iter().any(String::is_empty) {
            return misuse("aud needs at least one non-empty audience");
        }
        if claims.exp <= claims.iat {
            return misuse("exp must be after iat");
        }
        if let Err(e) = sip_uri::check(&claims.mcptt_id) {
            return misuse(&format!("mcptt_id: {e}"));
        }
        if let Some(k) = claims
            .extra
            .keys()
            .find(|k| ACCESS_FIELDS.contains(&k.as_str()))
        {
            return misuse(&format!("extra claim {k:?} shadows a field"));
        }
        self.sign_claims("at+jwt", claims)
    }

    /// Signs an ID token (`typ: JWT`).
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for empty `iss`/`sub`/`aud`, `exp <= iat`, a
    /// `mcptt_id` that is not a SIP URI or a shadowing `extra` claim; [`Error::Signing`].
    pub fn sign_id_token(&self, claims: &IdTokenClaims) -> Result<String, Error> {
        let misuse = |m: &str| Err(Error::ApiMisuse(format!("ID token claims: {m}")));
        for (name, v) in [
            ("iss", &claims.iss),
            ("sub", &claims.sub),
            ("aud", &claims.aud),
        ] {
            if v.is_empty() {
                return misuse(&format!("{name} is empty"));
            }
        }
        if claims.exp <= claims.iat {
            return misuse("exp must be after iat");
        }
        if let Err(e) = sip_uri::check(&claims.mcptt_id) {
            return misuse(&format!("mcptt_id: {e}"));
        }
        if let Some(k) = claims
            .extra
            .keys()
            .find(|k| ID_FIELDS.contains(&k.as_str()))
        {
            return misuse(&format!("extra claim {k:?} shadows a field"));
        }
        self.sign_claims("JWT", claims)
    }

    /// Serializes `claims` and signs them.
    fn sign_claims(&self, typ: &str, claims: &impl serde::Serialize) -> Result<String, Error> {
        let payload = serde_json::to_vec(claims).map_err(|e| Error::ApiMisuse(e.to_string()))?;
        self.sign_jwt(typ, &payload)
    }

    /// Signs an arbitrary payload as a compact JWS with the given `typ`
    /// (low level: no claim checks).
    ///
    /// # Errors
    /// [`Error::Signing`].
    pub fn sign_jwt(&self, typ: &str, payload: &[u8]) -> Result<String, Error> {
        let fresh;
        let header = match typ {
            "at+jwt" => &self.access_header,
            "JWT" => &self.id_header,
            _ => {
                fresh = encoded_header(&self.key, typ);
                &fresh
            }
        };
        // Header, payload and an ES256 signature (86 characters) without growing the string.
        let mut out = String::with_capacity(header.len() + payload.len().div_ceil(3) * 4 + 96);
        out.push_str(header);
        out.push('.');
        b64::encode_into(payload, &mut out);
        let sig = self.key.signature(out.as_bytes(), &*self.rng)?;
        out.push('.');
        b64::encode_into(sig.as_ref(), &mut out);
        Ok(out)
    }
}

/// The base64url JOSE header `{"alg":…,"kid":…,"typ":…}` of `key`'s tokens of type `typ`.
fn encoded_header(key: &SigningKey, typ: &str) -> String {
    let header = serde_json::json!({
        "alg": key.alg.as_str(),
        "typ": typ,
        "kid": key.kid,
    });
    b64::encode(header.to_string().as_bytes())
}
