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
/// # Errors
/// As [`parse`]; a document that is not an object gives `Ok(Err(type name))`.
pub(crate) fn parse_fields<'a, const N: usize>(
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
