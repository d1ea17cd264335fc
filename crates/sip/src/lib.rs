//! `mcptt-sip`: the SIP message library of the mcptt workspace: a zero-copy message model,
//! a fast parser, typed header access, an encoder and builders, a stream framer, and
//! `multipart/mixed` and `message/sip` bodies.
//!
//! # Model
//! A parsed [`Message`] keeps the one [`Bytes`] buffer it was parsed from plus an index of
//! offsets (one small entry per header line). Values are handed out as `&str` views or
//! [`Bytes`] sub-slices on demand; typed values ([`Uri`], [`NameAddr`], [`Via`], …) hold a
//! sub-slice of the same buffer, so nothing is copied and no public type carries a lifetime.
//! Header names are case-insensitive and compact forms (`v`, `f`, `t`, `i`, `m`, `l`, …) are
//! equivalent to their long forms.
//!
//! # Layers
//! 1. [`frame`] / [`Framer`]: where a message ends on a stream (RFC 3261 §18.3); limits are
//!    enforced before anything is buffered.
//! 2. [`Message::parse`]: start line, Request-URI, header index, Content-Length, CSeq and
//!    Max-Forwards numbers (the fast path).
//! 3. [`Message::validate`]: every known header against its grammar (RFC 4475's invalid
//!    messages fail here or in 2).
//! 4. [`Request::check`] with a [`Policy`]: the RFC 3261 §8.2 semantic checks (missing or
//!    repeated headers, URI scheme, Require, …), each with [`Error::status_code`].
//!
//! A server parsing many messages can keep the one allocation a parse makes (the header
//! index) from message to message: [`Message::parse_with_storage`] and
//! [`frame_parse_with_storage`] build it in a [`HeaderStorage`] that
//! [`Message::into_storage`] hands back when the message is done with (bounded: see
//! [`HeaderStorage::MAX_RETAINED_LINES`]).
//!
//! # What it leaves out
//! No I/O, no clocks, no transactions or dialogs: those live in the crates above it.
//!
//! # Example
//! ```
//! use mcptt_sip::{Bytes, Message, Response};
//!
//! let wire = Bytes::from_static(
//!     b"REGISTER sip:mcptt.example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK776asdhds;rport\r\n\
//!       Max-Forwards: 70\r\n\
//!       From: <sip:alice@mcptt.example.com>;tag=1928301774\r\n\
//!       To: <sip:alice@mcptt.example.com>\r\n\
//!       Call-ID: a84b4c76e66710@ue.example.com\r\n\
//!       CSeq: 1 REGISTER\r\n\
//!       Contact: <sip:alice@[2001:db8::1]:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";expires=3600\r\n\
//!       Content-Length: 0\r\n\r\n",
//! );
//! let msg = Message::parse(wire.clone())?;
//! msg.validate()?;
//! let req = msg.as_request().expect("a request");
//! assert_eq!(req.method().as_str(), "REGISTER");
//! assert_eq!(req.call_id(), Some("a84b4c76e66710@ue.example.com"));
//! assert_eq!(req.cseq()?.seq, 1);
//! let via = req.top_via()?;
//! assert_eq!((via.transport(), via.host(), via.port()), ("TLS", "[2001:db8::1]", Some(5061)));
//! assert_eq!(via.rport(), Some(None));
//! let contact = &req.contacts()?[0];
//! assert_eq!(contact.expires(), Some(3600));
//! assert!(contact.feature_tag("+g.3gpp.mcptt").is_some());
//! assert_eq!(
//!     contact.name_addr().and_then(|a| a.icsi_ref()).as_deref(),
//!     Some("urn:urn-7:3gpp-service.ims.icsi.mcptt")
//! );
//! // An unmodified message encodes byte for byte.
//! assert_eq!(msg.encode(), wire);
//!
//! // The 200 OK copies Via, From, To (with a tag), Call-ID and CSeq (RFC 3261 §8.2.6).
//! let ok = Response::builder_for(req, 200)
//!     .to_tag("a6c85cf")
//!     .header("Contact", contact)
//!     .header("Expires", 3600)
//!     .build()?;
//! assert_eq!(ok.status(), 200);
//! assert_eq!(ok.to()?.tag(), Some("a6c85cf"));
//! assert_eq!(Message::parse(ok.encode())?, Message::Response(ok));
//! # Ok::<(), mcptt_sip::Error>(())
//! ```

// Tests may unwrap (STYLE.md §8); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

/// Implements, for a value type with `as_str()` and `parse(&str)`: `PartialEq`/`Eq` on the text
/// as written, `Display` (that text), `Debug` (`Type("text")`) and `FromStr` (`parse`).
macro_rules! text_value_traits {
    ($t:ident) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $t {}

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($t), "({:?})"), self.as_str())
            }
        }

        impl std::str::FromStr for $t {
            type Err = crate::error::Error;
            fn from_str(s: &str) -> crate::error::Result<Self> {
                Self::parse(s)
            }
        }
    };
}

mod access;
pub mod body;
mod chars;
mod check;
mod error;
mod frame;
mod headers;
mod limits;
mod message;
mod method;
mod name_addr;
mod names;
mod params;
mod span;
mod types;
mod uri;
mod validate;
mod via;

pub use bytes::{Bytes, BytesMut};

pub use body::{Multipart, Part};
pub use check::Policy;
pub use error::{Error, Result};
pub use frame::{
    FrameScan, Framed, Framer, Status, frame, frame_parse, frame_parse_with_storage, frame_resume,
    keepalive_len,
};
pub use headers::{HeaderEdit, HeaderStorage, Headers, split_commas};
pub use limits::Limits;
pub use message::{Message, Request, RequestBuilder, Response, ResponseBuilder};
pub use method::{Method, reason_phrase};
pub use name_addr::NameAddr;
pub use names::{KnownHeader, canonical_name, compact_name};
pub use params::Params;
pub use types::{
    AcceptContact, CSeq, Contact, ContentType, Date, Event, SubscriptionState, Warning,
};
pub use uri::{Scheme, Uri};
pub use via::{BRANCH_COOKIE, Via};

/// Decode `%XX` escapes (RFC 3261 §25.1); invalid escapes are kept as written.
#[must_use]
pub fn unescape(s: &str) -> std::borrow::Cow<'_, str> {
    chars::unescape(s)
}

/// Remove the quotes and `\` escapes of a quoted-string (text without quotes is returned as is).
#[must_use]
pub fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    chars::unquote(s)
}

#[cfg(test)]
mod tests;
