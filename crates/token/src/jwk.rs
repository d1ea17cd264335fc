//! JSON Web Keys and key sets (RFC 7517), public keys only, each bound to one algorithm.

use std::collections::HashSet;

use crate::alg::Algorithm;
use crate::json::{self, Json, JsonError};
use crate::{Error, Part, b64};

/// Depth limit for JWK documents: `{"keys":[{"key_ops":[...]}]}` needs 3.
const JWK_MAX_DEPTH: usize = 8;

/// Minimum RSA modulus size accepted anywhere in this crate.
pub const MIN_RSA_BITS: usize = 2048;
/// Maximum RSA modulus size accepted (ring's verification limit).
pub const MAX_RSA_BITS: usize = 8192;

/// Public key material; which variant is fixed by the key's algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyMaterial {
    /// Uncompressed SEC1 point `04‖x‖y` on P-256.
    P256 { point: [u8; 65] },
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Ed25519 public key.
    Ed25519 { x: [u8; 32] },
}

/// A public JSON Web Key bound to exactly one [`Algorithm`].
///
/// Built from configuration ([`Jwk::from_json`], [`JwkSet::from_json`]) or
/// from a [`crate::SigningKey`]; never from a token header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    kid: Option<String>,
    alg: Algorithm,
    material: KeyMaterial,
}

/// Outcome of reading one member of a key set.
enum Loaded {
    Key(Jwk),
    Skipped(String),
}

impl Jwk {
    pub(crate) fn new(kid: Option<String>, alg: Algorithm, material: KeyMaterial) -> Self {
        Self { kid, alg, material }
    }

    /// Parses one public JWK (RFC 7517 §4) and binds it to its algorithm: the
    /// `alg` member when present (it must fit `kty`/`crv`), otherwise the only
    /// algorithm the key type allows (`EC` P-256 → ES256, `OKP` Ed25519 →
    /// EdDSA). An `RSA` key without `alg` is refused: RS256 and PS256 would
    /// both fit, and a key must serve one algorithm only.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for malformed, private, symmetric, encryption-only
    /// or unsupported keys; [`Error::WeakKey`] for RSA below 2048 bits.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let doc = parse_key_json(json.as_bytes())?;
        match load(&doc)? {
            Loaded::Key(k) => Ok(k),
            Loaded::Skipped(reason) => Err(Error::InvalidKey {
                kid: doc.get("kid").and_then(Json::as_str).map(str::to_owned),
                reason,
            }),
        }
    }

    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// RSA modulus size in bits (`None` for other key types).
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.material {
            KeyMaterial::Rsa { n, .. } => Some(bit_len(n)),
            _ => None,
        }
    }

    pub(crate) fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// The public JWK as a JSON object string, with `kty`, `use: sig`, `alg`,
    /// `kid` (when set) and the key parameters.
    pub fn to_json(&self) -> String {
        let mut obj = serde_json::Map::new();
        let s = |v: &str| serde_json::Value::String(v.to_owned());
        match &self.material {
            KeyMaterial::P256 { point } => {
                obj.insert("kty".into(), s("EC"));
                obj.insert("crv".into(), s("P-256"));
                obj.insert(
                    "x".into(),
                    s(&b64::encode(point.get(1..33).unwrap_or_default())),
                );
                obj.insert(
                    "y".into(),
                    s(&b64::encode(point.get(33..65).unwrap_or_default())),
                );
            }
            KeyMaterial::Rsa { n, e } => {
                obj.insert("kty".into(), s("RSA"));
                obj.insert("n".into(), s(&b64::encode(n)));
                obj.insert("e".into(), s(&b64::encode(e)));
            }
            KeyMaterial::Ed25519 { x } => {
                obj.insert("kty".into(), s("OKP"));
                obj.insert("crv".into(), s("Ed25519"));
                obj.insert("x".into(), s(&b64::encode(x)));
            }
        }
        obj.insert("use".into(), s("sig"));
        obj.insert("alg".into(), s(self.alg.as_str()));
        if let Some(kid) = &self.kid {
            obj.insert("kid".into(), s(kid));
        }
        serde_json::Value::Object(obj).to_string()
    }
}

