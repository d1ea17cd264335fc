//! `application/vnd.mcptt-service-state+json`: this project's service-state document.

use serde::{Deserialize, Serialize};

use crate::SharedStr;
use crate::error::{BodyKind, Error};
use crate::model::{AuthorisationState, CombinedState, RegistrationState, UeKind};
use crate::sip::push_u64;

/// Largest service-state document accepted by [`ServiceState::parse`] (bytes).
pub const MAX_SERVICE_STATE_BYTES: usize = 8 * 1024;

/// The MCPTT service state of one user on one UE, carried in NOTIFY
/// (`Content-Type: application/vnd.mcptt-service-state+json`).
///
/// # Schema
///
/// A JSON object; every member is always present on encode (`null` where noted). Unknown members
/// are ignored on parse so later versions can add members.
///
/// | member | type | meaning |
/// |---|---|---|
/// | `version` | unsigned integer | counter of this (user, UE) state; +1 on every change, never reused |
/// | `mcptt-id` | string (URI) | the MCPTT ID of the user (the token's `mcptt_id`) |
/// | `impu` | string (URI) | the UE's public user identity (`P-Asserted-Identity`) |
/// | `instance` | string or `null` | the UE's `+sip.instance`, when registered with one |
/// | `ue-kind` | `"personal"` \| `"shareable"` \| `"gateway"` | from the UE directory |
/// | `registration` | `"registered"` \| `"not-registered"` | SIP registration of the UE |
/// | `authorisation` | `"authorised"` \| `"unauthorised"` \| `"expired"` \| `"signed-off"` \| `"replaced"` | service authorisation of the user on the UE |
/// | `state` | `"full-access"` \| `"limited"` \| `"none"` | combined: full access = registered and authorised; limited = one of them |
/// | `token-expires` | integer or `null` | `exp` of the current access token, seconds since the Unix epoch |
///
/// Example:
/// ```json
/// {"version":3,"mcptt-id":"sip:alice@mcptt.example.org","impu":"sip:ue1@example.org",
///  "instance":"<urn:uuid:2d2a3fd4-1b5b-4cd6-9e2a-1f4b8c5c8a10>","ue-kind":"personal",
///  "registration":"registered","authorisation":"authorised","state":"full-access",
///  "token-expires":1798761600}
/// ```
///
/// ```
/// use mcptt_service_state::body::ServiceState;
/// use mcptt_service_state::{AuthorisationState, CombinedState, RegistrationState, UeKind};
/// let s = ServiceState {
///     version: 1,
///     mcptt_id: "sip:alice@mcptt.example.org".into(),
///     impu: "sip:ue1@example.org".into(),
///     instance: None,
///     ue_kind: UeKind::Personal,
///     registration: RegistrationState::Registered,
///     authorisation: AuthorisationState::Authorised,
///     state: CombinedState::FullAccess,
///     token_expires: Some(1_798_761_600),
/// };
/// let json = s.encode();
/// assert!(json.starts_with(b"{\"version\":1,"));
/// assert_eq!(ServiceState::parse(&json)?, s);
/// # Ok::<(), mcptt_service_state::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceState {
    /// Version counter (see the schema).
    pub version: u64,
    /// MCPTT ID of the user.
    pub mcptt_id: SharedStr,
    /// Public user identity of the UE.
    pub impu: SharedStr,
    /// `+sip.instance` of the UE.
    pub instance: Option<SharedStr>,
    /// UE kind.
    pub ue_kind: UeKind,
    /// SIP registration state.
    pub registration: RegistrationState,
    /// Authorisation state.
    pub authorisation: AuthorisationState,
    /// Combined state.
    pub state: CombinedState,
    /// Access-token expiry (Unix seconds).
    pub token_expires: Option<u64>,
}

