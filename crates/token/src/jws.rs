//! Compact JWS verification (RFC 7515 §5.2) with this crate's header rules.

use crate::alg::{Algorithm, verify_signature};
use crate::json::{self, Json, JsonError};
use crate::jwk::{Jwk, JwkSet};
use crate::{Error, Part, b64};

/// Limits applied before and while decoding a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwsLimits {
    /// Longest token accepted, in bytes; checked before any decoding (default 8192).
    pub max_bytes: usize,
    /// Deepest JSON nesting accepted in header and payload (default 16).
    pub max_json_depth: usize,
}

impl Default for JwsLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8192,
            max_json_depth: 16,
        }
    }
}

/// A compact JWS whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedJws {
    /// The algorithm (that of the key, equal to the header's).
    pub algorithm: Algorithm,
    /// The header `kid`, when present.
    pub kid: Option<String>,
    /// The header `typ`, when present.
    pub typ: Option<String>,
    /// The decoded payload.
    pub payload: Vec<u8>,
}

/// What `typ` a token kind requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypRule {
    /// Any or none (plain JWS).
    Any,
    /// `at+jwt` or `application/at+jwt` (RFC 9068 §2.1, §4).
    AccessToken,
    /// `JWT` or absent (RFC 7519 §5.1).
    IdToken,
}

/// Verifies a compact JWS against configured keys and returns its payload.
///
/// Checks, in order: the size cap (before decoding), exactly three
/// segments, strict base64url, a header that is a JSON object with unique
/// member names, the header rules (supported `alg`; no `crit`, `b64`,
/// `cty: JWT`, `jwk`, `jku`, `x5u`, `x5c`), key selection by `kid` (without
/// `kid`: the only key of that algorithm), the key's algorithm binding, then
/// the signature over the ASCII `header.payload`. `typ` is not checked here
/// (the token validators do).
///
/// # Errors
/// The [`Error`] naming the first failed check.
pub fn verify_compact(token: &str, keys: &JwkSet, limits: JwsLimits) -> Result<VerifiedJws, Error> {
    let mut payload = PayloadBuf::new();
    let (jws, key) = verify_parts(token, keys, limits, TypRule::Any, &mut payload)?;
    Ok(VerifiedJws {
        algorithm: key.algorithm(),
        kid: jws.kid.map(str::to_owned),
        typ: jws.typ,
        payload: jws.payload.to_vec(),
    })
}

/// Header facts of a verified token.
pub(crate) struct Parts<'k, 'b> {
    /// The header `kid`, when present: that of the key that verified (selected by it).
    pub(crate) kid: Option<&'k str>,
    pub(crate) typ: Option<String>,
    /// The decoded payload, in the caller's [`PayloadBuf`].
    pub(crate) payload: &'b [u8],
}

/// Room for a decoded payload: on the stack up to 1024 bytes (an MCPTT
/// access token's claims take about 350), else a vector.
pub(crate) struct PayloadBuf {
    stack: [u8; 1024],
    spill: Vec<u8>,
}

impl PayloadBuf {
    pub(crate) fn new() -> Self {
        Self {
            stack: [0; 1024],
            spill: Vec::new(),
        }
    }
}

/// The three segments of a compact JWS.
type Segments<'t> = (&'t [u8], &'t [u8], &'t [u8]);

/// Splits into exactly three segments (one memchr pass over the token).
fn segments(token: &str) -> Result<Segments<'_>, Error> {
    let bytes = token.as_bytes();
    let mut dots = memchr::memchr_iter(b'.', bytes);
    let (Some(d1), Some(d2), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(Error::Segments {
            found: 1 + memchr::memchr_iter(b'.', bytes).count(),
        });
    };
    match (bytes.get(..d1), bytes.get(d1 + 1..d2), bytes.get(d2 + 1..)) {
        (Some(h), Some(p), Some(s)) => Ok((h, p, s)),
        // Unreachable: d1 < d2 < len are positions in `bytes`.
        _ => Err(Error::Segments { found: 3 }),
    }
}

pub(crate) fn json_error(part: Part, e: JsonError) -> Error {
    match e {
        JsonError::Syntax { message, .. } => Error::Json { part, message },
        JsonError::Duplicate { name } => Error::DuplicateMember { part, name },
        JsonError::TooDeep { limit } => Error::TooDeep { part, limit },
    }
}

fn header_str<'v>(v: &'v Option<Json<'_>>, name: &'static str) -> Result<Option<&'v str>, Error> {
    match v {
        None => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Error::HeaderType {
            name,
            expected: "string",
        }),
    }
}

