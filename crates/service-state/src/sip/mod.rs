//! The SIP edge of the drivers (private): a flat view of the headers the drivers read, and a
//! small text builder for the messages they send.

use std::fmt::Write as _;

use bytes::Bytes;

/// The headers of one incoming request or response that the drivers use, borrowed from the
/// message (no copies on the hot path).
#[derive(Debug, Clone, Default)]
pub(crate) struct View<'a> {
    /// Request method (empty for responses).
    pub(crate) method: &'a str,
    /// Request-URI (requests).
    pub(crate) request_uri: &'a str,
    /// Status code (responses; 0 for requests).
    pub(crate) status: u16,
    /// Raw `Via` values, in order.
    pub(crate) vias: Vec<&'a str>,
    /// Raw `From` value.
    pub(crate) from_raw: &'a str,
    /// Raw `To` value.
    pub(crate) to_raw: &'a str,
    /// URI of `From`.
    pub(crate) from_uri: &'a str,
    /// `tag` of `From`.
    pub(crate) from_tag: Option<&'a str>,
    /// URI of `To`.
    pub(crate) to_uri: &'a str,
    /// `tag` of `To`.
    pub(crate) to_tag: Option<&'a str>,
    /// `Call-ID`.
    pub(crate) call_id: &'a str,
    /// `CSeq` number.
    pub(crate) cseq: u32,
    /// `CSeq` method.
    pub(crate) cseq_method: &'a str,
    /// `Expires`.
    pub(crate) expires: Option<u32>,
    /// `Min-Expires` (423 responses).
    pub(crate) min_expires: Option<u32>,
    /// `Event` package and `id` parameter.
    pub(crate) event: Option<(&'a str, Option<&'a str>)>,
    /// `Subscription-State`: state, reason, expires.
    pub(crate) subscription_state: Option<(&'a str, Option<&'a str>, Option<u32>)>,
    /// `SIP-If-Match`.
    pub(crate) sip_if_match: Option<&'a str>,
    /// `SIP-ETag`.
    pub(crate) sip_etag: Option<&'a str>,
    /// `Content-Type` value.
    pub(crate) content_type: Option<&'a str>,
    /// URIs of `P-Asserted-Identity`, in order.
    pub(crate) pai: Vec<&'a str>,
    /// URI of the first `Contact`.
    pub(crate) contact: Option<&'a str>,
    /// `Record-Route` entries (full name-addr values), in order.
    pub(crate) record_route: Vec<&'a str>,
    /// `Warning` value (first).
    pub(crate) warning: Option<&'a str>,
    /// Message body.
    pub(crate) body: Bytes,
}

/// Normalises a URI for identity comparison: angle brackets and URI parameters/headers removed,
/// scheme and host lower-cased (RFC 3261 §19.1.4: user parts stay case-sensitive).
pub(crate) fn identity(uri: &str) -> String {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split(['>', ';', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once(':').unwrap_or(("", uri));
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme.to_ascii_lowercase());
    out.push(':');
    if let Some(u) = user {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host.to_ascii_lowercase());
    out
}

/// Text builder for one outgoing SIP message.
pub(crate) struct Builder {
    out: String,
}

impl Builder {
    /// A request line.
    pub(crate) fn request(method: &str, uri: &str) -> Self {
        let mut out = String::with_capacity(768);
        let _ = write!(out, "{method} {uri} SIP/2.0\r\n");
        Self { out }
    }

    /// A status line plus the headers RFC 3261 §8.2.6.2 copies from the request; `to_tag` is
    /// added to `To` when it has none.
    pub(crate) fn response(req: &View<'_>, code: u16, to_tag: Option<&str>) -> Self {
        let mut out = String::with_capacity(512);
        let _ = write!(out, "SIP/2.0 {code} {}\r\n", reason(code));
        let mut b = Self { out };
        for via in &req.vias {
            b.header("Via", via);
        }
        b.header("From", req.from_raw);
        match (to_tag, &req.to_tag) {
            (Some(tag), None) => {
                let to = format!("{};tag={tag}", req.to_raw);
                b.header("To", &to);
            }
            _ => {
                b.header("To", req.to_raw);
            }
        }
        b.header("Call-ID", req.call_id);
        let cseq = format!("{} {}", req.cseq, req.cseq_method);
        b.header("CSeq", &cseq);
        b
    }

    /// Appends a header line.
    pub(crate) fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.out.push_str(name);
        self.out.push_str(": ");
        self.out.push_str(value);
        self.out.push_str("\r\n");
        self
    }

    /// Appends a header line from format arguments.
    pub(crate) fn header_fmt(&mut self, name: &str, value: std::fmt::Arguments<'_>) -> &mut Self {
        self.out.push_str(name);
        self.out.push_str(": ");
        let _ = self.out.write_fmt(value);
        self.out.push_str("\r\n");
        self
    }

    /// Finishes with a body (or none) and returns the wire bytes.
    pub(crate) fn finish(mut self, body: Option<(&str, &[u8])>) -> Vec<u8> {
        match body {
            Some((ct, bytes)) => {
                self.header("Content-Type", ct);
                let _ = write!(self.out, "Content-Length: {}\r\n\r\n", bytes.len());
                let mut v = self.out.into_bytes();
                v.extend_from_slice(bytes);
                v
            }
            None => {
                self.out.push_str("Content-Length: 0\r\n\r\n");
                self.out.into_bytes()
            }
        }
    }
}

/// Reason phrases of the codes this crate sends.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        423 => "Interval Too Brief",
        481 => "Call/Transaction Does Not Exist",
        489 => "Bad Event",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "Unknown",
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
    }
}

pub(crate) mod glue;

/// Reads one encoded request with `mcptt-sip` (the `*_bytes` entry points).
pub(crate) fn parse_request(bytes: &[u8]) -> Result<mcptt_sip::Request, &'static str> {
    match mcptt_sip::Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(mcptt_sip::Message::Request(r)) => Ok(r),
        Ok(mcptt_sip::Message::Response(_)) => Err("a request, not a response"),
        Err(_) => Err("a well-formed SIP message"),
    }
}

/// Reads one encoded response with `mcptt-sip` (the `*_bytes` entry points).
pub(crate) fn parse_response(bytes: &[u8]) -> Result<mcptt_sip::Response, &'static str> {
    match mcptt_sip::Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(mcptt_sip::Message::Response(r)) => Ok(r),
        Ok(mcptt_sip::Message::Request(_)) => Err("a response, not a request"),
        Err(_) => Err("a well-formed SIP message"),
    }
}

/// Reads one encoded request and hands its [`View`] to `on_view` (the `handle_request_bytes`
/// entry points); a message that cannot be read is handed over as `Err`.
pub(crate) fn with_request_view<R>(
    bytes: &[u8],
    on_view: impl FnOnce(Result<View<'_>, &'static str>) -> R,
) -> R {
    match parse_request(bytes) {
        Ok(r) => on_view(glue::view_request(&r)),
        Err(what) => on_view(Err(what)),
    }
}

/// Reads one encoded response and hands its [`View`] to `on_view` (the clients'
/// `handle_response_bytes`); a message that cannot be read is handed over as `Err`.
pub(crate) fn with_response_view<R>(
    bytes: &[u8],
    on_view: impl FnOnce(Result<View<'_>, &'static str>) -> R,
) -> R {
    match parse_response(bytes) {
        Ok(r) => on_view(glue::view_response(&r)),
        Err(what) => on_view(Err(what)),
    }
}
