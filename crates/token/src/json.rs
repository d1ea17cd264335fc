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

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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