/// A set of public keys (RFC 7517 §5), looked up by `kid`; several keys may
/// be live at once (rotation).
///
/// Key ids are unique within a set. Members that are well-formed but not
/// for this crate (`use: enc`, `key_ops` without `verify`, algorithms other
/// than ES256/RS256/PS256/EdDSA) are skipped and listed in
/// [`JwkSet::skipped`]; members that are broken or dangerous (private or
/// symmetric key material, RSA below 2048 bits, bad encodings, duplicate
/// `kid`) make the whole set fail to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
    skipped: Vec<String>,
}

impl JwkSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from keys.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when two keys share a `kid`.
    pub fn from_keys(keys: impl IntoIterator<Item = Jwk>) -> Result<Self, Error> {
        let mut set = Self::new();
        for k in keys {
            set.insert(k)?;
        }
        Ok(set)
    }

    /// Adds a key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the set already has a key with this `kid`.
    pub fn insert(&mut self, key: Jwk) -> Result<(), Error> {
        if key.kid.is_some() && self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(Error::InvalidKey {
                kid: key.kid,
                reason: "duplicate kid in key set".into(),
            });
        }
        self.keys.push(key);
        Ok(())
    }

    /// Parses a JWKS document `{"keys":[...]}` (see the type docs for what is skipped).
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::WeakKey`] (see the type docs).
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let doc = parse_key_json(json.as_bytes())?;
        let Some(Json::Arr(members)) = doc.get("keys") else {
            return Err(Error::InvalidKey {
                kid: None,
                reason: "a key set needs a \"keys\" array".into(),
            });
        };
        let mut set = Self::new();
        let mut kids = HashSet::new();
        for (i, member) in members.iter().enumerate() {
            if let Some(kid) = member.get("kid").and_then(Json::as_str)
                && !kids.insert(kid)
            {
                return Err(Error::InvalidKey {
                    kid: Some(kid.to_owned()),
                    reason: "duplicate kid in key set".into(),
                });
            }
            match load(member)? {
                Loaded::Key(k) => set.keys.push(k),
                Loaded::Skipped(reason) => set.skipped.push(format!("keys[{i}]: {reason}")),
            }
        }
        Ok(set)
    }

    /// The JWKS document `{"keys":[...]}` to publish (public keys only).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"keys\":[");
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&k.to_json());
        }
        out.push_str("]}");
        out
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Why members of the parsed document were skipped (one line each).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// Key selection for a token: by `kid` when the token has one; without
    /// `kid`, the single key bound to `alg` (none or several → `None`).
    pub fn select(&self, kid: Option<&str>, alg: Option<Algorithm>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.get(kid),
            None => {
                let alg = alg?;
                let mut it = self.keys.iter().filter(|k| k.alg == alg);
                let first = it.next()?;
                it.next().is_none().then_some(first)
            }
        }
    }
}

fn parse_key_json(input: &[u8]) -> Result<Json<'_>, Error> {
    let doc = json::parse(input, JWK_MAX_DEPTH).map_err(|e| match e {
        JsonError::Syntax { message, .. } => Error::Json {
            part: Part::Key,
            message,
        },
        JsonError::Duplicate { name } => Error::DuplicateMember {
            part: Part::Key,
            name,
        },
        JsonError::TooDeep { limit } => Error::TooDeep {
            part: Part::Key,
            limit,
        },
    })?;
    if !matches!(doc, Json::Obj(_)) {
        return Err(Error::NotObject {
            part: Part::Key,
            found: doc.type_name(),
        });
    }
    Ok(doc)
}

/// Private-key and symmetric members that must never appear in a public key set.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn load(member: &Json<'_>) -> Result<Loaded, Error> {
    let kid = match member.get("kid") {
        None => None,
        Some(Json::Str(s)) => Some(s.to_string()),
        Some(_) => return Err(invalid(None, "kid must be a string")),
    };
    let err = |reason: &str| invalid(kid.clone(), reason);
    if !matches!(member, Json::Obj(_)) {
        return Err(err("a key must be a JSON object"));
    }
    if let Some(name) = PRIVATE_MEMBERS.iter().find(|m| member.get(m).is_some()) {
        return Err(err(&format!(
            "private or symmetric key material (\"{name}\") in a public key set"
        )));
    }
    let kty = member
        .get("kty")
        .and_then(Json::as_str)
        .ok_or_else(|| err("kty missing"))?;
    if let Some(u) = member.get("use") {
        match u.as_str() {
            Some("sig") => {}
            Some(other) => return Ok(Loaded::Skipped(format!("use {other:?} is not \"sig\""))),
            None => return Err(err("use must be a string")),
        }
    }
    if let Some(ops) = member.get("key_ops") {
        let Json::Arr(ops) = ops else {
            return Err(err("key_ops must be an array"));
        };
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Ok(Loaded::Skipped("key_ops does not allow \"verify\"".into()));
        }
    }
    let alg = match member.get("alg") {
        None => None,
        Some(Json::Str(a)) => match Algorithm::from_name(a) {
            Some(alg) => Some(alg),
            None => return Ok(Loaded::Skipped(format!("unsupported alg {a:?}"))),
        },
        Some(_) => return Err(err("alg must be a string")),
    };
    let crv = member.get("crv").and_then(Json::as_str);
    let field = |name: &'static str| -> Result<Vec<u8>, Error> {
        let v = member
            .get(name)
            .ok_or_else(|| err(&format!("{name} missing")))?;
        let s = v
            .as_str()
            .ok_or_else(|| err(&format!("{name} must be a string")))?;
        b64::decode(s.as_bytes(), Part::Key)
            .map_err(|_| err(&format!("{name} is not unpadded base64url")))
    };
    let (alg, material) = match kty {
        "EC" => {
            if crv != Some("P-256") {
                return Ok(Loaded::Skipped(format!("unsupported EC curve {crv:?}")));
            }
            if alg.is_some_and(|a| a != Algorithm::Es256) {
                return Err(err("alg does not fit an EC P-256 key"));
            }
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(err("P-256 coordinates must be 32 bytes each"));
            }
            let mut point = [0u8; 65];
            point[0] = 4;
            point[1..33].copy_from_slice(&x);
            point[33..].copy_from_slice(&y);
            (Algorithm::Es256, KeyMaterial::P256 { point })
        }
        "OKP" => {
            if crv != Some("Ed25519") {
                return Ok(Loaded::Skipped(format!("unsupported OKP curve {crv:?}")));
            }
            if alg.is_some_and(|a| a != Algorithm::EdDsa) {
                return Err(err("alg does not fit an Ed25519 key"));
            }
            let x: [u8; 32] = field("x")?
                .try_into()
                .map_err(|_| err("Ed25519 key must be 32 bytes"))?;
            (Algorithm::EdDsa, KeyMaterial::Ed25519 { x })
        }
        "RSA" => {
            let alg = match alg {
                Some(a @ (Algorithm::Rs256 | Algorithm::Ps256)) => a,
                Some(_) => return Err(err("alg does not fit an RSA key")),
                None => return Err(err("an RSA key needs \"alg\" (RS256 or PS256)")),
            };
            let n = strip_zeros(field("n")?);
            let e = strip_zeros(field("e")?);
            check_rsa(kid.as_deref(), &n, &e)?;
            (alg, KeyMaterial::Rsa { n, e })
        }
        other => return Ok(Loaded::Skipped(format!("unsupported kty {other:?}"))),
    };
    Ok(Loaded::Key(Jwk { kid, alg, material }))
}

fn invalid(kid: Option<String>, reason: &str) -> Error {
    Error::InvalidKey {
        kid,
        reason: reason.to_owned(),
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

pub(crate) fn bit_len(be: &[u8]) -> usize {
    match be.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => {
            let lead = be.get(i).copied().unwrap_or(0);
            (be.len() - i - 1) * 8 + (8 - lead.leading_zeros() as usize)
        }
    }
}

/// The first 39 primes after 2: the ROCA (CVE-2017-15361) structure shows in
/// the residues of `n` modulo each of them.
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Whether `n` has the ROCA fingerprint: for every small prime `p` above,
/// `n mod p` lies in the subgroup generated by 65537 (Nemec et al., CCS 2017).
/// A random modulus passes this for all 38 primes with negligible probability.
fn roca_fingerprint(n: &[u8]) -> bool {
    ROCA_PRIMES.iter().all(|&p| {
        let r = n
            .iter()
            .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
        let g = 65537 % p;
        let mut x = 1u32;
        for _ in 0..p {
            if x == r {
                return true;
            }
            x = x * g % p;
        }
        false
    })
}

fn check_rsa(kid: Option<&str>, n: &[u8], e: &[u8]) -> Result<(), Error> {
    let bits = bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err(Error::WeakKey {
            bits,
            min: MIN_RSA_BITS,
        });
    }
    let err = |r: &str| invalid(kid.map(str::to_owned), r);
    if bits > MAX_RSA_BITS {
        return Err(err("RSA modulus above 8192 bits"));
    }
    if n.last().is_none_or(|b| b & 1 == 0) {
        return Err(err("RSA modulus must be odd"));
    }
    // ring accepts 3 <= e < 2^33, e odd.
    if e.len() > 5 || e.is_empty() {
        return Err(err("RSA public exponent out of range"));
    }
    let ev = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if ev < 3 || ev & 1 == 0 || ev >= 1 << 33 {
        return Err(err("RSA public exponent must be odd and at least 3"));
    }
    if roca_fingerprint(n) {
        return Err(err("RSA modulus has the ROCA (CVE-2017-15361) fingerprint"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bit_length() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0, 0]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
    }

    #[test]
    fn ec_and_okp_bind_their_algorithm() {
        let ec = Jwk::from_json(r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}"#).unwrap();
        assert_eq!(ec.algorithm(), Algorithm::Es256);
        assert_eq!(ec.kid(), Some("k1"));
        // Round trip through to_json.
        assert_eq!(Jwk::from_json(&ec.to_json()).unwrap(), ec);
        let rsa_no_alg = r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#;
        assert_eq!(
            Jwk::from_json(rsa_no_alg).unwrap_err().kind(),
            "invalid_key"
        );
        let with_d = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#;
        assert!(
            Jwk::from_json(with_d)
                .unwrap_err()
                .to_string()
                .contains("private")
        );
        let wrong_alg = r#"{"kty":"OKP","crv":"Ed25519","alg":"ES256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert_eq!(Jwk::from_json(wrong_alg).unwrap_err().kind(), "invalid_key");
    }

    #[test]
    fn key_sets_refuse_duplicate_kids_and_skip_foreign_keys() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let dup = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"a"}},{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"a"}}]}}"#
        );
        assert_eq!(JwkSet::from_json(&dup).unwrap_err().kind(), "invalid_key");
        let mixed = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"a"}},{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"b","use":"enc"}},{{"kty":"EC","crv":"P-521","x":"AA","y":"AA","kid":"c"}}]}}"#
        );
        let set = JwkSet::from_json(&mixed).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped().len(), 2);
        assert!(set.get("a").is_some() && set.get("b").is_none());
        assert_eq!(
            JwkSet::from_json(&set.to_json()).unwrap().keys(),
            set.keys()
        );
    }
}
