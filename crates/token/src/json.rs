//! Strict JSON: a small borrowed JSON tree built on `serde_json` that refuses
//! duplicate member names (RFC 7515 §5.2 step 4, RFC 7519 §4) and nesting
//! deeper than a configured limit.
//!
//! `serde_json` itself keeps the last of several members with the same name;
//! that silently lets an attacker smuggle a second `alg`, `aud` or `exp`. The
//! visitor here records every member name of every object (after unescaping,
//! so `"a"` and `"\u0061"` collide) and fails on the first repeat.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// A JSON number as written: unsigned, negative, or with a fraction/exponent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// A non-negative integer that fits `u64`.
    U(u64),
    /// A negative integer that fits `i64`.
    I(i64),
    /// Anything else (fraction, exponent, or out of the integer ranges).
    F(f64),
}

/// A parsed JSON value; strings borrow from the input when they carry no escapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(Cow<'a, str>),
    Arr(Vec<Self>),
    /// Members in document order; names are unique (checked while parsing).
    Obj(Vec<(Cow<'a, str>, Self)>),
}

impl<'a> Json<'a> {
    /// The JSON type name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Num(_) => "number",
            Self::Str(_) => "string",
            Self::Arr(_) => "array",
            Self::Obj(_) => "object",
        }
    }

    /// Member lookup on an object (linear: JOSE objects have a dozen members).
    pub(crate) fn get(&self, name: &str) -> Option<&Self> {
        match self {
            Self::Obj(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string value, if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Why strict parsing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not well-formed JSON (serde_json's message, with its byte column).
    Syntax { message: String, column: usize },
    /// An object repeats a member name.
    Duplicate { name: String },
    /// Nesting deeper than the limit.
    TooDeep { limit: usize },
}

/// Parses `input` as one JSON value with unique member names and at most
/// `max_depth` levels of nested arrays/objects (the top level counts as 1).
pub(crate) fn parse(input: &[u8], max_depth: usize) -> Result<Json<'_>, JsonError> {
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(input);
    let seed = Seed {
        depth: 0,
        max_depth,
        failure: &failure,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(failure.take().unwrap_or_else(|| JsonError::Syntax {
            message: e.to_string(),
            column: e.column(),
        })),
    }
}

#[derive(Clone, Copy)]
struct Seed<'f> {
    depth: usize,
    max_depth: usize,
    failure: &'f Cell<Option<JsonError>>,
}

impl Seed<'_> {
    fn fail<E: de::Error>(&self, err: JsonError) -> E {
        self.failure.set(Some(err));
        E::custom("strict JSON check failed")
    }

    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(self.fail(JsonError::TooDeep {
                limit: self.max_depth,
            }));
        }
        Ok(Seed {
            depth: self.depth + 1,
            ..*self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Num(Num::U(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Num(if v >= 0 {
            Num::U(v.unsigned_abs())
        } else {
            Num::I(v)
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Json::Num(Num::F(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let inner = self.nested()?;
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        // Small objects: linear scan; large ones: a hash set of the names.
        let mut index: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let duplicate = match &mut index {
                Some(set) => !set.insert(name.clone()),
                None => members.iter().any(|(k, _)| *k == name),
            };
            if duplicate {
                return Err(self.fail(JsonError::Duplicate {
                    name: name.into_owned(),
                }));
            }
            if index.is_none() && members.len() >= 16 {
                let mut set: HashSet<Cow<'de, str>> =
                    members.iter().map(|(k, _)| k.clone()).collect();
                set.insert(name.clone());
                index = Some(set);
            }
            let value = map.next_value_seed(inner)?;
            members.push((name, value));
        }
        Ok(Json::Obj(members))
    }
}

/// Parses `input` as a JSON object and returns the values of the members
/// named in `names` (same order), without building the other members: they
/// are walked with the same duplicate and depth checks and dropped.
///
/// A direct scan ([`fields_fast`]) reads the usual JOSE header or JWT
/// claims; whatever it does not take on goes through [`parse_fields_serde`],
/// which gives the same values or the error.
///
/// # Errors
/// As [`parse`]; a document that is not an object gives `Ok(Err(type name))`.
pub(crate) fn parse_fields<'a, const N: usize>(
    input: &'a [u8],
    max_depth: usize,
    names: &[&str; N],
) -> Result<Result<[Option<Json<'a>>; N], &'static str>, JsonError> {
    #[cfg(test)]
    if REFERENCE_ONLY.with(Cell::get) {
        return parse_fields_serde(input, max_depth, names);
    }
    match fields_fast(input, max_depth, names) {
        Some(fields) => Ok(Ok(fields)),
        None => parse_fields_serde(input, max_depth, names),
    }
}

#[cfg(test)]
thread_local! {
    /// Set in tests: JSON and base64url take only their reference paths
    /// (`serde_json`, the `base64` crate), to compare results with.
    pub(crate) static REFERENCE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// [`parse_fields`] through `serde_json` with the strict visitors: the
/// reference for every input, and the path for what [`fields_fast`] leaves.
pub(crate) fn parse_fields_serde<'a, const N: usize>(
    input: &'a [u8],
    max_depth: usize,
    names: &[&str; N],
) -> Result<Result<[Option<Json<'a>>; N], &'static str>, JsonError> {
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(input);
    let seed = Seed {
        depth: 0,
        max_depth,
        failure: &failure,
    };
    let top = TopSeed { seed, names };
    let result = top.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(failure.take().unwrap_or_else(|| JsonError::Syntax {
            message: e.to_string(),
            column: e.column(),
        })),
    }
}

struct TopSeed<'f, 'n, const N: usize> {
    seed: Seed<'f>,
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for TopSeed<'_, '_, N> {
    type Value = Result<[Option<Json<'de>>; N], &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for TopSeed<'_, '_, N> {
    type Value = Result<[Option<Json<'de>>; N], &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let inner = self.seed.nested()?;
        let mut slots: [Option<Json<'de>>; N] = std::array::from_fn(|_| None);
        let mut others = NameSet::default();
        while let Some(name) = map.next_key_seed(KeySeed)? {
            match self.names.iter().position(|n| *n == name) {
                Some(i) => {
                    let slot = slots.get_mut(i).ok_or_else(|| A::Error::custom("slot"))?;
                    if slot.is_some() {
                        return Err(self.seed.fail(JsonError::Duplicate {
                            name: name.into_owned(),
                        }));
                    }
                    *slot = Some(map.next_value_seed(inner)?);
                }
                None => {
                    if !others.insert(name.clone()) {
                        return Err(self.seed.fail(JsonError::Duplicate {
                            name: name.into_owned(),
                        }));
                    }
                    map.next_value_seed(Skip(inner))?;
                }
            }
        }
        Ok(Ok(slots))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("boolean"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let inner = self.seed.nested()?;
        while seq.next_element_seed(Skip(inner))?.is_some() {}
        Ok(Err("array"))
    }
}

/// The fast path of [`parse_fields`]: a direct scan of the JSON that JOSE
/// headers and JWT claims are made of (one object whose members are
/// strings without escapes, unsigned integers, `true`, `false`, `null`, or
/// arrays of those). It gives up (`None`) on anything else: escapes,
/// invalid UTF-8, negative or fractional numbers, integers beyond `u64`,
/// nested objects or arrays, a repeated member name, more than 16 members
/// outside `names`, any syntax error or trailing text, a depth limit below
/// 2. Every such input then goes through [`parse_fields_serde`], which
/// finds the values or the error to report; and whenever this returns
/// `Some`, [`parse_fields_serde`] returns `Ok(Ok(_))` with equal values
/// (tested over the vectors and mutated documents).
fn fields_fast<'a, const N: usize>(
    input: &'a [u8],
    max_depth: usize,
    names: &[&str; N],
) -> Option<[Option<Json<'a>>; N]> {
    /// Member names outside `names` remembered for the duplicate check.
    const OTHERS: usize = 16;
    if max_depth < 2 {
        return None;
    }
    // One UTF-8 check for the whole document; strings are then sliced from it.
    let text = std::str::from_utf8(input).ok()?;
    let mut r = Scan { text, pos: 0 };
    let mut slots: [Option<Json<'a>>; N] = std::array::from_fn(|_| None);
    let mut others: [&str; OTHERS] = [""; OTHERS];
    let mut n_others = 0;
    let mut hint = 0;
    r.ws();
    r.eat(b'{')?;
    r.ws();
    if r.peek() == Some(b'}') {
        r.pos += 1;
    } else {
        loop {
            r.eat(b'"')?;
            // Documents usually list the members in the order of `names`:
            // first try the name after the last one found, straight on the
            // input (the member name is exactly it when its bytes and then
            // the closing quote follow, as `names` hold no quote, backslash
            // or control character); else read the name and look from that
            // slot on, then wrap.
            let (name, found) = match names.get(hint).and_then(|n| r.name_is(n)) {
                Some(name) => (name, Some(hint)),
                None => {
                    let name = r.string()?;
                    let after = names.get(hint..).unwrap_or_default();
                    let found = match after.iter().position(|n| same(n, name)) {
                        Some(i) => Some(hint + i),
                        None => names.get(..hint)?.iter().position(|n| same(n, name)),
                    };
                    (name, found)
                }
            };
            r.ws();
            r.eat(b':')?;
            r.ws();
            match found {
                Some(i) => {
                    hint = i + 1;
                    let slot = slots.get_mut(i)?;
                    if slot.is_some() {
                        return None;
                    }
                    *slot = Some(r.value()?);
                }
                None => {
                    let seen = others.get(..n_others)?;
                    if seen.iter().any(|n| same(n, name)) {
                        return None;
                    }
                    *others.get_mut(n_others)? = name;
                    n_others += 1;
                    r.value()?;
                }
            }
            r.ws();
            match r.next()? {
                b',' => r.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    r.ws();
    (r.pos == text.len()).then_some(slots)
}

/// The high bit of each byte of `word` (little-endian) that is a quote, a
/// backslash or below 0x20, exact up to and including the lowest such byte
/// (the borrows of the subtractions only reach the bytes above it).
fn stop_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | below_space
}

/// Byte equality of two short names, inline (a `memcmp` call costs more).
fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// A cursor over the input of [`fields_fast`].
struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// After an opening quote: when the string is exactly `name` (its bytes
    /// then the closing quote), consumes it and returns it.
    fn name_is(&mut self, name: &str) -> Option<&'a str> {
        let end = self.pos.checked_add(name.len())?;
        let (Some(found), Some(b'"')) =
            (self.text.get(self.pos..end), self.text.as_bytes().get(end))
        else {
            return None;
        };
        if !same(found, name) {
            return None;
        }
        self.pos = end + 1;
        Some(found)
    }

    /// RFC 8259 §2 whitespace: space, tab, line feed, carriage return.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The rest of a string after its opening quote, borrowed: `None` on an
    /// escape, a control character or a missing end quote.
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let mut end = self.pos;
        // Eight bytes at a time up to the first quote, backslash or control
        // character, then byte by byte.
        while let Some(word) = bytes.get(end..end + 8) {
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(word).ok()?);
            let stops = stop_bytes(word);
            if stops != 0 {
                // The lowest flagged byte is exact (see `stop_bytes`).
                end += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        while let Some(&b) = bytes.get(end) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            end += 1;
        }
        if bytes.get(end) != Some(&b'"') {
            return None;
        }
        let s = self.text.get(self.pos..end)?;
        self.pos = end + 1;
        Some(s)
    }

    /// One member value or array element (arrays hold no arrays or objects).
    fn value(&mut self) -> Option<Json<'a>> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                Some(Json::Str(Cow::Borrowed(self.string()?)))
            }
            b'0'..=b'9' => self.integer(),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Some(Json::Arr(items));
                }
                loop {
                    self.ws();
                    if let Some(b'[' | b'{') = self.peek() {
                        return None;
                    }
                    items.push(self.value()?);
                    self.ws();
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(Json::Arr(items)),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, v: Json<'a>) -> Option<Json<'a>> {
        let end = self.pos.checked_add(word.len())?;
        let found = self.text.as_bytes().get(self.pos..end)?;
        same_bytes(found, word.as_bytes()).then(|| {
            self.pos = end;
            v
        })
    }

    /// An unsigned integer without leading zeros that fits `u64`; `None`
    /// when a fraction or exponent follows (serde_json reads an `f64`) or
    /// it overflows.
    fn integer(&mut self) -> Option<Json<'a>> {
        let mut n: u64 = 0;
        let start = self.pos;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        let leading_zero = digits > 1 && self.text.as_bytes().get(start) == Some(&b'0');
        if digits == 0 || leading_zero {
            return None;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(Json::Num(Num::U(n))),
        }
    }
}

/// Byte equality of two short slices, inline.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Walks a value with the strict checks and keeps nothing.
#[derive(Clone, Copy)]
struct Skip<'f>(Seed<'f>);

impl<'de> DeserializeSeed<'de> for Skip<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = Skip(self.0.nested()?);
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = Skip(self.0.nested()?);
        let mut names = NameSet::default();
        while let Some(name) = map.next_key_seed(KeySeed)? {
            if !names.insert(name.clone()) {
                return Err(self.0.fail(JsonError::Duplicate {
                    name: name.into_owned(),
                }));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// Member names seen in one object: a list while small, a hash set beyond
/// 16 names, so that objects with many members stay linear to check.
#[derive(Default)]
struct NameSet<'de> {
    names: Vec<Cow<'de, str>>,
    index: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> NameSet<'de> {
    /// Records `name`; `false` when it was already there.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.index {
            return set.insert(name);
        }
        if self.names.contains(&name) {
            return false;
        }
        self.names.push(name);
        if self.names.len() > 16 {
            self.index = Some(self.names.drain(..).collect());
        }
        true
    }
}

/// Deserializes an object member name, borrowing it when unescaped.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Names covering JOSE headers and JWT claims, for the fast/serde comparison.
    const NAMES: [&str; 16] = [
        "alg",
        "kid",
        "typ",
        "crit",
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
        "mcptt_id",
        "acr",
        "auth_time",
    ];

    /// Whenever the fast path answers, serde_json's strict path gives the
    /// same values; `parse_fields` always answers as the serde path. Returns
    /// whether the fast path answered at depth 16.
    fn agree(doc: &[u8]) -> bool {
        let mut took = false;
        for depth in [0, 1, 2, 3, 16] {
            let serde = parse_fields_serde(doc, depth, &NAMES);
            assert_eq!(
                parse_fields(doc, depth, &NAMES),
                serde,
                "{doc:?} at depth {depth}"
            );
            if let Some(fast) = fields_fast(doc, depth, &NAMES) {
                assert_eq!(Ok(Ok(fast)), serde, "{doc:?} at depth {depth}");
                took |= depth == 16;
            }
        }
        took
    }

    /// Decoded headers and payloads of every compact token in the vendored
    /// JOSE vectors and the interop token file.
    fn vector_documents() -> Vec<Vec<u8>> {
        use base64::Engine as _;
        fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
                serde_json::Value::Object(m) => m.values().for_each(|i| strings(i, out)),
                _ => {}
            }
        }
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                match path.extension().and_then(|e| e.to_str()) {
                    Some("jws") => out.push(text.trim().to_owned()),
                    Some("json") => {
                        if let Ok(v) = serde_json::from_str(&text) {
                            strings(&v, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/jose");
        let mut texts = Vec::new();
        walk(std::path::Path::new(root), &mut texts);
        walk(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")),
            &mut texts,
        );
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut docs = Vec::new();
        for t in &texts {
            let mut segs = t.split('.');
            for seg in [segs.next(), segs.next()].into_iter().flatten() {
                if let Ok(bytes) = b64.decode(seg)
                    && bytes.first() == Some(&b'{')
                {
                    docs.push(bytes);
                }
            }
            // Plain JSON strings of the vectors (payloads, headers) too.
            if t.starts_with('{') {
                docs.push(t.as_bytes().to_vec());
            }
        }
        docs
    }

    /// Hand-made documents at the edges of what the fast path reads.
    const EDGES: &[&str] = &[
        r#"{}"#,
        r#" { } "#,
        "{\t\"iss\" :\r\n\"a\" , \"exp\":0}\n",
        r#"{"aud":["a","b"],"exp":18446744073709551615,"iat":1}"#,
        r#"{"exp":18446744073709551616}"#,
        r#"{"exp":01}"#,
        r#"{"exp":1.5}"#,
        r#"{"exp":1e3}"#,
        r#"{"exp":-1}"#,
        r#"{"exp":-0}"#,
        r#"{"aud":[]}"#,
        r#"{"aud":[ ]}"#,
        r#"{"aud":[1,true,false,null,"x"]}"#,
        r#"{"aud":[[1]]}"#,
        r#"{"aud":[{"a":1}]}"#,
        r#"{"x":{"a":1}}"#,
        r#"{"aud":["a",]}"#,
        r#"{"iss":"a","iss":"b"}"#,
        r#"{"x":1,"x":2}"#,
        r#"{"x":1,"\u0078":2}"#,
        r#"{"iss":"\u0061"}"#,
        r#"{"iss":"caf\u00e9"}"#,
        "{\"iss\":\"caf\u{e9}\"}",
        "{\"iss\":\"a\u{7f}b\"}",
        "{\"iss\":\"a\tb\"}",
        "{\"iss\":\"abcdefghij\tklmnop\"}",
        "{\"iss\":\"abcdefghijklmnopqrstuvw\u{1f}\"}",
        "{\"iss\":\"abcdefghijklmnopqrstuvwx\u{0}\"}",
        "{\"iss\":\"abcdefghijklmnopqrs\u{7f}tuvwx \"}",
        r#"{"iss":"abcdefghijk\nlmnop"}"#,
        r#"{"iss":"abcdefgh","sub":"abcdefghijklmnopq"}"#,
        "{\"iss\":\"abcdéfghijklmnö\"}",
        r#"{"iss":"a"} x"#,
        r#"{"iss":"a"}}"#,
        r#"{"iss":"a",}"#,
        r#"{"iss" "a"}"#,
        r#"{"iss":tru}"#,
        r#"{"iss":truex}"#,
        r#"{"iss":nul}"#,
        r#"{"iss":"a"#,
        r#"{"iss":"#,
        r#"{"#,
        r#"[1]"#,
        r#""x""#,
        r#"1"#,
        r#"null"#,
        "",
        "\u{feff}{}",
        r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17}"#,
        r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"a":16}"#,
        r#"{"auth_time":1,"acr":"x","mcptt_id":"sip:a@b","scope":"s","client_id":"c","jti":"j","nbf":1,"iat":1,"exp":2,"aud":"a","sub":"s","iss":"i"}"#,
    ];

    #[test]
    fn fast_fields_agree_with_serde_on_vectors_and_edges() {
        let docs = vector_documents();
        assert!(docs.len() > 20, "vectors found: {}", docs.len());
        let taken = docs.iter().filter(|d| agree(d)).count();
        // The vectors' headers and claims are the plain JSON the fast path reads.
        assert!(taken * 2 > docs.len(), "{taken} of {}", docs.len());
        for doc in EDGES {
            agree(doc.as_bytes());
        }
        assert!(agree(EDGES[3].as_bytes()));
        assert!(agree(EDGES[EDGES.len() - 1].as_bytes()));
        assert!(!agree(br#"{"exp":1.5}"#));
    }

    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let bases: Vec<Vec<u8>> = vector_documents()
            .into_iter()
            .chain(EDGES.iter().map(|e| e.as_bytes().to_vec()))
            .collect();
        let edit = (
            0usize..3,
            any::<prop::sample::Index>(),
            prop::sample::select(
                b"{}[],:\"\\ \t\n0123456789-+.eEtrufalsn\x00\x1f\x7f\x80\xc3\xa9\xff".to_vec(),
            ),
        );
        (
            prop::sample::select(bases),
            prop::collection::vec(edit, 0..4),
        )
            .prop_map(|(mut doc, edits)| {
                for (kind, at, byte) in edits {
                    let i = at.index(doc.len() + 1);
                    match kind {
                        0 => doc.insert(i, byte),
                        1 if i < doc.len() => {
                            doc.remove(i);
                        }
                        _ if i < doc.len() => doc[i] = byte,
                        _ => doc.push(byte),
                    }
                }
                doc
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn fast_fields_agree_with_serde_on_mutations(doc in mutated()) {
            agree(&doc);
        }
    }

    #[test]
    fn parses_nested_values() {
        let v = parse(br#"{"a":[1,-2,3.5,"x",null,true],"b":{"c":"d"}}"#, 8).unwrap();
        assert_eq!(
            v.get("b").and_then(|b| b.get("c")).and_then(Json::as_str),
            Some("d")
        );
        match v.get("a") {
            Some(Json::Arr(items)) => {
                assert_eq!(items[0], Json::Num(Num::U(1)));
                assert_eq!(items[1], Json::Num(Num::I(-2)));
                assert_eq!(items[2], Json::Num(Num::F(3.5)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn duplicate_names_are_refused_at_any_depth_and_after_unescaping() {
        for doc in [
            &br#"{"alg":"ES256","alg":"none"}"#[..],
            br#"{"x":{"a":1,"a":2}}"#,
            br#"{"a":1,"\u0061":2}"#,
            br#"[{"k":1,"k":1}]"#,
        ] {
            assert!(
                matches!(parse(doc, 8), Err(JsonError::Duplicate { .. })),
                "{doc:?}"
            );
        }
        // Many members switch to the hash index; a late duplicate is still seen.
        let mut doc = String::from("{");
        for i in 0..40 {
            doc.push_str(&format!("\"m{i}\":{i},"));
        }
        doc.push_str("\"m3\":0}");
        assert_eq!(
            parse(doc.as_bytes(), 8),
            Err(JsonError::Duplicate { name: "m3".into() })
        );
    }

    #[test]
    fn field_extraction_keeps_the_checks() {
        let names = ["a", "b"];
        let [a, b] = parse_fields(br#"{"x":{"y":[1,{"z":2}]},"a":"s","c":3}"#, 8, &names)
            .unwrap()
            .unwrap();
        assert_eq!(a, Some(Json::Str(Cow::Borrowed("s"))));
        assert_eq!(b, None);
        for doc in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"c":1,"c":2}"#,
            br#"{"c":{"d":1,"d":2}}"#,
            br#"{"c":[{"d":1,"\u0064":2}]}"#,
        ] {
            assert!(
                matches!(
                    parse_fields(doc, 8, &names),
                    Err(JsonError::Duplicate { .. })
                ),
                "{doc:?}"
            );
        }
        let deep = format!(r#"{{"c":{}{}}}"#, "[".repeat(20), "]".repeat(20));
        assert_eq!(
            parse_fields(deep.as_bytes(), 16, &names),
            Err(JsonError::TooDeep { limit: 16 })
        );
        assert_eq!(parse_fields(b"[1]", 8, &names), Ok(Err("array")));
        assert_eq!(parse_fields(b"\"x\"", 8, &names), Ok(Err("string")));
        assert!(matches!(
            parse_fields(b"{} 1", 8, &names),
            Err(JsonError::Syntax { .. })
        ));
        let mut many = String::from("{");
        for i in 0..40 {
            many.push_str(&format!("\"m{i}\":{{\"k{i}\":1}},"));
        }
        many.push_str("\"m7\":0}");
        assert_eq!(
            parse_fields(many.as_bytes(), 8, &names),
            Err(JsonError::Duplicate { name: "m7".into() })
        );
    }

    #[test]
    fn depth_limit_and_syntax_errors() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            parse(deep.as_bytes(), 16),
            Err(JsonError::TooDeep { limit: 16 })
        );
        assert!(parse(deep.as_bytes(), 64).is_ok());
        assert!(matches!(
            parse(b"{\"a\":1} x", 8),
            Err(JsonError::Syntax { .. })
        ));
        assert!(matches!(
            parse(b"{\"a\":1,}", 8),
            Err(JsonError::Syntax { .. })
        ));
    }
}
