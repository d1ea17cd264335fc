//! Reading `mcptt-sip` messages into a [`View`] (header values are read from the raw header
//! text so that only the stable core of the `mcptt-sip` API is relied on).

use bytes::Bytes;

use mcptt_sip::split_commas;

use super::View;

/// The header a (possibly compact, any-case) name stands for (RFC 3261 §7.3.3, RFC 6665 `o`).
fn known(name: &str) -> Option<H> {
    const NAMES: [(&str, Option<&str>, H); 19] = [
        ("via", Some("v"), H::Via),
        ("from", Some("f"), H::From),
        ("to", Some("t"), H::To),
        ("call-id", Some("i"), H::CallId),
        ("cseq", None, H::CSeq),
        ("expires", None, H::Expires),
        ("min-expires", None, H::MinExpires),
        ("event", Some("o"), H::Event),
        ("subscription-state", None, H::SubscriptionState),
        ("sip-if-match", None, H::SipIfMatch),
        ("sip-etag", None, H::SipETag),
        ("content-type", Some("c"), H::ContentType),
        ("p-asserted-identity", None, H::Pai),
        ("contact", Some("m"), H::Contact),
        ("record-route", None, H::RecordRoute),
        ("warning", None, H::Warning),
        ("max-forwards", None, H::Other),
        ("content-length", Some("l"), H::Other),
        ("route", None, H::Other),
    ];
    // Names are compared only against those of the same first letter (most messages carry a
    // dozen headers; a full scan of the table per header showed in profiles).
    if name.len() == 1 {
        return NAMES
            .iter()
            .find(|(_, short, _)| short.is_some_and(|s| name.eq_ignore_ascii_case(s)))
            .map(|(_, _, h)| *h);
    }
    let first = name.as_bytes().first()?.to_ascii_lowercase();
    NAMES
        .iter()
        .filter(|(long, _, _)| long.as_bytes().first() == Some(&first))
        .find(|(long, _, _)| name.eq_ignore_ascii_case(long))
        .map(|(_, _, h)| *h)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Expires,
    MinExpires,
    Event,
    SubscriptionState,
    SipIfMatch,
    SipETag,
    ContentType,
    Pai,
    Contact,
    RecordRoute,
    Warning,
    Other,
}

/// The URI and the header-parameter text (`;a=b;c`) of a name-addr / addr-spec value.
pub(crate) fn name_addr(value: &str) -> (&str, &str) {
    let value = value.trim();
    let (uri, params) = if let Some(open) = value.find('<') {
        let rest = value.get(open + 1..).unwrap_or("");
        match rest.find('>') {
            Some(close) => (
                rest.get(..close).unwrap_or(""),
                rest.get(close + 1..).unwrap_or(""),
            ),
            None => (rest, ""),
        }
    } else {
        // addr-spec form: parameters after the first ';' belong to the header (RFC 3261 §20).
        match value.find(';') {
            Some(i) => (value.get(..i).unwrap_or(""), value.get(i..).unwrap_or("")),
            None => (value, ""),
        }
    };
    (uri.trim(), params)
}

/// The value of parameter `name` (case-insensitive) in `;a=b;c` text, quotes removed.
pub(crate) fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Builds a [`View`] from a start line and the raw headers.
pub(crate) fn view_from_parts<'a>(
    method: &'a str,
    request_uri: &'a str,
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: Bytes,
) -> Result<View<'a>, &'static str> {
    let mut v = View {
        method,
        request_uri,
        status,
        body,
        ..View::default()
    };
    let mut have = (false, false, false, false);
    for (name, value) in headers {
        let value = value.trim();
        let Some(h) = known(name.trim()) else {
            continue;
        };
        match h {
            H::Via if !value.contains(',') => v.vias.push(value),
            H::Via => v.vias.extend(split_commas(value)),
            H::From => {
                v.from_raw = value;
                let (uri, params) = name_addr(value);
                v.from_uri = uri;
                v.from_tag = param(params, "tag");
                have.0 = true;
            }
            H::To => {
                v.to_raw = value;
                let (uri, params) = name_addr(value);
                v.to_uri = uri;
                v.to_tag = param(params, "tag");
                have.1 = true;
            }
            H::CallId => {
                v.call_id = value;
                have.2 = true;
            }
            H::CSeq => {
                let mut it = value.split_whitespace();
                v.cseq = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("CSeq number")?;
                v.cseq_method = it.next().ok_or("CSeq method")?;
                have.3 = true;
            }
            H::Expires => v.expires = Some(value.parse().map_err(|_| "Expires delta-seconds")?),
            H::MinExpires => v.min_expires = value.parse().ok(),
            H::Event => {
                let (package, params) = value.split_once(';').unwrap_or((value, ""));
                v.event = Some((package.trim(), param(params, "id")));
            }
            H::SubscriptionState => {
                let (state, params) = value.split_once(';').unwrap_or((value, ""));
                v.subscription_state = Some((
                    state.trim(),
                    param(params, "reason"),
                    param(params, "expires").and_then(|e| e.parse().ok()),
                ));
            }
            H::SipIfMatch => v.sip_if_match = Some(value),
            H::SipETag => v.sip_etag = Some(value),
            H::ContentType => v.content_type = Some(value),
            H::Pai => v.pai.extend(split_commas(value).map(|a| name_addr(a).0)),
            H::Contact if v.contact.is_none() => {
                v.contact = split_commas(value).next().map(|c| name_addr(c).0);
            }
            H::RecordRoute => v.record_route.extend(split_commas(value)),
            H::Warning if v.warning.is_none() => v.warning = Some(value),
            _ => {}
        }
    }
    match have {
        (true, true, true, true) => Ok(v),
        (false, ..) => Err("From header"),
        (_, false, ..) => Err("To header"),
        (_, _, false, _) => Err("Call-ID header"),
        _ => Err("CSeq header"),
    }
}

/// Reads an `mcptt-sip` request.
pub(crate) fn view_request(req: &mcptt_sip::Request) -> Result<View<'_>, &'static str> {
    view_from_parts(
        req.method().as_str(),
        req.uri().as_str(),
        0,
        req.headers().iter(),
        req.body(),
    )
}

/// Reads an `mcptt-sip` response.
pub(crate) fn view_response(resp: &mcptt_sip::Response) -> Result<View<'_>, &'static str> {
    view_from_parts("", "", resp.status(), resp.headers().iter(), resp.body())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_value_helpers() {
        let (uri, params) = name_addr("\"Alice\" <sip:alice@example.org;transport=tls>;tag=abc");
        assert_eq!(uri, "sip:alice@example.org;transport=tls");
        assert_eq!(param(params, "tag"), Some("abc"));
        let (uri, params) = name_addr("sip:bob@example.org;tag=9");
        assert_eq!(uri, "sip:bob@example.org");
        assert_eq!(param(params, "tag"), Some("9"));
    }

    #[test]
    fn long_and_compact_names_in_any_case() {
        for (name, h) in [
            ("Call-ID", H::CallId),
            ("i", H::CallId),
            ("O", H::Event),
            ("event", H::Event),
            ("m", H::Contact),
            ("CONTACT", H::Contact),
            ("c", H::ContentType),
            ("l", H::Other),
            ("v", H::Via),
            ("P-Asserted-Identity", H::Pai),
            ("SIP-If-Match", H::SipIfMatch),
        ] {
            assert_eq!(known(name), Some(h), "{name}");
        }
        assert_eq!(known("x"), None);
        assert_eq!(known("Subject"), None);
        assert_eq!(known(""), None);
    }
}