impl ServiceState {
    /// Parses a document of at most [`MAX_SERVICE_STATE_BYTES`].
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`] or [`Error::MalformedBody`] (with the byte offset of the problem).
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        if input.len() > MAX_SERVICE_STATE_BYTES {
            return Err(Error::BodyTooLarge {
                kind: BodyKind::ServiceState,
                size: input.len(),
                limit: MAX_SERVICE_STATE_BYTES,
            });
        }
        serde_json::from_slice(input).map_err(|e| Error::MalformedBody {
            kind: BodyKind::ServiceState,
            offset: offset_of(input, e.line(), e.column()),
            what: format!("a service-state JSON object ({e})"),
        })
    }

    /// Encodes the document (compact JSON, members in schema order).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.as_ref().write_json(&mut out);
        out
    }

    /// The document's fields, borrowed.
    pub(crate) fn as_ref(&self) -> StateRef<'_> {
        StateRef {
            version: self.version,
            mcptt_id: &self.mcptt_id,
            impu: &self.impu,
            instance: self.instance.as_deref(),
            ue_kind: self.ue_kind,
            registration: self.registration,
            authorisation: self.authorisation,
            state: self.state,
            token_expires: self.token_expires,
        }
    }
}

/// A service-state document's fields borrowed from wherever they live, written as JSON without
/// building a [`ServiceState`] (the server writes NOTIFY bodies straight from its tables).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateRef<'a> {
    pub(crate) version: u64,
    pub(crate) mcptt_id: &'a str,
    pub(crate) impu: &'a str,
    pub(crate) instance: Option<&'a str>,
    pub(crate) ue_kind: UeKind,
    pub(crate) registration: RegistrationState,
    pub(crate) authorisation: AuthorisationState,
    pub(crate) state: CombinedState,
    pub(crate) token_expires: Option<u64>,
}

impl StateRef<'_> {
    /// Appends the document to `out`: compact JSON, members in schema order (the same bytes
    /// `serde_json` writes for [`ServiceState`]).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"version\":");
        push_u64(out, self.version);
        out.extend_from_slice(b",\"mcptt-id\":");
        push_json_str(out, self.mcptt_id);
        out.extend_from_slice(b",\"impu\":");
        push_json_str(out, self.impu);
        out.extend_from_slice(b",\"instance\":");
        match self.instance {
            Some(i) => push_json_str(out, i),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"ue-kind\":\"");
        out.extend_from_slice(self.ue_kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"registration\":\"");
        out.extend_from_slice(match self.registration {
            RegistrationState::Registered => b"registered".as_slice(),
            RegistrationState::NotRegistered => b"not-registered",
        });
        out.extend_from_slice(b"\",\"authorisation\":\"");
        out.extend_from_slice(self.authorisation.as_str().as_bytes());
        out.extend_from_slice(b"\",\"state\":\"");
        out.extend_from_slice(match self.state {
            CombinedState::FullAccess => b"full-access".as_slice(),
            CombinedState::Limited => b"limited",
            CombinedState::None => b"none",
        });
        out.extend_from_slice(b"\",\"token-expires\":");
        match self.token_expires {
            Some(t) => push_u64(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// Appends `s` as a JSON string (RFC 8259 §7; escapes as `serde_json` does).
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // A branch-free OR over the bytes (vectorised): whether any needs escaping.
    let escapes = bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !escapes {
        // The usual case (URIs): nothing to escape.
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            let hex = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
            out.extend_from_slice(b"\\u00");
            out.push(hex(b >> 4));
            out.push(hex(b & 0xf));
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Converts serde_json's 1-based line/column into a byte offset.
fn offset_of(input: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in input.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return (offset + column.saturating_sub(1)).min(input.len());
        }
        offset += l.len() + 1;
    }
    input.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encode_writes_what_serde_json_writes() {
        for (instance, token_expires, id) in [
            (None, None, "sip:a@b".to_owned()),
            (
                Some("<urn:uuid:1>".to_owned()),
                Some(u64::MAX),
                "q\"\\ \n\r\t\u{8}\u{c}\u{1}\u{1f}é€".to_owned(),
            ),
        ] {
            let s = ServiceState {
                version: 0,
                mcptt_id: id.into(),
                impu: "sip:u@b".into(),
                instance: instance.map(Into::into),
                ue_kind: UeKind::Shareable,
                registration: RegistrationState::NotRegistered,
                authorisation: AuthorisationState::SignedOff,
                state: CombinedState::None,
                token_expires,
            };
            assert_eq!(
                String::from_utf8(s.encode()).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
            assert_eq!(ServiceState::parse(&s.encode()).unwrap(), s);
        }
    }

    #[test]
    fn unknown_members_ignored_and_errors_located() {
        let doc = br#"{"version":2,"mcptt-id":"sip:a@b","impu":"sip:u@b","instance":null,"ue-kind":"gateway","registration":"not-registered","authorisation":"replaced","state":"none","token-expires":null,"future":1}"#;
        let s = ServiceState::parse(doc).unwrap();
        assert_eq!(s.ue_kind, UeKind::Gateway);
        assert_eq!(s.authorisation, AuthorisationState::Replaced);
        let bad = b"{\"version\":\n\"x\"}";
        match ServiceState::parse(bad) {
            Err(Error::MalformedBody { offset, .. }) => assert!(offset >= 11, "offset {offset}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ServiceState::parse(&vec![b' '; MAX_SERVICE_STATE_BYTES + 1]),
            Err(Error::BodyTooLarge { .. })
        ));
    }
}
