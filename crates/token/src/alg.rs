//! Signature algorithms and the low-level verification primitive.

use std::fmt;

use ring::signature;

use crate::Error;
use crate::jwk::{Jwk, KeyMaterial};

/// A JWS signature algorithm this crate accepts (RFC 7518 §3, RFC 8037 §3.1).
///
/// `none`, every HMAC algorithm and everything else are refused by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256; the signature is raw `R‖S` (64 bytes), never DER.
    #[default]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, modulus 2048 bits or more.
    Rs256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt, modulus 2048 bits or more.
    Ps256,
    /// Ed25519 (RFC 8037 `EdDSA` with `crv` `Ed25519`).
    EdDsa,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 4] = [Self::Es256, Self::Rs256, Self::Ps256, Self::EdDsa];

    /// The JOSE name (`ES256`, `RS256`, `PS256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name (case-sensitive, RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Verifies `signature` over `signing_input` (the ASCII `header.payload` of a
/// compact JWS) with `key`, which must be bound to `alg`.
///
/// This is the primitive every token validation goes through; it is public so
/// that test vectors and other JOSE users can reach it. ES256 takes only the
/// 64-byte `R‖S` form (RFC 7518 §3.4): a DER signature is refused by its length.
///
/// # Errors
/// [`Error::AlgorithmMismatch`] when the key is bound to another algorithm,
/// [`Error::Signature`] when the signature has the wrong length or does not verify.
pub fn verify_signature(
    alg: Algorithm,
    key: &Jwk,
    signing_input: &[u8],
    sig: &[u8],
) -> Result<(), Error> {
    if key.algorithm() != alg {
        return Err(Error::AlgorithmMismatch {
            kid: key.kid().unwrap_or_default().to_owned(),
            expected: key.algorithm().as_str(),
            received: alg.as_str().to_owned(),
        });
    }
    let ok = match (alg, key.material()) {
        (Algorithm::Es256, KeyMaterial::P256 { point }) => {
            if sig.len() != 64 {
                return Err(Error::Signature {
                    reason: "ES256 signature must be 64 bytes (R||S)",
                });
            }
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point[..])
                .verify(signing_input, sig)
        }
        (Algorithm::Rs256 | Algorithm::Ps256, KeyMaterial::Rsa { n, e }) => {
            if sig.len() != n.len() {
                return Err(Error::Signature {
                    reason: "RSA signature length differs from the modulus length",
                });
            }
            let params = if alg == Algorithm::Rs256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            signature::RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .verify(params, signing_input, sig)
        }
        (Algorithm::EdDsa, KeyMaterial::Ed25519 { x }) => {
            if sig.len() != 64 {
                return Err(Error::Signature {
                    reason: "Ed25519 signature must be 64 bytes",
                });
            }
            signature::UnparsedPublicKey::new(&signature::ED25519, &x[..])
                .verify(signing_input, sig)
        }
        // A `Jwk` is only ever built with material matching its algorithm.
        _ => {
            return Err(Error::Signature {
                reason: "key material does not fit the algorithm",
            });
        }
    };
    ok.map_err(|_| Error::Signature {
        reason: "verification failed",
    })
}
