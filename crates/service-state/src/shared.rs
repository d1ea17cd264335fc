//! [`SharedStr`]: an immutable string shared by reference count.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string shared by reference count: cloning it copies no text.
///
/// The identities in the server's events and states ([`ServiceState`](crate::body::ServiceState),
/// [`ServerEvent`](crate::server::ServerEvent)) share the text the server holds for the user,
/// the UE and the dialog, so reporting them allocates nothing. It reads as a `str` (it
/// dereferences to one) and compares equal to `str`, `&str` and `String` of the same text.
///
/// ```
/// use mcptt_service_state::SharedStr;
/// let impu = SharedStr::from("sip:ue1@example.org");
/// let again = impu.clone(); // the same text, not a copy
/// assert_eq!(again, "sip:ue1@example.org");
/// assert!(again.starts_with("sip:"));
/// assert_eq!(String::from(impu), "sip:ue1@example.org");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        Self(Arc::from(""))
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        Self(s)
    }
}

impl From<&Arc<str>> for SharedStr {
    fn from(s: &Arc<str>) -> Self {
        Self(Arc::clone(s))
    }
}

impl From<SharedStr> for Arc<str> {
    fn from(s: SharedStr) -> Self {
        s.0
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        Self::from(&*s.0)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::SharedStr;
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn compares_hashes_and_converts_as_its_text() {
        let a = SharedStr::from("sip:a@example.org");
        let b = a.clone();
        assert!(Arc::ptr_eq(
            &Arc::<str>::from(a.clone()),
            &Arc::<str>::from(b.clone())
        ));
        assert_eq!(a, b);
        assert_eq!(a, *"sip:a@example.org");
        assert_eq!(a, "sip:a@example.org".to_owned());
        assert_eq!("sip:a@example.org", a);
        assert_eq!("sip:a@example.org".to_owned(), a);
        assert_ne!(a, "sip:b@example.org");
        let (x, y) = (SharedStr::from("a"), SharedStr::from("b"));
        assert!(x < y);
        assert_eq!(SharedStr::default(), "");
        let mut map = HashMap::new();
        map.insert(a.clone(), 1);
        assert_eq!(map.get("sip:a@example.org"), Some(&1));
        assert_eq!(
            format!("{a} {a:?}"),
            "sip:a@example.org \"sip:a@example.org\""
        );
        let shared: Arc<str> = Arc::from("x");
        assert!(Arc::ptr_eq(
            &Arc::<str>::from(SharedStr::from(&shared)),
            &shared
        ));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"sip:a@example.org\"");
        assert_eq!(serde_json::from_str::<SharedStr>(&json).unwrap(), a);
        assert!(serde_json::from_str::<SharedStr>("1").is_err());
    }
}
