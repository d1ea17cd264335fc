//! The SIP edge of the drivers (private): messages are read with `mcptt-sip` (parse and typed
//! header access) and answered with `mcptt_sip::Response::from_request`; requests are built
//! with `mcptt_sip::Request::builder`.

use std::borrow::Cow;

use bytes::Bytes;
use mcptt_sip::{CSeq, Headers, NameAddr, Request, Response};

/// Normalises a URI for identity comparison: angle brackets and URI parameters/headers removed,
/// scheme and host lower-cased (RFC 3261 §19.1.4: user parts stay case-sensitive). Borrows
/// when the URI is already in that form.
pub(crate) fn identity(uri: &str) -> Cow<'_, str> {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split(['>', ';', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once(':').unwrap_or(("", uri));
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let lower = |s: &str| !s.bytes().any(|b| b.is_ascii_uppercase());
    if lower(scheme) && lower(host) && uri.contains(':') {
        return Cow::Borrowed(uri);
    }
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push(':');
    if let Some(u) = user {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host.to_ascii_lowercase());
    Cow::Owned(out)
}

/// Reads one encoded request with `mcptt-sip` (the `*_bytes` entry points).
pub(crate) fn parse_request(bytes: &[u8]) -> Result<Request, &'static str> {
    match mcptt_sip::Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(mcptt_sip::Message::Request(r)) => Ok(r),
        Ok(mcptt_sip::Message::Response(_)) => Err("a request, not a response"),
        Err(_) => Err("a well-formed SIP message"),
    }
}

/// Reads one encoded response with `mcptt-sip` (the `*_bytes` entry points).
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Response, &'static str> {
    match mcptt_sip::Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(mcptt_sip::Message::Response(r)) => Ok(r),
        Ok(mcptt_sip::Message::Request(_)) => Err("a response, not a request"),
        Err(_) => Err("a well-formed SIP message"),
    }
}

/// The headers that identify the transaction and dialog of every request and response
/// (RFC 3261 §8.1.1), read with `mcptt-sip`'s typed access; a message without them cannot be
/// answered.
pub(crate) struct Ids<'m> {
    /// `Call-ID`.
    pub(crate) call_id: &'m str,
    /// `CSeq`.
    pub(crate) cseq: CSeq,
    /// `From`.
    pub(crate) from: NameAddr,
    /// `To`.
    pub(crate) to: NameAddr,
}

impl<'m> Ids<'m> {
    /// Reads them; `Err` names the first one missing or malformed.
    pub(crate) fn read(headers: &'m Headers) -> Result<Self, &'static str> {
        let from = headers.from().map_err(|_| "From header")?;
        let to = headers.to().map_err(|_| "To header")?;
        let call_id = headers.call_id().ok_or("Call-ID header")?;
        let cseq = headers.cseq().map_err(|_| "CSeq header")?;
        Ok(Self {
            call_id,
            cseq,
            from,
            to,
        })
    }
}

/// A response to a request: `Response::from_request` (Via, From, To, Call-ID, CSeq and, for a
/// 2xx to SUBSCRIBE, Record-Route copied; `Content-Length: 0`) plus the headers a driver adds.
pub(crate) struct Answer(Response);

impl Answer {
    /// The response with code `code` to `req`.
    pub(crate) fn new(req: &Request, code: u16) -> Self {
        Self(Response::from_request(req, code))
    }

    /// Adds `;tag=TAG` to `To` (whose value in the request was `to`) when it has no tag.
    pub(crate) fn with_to_tag(mut self, to: &NameAddr, tag: &str) -> Self {
        if to.tag().is_none() {
            let value = format!("{};tag={tag}", to.as_str());
            // A tag this crate made (hex digits) and a value read from a header line: the
            // replacement cannot fail.
            let _ = self.0.headers_mut().replace("To", &value);
        }
        self
    }

    /// Adds a header line (before the final `Content-Length`).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        let headers = self.0.headers_mut();
        let at = headers.len().saturating_sub(1);
        // Names are constants; values are numbers, tags or configured text, and a value with
        // CR or LF (a misconfiguration) is left out rather than sent.
        let _ = headers.insert(at, name, value);
        self
    }

    /// The wire bytes.
    pub(crate) fn finish(self) -> Vec<u8> {
        let bytes = self.0.encode();
        drop(self.0);
        Vec::from(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::identity;

    #[test]
    fn identity_normalises_brackets_params_and_host_case() {
        assert_eq!(
            identity("<sip:Alice@EXAMPLE.org;user=phone>"),
            "sip:Alice@example.org"
        );
        assert_eq!(identity("SIP:ue1@Example.org"), "sip:ue1@example.org");
        assert_eq!(identity("tel:+123"), "tel:+123");
        assert!(matches!(
            identity("<sip:ue1@example.org>"),
            std::borrow::Cow::Borrowed("sip:ue1@example.org")
        ));
        assert_eq!(identity("no-scheme"), ":no-scheme");
    }
}
