//! Request methods.

use std::fmt;
use std::str::FromStr;

use crate::chars;
use crate::error::{Error, Result};

/// A SIP request method (case-sensitive, RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// OPTIONS (RFC 3261).
    Options,
    /// REGISTER (RFC 3261).
    Register,
    /// PRACK (RFC 3262).
    Prack,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// PUBLISH (RFC 3903).
    Publish,
    /// INFO (RFC 6086).
    Info,
    /// REFER (RFC 3515).
    Refer,
    /// MESSAGE (RFC 3428).
    Message,
    /// UPDATE (RFC 3311).
    Update,
    /// Any other method token.
    Extension(Box<str>),
}

impl Method {
    /// Parse a method token.
    ///
    /// # Errors
    /// [`Error::StartLine`] if `s` is not a token.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_bytes(s.as_bytes())
    }

    /// [`Method::parse`] on bytes: the known methods without a UTF-8 check (a token is ASCII).
    pub(crate) fn parse_bytes(s: &[u8]) -> Result<Self> {
        // by length first: one or two comparisons instead of a walk down the list
        let known = match s.len() {
            3 => match s {
                b"ACK" => Some(Self::Ack),
                b"BYE" => Some(Self::Bye),
                _ => None,
            },
            4 if s == b"INFO" => Some(Self::Info),
            5 => match s {
                b"PRACK" => Some(Self::Prack),
                b"REFER" => Some(Self::Refer),
                _ => None,
            },
            6 => match s {
                b"INVITE" => Some(Self::Invite),
                b"CANCEL" => Some(Self::Cancel),
                b"NOTIFY" => Some(Self::Notify),
                b"UPDATE" => Some(Self::Update),
                _ => None,
            },
            7 => match s {
                b"OPTIONS" => Some(Self::Options),
                b"PUBLISH" => Some(Self::Publish),
                b"MESSAGE" => Some(Self::Message),
                _ => None,
            },
            8 if s == b"REGISTER" => Some(Self::Register),
            9 if s == b"SUBSCRIBE" => Some(Self::Subscribe),
            _ => None,
        };
        match known {
            Some(m) => Ok(m),
            // tokens are ASCII
            None if chars::is_token_str(s) => Ok(Self::Extension(
                std::str::from_utf8(s).unwrap_or_default().into(),
            )),
            None => Err(Error::StartLine {
                offset: 0,
                expected: "a method token",
            }),
        }
    }

    /// The method as written on the wire.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Publish => "PUBLISH",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Update => "UPDATE",
            Self::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The default reason phrase for a status code (RFC 3261 §21 and extensions); empty if unknown.
#[must_use]
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [Method; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Register,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Publish,
        Method::Info,
        Method::Refer,
        Method::Message,
        Method::Update,
    ];

    #[test]
    fn known_methods_parse_to_themselves_and_near_misses_are_extensions() {
        for m in KNOWN {
            let s = m.as_str();
            assert_eq!(Method::parse(s).unwrap(), m, "{s}");
            // case-sensitive (RFC 3261 §7.1), and the exact length only
            for near in [
                s.to_ascii_lowercase(),
                format!("{s}X"),
                s[..s.len() - 1].to_owned(),
                format!("X{}", &s[1..]),
            ] {
                assert_eq!(
                    Method::parse(&near).unwrap(),
                    Method::Extension(near.clone().into()),
                    "{near}"
                );
            }
        }
        assert!(Method::parse("").is_err());
        assert!(Method::parse("IN VITE").is_err());
        assert!(Method::parse("ACK\r").is_err());
    }
}