/// The header members this crate reads. The last four carry or point at
/// keys, which come only from configuration.
const HEADER_NAMES: [&str; 10] = [
    "alg", "kid", "typ", "cty", "crit", "b64", "jwk", "jku", "x5u", "x5c",
];

/// Size, segments, base64url, header rules, key selection and signature;
/// returns the header facts, the decoded payload and the key that verified.
pub(crate) fn verify_parts<'k, 'b>(
    token: &str,
    keys: &'k JwkSet,
    limits: JwsLimits,
    typ_rule: TypRule,
    payload_buf: &'b mut PayloadBuf,
) -> Result<(Parts<'k, 'b>, &'k Jwk), Error> {
    if token.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            limit: limits.max_bytes,
            actual: token.len(),
        });
    }
    let (h64, p64, s64) = segments(token)?;
    let (mut header_buf, mut header_spill) = ([0u8; 512], Vec::new());
    let header_bytes = b64::decode_small(h64, Part::Header, &mut header_buf, &mut header_spill)?;
    let fields = json::parse_fields(header_bytes, limits.max_json_depth, &HEADER_NAMES)
        .map_err(|e| json_error(Part::Header, e))?
        .map_err(|found| Error::NotObject {
            part: Part::Header,
            found,
        })?;
    let [alg_v, kid_v, typ_v, cty_v, crit, b64_v, jwk, jku, x5u, x5c] = &fields;
    let alg_name = header_str(alg_v, "alg")?;
    let kid = header_str(kid_v, "kid")?;
    let typ = header_str(typ_v, "typ")?;
    let cty = header_str(cty_v, "cty")?;
    let b64_member = b64_v.is_some();
    let embedded = [(jwk, "jwk"), (jku, "jku"), (x5u, "x5u"), (x5c, "x5c")]
        .into_iter()
        .find_map(|(v, n)| v.is_some().then_some(n));
    // Fixed order, so the reported check does not depend on member order.
    let alg_name = alg_name.unwrap_or_default();
    let alg = Algorithm::from_name(alg_name).ok_or_else(|| Error::UnsupportedAlgorithm {
        alg: alg_name.to_owned(),
    })?;
    if b64_member {
        return Err(Error::UnencodedPayload);
    }
    if let Some(crit) = crit {
        let names = match crit {
            Json::Arr(items) => items
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        return Err(Error::Critical { names });
    }
    if let Some(cty) = cty
        && (cty.eq_ignore_ascii_case("JWT") || cty.eq_ignore_ascii_case("application/jwt"))
    {
        return Err(Error::NestedToken {
            cty: cty.to_owned(),
        });
    }
    if let Some(name) = embedded {
        return Err(Error::EmbeddedKey { name });
    }
    check_typ(typ_rule, typ)?;

    let key = keys
        .select(kid, Some(alg))
        .ok_or_else(|| Error::UnknownKey {
            kid: kid.unwrap_or_default().to_owned(),
            refresh_requested: false,
        })?;
    if key.algorithm() != alg {
        return Err(Error::AlgorithmMismatch {
            kid: kid.unwrap_or_default().to_owned(),
            expected: key.algorithm().as_str(),
            received: alg_name.to_owned(),
        });
    }
    // All three segments are strict base64url before any signature work.
    let PayloadBuf { stack, spill } = payload_buf;
    let payload = b64::decode_small(p64, Part::Claims, stack, spill)?;
    // 1024 bytes: the largest RSA signature (8192-bit modulus).
    let (mut sig_buf, mut sig_spill) = ([0u8; 1024], Vec::new());
    let sig = b64::decode_small(s64, Part::Signature, &mut sig_buf, &mut sig_spill)?;
    let signing_input = token
        .as_bytes()
        .get(..h64.len() + 1 + p64.len())
        .unwrap_or_default();
    verify_signature(alg, key, signing_input, sig)?;
    let parts = Parts {
        // `select` found the key by this exact `kid`.
        kid: kid.and_then(|_| key.kid()),
        typ: (typ_rule == TypRule::Any)
            .then(|| typ.map(str::to_owned))
            .flatten(),
        payload,
    };
    Ok((parts, key))
}

fn check_typ(rule: TypRule, typ: Option<&str>) -> Result<(), Error> {
    let ok = match rule {
        TypRule::Any => true,
        TypRule::AccessToken => typ.is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        }),
        TypRule::IdToken => typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT")),
    };
    if ok {
        return Ok(());
    }
    Err(Error::Type {
        expected: match rule {
            TypRule::AccessToken => "at+jwt or application/at+jwt",
            _ => "JWT or absent",
        },
        received: typ.map(str::to_owned),
    })
}
