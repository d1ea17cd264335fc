//! `application/vnd.mcptt-service-state+json`: this project's service-state document.

use serde::{Deserialize, Serialize};

use crate::error::{BodyKind, Error};
use crate::model::{AuthorisationState, CombinedState, RegistrationState, UeKind};

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
    pub mcptt_id: String,
    /// Public user identity of the UE.
    pub impu: String,
    /// `+sip.instance` of the UE.
    pub instance: Option<String>,
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
        // Serialising this plain struct of strings, integers and unit enums cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
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
